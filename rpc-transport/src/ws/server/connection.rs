//! Running an upgraded connection: its WebSocket, its peer, its place in the endpoint's table and hub.

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use rpc_core::{Peer, PeerBuilder, Router};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::super::config::websocket_config;
use super::super::socket::WsTransport;
use super::{ConnectionInfo, Endpoint};
use crate::serving::Place;

/// Sets up the peer of an upgraded connection and starts it in a task of its own; `place`, its place among
/// the endpoint's connections, is held until the connection ends.
///
/// When hyper served the connection as a `TokioIo<S>`, the WebSocket runs on `S` itself, taken back from
/// hyper: hyper's HTTP read buffer is freed and reads and writes do not go through its type-erased upgrade
/// wrapper. Otherwise it runs on hyper's [`Upgraded`].
pub(super) async fn run<S>(
    endpoint: Endpoint,
    on_upgrade: OnUpgrade,
    router: Router,
    info: ConnectionInfo,
    place: Place,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(target: "birpc::transport", %error, remote = %info.remote_addr, "an upgrade did not complete");
            return;
        }
    };
    let settings = &endpoint.shared.settings;
    let config = websocket_config(&settings.config, settings.read_buffer_size, settings.write_buffer_size);
    let peer = Peer::builder()
        .router(router)
        .config(settings.config.clone())
        .extensions(info.extensions.clone());
    match upgraded.downcast::<TokioIo<S>>() {
        Ok(parts) => serve(own_socket(parts, config).await, peer, info, place),
        Err(upgraded) => serve(upgraded_socket(upgraded, config).await, peer, info, place),
    }
}

/// The WebSocket on the connection's own IO, taken back from hyper. `parts` is consumed here: its
/// `read_buf` is a view into hyper's 8 KiB read buffer, which stays allocated for as long as any view of it
/// lives, so it must not live as long as the connection (it did once, for 7 KB more per idle connection).
async fn own_socket<S>(parts: hyper::upgrade::Parts<TokioIo<S>>, config: WebSocketConfig) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = parts.io.into_inner();
    if parts.read_buf.is_empty() {
        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
    } else {
        // Frames the client sent right behind its upgrade request, read by hyper already: copied out.
        WebSocketStream::from_partially_read(io, parts.read_buf.to_vec(), Role::Server, Some(config)).await
    }
}

/// The WebSocket on hyper's upgraded IO, whatever the connection's own IO is.
async fn upgraded_socket(upgraded: Upgraded, config: WebSocketConfig) -> WebSocketStream<TokioIo<Upgraded>> {
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await
}

/// Runs the peer built by `peer` on `socket`, in its place among the endpoint's connections, as a task of
/// its own: the upgrade's task ends here, so what it held while the connection was set up is not kept for
/// the connection's life.
fn serve<T>(socket: WebSocketStream<T>, peer: PeerBuilder, info: ConnectionInfo, place: Place)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remote = info.remote_addr;
    let connection = place.peer(peer.state(info), &remote, WsTransport::new(socket));
    place.spawn_run(connection);
}
