//! The endpoint in an axum app: the [`RpcUpgrade`] extractor, and birpc's refusals as axum responses.

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use tokio::net::TcpStream;

use super::super::admission::{Admit, Reject};
use super::upgrade::Upgrade;
use super::{ConnectionInfo, Endpoint, UpgradeRejection};

/// A WebSocket upgrade to the app's birpc [`Endpoint`], taken by an axum handler that decides whether to
/// admit it: with axum's extractors and the app's state, as any other handler decides.
///
/// Extracting it runs the endpoint's checks: the request must be a WebSocket upgrade (RFC 6455 section
/// 4.2.1) from an allowed origin, and the endpoint must have room for another connection, or the handler does
/// not run and the request is answered with the [`UpgradeRejection`] (`400`, `403`, `426`, `503`). It holds
/// its place among the endpoint's connections until it is admitted or dropped. The endpoint comes from the
/// router's state through [`FromRef`]: the state is the `Endpoint` itself, or the app's state with
/// `impl FromRef<AppState> for Endpoint`.
///
/// The handler then either admits the connection with [`admit`](Self::admit), with typed values attached
/// to it (what it learnt from the request: the user of a session cookie, say), which every handler of the
/// connection reads with `Context::state` and the router factory with [`ConnectionInfo::state`]; or
/// refuses it with any response, [`Reject`] being one (its status and text). Either way, before any frame.
///
/// ```no_run
/// use axum::extract::State;
/// use axum::http::HeaderMap;
/// use axum::response::Response;
/// use axum::routing::get;
/// use rpc_core::{Context, ErrorObject, NoParams, Router};
/// use rpc_transport::ws::{Admit, Endpoint, Reject, RpcUpgrade, Server};
///
/// #[derive(Clone)]
/// struct App {
///     rpc: Endpoint,
///     token: String,
/// }
///
/// impl axum::extract::FromRef<App> for Endpoint {
///     fn from_ref(app: &App) -> Endpoint {
///         app.rpc.clone()
///     }
/// }
///
/// struct User(String);
///
/// async fn rpc(State(app): State<App>, headers: HeaderMap, upgrade: RpcUpgrade) -> Result<Response, Reject> {
///     let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
///     if bearer.and_then(|b| b.strip_prefix("Bearer ")) != Some(app.token.as_str()) {
///         return Err(Reject::unauthorized("a token, please"));
///     }
///     Ok(upgrade.admit(Admit::new().with_state(User("ada".into()))).await)
/// }
///
/// # async fn f() -> std::io::Result<()> {
/// let endpoint = Server::builder().into_endpoint(|_connection| {
///     Router::new().method("whoami", |ctx: Context, _: NoParams| async move {
///         Ok::<_, ErrorObject>(ctx.state::<User>().map(|u| u.0.clone()))
///     })
/// });
/// let app = axum::Router::new()
///     .route("/rpc", get(rpc))
///     .route("/health", get(|| async { "ok" }))
///     .with_state(App { rpc: endpoint.clone(), token: "secret".into() });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
/// endpoint.shutdown().await;
/// # Ok(()) }
/// ```
///
/// Without a handler of its own, the endpoint is a tower service, admitted by its builder's admission
/// hook: `axum::Router::new().route_service("/rpc", endpoint)`.
#[must_use = "the upgrade is answered when admitted; dropped, it frees its place and the handler answers"]
pub struct RpcUpgrade {
    upgrade: Upgrade,
}

impl std::fmt::Debug for RpcUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcUpgrade")
            .field("connection", self.upgrade.info())
            .finish_non_exhaustive()
    }
}

impl RpcUpgrade {
    /// What the endpoint knows of the connection so far: its number, address, path, headers and the
    /// subprotocol it will agree on; no state is attached yet.
    pub fn info(&self) -> &ConnectionInfo {
        self.upgrade.info()
    }

    /// Admits the connection, with what `admit` attaches, and answers `101 Switching Protocols`: the
    /// connection then runs on the endpoint as any other (its limits, its hub, its shutdown).
    ///
    /// The endpoint's own admission hook, if its builder has one, runs first and sees what `admit`
    /// attached: it may add to it (values of the same type replace the handler's) or refuse, and then its
    /// refusal is the answer. So is `503 Service Unavailable` if the endpoint began shutting down meanwhile.
    pub async fn admit(self, admit: Admit) -> Response {
        // axum serves plain TCP connections as `TokioIo<TcpStream>`; any other IO runs through hyper's.
        self.upgrade.admit::<TcpStream>(admit).await.map(Body::new)
    }
}

impl<S> FromRequestParts<S> for RpcUpgrade
where
    Endpoint: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UpgradeRejection> {
        let endpoint = Endpoint::from_ref(state);
        Upgrade::check(&endpoint, parts).map(|upgrade| Self { upgrade })
    }
}

/// The answer: the status and the text body.
impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        self.response().map(Body::new)
    }
}

/// The answer: see [`UpgradeRejection::response`].
impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        self.response().map(Body::new)
    }
}
