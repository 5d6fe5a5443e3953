//! Who may connect: allowed origins, subprotocol negotiation, and the admission hook's verdict.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use http::header::{HeaderMap, HeaderValue, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use rpc_core::Extensions;

use super::server::ConnectionInfo;

/// The WebSocket subprotocol of birpc: JSON-RPC 2.0 as birpc speaks it (`$/cancelRequest` included).
pub const SUBPROTOCOL: &str = "birpc.v1";

/// The admission hook's yes: the connection is admitted, with typed values attached to it (the
/// authenticated user, say), which every handler reads with `Context::state`.
#[derive(Debug, Default)]
#[must_use]
pub struct Admit {
    pub(crate) extensions: Extensions,
}

impl Admit {
    /// Admits the connection with nothing attached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `value` (one per type).
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }
}

/// The admission hook's no: the upgrade is answered with this HTTP status and body, before any WebSocket
/// frame is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

impl Reject {
    /// Refuses with `status` (a 4xx or 5xx) and a short text body.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }

    /// 401 Unauthorized: the client did not say who it is, or not convincingly.
    pub fn unauthorized(body: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, body)
    }

    /// 403 Forbidden: the client is known, and not allowed.
    pub fn forbidden(body: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, body)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The admission hook, type-erased.
pub(crate) type AdmitHook =
    Arc<dyn Fn(ConnectionInfo) -> Pin<Box<dyn Future<Output = Result<Admit, Reject>> + Send>> + Send + Sync>;

/// Which page origins may open connections.
#[derive(Debug, Clone, Default)]
pub(crate) enum Origins {
    /// Any origin, and requests without one. The default.
    #[default]
    Any,
    /// Only these (as `scheme://host[:port]`, compared without regard to case); requests without an
    /// `Origin` header (not from a browser) are admitted.
    Only(Vec<String>),
}

impl Origins {
    /// Whether a request with these headers may connect.
    pub(crate) fn allow(&self, headers: &HeaderMap) -> bool {
        let Origins::Only(allowed) = self else {
            return true;
        };
        match headers.get(ORIGIN).map(HeaderValue::to_str) {
            None => true,
            Some(Ok(origin)) => allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(origin.trim_end_matches('/'))),
            Some(Err(_)) => false,
        }
    }
}

/// The subprotocols a client offers, in its order of preference.
pub(crate) fn offered(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// The subprotocol to answer with: the client's first choice among those the server speaks. A client that
/// offers only others is answered without one, as RFC 6455 says; it may then go on or give up.
pub(crate) fn negotiate<'a>(headers: &HeaderMap, supported: &'a [String]) -> Option<&'a str> {
    offered(headers)
        .find_map(|p| supported.iter().find(|s| s.as_str() == p))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn the_clients_first_supported_choice_wins() {
        let supported = vec![SUBPROTOCOL.to_owned(), "other".to_owned()];
        let h = headers(&[("sec-websocket-protocol", "x, other, birpc.v1")]);
        assert_eq!(negotiate(&h, &supported), Some("other"));
        assert_eq!(
            negotiate(&headers(&[("sec-websocket-protocol", "x")]), &supported),
            None
        );
        assert_eq!(negotiate(&HeaderMap::new(), &supported), None);
    }

    #[test]
    fn origins_are_checked_only_when_listed() {
        let evil = headers(&[("origin", "https://evil.example")]);
        let good = headers(&[("origin", "https://App.example")]);
        assert!(Origins::Any.allow(&evil));
        let only = Origins::Only(vec!["https://app.example".into()]);
        assert!(!only.allow(&evil));
        assert!(only.allow(&good));
        assert!(only.allow(&HeaderMap::new()));
    }
}
