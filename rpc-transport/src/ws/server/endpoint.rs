//! The WebSocket endpoint: what upgrades requests and runs their connections, wherever it is mounted.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode, request};
use http_body_util::Full;
use rpc_core::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::super::admission::Admit;
use super::ConnectionInfo;
use super::builder::ServerBuilder;
use super::upgrade::{Upgrade, is_upgrade, plain};
use crate::serving::Connections;

/// Builds each admitted connection's router.
pub(super) type Routes = Box<dyn Fn(&ConnectionInfo) -> Router + Send + Sync>;

/// The WebSocket endpoint: upgrades HTTP/1.1 requests to JSON-RPC connections (RFC 6455 section 4.2), with
/// the admission, origins, subprotocols, limits and hub of the [`ServerBuilder`] it was built from
/// ([`ServerBuilder::into_endpoint`]), and runs a peer for each. Clones share one endpoint.
///
/// Birpc's own [`Server`](super::Server) is a listener in front of one; to serve the endpoint from another
/// server, beside its other routes, on its port and with its TLS:
///
/// - as a tower [`Service`](tower_service::Service) of `http::Request<B>` (any body, which is ignored),
///   answering `http::Response<Full<Bytes>>` and never failing: axum's `Router::route_service("/rpc",
///   endpoint)`, or hyper (the endpoint is a hyper `Service` too; serve the connection
///   `with_upgrades()`). Upgrades are admitted by the builder's admission hook, if any; other requests go to
///   its HTTP handler, or are answered `426 Upgrade Required`;
/// - as the state of an axum handler that takes an `RpcUpgrade` (feature `axum`),
///   to admit with axum's extractors and the app's state.
///
/// The upgrade needs hyper's upgrade handle in the request's extensions, which hyper (and so axum) puts
/// there for HTTP/1.1 requests. HTTP/2 WebSockets (RFC 8441) are not supported. A connection runs as a task
/// of its own on the runtime that served its upgrade, until it ends or [`shutdown`](Self::shutdown).
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use rpc_core::{Context, ErrorObject, Router};
/// use rpc_transport::ws::Server;
///
/// let endpoint = Server::builder().max_connections(1_000).into_endpoint(|_connection| {
///     Router::new().method("add", |_: Context, (a, b): (i64, i64)| async move { Ok::<_, ErrorObject>(a + b) })
/// });
/// // Mounted in an app, e.g. with axum: `Router::new().route_service("/rpc", endpoint.clone())`.
/// // ... later, when the app stops:
/// endpoint.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    pub(super) shared: Arc<Shared>,
}

/// What every clone of an endpoint, its upgrades and its connections share.
pub(super) struct Shared {
    pub(super) settings: ServerBuilder,
    pub(super) routes: Routes,
    /// The WebSocket connections (a place is taken before the upgrade is answered) and their tasks; behind a
    /// [`Server`](super::Server), its accept loop and HTTP connections too.
    pub(super) connections: Arc<Connections>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("settings", &self.shared.settings)
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with the default settings (those of [`ServerBuilder`]'s setters); `routes` builds each
    /// admitted connection's [`Router`].
    pub fn new<F>(routes: F) -> Self
    where
        F: Fn(&ConnectionInfo) -> Router + Send + Sync + 'static,
    {
        ServerBuilder::default().into_endpoint(routes)
    }

    pub(super) fn with_settings(settings: ServerBuilder, routes: Routes) -> Self {
        let connections = Connections::new(settings.max_connections, settings.hub.clone(), settings.shutdown_grace);
        Self {
            shared: Arc::new(Shared {
                settings,
                routes,
                connections: Arc::new(connections),
            }),
        }
    }

    /// The number of open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.len()
    }

    /// Shuts the endpoint down gracefully: refuses new upgrades (`503 Service Unavailable`), lets every
    /// connection finish the requests it has started (new ones are answered -32002 Shutting down) for up to
    /// the shutdown grace, then closes each with 1001 (going away). Returns when every connection's task
    /// has ended. Calling it again waits again; the endpoint stays shut.
    ///
    /// Stopping the server the endpoint is mounted in does not end its connections (upgraded, they are no
    /// longer that server's): call this too.
    pub async fn shutdown(&self) {
        self.shared.connections.shutdown().await;
    }

    /// Answers one HTTP request: an upgrade goes through the checks and admission; anything else goes to the
    /// HTTP handler, or is answered `426 Upgrade Required`.
    ///
    /// `S` is the IO the request's connection was served on by hyper (as a `TokioIo<S>`), if known: an
    /// upgraded connection on it runs on `S` directly; on any other, through hyper's upgraded IO.
    pub(super) async fn respond<S>(self, mut parts: request::Parts) -> Response<Full<Bytes>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !is_upgrade(&parts) {
            return self.not_upgrade(parts);
        }
        match Upgrade::check(&self, &mut parts) {
            Ok(upgrade) => upgrade.admit::<S>(Admit::new()).await,
            Err(rejection) => rejection.response(),
        }
    }

    /// The answer to a request that is not an upgrade.
    fn not_upgrade(&self, parts: request::Parts) -> Response<Full<Bytes>> {
        match &self.shared.settings.http {
            Some(handler) => handler(&Request::from_parts(parts, ())).map(Full::new),
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
        }
    }
}

/// The future of [`Endpoint`]'s answer to a request.
type Answer = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// The endpoint as a tower service: see [`Endpoint`]. The request's body is dropped unread; the connection's
/// IO is taken to be a `TcpStream` (as axum's `serve` has it) and otherwise used through hyper's upgraded IO.
impl<B> tower_service::Service<Request<B>> for Endpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Answer;

    /// Always ready: the endpoint's limits answer requests (`503`), they never hold them back.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Answer {
        hyper::service::Service::call(self, request)
    }
}

/// The endpoint as a hyper service, to serve with `hyper::server::conn::http1` (`with_upgrades()`); the
/// same as the tower service.
impl<B> hyper::service::Service<Request<B>> for Endpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<B>) -> Answer {
        let (parts, _body) = request.into_parts();
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond::<TcpStream>(parts).await) })
    }
}
