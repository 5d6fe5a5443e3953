//! The HTTP side of a WebSocket opening handshake: the checks of RFC 6455 section 4.2.1, the origin, the
//! connection limit, admission, the subprotocol, and the `101 Switching Protocols` answer (section 4.2.2).

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::header::{
    CONNECTION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Response, StatusCode, Uri, request};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use rpc_core::Extensions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::super::admission::{Admit, Reject, negotiate};
use super::{ConnectionInfo, Endpoint, connection};
use crate::serving::{NoPlace, Place, SHUTDOWN_REASON};

/// Why an upgrade request was refused before admission, and the HTTP answer it gets (no frame is exchanged).
///
/// The checks run in this order: the request is an upgrade (RFC 6455 section 4.2.1: a `GET` with
/// `Connection: upgrade` and `Upgrade: websocket`), of version 13, over HTTP/1.1 or later, with a
/// `Sec-WebSocket-Key` of 16 bytes in base64, on a connection that can be upgraded; then the origin, the
/// shutdown and the connection limit. It is the rejection of the `RpcUpgrade`
/// extractor (feature `axum`, where it is a response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeRejection {
    /// Not a WebSocket upgrade: `426 Upgrade Required`, with `Upgrade: websocket`.
    NotUpgrade,
    /// A `Sec-WebSocket-Version` other than 13, or none: `426 Upgrade Required`, with
    /// `Sec-WebSocket-Version: 13` (RFC 6455 section 4.4).
    UnsupportedVersion,
    /// Over HTTP/1.0: `400 Bad Request`.
    HttpVersion,
    /// No `Sec-WebSocket-Key`: `400 Bad Request`.
    MissingKey,
    /// A `Sec-WebSocket-Key` that is not 16 bytes in base64: `400 Bad Request`.
    InvalidKey,
    /// The server gave no upgrade handle with the request (it is not served by hyper, or not over
    /// HTTP/1.1): `500 Internal Server Error`.
    NotUpgradable,
    /// An `Origin` the endpoint does not allow ([`ServerBuilder::allowed_origins`](crate::ws::ServerBuilder::allowed_origins)):
    /// `403 Forbidden`.
    OriginNotAllowed,
    /// The endpoint is shutting down: `503 Service Unavailable`.
    ShuttingDown,
    /// [`ServerBuilder::max_connections`](crate::ws::ServerBuilder::max_connections) are open:
    /// `503 Service Unavailable`, with `Retry-After: 5`.
    TooManyConnections,
}

impl UpgradeRejection {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotUpgrade | Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::HttpVersion | Self::MissingKey | Self::InvalidKey => StatusCode::BAD_REQUEST,
            Self::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::ShuttingDown | Self::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The text of the answer's body.
    fn text(&self) -> &'static str {
        match self {
            Self::NotUpgrade => "this endpoint speaks JSON-RPC 2.0 over WebSocket",
            Self::UnsupportedVersion => "unsupported WebSocket version",
            Self::HttpVersion => "a WebSocket upgrade needs HTTP/1.1",
            Self::MissingKey => "missing Sec-WebSocket-Key",
            Self::InvalidKey => "Sec-WebSocket-Key must be 16 bytes in base64",
            Self::NotUpgradable => "this connection cannot be upgraded",
            Self::OriginNotAllowed => "origin not allowed",
            Self::ShuttingDown => SHUTDOWN_REASON,
            Self::TooManyConnections => "too many connections",
        }
    }

    /// The HTTP answer: [`status`](Self::status), a short plain-text body, and the headers said above.
    pub fn response(&self) -> Response<Full<Bytes>> {
        refused(self.status());
        let mut response = plain(self.status(), self.text());
        let headers = response.headers_mut();
        match self {
            Self::NotUpgrade => {
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            }
            Self::UnsupportedVersion => {
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            Self::TooManyConnections => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// Counts an upgrade refused with `status` (`birpc_upgrades_refused_total{status}`, feature `metrics`).
fn refused(status: StatusCode) {
    #[cfg(feature = "metrics")]
    metrics::counter!("birpc_upgrades_refused_total", "status" => status.as_str().to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

impl UpgradeRejection {
    /// Why the endpoint had no place for the connection.
    fn no_place(no_place: NoPlace) -> Self {
        match no_place {
            NoPlace::ShuttingDown => Self::ShuttingDown,
            NoPlace::Full => Self::TooManyConnections,
        }
    }
}

impl std::fmt::Display for UpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.text(), self.status())
    }
}

impl std::error::Error for UpgradeRejection {}

impl Reject {
    /// The HTTP answer: the status and the text body.
    pub(crate) fn response(self) -> Response<Full<Bytes>> {
        refused(self.status);
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        response
    }
}

/// An upgrade request that passed the checks and holds a place among the endpoint's connections: what
/// remains is admission.
pub(crate) struct Upgrade {
    endpoint: Endpoint,
    info: ConnectionInfo,
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
    place: Place,
}

impl Upgrade {
    /// Checks an upgrade request (see [`UpgradeRejection`] for which checks, in which order) and takes a
    /// place among the endpoint's connections. Takes hyper's upgrade handle out of the request's extensions.
    pub(crate) fn check(endpoint: &Endpoint, parts: &mut request::Parts) -> Result<Self, UpgradeRejection> {
        let headers = &parts.headers;
        if !is_upgrade(parts) {
            return Err(UpgradeRejection::NotUpgrade);
        }
        if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            return Err(UpgradeRejection::UnsupportedVersion);
        }
        // RFC 6455 section 4.2.1: an upgrade is an HTTP/1.1 (or later) GET whose key is 16 bytes in base64.
        if parts.version < http::Version::HTTP_11 {
            return Err(UpgradeRejection::HttpVersion);
        }
        let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
            return Err(UpgradeRejection::MissingKey);
        };
        if !is_websocket_key(key.as_bytes()) {
            return Err(UpgradeRejection::InvalidKey);
        }
        let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) else {
            // Cannot happen: the accept key is base64.
            return Err(UpgradeRejection::InvalidKey);
        };
        let remote = remote_addr(&parts.extensions);
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            tracing::warn!(target: "birpc::transport", %remote, "an upgrade request came without hyper's upgrade handle; is it served by hyper over HTTP/1.1?");
            return Err(UpgradeRejection::NotUpgradable);
        };
        let shared = &endpoint.shared;
        if !shared.settings.origins.allow(headers) {
            tracing::info!(target: "birpc::transport", %remote, origin = ?headers.get(http::header::ORIGIN), "refused an upgrade from an origin not allowed");
            return Err(UpgradeRejection::OriginNotAllowed);
        }
        let place = shared.connections.take_place().map_err(UpgradeRejection::no_place)?;
        let info = ConnectionInfo {
            id: place.id(),
            remote_addr: remote,
            uri: detached_uri(&parts.uri),
            headers: detached_headers(headers),
            subprotocol: negotiate(headers, &shared.settings.subprotocols).map(str::to_owned),
            extensions: Extensions::new(),
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            info,
            accept,
            on_upgrade,
            place,
        })
    }

    /// What the endpoint knows of the connection so far.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Admits the connection with what `admit` attaches, then with the endpoint's admission hook, if any
    /// (which sees what `admit` attached, and may add to it or refuse); answers `101 Switching Protocols`
    /// and starts the connection's task, or answers the hook's refusal, or `503` if the endpoint began
    /// shutting down meanwhile.
    ///
    /// `S`: see [`Endpoint::respond`].
    pub(crate) async fn admit<S>(self, admit: Admit) -> Response<Full<Bytes>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            endpoint,
            mut info,
            accept,
            on_upgrade,
            place,
        } = self;
        let shared = &endpoint.shared;
        info.extensions = admit.extensions;
        if let Some(hook) = &shared.settings.admit {
            match hook(info.clone()).await {
                Ok(admitted) => info.extensions.extend(admitted.extensions),
                Err(reject) => {
                    tracing::debug!(target: "birpc::transport", remote = %info.remote_addr, status = %reject.status, "the admission hook refused an upgrade");
                    return reject.response();
                }
            }
        }
        let router = (shared.routes)(&info);
        let response = switching_protocols(accept, info.subprotocol.as_deref());
        let started = place.start(move |place| connection::run::<S>(endpoint, on_upgrade, router, info, place));
        match started {
            Ok(()) => response,
            Err(no_place) => UpgradeRejection::no_place(no_place).response(),
        }
    }
}

/// The `101 Switching Protocols` answer (RFC 6455 section 4.2.2).
fn switching_protocols(accept: HeaderValue, subprotocol: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = subprotocol.and_then(|p| HeaderValue::try_from(p).ok()) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// Whether a request asks for a WebSocket: a `GET` with `Connection: upgrade` and `Upgrade: websocket`.
pub(super) fn is_upgrade(parts: &request::Parts) -> bool {
    parts.method == Method::GET
        && header_has_token(&parts.headers, &CONNECTION, "upgrade")
        && header_has_token(&parts.headers, &UPGRADE, "websocket")
}

/// The address of the other side, as the server serving the request put it in its extensions.
fn remote_addr(extensions: &http::Extensions) -> SocketAddr {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return *addr;
    }
    extensions
        .get::<SocketAddr>()
        .copied()
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// The headers of the handshake itself, not kept in [`ConnectionInfo::headers`]: they served the upgrade
/// (RFC 6455 section 4.1; `Connection` and `Upgrade` are hop-by-hop, RFC 9110 section 7.6.1) and mean
/// nothing once it is done. `Sec-WebSocket-Protocol` is kept: it lists the subprotocols offered.
const HANDSHAKE_HEADERS: [HeaderName; 5] = [
    CONNECTION,
    UPGRADE,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_EXTENSIONS,
];

/// A copy of `headers` that owns its bytes, less the [`HANDSHAKE_HEADERS`] (about 470 bytes a connection
/// for a typical client's five). hyper's parsed headers are views into its read buffer, which a plain
/// clone would keep allocated for as long as the connection lives.
fn detached_headers(headers: &HeaderMap) -> HeaderMap {
    let kept = |name: &HeaderName| !HANDSHAKE_HEADERS.contains(name);
    let mut copy = HeaderMap::with_capacity(headers.keys().filter(|name| kept(name)).count());
    for (name, value) in headers.iter().filter(|(name, _)| kept(name)) {
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
fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// A plain-text answer.
pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
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

    #[test]
    fn the_kept_headers_are_all_but_the_handshakes_own() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "example.com"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("sec-websocket-protocol", "chat, superchat"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("authorization", "Bearer t"),
        ] {
            let mut value = HeaderValue::from_static(value);
            value.set_sensitive(name == "authorization");
            headers.append(name, value);
        }
        let kept = detached_headers(&headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "sec-websocket-protocol", "cookie", "authorization"]);
        let cookies: Vec<_> = kept.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "repeated headers are all kept, in order");
        assert!(kept["authorization"].is_sensitive());
    }

    #[test]
    fn rejections_answer_with_their_status_and_headers() {
        let too_many = UpgradeRejection::TooManyConnections.response();
        assert_eq!(too_many.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(too_many.headers()[RETRY_AFTER], "5");
        let version = UpgradeRejection::UnsupportedVersion.response();
        assert_eq!(version.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(version.headers()[SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(UpgradeRejection::NotUpgrade.response().headers()[UPGRADE], "websocket");
    }
}
