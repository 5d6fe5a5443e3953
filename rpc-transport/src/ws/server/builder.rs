//! The settings of an endpoint and of the listener around it: [`ServerBuilder`].

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use rpc_core::{Hub, PeerConfig, Router};
use tokio::net::{TcpListener, ToSocketAddrs};

use super::super::admission::{Admit, AdmitHook, Origins, Reject, SUBPROTOCOL};
use super::super::config::{DEFAULT_READ_BUFFER, DEFAULT_WRITE_BUFFER};
use super::{ConnectionInfo, Endpoint, Server};

/// Answers plain HTTP requests (anything but a WebSocket upgrade): pages, scripts, health checks.
pub(super) type HttpHandler = Arc<dyn Fn(&Request<()>) -> Response<Bytes> + Send + Sync>;

/// Settings of a [`Server`] or of an [`Endpoint`], built from [`Server::builder`].
///
/// Most settings are the endpoint's, and apply wherever it runs: behind birpc's own listener
/// ([`bind`](Self::bind)) or mounted in another server ([`into_endpoint`](Self::into_endpoint)). Those of
/// the listener, [`handshake_timeout`](Self::handshake_timeout), [`max_handshakes`](Self::max_handshakes)
/// and `tls`, apply to [`Server`] only: an app that mounts the endpoint sets them on its own server.
#[derive(Clone)]
#[must_use = "a builder does nothing until `bind` is awaited or `into_endpoint` is called"]
pub struct ServerBuilder {
    /// Shared by every connection's peer.
    pub(super) config: Arc<PeerConfig>,
    pub(super) handshake_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_handshakes: usize,
    pub(super) shutdown_grace: Duration,
    pub(super) read_buffer_size: usize,
    pub(super) write_buffer_size: usize,
    pub(super) origins: Origins,
    pub(super) subprotocols: Vec<String>,
    pub(super) admit: Option<AdmitHook>,
    pub(super) http: Option<HttpHandler>,
    pub(super) hub: Option<Hub>,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            config: Arc::default(),
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
        self.config = Arc::new(config);
        self
    }

    /// How long a client may take to send its upgrade request once connected (with TLS: to finish the TLS
    /// handshake, too). Default: 10 s; a client that takes longer is disconnected. [`Server`] only.
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
    /// the server's sockets. [`Server`] only.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max;
        self
    }

    /// How long a shutdown ([`ServerHandle::shutdown`](super::ServerHandle::shutdown),
    /// [`Endpoint::shutdown`]) lets running handlers finish. Default: 10 s.
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
    /// In an axum app, an `RpcUpgrade` handler can decide with axum's extractors
    /// and state instead; a hook set here runs too, after the handler admitted, and sees what it attached.
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
    /// requests are answered `426 Upgrade Required`. An [`Endpoint`] answers with it too, for the requests
    /// that reach it and are not upgrades.
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

    /// Serves `wss://` with this TLS configuration. [`Server`] only.
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

    /// The WebSocket endpoint with these settings, to mount in another server: a tower `Service` for any
    /// `http::Request` (axum's `Router::route_service`, hyper), and the state of
    /// `RpcUpgrade` handlers (feature `axum`). `routes` builds each admitted
    /// connection's [`Router`], as for [`Server::serve`].
    ///
    /// The endpoint starts nothing: its connections run as tasks on the runtime that serves its upgrades.
    pub fn into_endpoint<F>(self, routes: F) -> Endpoint
    where
        F: Fn(&ConnectionInfo) -> Router + Send + Sync + 'static,
    {
        Endpoint::with_settings(self, Box::new(routes))
    }
}
