//! Dialling a WebSocket server and running a peer over the connection.

use std::time::Duration;

use rpc_core::{Peer, PeerConfig, PeerHandle, Router};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::config::{DEFAULT_READ_BUFFER, DEFAULT_WRITE_BUFFER, websocket_config};
use super::socket::WsTransport;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` URL (or `wss://` with TLS enabled).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The TCP connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered the upgrade request with an HTTP error.
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
}

/// Opens client connections: a `ws://` URL in, a [`PeerHandle`] out.
///
/// The client exports its own [`Router`], so the server can call it over the same connection. The
/// connection closes when the last clone of the returned handle is dropped (or on
/// [`PeerHandle::close`]).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use rpc_core::{Context, ErrorObject, Router};
/// use rpc_transport::ws::Client;
///
/// let router = Router::new().method("ping", |_: Context, _: rpc_core::NoParams| async { Ok::<_, ErrorObject>("pong") });
/// let server = Client::builder().router(router).connect("ws://127.0.0.1:9000").await?;
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
#[derive(Debug)]
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct ClientBuilder {
    router: Router,
    config: PeerConfig,
    connect_timeout: Duration,
    read_buffer_size: usize,
    write_buffer_size: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            router: Router::new(),
            config: PeerConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_buffer_size: DEFAULT_READ_BUFFER,
            write_buffer_size: DEFAULT_WRITE_BUFFER,
        }
    }
}

impl ClientBuilder {
    /// The methods the client exports to the server. Default: none.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The peer's limits and timings. Default: [`PeerConfig::default`]. Its maximum message size also
    /// bounds what the WebSocket accepts.
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// How long the TCP connection and the handshake may take together. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The WebSocket read buffer, in bytes. Default: 8 KiB (it grows while a larger message is read).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// How much written data is buffered before it goes to the socket, in bytes. Default: 8 KiB (frames
    /// are flushed after every burst regardless).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Connects to `url` and starts the peer on the current tokio runtime.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect(self, url: &str) -> Result<PeerHandle, ConnectError> {
        let request = url
            .into_client_request()
            .map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
        let ws_config = websocket_config(&self.config, self.read_buffer_size, self.write_buffer_size);
        let handshake = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
        let (socket, _response) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
            .map_err(connect_error)?;
        Ok(Peer::builder()
            .router(self.router)
            .config(self.config)
            .close_on_drop(true)
            .spawn(WsTransport::new(socket)))
    }
}

fn connect_error(error: WsError) -> ConnectError {
    match error {
        WsError::Io(e) => ConnectError::Io(e),
        WsError::Http(response) => ConnectError::Rejected {
            status: response.status().as_u16(),
        },
        WsError::Url(e) => ConnectError::InvalidUrl(e.to_string()),
        other => ConnectError::Handshake(other.to_string()),
    }
}
