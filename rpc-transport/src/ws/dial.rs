//! Opening one WebSocket connection to a server: the upgrade request (with its headers and query), the
//! timeout, and TLS.

use std::time::Duration;

use http::Uri;
use http::header::{HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use rpc_core::PeerConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::client::ConnectError;
use super::config::{DEFAULT_READ_BUFFER, DEFAULT_WRITE_BUFFER, websocket_config};

/// The socket a client connection runs on.
pub(crate) type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Everything needed to open a connection, again and again for a reconnecting client.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) config: PeerConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) subprotocols: Vec<String>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for Dialer {
    fn default() -> Self {
        Self {
            config: PeerConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_buffer_size: DEFAULT_READ_BUFFER,
            write_buffer_size: DEFAULT_WRITE_BUFFER,
            headers: Vec::new(),
            query: Vec::new(),
            subprotocols: Vec::new(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Dialer {
    /// The upgrade request for `url`, with the extra query parameters and headers.
    pub(crate) fn request(&self, url: &str) -> Result<Request, ConnectError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
        if !self.query.is_empty() {
            let uri = request.uri().clone();
            let mut query = form_urlencoded::Serializer::new(uri.query().map(str::to_owned).unwrap_or_default());
            for (key, value) in &self.query {
                query.append_pair(key, value);
            }
            let path_and_query = format!("{}?{}", uri.path(), query.finish());
            let mut parts = uri.into_parts();
            parts.path_and_query = Some(
                path_and_query
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| ConnectError::InvalidUrl(e.to_string()))?,
            );
            *request.uri_mut() = Uri::from_parts(parts).map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
        }
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| ConnectError::InvalidHeader(e.to_string()))?;
            let value =
                HeaderValue::try_from(value.as_str()).map_err(|e| ConnectError::InvalidHeader(e.to_string()))?;
            headers.append(name, value);
        }
        if !self.subprotocols.is_empty() {
            let offer = HeaderValue::try_from(self.subprotocols.join(", "))
                .map_err(|e| ConnectError::InvalidHeader(e.to_string()))?;
            headers.insert(SEC_WEBSOCKET_PROTOCOL, offer);
        }
        Ok(request)
    }

    /// Opens one connection to `url`.
    pub(crate) async fn dial(&self, url: &str) -> Result<ClientSocket, ConnectError> {
        let request = self.request(url)?;
        let ws_config = websocket_config(&self.config, self.read_buffer_size, self.write_buffer_size);
        #[cfg(feature = "tls")]
        let handshake = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            self.tls.clone().map(tokio_tungstenite::Connector::Rustls),
        );
        #[cfg(not(feature = "tls"))]
        let handshake = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
        let (socket, _response) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
            .map_err(connect_error)?;
        Ok(socket)
    }
}

fn connect_error(error: WsError) -> ConnectError {
    match error {
        WsError::Io(e) => ConnectError::Io(e),
        WsError::Http(response) => ConnectError::Rejected {
            status: response.status().as_u16(),
        },
        WsError::Url(e) => ConnectError::InvalidUrl(e.to_string()),
        WsError::Tls(e) => ConnectError::Tls(e.to_string()),
        other => ConnectError::Handshake(other.to_string()),
    }
}
