//! What the endpoint knows of a connection, from its upgrade request.

use std::net::SocketAddr;

use http::Uri;
use http::header::HeaderMap;
use rpc_core::Extensions;

/// What the endpoint knows of a connection: given to the admission hook, to the router factory (then with
/// what admission attached), and to every handler through `Context::state::<ConnectionInfo>()`.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub(super) id: u64,
    pub(super) remote_addr: SocketAddr,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) subprotocol: Option<String>,
    pub(super) extensions: Extensions,
}

impl ConnectionInfo {
    /// A number unique among this endpoint's connections (a [`Server`](crate::ws::Server) has one endpoint).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address of the other side.
    ///
    /// Behind birpc's [`Server`](crate::ws::Server), the TCP peer's address. Where an [`Endpoint`](crate::ws::Endpoint)
    /// is mounted in another server, the address that server put in the request's extensions: axum's
    /// `ConnectInfo<SocketAddr>` (serve the app with `into_make_service_with_connect_info::<SocketAddr>()`;
    /// feature `axum`) or a plain `SocketAddr`; without either, the unspecified address `0.0.0.0:0`.
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

    /// The headers of the upgrade request, less those of the WebSocket handshake itself: `Connection`,
    /// `Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version` and `Sec-WebSocket-Extensions` served the
    /// upgrade (RFC 6455 section 4.1) and are not kept for the connection's life. `Sec-WebSocket-Protocol`
    /// is kept (see [`offered_subprotocols`](Self::offered_subprotocols)).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The `Origin` of the upgrade request (sent by browsers), if any.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok())
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_subprotocols(&self) -> impl Iterator<Item = &str> {
        crate::ws::admission::offered(&self.headers)
    }

    /// The subprotocol agreed on, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// A value attached at admission (by the admission hook, or by the [`Admit`](crate::ws::Admit) an axum
    /// handler gave), if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get()
    }
}
