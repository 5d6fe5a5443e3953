//! Accepting WebSocket connections and running a peer for each.
//!
//! HTTP/1.1 is handled by hyper: an upgrade request becomes a WebSocket connection with its own
//! [`Router`]; any other request is answered `426 Upgrade Required`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, HeaderMap, HeaderValue, RETRY_AFTER, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use rpc_core::{CloseCode, Peer, PeerConfig, PeerHandle, Router};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{DEFAULT_READ_BUFFER, DEFAULT_WRITE_BUFFER, websocket_config};
use super::socket::WsTransport;

/// What the server knows of a connection when it builds the connection's [`Router`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    id: u64,
    remote_addr: SocketAddr,
    uri: Uri,
    headers: HeaderMap,
}

impl ConnectionInfo {
    /// A number unique among this server's connections.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address of the other side.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The path and query of the upgrade request.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// Settings of a [`Server`], built from [`Server::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `bind` is awaited"]
pub struct ServerBuilder {
    config: PeerConfig,
    handshake_timeout: Duration,
    max_connections: usize,
    max_handshakes: usize,
    shutdown_grace: Duration,
    read_buffer_size: usize,
    write_buffer_size: usize,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            config: PeerConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_handshakes: 1024,
            shutdown_grace: Duration::from_secs(10),
            read_buffer_size: DEFAULT_READ_BUFFER,
            write_buffer_size: DEFAULT_WRITE_BUFFER,
        }
    }
}

impl ServerBuilder {
    /// The limits and timings of every connection's peer. Default: [`PeerConfig::default`].
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// How long a client may take to send its upgrade request once connected. Default: 10 s; a client that
    /// takes longer is disconnected.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The most WebSocket connections open at once. Default: 10,000. Past it, upgrade requests are answered
    /// `503 Service Unavailable` (with `Retry-After`) before any frame is exchanged.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The most TCP connections still in their HTTP handshake at once. Default: 1024. Past it, new TCP
    /// connections are closed as soon as they are accepted, so that slow or silent clients cannot exhaust
    /// the server's sockets.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max;
        self
    }

    /// How long [`ServerHandle::shutdown`] lets running handlers finish. Default: 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The WebSocket read buffer of each connection, in bytes. Default: 8 KiB (every idle connection holds
    /// one; it grows while a larger message is read).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// How much written data is buffered before it goes to the socket, in bytes. Default: 8 KiB (frames are
    /// flushed after every burst regardless).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Binds the listening socket (port 0 picks a free port; see [`Server::local_addr`]).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
            settings: self,
        })
    }
}

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
    /// Starts setting up a server.
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

    /// Starts accepting connections on the current tokio runtime. `routes` builds each connection's
    /// [`Router`], so that every connection can hold state of its own.
    pub fn serve<F>(self, routes: F) -> ServerHandle
    where
        F: Fn(&ConnectionInfo) -> Router + Send + Sync + 'static,
    {
        let state = Arc::new(State {
            handshakes: Arc::new(Semaphore::new(
                self.settings.max_handshakes.clamp(1, Semaphore::MAX_PERMITS),
            )),
            settings: self.settings,
            routes: Box::new(routes),
            connections: Mutex::default(),
            admitted: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        let accept = tokio::spawn(accept_loop(self.listener, state.clone()));
        ServerHandle {
            local_addr: self.local_addr,
            state,
            accept,
        }
    }
}

/// A running server: its address, its live connections, and the way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.state.connections().len()
    }

    /// Shuts the server down gracefully: stops accepting, lets every connection finish the requests it has
    /// started (new ones are answered -32002 Shutting down) for up to the shutdown grace, then closes each
    /// with 1001 (going away). Returns when every connection task has ended.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        // The accept loop ends at once on cancellation; a panic in it has nothing left to clean up.
        let _ = self.accept.await;
        let open: Vec<PeerHandle> = self.state.connections().values().cloned().collect();
        for peer in open {
            peer.close_gracefully(
                CloseCode::GOING_AWAY,
                SHUTDOWN_REASON,
                self.state.settings.shutdown_grace,
            );
        }
        self.state.tracker.close();
        self.state.tracker.wait().await;
    }
}

type Routes = Box<dyn Fn(&ConnectionInfo) -> Router + Send + Sync>;

/// The close reason of connections ended by a shutdown.
const SHUTDOWN_REASON: &str = "server shutting down";

struct State {
    settings: ServerBuilder,
    routes: Routes,
    connections: Mutex<HashMap<u64, PeerHandle>>,
    /// WebSocket connections admitted (upgrading or open), out of `max_connections`.
    admitted: AtomicUsize,
    /// Places for TCP connections in their HTTP handshake, out of `max_handshakes`.
    handshakes: Arc<Semaphore>,
    next_id: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("connections", &self.connections().len())
            .finish_non_exhaustive()
    }
}

impl State {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, PeerHandle>> {
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let accepted = tokio::select! {
            () = state.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                let Ok(place) = state.handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(%remote, "too many connections in their handshake; closing a new one");
                    continue;
                };
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "could not disable Nagle's algorithm");
                }
                state.tracker.spawn(serve_http(tcp, remote, state.clone(), place));
            }
            Err(error) => {
                // Out of file descriptors or memory, most likely: wait a little instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves HTTP on one TCP connection until it is upgraded, closed, or the server shuts down. `_place`, a
/// place among the connections in their handshake, is held until then.
async fn serve_http(tcp: TcpStream, remote: SocketAddr, state: Arc<State>, _place: OwnedSemaphorePermit) {
    let service_state = state.clone();
    let service = service_fn(move |request| {
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(respond(request, remote, &state)) }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.settings.handshake_timeout);
    let connection = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
    tokio::select! {
        () = state.shutdown.cancelled() => {}
        served = connection => {
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "an HTTP connection failed");
            }
        }
    }
}

/// Answers one HTTP request: a WebSocket upgrade starts a connection, anything else is refused.
fn respond(mut request: Request<Incoming>, remote: SocketAddr, state: &Arc<State>) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let upgrade = request.method() == Method::GET
        && header_has_token(headers, &CONNECTION, "upgrade")
        && header_has_token(headers, &UPGRADE, "websocket");
    if !upgrade {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks JSON-RPC 2.0 over WebSocket",
        );
        response
            .headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version");
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    if state.shutdown.is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, SHUTDOWN_REASON);
    }
    let Some(admission) = Admission::take(state) else {
        let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let info = ConnectionInfo {
        id: state.next_id.fetch_add(1, Ordering::Relaxed),
        remote_addr: remote,
        uri: request.uri().clone(),
        headers: headers.clone(),
    };
    let router = (state.routes)(&info);
    let on_upgrade = hyper::upgrade::on(&mut request);
    state.tracker.spawn(run_connection(on_upgrade, router, info, admission));

    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// A place among the server's connections, given back when dropped.
struct Admission(Arc<State>);

impl Admission {
    fn take(state: &Arc<State>) -> Option<Self> {
        let max = state.settings.max_connections;
        state
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Admission(state.clone()))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs the peer of an upgraded connection until it ends.
async fn run_connection(on_upgrade: OnUpgrade, router: Router, info: ConnectionInfo, admission: Admission) {
    let state = &admission.0;
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, remote = %info.remote_addr, "an upgrade did not complete");
            return;
        }
    };
    let config = state.settings.config.clone();
    let settings = &state.settings;
    let ws_config = websocket_config(&config, settings.read_buffer_size, settings.write_buffer_size);
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config)).await;
    let (peer, handle) = Peer::builder()
        .router(router)
        .config(config)
        .build(WsTransport::new(socket));
    state.connections().insert(info.id, handle.clone());
    if state.shutdown.is_cancelled() {
        handle.close_with(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
    }
    let reason = peer.run().await;
    state.connections().remove(&info.id);
    tracing::debug!(%reason, remote = %info.remote_addr, "connection ended");
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn header_has_token(headers: &HeaderMap, name: &http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
