//! Accepting WebSocket connections and running a peer for each.
//!
//! HTTP/1.1 is handled by hyper: an upgrade request passes the origin check, the subprotocol negotiation and
//! the admission hook, then becomes a WebSocket connection with its own [`Router`]; any other request goes
//! to the HTTP handler (pages, scripts), or is answered `426 Upgrade Required`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use rpc_core::{CloseCode, Extensions, Hub, Peer, PeerConfig, PeerHandle, Router};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::{Admit, AdmitHook, Origins, Reject, SUBPROTOCOL, negotiate};
use super::config::{DEFAULT_READ_BUFFER, DEFAULT_WRITE_BUFFER, websocket_config};
use super::socket::WsTransport;

/// What the server knows of a connection: given to the admission hook, to the router factory (then with
/// what the hook attached), and to every handler through `Context::state::<ConnectionInfo>()`.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    id: u64,
    remote_addr: SocketAddr,
    uri: Uri,
    headers: HeaderMap,
    subprotocol: Option<String>,
    extensions: Extensions,
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

    /// The value of query parameter `key` of the upgrade request, decoded, if present.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.uri.query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The `Origin` of the upgrade request (sent by browsers), if any.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok())
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_subprotocols(&self) -> impl Iterator<Item = &str> {
        super::admission::offered(&self.headers)
    }

    /// The subprotocol agreed on, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// A value the admission hook attached (after admission), if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get()
    }
}

/// Answers plain HTTP requests (anything but a WebSocket upgrade): pages, scripts, health checks.
type HttpHandler = Arc<dyn Fn(&Request<()>) -> Response<Bytes> + Send + Sync>;

/// Settings of a [`Server`], built from [`Server::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until `bind` is awaited"]
pub struct ServerBuilder {
    config: PeerConfig,
    handshake_timeout: Duration,
    max_connections: usize,
    max_handshakes: usize,
    shutdown_grace: Duration,
    read_buffer_size: usize,
    write_buffer_size: usize,
    origins: Origins,
    subprotocols: Vec<String>,
    admit: Option<AdmitHook>,
    http: Option<HttpHandler>,
    hub: Option<Hub>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
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
            origins: Origins::Any,
            subprotocols: vec![SUBPROTOCOL.to_owned()],
            admit: None,
            http: None,
            hub: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .field("origins", &self.origins)
            .field("subprotocols", &self.subprotocols)
            .field("admission hook", &self.admit.is_some())
            .field("http handler", &self.http.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The limits and timings of every connection's peer. Default: [`PeerConfig::default`].
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// How long a client may take to send its upgrade request once connected (with TLS: to finish the TLS
    /// handshake, too). Default: 10 s; a client that takes longer is disconnected.
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

    /// The WebSocket read buffer of each connection, in bytes, and the most read from the socket at once.
    /// Default: 2 KiB: every idle connection holds one. It grows while a larger message is read, but reads
    /// stay this size: raise it (to 64 KiB, say) where messages of hundreds of KiB are common and
    /// connections few.
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

    /// Admits upgrade requests only from these page origins (`"https://app.example"`, compared without
    /// regard to case); others are answered `403 Forbidden`. Requests without an `Origin` header (not from
    /// a browser) are admitted. Default: any origin.
    ///
    /// A server that authenticates browsers by cookie must set this: otherwise any site a signed-in user
    /// visits can open a connection in their name (cross-site WebSocket hijacking).
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins = Origins::Only(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The WebSocket subprotocols the server speaks, in its order of preference. Default: [`SUBPROTOCOL`].
    /// The client's first choice among them is agreed on; a client that offers only others is answered
    /// without one (RFC 6455), and may go on or give up.
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Decides on every upgrade request before any frame is exchanged: [`Admit`] it, with typed values
    /// attached to the connection (the authenticated user), or [`Reject`] it with an HTTP status. Runs after
    /// the origin check and the connection limit.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use rpc_transport::ws::{Admit, Reject, Server};
    ///
    /// struct User(String);
    ///
    /// let server = Server::builder()
    ///     .admit(|request| async move {
    ///         match request.query("token").as_deref() {
    ///             Some("secret") => Ok(Admit::new().with_state(User("ada".into()))),
    ///             _ => Err(Reject::unauthorized("a valid token is needed")),
    ///         }
    ///     })
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// # let _ = server;
    /// # Ok(()) }
    /// ```
    pub fn admit<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(ConnectionInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Admit, Reject>> + Send + 'static,
    {
        self.admit = Some(Arc::new(move |info| Box::pin(hook(info))));
        self
    }

    /// Answers plain HTTP requests on the same port (a web page, its scripts). Default: none, such
    /// requests are answered `426 Upgrade Required`.
    pub fn http<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Request<()>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.http = Some(Arc::new(handler));
        self
    }

    /// Registers every connection in `hub` while it is open.
    pub fn hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Serves `wss://` with this TLS configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
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

    /// Starts accepting connections on the current tokio runtime. `routes` builds each admitted
    /// connection's [`Router`], so that every connection can hold state of its own.
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

/// The close reason of connections ended by a shutdown.
const SHUTDOWN_REASON: &str = "server shutting down";

type Routes = Box<dyn Fn(&ConnectionInfo) -> Router + Send + Sync>;

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
                state.tracker.spawn(handshake(tcp, remote, state.clone(), place));
            }
            Err(error) => {
                // Out of file descriptors or memory, most likely: wait a little instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs the TLS handshake, if any, then serves HTTP on the connection.
async fn handshake(tcp: TcpStream, remote: SocketAddr, state: Arc<State>, place: OwnedSemaphorePermit) {
    #[cfg(feature = "tls")]
    if let Some(config) = state.settings.tls.clone() {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(state.settings.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => serve_http(tls, remote, state, place).await,
            Ok(Err(error)) => tracing::debug!(%error, %remote, "a TLS handshake failed"),
            Err(_) => tracing::debug!(%remote, "a TLS handshake timed out"),
        }
        return;
    }
    serve_http(tcp, remote, state, place).await;
}

/// Serves HTTP on one connection until it is upgraded, closed, or the server shuts down. `_place`, a place
/// among the connections in their handshake, is held until then.
async fn serve_http<S>(io: S, remote: SocketAddr, state: Arc<State>, _place: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service = service_fn(move |request| {
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(respond::<S>(request, remote, state).await) }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.settings.handshake_timeout);
    let connection = http.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        () = state.shutdown.cancelled() => {}
        served = connection => {
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "an HTTP connection failed");
            }
        }
    }
}

/// Answers one HTTP request: a WebSocket upgrade may start a connection; anything else goes to the HTTP
/// handler.
///
/// `S` is the connection's IO (a `TcpStream`, a TLS stream): once upgraded, the WebSocket runs on it directly.
async fn respond<S>(mut request: Request<Incoming>, remote: SocketAddr, state: Arc<State>) -> Response<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let headers = request.headers();
    let upgrade = request.method() == Method::GET
        && header_has_token(headers, &CONNECTION, "upgrade")
        && header_has_token(headers, &UPGRADE, "websocket");
    if !upgrade {
        return match &state.settings.http {
            Some(handler) => {
                let (parts, _body) = request.into_parts();
                handler(&Request::from_parts(parts, ())).map(Full::new)
            }
            None => {
                let mut response = plain(
                    StatusCode::UPGRADE_REQUIRED,
                    "this endpoint speaks JSON-RPC 2.0 over WebSocket",
                );
                response
                    .headers_mut()
                    .insert(UPGRADE, HeaderValue::from_static("websocket"));
                response
            }
        };
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version");
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    // RFC 6455 section 4.2.1: an upgrade is an HTTP/1.1 (or later) GET whose key is 16 bytes in base64.
    if request.version() < http::Version::HTTP_11 {
        return plain(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs HTTP/1.1");
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    if !is_websocket_key(key.as_bytes()) {
        return plain(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes in base64");
    }
    let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    if !state.settings.origins.allow(headers) {
        tracing::info!(%remote, origin = ?headers.get(http::header::ORIGIN), "refused an upgrade from an origin not allowed");
        return plain(StatusCode::FORBIDDEN, "origin not allowed");
    }
    if state.shutdown.is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, SHUTDOWN_REASON);
    }
    let Some(place) = Place::take(&state) else {
        let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let mut info = ConnectionInfo {
        id: state.next_id.fetch_add(1, Ordering::Relaxed),
        remote_addr: remote,
        uri: detached_uri(request.uri()),
        headers: detached_headers(headers),
        subprotocol: negotiate(headers, &state.settings.subprotocols).map(str::to_owned),
        extensions: Extensions::new(),
    };
    if let Some(admit) = &state.settings.admit {
        match admit(info.clone()).await {
            Ok(admitted) => info.extensions = admitted.extensions,
            Err(reject) => {
                tracing::debug!(%remote, status = %reject.status, "the admission hook refused an upgrade");
                let mut response = Response::new(Full::new(Bytes::from(reject.body)));
                *response.status_mut() = reject.status;
                return response;
            }
        }
    }
    let router = (state.routes)(&info);
    let on_upgrade = hyper::upgrade::on(&mut request);
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    response_headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = info.subprotocol.as_deref().and_then(|p| HeaderValue::try_from(p).ok()) {
        response_headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    state
        .tracker
        .spawn(run_connection::<S>(on_upgrade, router, info, place));
    response
}

/// A place among the server's connections, given back when dropped.
struct Place(Arc<State>);

impl Place {
    fn take(state: &Arc<State>) -> Option<Self> {
        let max = state.settings.max_connections;
        state
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Place(state.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs the peer of an upgraded connection until it ends.
///
/// The WebSocket runs on the connection's own IO `S`, taken back from hyper: hyper's HTTP read buffer is freed
/// and reads and writes do not go through its type-erased upgrade wrapper.
async fn run_connection<S>(on_upgrade: OnUpgrade, router: Router, info: ConnectionInfo, place: Place)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = &place.0;
    let parts = match on_upgrade.await.map(|upgraded| upgraded.downcast::<TokioIo<S>>()) {
        Ok(Ok(parts)) => parts,
        Ok(Err(_)) => {
            // Cannot happen: hyper served the connection as a `TokioIo<S>`.
            tracing::error!(remote = %info.remote_addr, "an upgraded connection is not of the type it was served as");
            return;
        }
        Err(error) => {
            tracing::debug!(%error, remote = %info.remote_addr, "an upgrade did not complete");
            return;
        }
    };
    let settings = &state.settings;
    let ws_config = websocket_config(&settings.config, settings.read_buffer_size, settings.write_buffer_size);
    let socket = websocket(parts, ws_config).await;
    let (id, remote) = (info.id, info.remote_addr);
    let (peer, handle) = Peer::builder()
        .router(router)
        .config(settings.config.clone())
        .extensions(info.extensions.clone())
        .state(info)
        .build(WsTransport::new(socket));
    state.connections().insert(id, handle.clone());
    let registration = settings.hub.as_ref().map(|hub| hub.register(handle.clone()));
    if state.shutdown.is_cancelled() {
        handle.close_with(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
    }
    let reason = peer.run().await;
    state.connections().remove(&id);
    if let Some(registration) = registration {
        registration.end(&reason);
    }
    tracing::debug!(%reason, %remote, "connection ended");
}

/// The WebSocket on an upgraded connection's own IO. `parts` is consumed: what it holds of hyper's read
/// buffer is freed here, not when the connection ends.
async fn websocket<S>(parts: hyper::upgrade::Parts<TokioIo<S>>, config: WebSocketConfig) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = parts.io.into_inner();
    if parts.read_buf.is_empty() {
        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
    } else {
        // Frames the client sent right behind its upgrade request, read by hyper already.
        WebSocketStream::from_partially_read(io, parts.read_buf.to_vec(), Role::Server, Some(config)).await
    }
}

/// A copy of `headers` that owns its bytes. hyper's parsed headers are views into its read buffer, which a
/// plain clone would keep allocated for as long as the connection lives.
fn detached_headers(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.set_sensitive(value.is_sensitive());
        copy.append(name, owned);
    }
    copy
}

/// A copy of `uri` that owns its bytes (see [`detached_headers`]).
fn detached_uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

/// Whether `key` is the base64 encoding of 16 bytes (RFC 6455 section 4.2.1): 22 characters of the
/// base64 alphabet (RFC 4648 section 4), the last of which leaves no stray bits, then `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    let is_base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    match key {
        [data @ .., b'=', b'='] if data.len() == 22 && data.iter().all(is_base64) => {
            // The 22nd character carries 2 bits of the 16th byte and 4 padding bits, which must be zero:
            // it is one of A, Q, g, w.
            matches!(data[21], b'A' | b'Q' | b'g' | b'w')
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_keys_are_16_bytes_in_base64() {
        // The example key of RFC 6455 section 1.3.
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        for bad in [
            &b""[..],
            b"abc",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"dGhlIHNhbXBsZSBub25jZQ==AA",
            b"dGhlIHNhbXBsZSBub25jZQ=",
        ] {
            assert!(!is_websocket_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
