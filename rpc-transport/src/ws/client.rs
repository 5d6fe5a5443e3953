//! Dialling a WebSocket server and running a peer over the connection.

use std::time::Duration;

use rpc_core::{Peer, PeerConfig, PeerHandle, Router};

use super::dial::Dialer;
use super::reconnect::{Reconnect, ReconnectingClient};
use super::socket::WsTransport;

/// Why a connection could not be opened: by [`Client`], and by [`Target::connect`](crate::Target::connect)
/// for every kind of target (a byte-stream target fails with [`Io`](Self::Io), [`Timeout`](Self::Timeout)
/// or [`Spawn`](Self::Spawn)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` URL (or `wss://` with the `tls` feature).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A header given to the builder is not a valid HTTP header.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The TCP connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The server answered the upgrade request with an HTTP error (401 or 403 from its admission hook,
    /// 503 when it is full or shutting down, ...).
    #[error("the server refused the connection with HTTP {status}")]
    Rejected {
        /// The HTTP status code.
        status: u16,
    },
    /// The WebSocket handshake failed otherwise.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    /// No connection within the connect timeout.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    /// The child process of an `exec:` target could not be started.
    #[error("could not start {command:?}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ConnectError {
    /// Whether trying again cannot help: the server refused this client (a 4xx other than 408 and 429), or
    /// the request itself is malformed.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::Rejected { status } => (400..500).contains(status) && !matches!(status, 408 | 429),
            ConnectError::InvalidUrl(_) | ConnectError::InvalidHeader(_) | ConnectError::Spawn { .. } => true,
            _ => false,
        }
    }
}

/// Opens client connections: a `ws://` (or `wss://`) URL in, a [`PeerHandle`] out.
///
/// The client exports its own [`Router`], so the server can call it over the same connection. The
/// connection closes when the last clone of the returned handle is dropped (or on
/// [`PeerHandle::close`]). For a client that reconnects by itself, see [`ClientBuilder::reconnecting`].
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use rpc_core::{Context, ErrorObject, Router};
/// use rpc_transport::ws::Client;
///
/// let router = Router::new().method("ping", |_: Context, _: rpc_core::NoParams| async { Ok::<_, ErrorObject>("pong") });
/// let server = Client::builder()
///     .router(router)
///     .header("Authorization", "Bearer secret")
///     .connect("ws://127.0.0.1:9000")
///     .await?;
/// let sum: i64 = server.call("add", (1, 2)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Client;

impl Client {
    /// Starts setting up a connection.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to `url` with no exported methods and the default limits.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect(url: &str) -> Result<PeerHandle, ConnectError> {
        Self::builder().connect(url).await
    }
}

/// Settings of a client connection; see [`Client`].
#[derive(Default)]
#[must_use = "a builder does nothing until it connects"]
pub struct ClientBuilder {
    router: Router,
    dialer: Dialer,
    reconnect: Reconnect,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("router", &self.router)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The methods the client exports to the server (offered again on every connection of a reconnecting
    /// client). Default: none.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The peer's limits and timings. Default: [`PeerConfig::default`]. Its maximum message size also
    /// bounds what the WebSocket accepts.
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.dialer.config = config;
        self
    }

    /// How long the TCP connection and the handshake may take together. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.dialer.connect_timeout = timeout;
        self
    }

    /// The WebSocket read buffer, in bytes, and the most read from the socket at once. Default: 2 KiB. It
    /// grows while a larger message is read, but reads stay this size: raise it (to 64 KiB, say) for
    /// messages of hundreds of KiB.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.dialer.read_buffer_size = bytes;
        self
    }

    /// How much written data is buffered before it goes to the socket, in bytes. Default: 8 KiB (frames
    /// are flushed after every burst regardless).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.dialer.write_buffer_size = bytes;
        self
    }

    /// Adds a header to the upgrade request (`Authorization`, a cookie, ...). An invalid name or value is
    /// reported by `connect` as [`ConnectError::InvalidHeader`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.dialer.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a parameter to the query of the upgrade request (percent-encoded; a token, say, where headers
    /// cannot be set, as in browsers).
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.dialer.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Offers a WebSocket subprotocol (such as [`SUBPROTOCOL`](super::SUBPROTOCOL)); offered ones are
    /// required: a server that picks none of them is refused. Default: none offered.
    pub fn subprotocol(mut self, protocol: &str) -> Self {
        self.dialer.subprotocols.push(protocol.to_owned());
        self
    }

    /// The TLS settings for `wss://` URLs (a root store with a private CA, say). Default: the Mozilla
    /// roots of `webpki-roots`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.dialer.tls = Some(config);
        self
    }

    /// How a client made with [`reconnecting`](Self::reconnecting) reconnects. Default:
    /// [`Reconnect::default`].
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Connects to `url` once and starts the peer on the current tokio runtime.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect(self, url: &str) -> Result<PeerHandle, ConnectError> {
        let socket = self.dialer.dial(url).await?;
        Ok(Peer::builder()
            .router(self.router)
            .config(self.dialer.config)
            .close_on_drop(true)
            .span(tracing::info_span!(target: "birpc::connection", "connection", url, dialled = "out"))
            .spawn(WsTransport::new(socket)))
    }

    /// Starts a client that connects to `url` and reconnects by itself whenever the connection ends, with
    /// backoff, until it is closed (or its [`Reconnect`] policy gives up). Returns at once; await
    /// [`ReconnectingClient::connected`] for the first connection.
    ///
    /// Its [`peer`](ReconnectingClient::peer) handle (and typed stubs built on it) send each call on the
    /// connection up at that moment; see [`Reconnect`] for calls made while there is none.
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] or [`ConnectError::InvalidHeader`] at once; connection failures are
    /// retried.
    pub fn reconnecting(self, url: &str) -> Result<ReconnectingClient, ConnectError> {
        self.dialer.request(url)?;
        Ok(ReconnectingClient::start(
            url.to_owned(),
            self.router,
            self.dialer,
            self.reconnect,
        ))
    }
}
