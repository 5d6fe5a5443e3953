//! Accepting WebSocket connections and running a peer for each.
//!
//! The [`Endpoint`] does the work: an HTTP/1.1 upgrade request passes the checks of RFC 6455, the origin
//! check, the connection limit, subprotocol negotiation and admission, then becomes a WebSocket connection
//! with its own [`Router`](rpc_core::Router), registered in the hub. It is a tower service and, with the
//! feature `axum`, the state of an axum handler (`RpcUpgrade`), so that an app mounts it beside its other
//! routes. [`Server`] is birpc's own listener in front of one: TCP, TLS, hyper's HTTP/1, and the HTTP handler
//! for requests that are not upgrades (or `426 Upgrade Required`).
//!
//! - `builder`: [`ServerBuilder`], the settings of both;
//! - `endpoint`: [`Endpoint`], with its connections (their limit, table, hub and shutdown: `crate::serving`);
//! - `upgrade`: the HTTP side of the opening handshake, and [`UpgradeRejection`];
//! - `connection`: running an upgraded connection;
//! - `axum`: the `RpcUpgrade` extractor.

#[cfg(feature = "axum")]
mod axum;
mod builder;
mod connection;
mod connection_info;
mod endpoint;
mod upgrade;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rpc_core::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[cfg(feature = "axum")]
pub use self::axum::RpcUpgrade;
pub use builder::ServerBuilder;
pub use connection_info::ConnectionInfo;
pub use endpoint::Endpoint;
pub use upgrade::UpgradeRejection;

/// A bound WebSocket server, not yet accepting; [`serve`](Self::serve) starts it.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use rpc_core::{Context, ErrorObject, Router};
/// use rpc_transport::ws::Server;
///
/// let server = Server::bind("127.0.0.1:0").await?;
/// println!("listening on ws://{}", server.local_addr());
/// let running = server.serve(|_connection| {
///     Router::new().method("add", |_: Context, (a, b): (i64, i64)| async move { Ok::<_, ErrorObject>(a + b) })
/// });
/// // ... later:
/// running.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: ServerBuilder,
}

impl Server {
    /// Starts setting up a server (or an [`Endpoint`]).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds `addr` with the default settings.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        ServerBuilder::default().bind(addr).await
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts accepting connections on the current tokio runtime. `routes` builds each admitted
    /// connection's [`Router`], so that every connection can hold state of its own.
    pub fn serve<F>(self, routes: F) -> ServerHandle
    where
        F: Fn(&ConnectionInfo) -> Router + Send + Sync + 'static,
    {
        let endpoint = self.settings.into_endpoint(routes);
        let handshakes = Arc::new(Semaphore::new(
            endpoint.shared.settings.max_handshakes.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let connections = &endpoint.shared.connections;
        connections.spawn(accept_loop(self.listener, endpoint.clone(), handshakes));
        ServerHandle {
            local_addr: self.local_addr,
            endpoint,
        }
    }
}

/// A running server: its address, its live connections, and the way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    endpoint: Endpoint,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.endpoint.connection_count()
    }

    /// The endpoint the server listens for.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Shuts the server down gracefully: stops accepting, lets every connection finish the requests it has
    /// started (new ones are answered -32002 Shutting down) for up to the shutdown grace, then closes each
    /// with 1001 (going away). Returns when every connection task has ended.
    pub async fn shutdown(self) {
        // The accept loop and the HTTP connections are tasks of the endpoint's, and end at once.
        self.endpoint.shutdown().await;
    }
}

async fn accept_loop(listener: TcpListener, endpoint: Endpoint, handshakes: Arc<Semaphore>) {
    let connections = &endpoint.shared.connections;
    while let Some((tcp, remote)) = connections.accept(|| listener.accept()).await {
        let Ok(place) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(target: "birpc::transport", %remote, "too many connections in their handshake; closing a new one");
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(target: "birpc::transport", %error, "could not disable Nagle's algorithm");
        }
        connections.spawn(handshake(tcp, remote, endpoint.clone(), place));
    }
}

/// Runs the TLS handshake, if any, then serves HTTP on the connection.
async fn handshake(tcp: TcpStream, remote: SocketAddr, endpoint: Endpoint, place: OwnedSemaphorePermit) {
    #[cfg(feature = "tls")]
    if let Some(config) = endpoint.shared.settings.tls.clone() {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let timeout = endpoint.shared.settings.handshake_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => serve_http(tls, remote, endpoint, place).await,
            Ok(Err(error)) => tracing::debug!(target: "birpc::transport", %error, %remote, "a TLS handshake failed"),
            Err(_) => tracing::debug!(target: "birpc::transport", %remote, "a TLS handshake timed out"),
        }
        return;
    }
    serve_http(tcp, remote, endpoint, place).await;
}

/// Serves HTTP on one connection until it is upgraded, closed, or the server shuts down. `_place`, a place
/// among the connections in their handshake, is held until then. Every request goes to the endpoint, with
/// the remote address in its extensions.
async fn serve_http<S>(io: S, remote: SocketAddr, endpoint: Endpoint, _place: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = endpoint.shared.connections.clone();
    let handshake_timeout = endpoint.shared.settings.handshake_timeout;
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let (mut parts, _body) = request.into_parts();
        parts.extensions.insert(remote);
        // The connection's own IO is `S`: once upgraded, the WebSocket runs on it directly.
        let answer = endpoint.clone().respond::<S>(parts);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(handshake_timeout);
    let connection = http.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        () = connections.shutting_down() => {}
        served = connection => {
            if let Err(error) = served {
                tracing::debug!(target: "birpc::transport", %error, %remote, "an HTTP connection failed");
            }
        }
    }
}
