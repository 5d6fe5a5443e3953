//! The endpoint mounted in an axum app, over real sockets: calls both ways beside the app's other routes on
//! its port; admission by an axum handler with extractors and state; the builder's hook, origins,
//! connection limit, hub and shutdown working as with birpc's own `Server`; the endpoint as a tower service
//! and as a hyper service.
#![cfg(feature = "axum")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use birpc::prelude::*;
use birpc::{Admit, CloseCode, ConnectError, ConnectionInfo, Endpoint, Hub, Reject, RpcUpgrade, ServerBuilder};
use common::{eventually, within};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Who a connection was admitted as.
#[derive(Debug, Clone, PartialEq)]
struct User {
    name: String,
    /// How the token came: "header" or "query".
    via: &'static str,
}

/// The app's state: the endpoint, the tokens it knows, and the hub.
#[derive(Clone)]
struct AppState {
    rpc: Endpoint,
    tokens: Arc<HashMap<String, String>>,
    hub: Hub,
}

impl FromRef<AppState> for Endpoint {
    fn from_ref(state: &AppState) -> Endpoint {
        state.rpc.clone()
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Admits `Authorization: Bearer <token>` or `?token=<token>` for a token of the app's table, with the user
/// attached; refuses the rest with 401.
async fn rpc(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: RpcUpgrade,
) -> Result<Response, Reject> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| (t.to_owned(), "header"));
    let (token, via) = bearer
        .or_else(|| query.token.map(|t| (t, "query")))
        .ok_or_else(|| Reject::unauthorized("a token, please"))?;
    let name = state
        .tokens
        .get(&token)
        .ok_or_else(|| Reject::unauthorized("unknown token"))?;
    assert!(upgrade.info().state::<User>().is_none());
    let user = User {
        name: name.clone(),
        via,
    };
    Ok(upgrade.admit(Admit::new().with_state(user)).await)
}

/// The methods of every connection: `whoami` (the admitted user, the path, the remote address) and
/// `relay(text)`, which asks the caller's `shout(text)` and answers with it.
fn routes(connection: &ConnectionInfo) -> Router {
    let greeting = format!("hello {}", connection.state::<User>().map_or("?", |u| &u.name));
    Router::new()
        .method("whoami", |ctx: Context, _: NoParams| async move {
            let user = ctx
                .state::<User>()
                .cloned()
                .ok_or_else(|| ErrorObject::new(1, "no user"))?;
            let info = ctx.state::<ConnectionInfo>().expect("connection info");
            Ok::<_, ErrorObject>(json!({
                "name": user.name,
                "via": user.via,
                "path": info.uri().path(),
                "remote_ip": info.remote_addr().ip().to_string(),
            }))
        })
        .method("greeting", move |_: Context, _: NoParams| {
            let greeting = greeting.clone();
            async move { Ok::<_, ErrorObject>(greeting) }
        })
        .method("relay", |ctx: Context, (text,): (String,)| async move {
            // The server calls the client back, over the same connection, before answering.
            let shouted: String = ctx
                .peer()
                .call("shout", (text,))
                .await
                .map_err(|e| ErrorObject::new(2, e.to_string()))?;
            Ok::<_, ErrorObject>(format!("the client says {shouted}"))
        })
}

/// A running app: `/rpc` (the endpoint behind the `rpc` handler), `/api/stats` (the hub's count, as JSON)
/// and `/plain` (the endpoint as a tower service), on one port.
struct App {
    addr: SocketAddr,
    endpoint: Endpoint,
    hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl App {
    async fn start(builder: ServerBuilder) -> Self {
        let hub = Hub::new();
        let endpoint = builder.hub(hub.clone()).into_endpoint(routes);
        let tokens: HashMap<String, String> = [("t-ada", "ada"), ("t-grace", "grace")]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n.to_owned()))
            .collect();
        let app = axum::Router::new()
            .route("/rpc", get(rpc))
            .route(
                "/api/stats",
                get(|State(state): State<AppState>| async move { axum::Json(json!({"connections": state.hub.len()})) }),
            )
            .route_service("/plain", endpoint.clone())
            .with_state(AppState {
                rpc: endpoint.clone(),
                tokens: Arc::new(tokens),
                hub: hub.clone(),
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Self {
            addr,
            endpoint,
            hub,
            stop: Some(stop),
            serving,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        self.endpoint.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("axum to stop", &mut self.serving).await.unwrap().unwrap();
    }
}

/// A client router exporting `shout(text)` and the notification `news(text)`, which it passes on.
fn client_routes(news: mpsc::Sender<String>) -> Router {
    Router::new()
        .method("shout", |_: Context, (text,): (String,)| async move {
            Ok::<_, ErrorObject>(text.to_uppercase())
        })
        .method("news", move |_: Context, (text,): (String,)| {
            let news = news.clone();
            async move { news.send(text).await.map_err(|_| ErrorObject::internal_error()) }
        })
}

/// Sends a plain HTTP request and returns the status code, the head and the body.
async fn http_get(addr: SocketAddr, path: &str, extra_headers: &str) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    within("the answer", tcp.read_to_string(&mut answer)).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer}"));
    (status, head.to_owned(), body.to_owned())
}

/// A hand-written upgrade request with `extra_headers` (version 13 unless they give one); returns the status and the head of the answer (read
/// up to its blank line: an upgraded connection stays open).
async fn upgrade_by_hand(addr: SocketAddr, path: &str, extra_headers: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let version = if extra_headers.contains("Sec-WebSocket-Version") {
        ""
    } else {
        "Sec-WebSocket-Version: 13\r\n"
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{version}\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    within("the answer's head", async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tcp.read(&mut byte).await.unwrap();
            assert_eq!(
                n,
                1,
                "the connection ended in the head: {}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await;
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, head)
}

#[tokio::test]
async fn calls_go_both_ways_through_the_endpoint_beside_the_apps_routes() {
    let app = App::start(Server::builder()).await;
    let (news_tx, _news) = mpsc::channel(4);
    let peer = Client::builder()
        .router(client_routes(news_tx))
        .header("Authorization", "Bearer t-ada")
        .connect(&app.url("/rpc"))
        .await
        .unwrap();
    let relayed: String = peer.call("relay", ("hi",)).await.unwrap();
    assert_eq!(relayed, "the client says HI");
    let who: Value = peer.call("whoami", ()).await.unwrap();
    assert_eq!(
        who,
        json!({"name": "ada", "via": "header", "path": "/rpc", "remote_ip": "127.0.0.1"})
    );
    // The router factory saw what the handler attached.
    assert_eq!(peer.call::<String>("greeting", ()).await.unwrap(), "hello ada");
    // The REST route answers on the same port while the connection is open.
    let (status, head, body) = http_get(app.addr, "/api/stats", "").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"connections": 1}));
    // A route the app does not have is axum's 404, not the endpoint's.
    assert_eq!(http_get(app.addr, "/nowhere", "").await.0, 404);
    assert_eq!(app.endpoint.connection_count(), 1);
    app.stop().await;
    let reason = within("the close", peer.closed()).await;
    assert_eq!(reason.code(), CloseCode::GOING_AWAY, "{reason}");
}

#[tokio::test]
async fn the_axum_handler_admits_with_extractors_and_state_before_any_frame() {
    let app = App::start(Server::builder()).await;
    let url = app.url("/rpc");
    let anonymous = Client::connect(&url).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Rejected { status: 401 })),
        "{anonymous:?}"
    );
    let unknown = Client::builder().query("token", "t-nobody").connect(&url).await;
    assert!(
        matches!(unknown, Err(ConnectError::Rejected { status: 401 })),
        "{unknown:?}"
    );
    // By hand: the refusal is the handler's, an HTTP answer, and no upgrade.
    let (status, head) = upgrade_by_hand(app.addr, "/rpc", "").await;
    assert_eq!(status, 401, "{head}");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-accept"), "{head}");
    assert_eq!(app.endpoint.connection_count(), 0);
    assert_eq!(app.hub.len(), 0);

    // The query works as well as the header, and the state reaches `Context::state`.
    let peer = Client::builder().query("token", "t-grace").connect(&url).await.unwrap();
    let who: Value = peer.call("whoami", ()).await.unwrap();
    assert_eq!(
        (who["name"].as_str(), who["via"].as_str()),
        (Some("grace"), Some("query"))
    );
    // An upgrade the extractor refuses never reaches the handler: here a wrong version.
    let (status, head) = upgrade_by_hand(app.addr, "/rpc?token=t-ada", "Sec-WebSocket-Version: 8\r\n").await;
    assert_eq!(status, 426, "{head}");
    // A plain GET of the endpoint's route: the extractor's 426.
    let (status, head, _) = http_get(app.addr, "/rpc?token=t-ada", "").await;
    assert_eq!(status, 426, "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    app.stop().await;
}

#[tokio::test]
async fn the_builders_hook_and_origins_apply_through_axum() {
    let builder =
        Server::builder()
            .allowed_origins(["https://app.example"])
            .admit(|request: ConnectionInfo| async move {
                // It runs after the handler, and sees what the handler attached (none on `/plain`).
                match request.state::<User>() {
                    Some(user) if user.name == "grace" => Err(Reject::forbidden("not today")),
                    Some(_) => Ok(Admit::new()),
                    None => match request.query("token").as_deref() {
                        Some("t-ada") => Ok(Admit::new().with_state(User {
                            name: "ada".into(),
                            via: "hook",
                        })),
                        _ => Err(Reject::unauthorized("hook says no")),
                    },
                }
            });
    let app = App::start(builder).await;
    // The endpoint as a tower service (`route_service`): its hook admits.
    let anonymous = Client::connect(&app.url("/plain")).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Rejected { status: 401 })),
        "{anonymous:?}"
    );
    let peer = Client::connect(&app.url("/plain?token=t-ada")).await.unwrap();
    let who: Value = peer.call("whoami", ()).await.unwrap();
    assert_eq!((who["name"].as_str(), who["via"].as_str()), (Some("ada"), Some("hook")));
    assert_eq!(who["path"], "/plain");
    // A plain GET of the service: 426, as from birpc's `Server`.
    let (status, head, _) = http_get(app.addr, "/plain", "").await;
    assert_eq!(status, 426, "{head}");

    // Behind the handler: the handler admits, then the hook, which may still refuse.
    let grace = Client::builder()
        .query("token", "t-grace")
        .connect(&app.url("/rpc"))
        .await;
    assert!(
        matches!(grace, Err(ConnectError::Rejected { status: 403 })),
        "{grace:?}"
    );
    let ada = Client::builder()
        .header("Authorization", "Bearer t-ada")
        .connect(&app.url("/rpc"))
        .await
        .unwrap();
    let who: Value = ada.call("whoami", ()).await.unwrap();
    assert_eq!(who["via"], "header");

    // Origins, checked on both routes before the handler or the hook.
    for path in ["/rpc?token=t-ada", "/plain?token=t-ada"] {
        let (status, head) = upgrade_by_hand(app.addr, path, "Origin: https://evil.example\r\n").await;
        assert_eq!(status, 403, "{path}: {head}");
        let (status, head) = upgrade_by_hand(app.addr, path, "Origin: https://app.example\r\n").await;
        assert_eq!(status, 101, "{path}: {head}");
    }
    app.stop().await;
}

#[tokio::test]
async fn past_max_connections_upgrades_through_axum_are_refused_with_503() {
    let app = App::start(Server::builder().max_connections(1)).await;
    let url = app.url("/rpc?token=t-ada");
    let first = Client::connect(&url).await.unwrap();
    let refused = Client::connect(&url).await;
    assert!(
        matches!(refused, Err(ConnectError::Rejected { status: 503 })),
        "{refused:?}"
    );
    let (status, head) = upgrade_by_hand(app.addr, "/plain", "").await;
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 5"), "{head}");
    // A refused handler gives its place back at once.
    let (status, _) = upgrade_by_hand(app.addr, "/rpc", "").await;
    assert_eq!(status, 503);
    first.close();
    first.closed().await;
    eventually("the place to be freed", || app.endpoint.connection_count() == 0).await;
    let _second = within("a connection", async {
        loop {
            // The place is given back when the connection's task ends, just after the count drops.
            if let Ok(peer) = Client::connect(&url).await {
                return peer;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn connections_through_axum_are_in_the_hub() {
    let app = App::start(Server::builder()).await;
    let (ada_tx, mut ada_news) = mpsc::channel(4);
    let (grace_tx, mut grace_news) = mpsc::channel(4);
    let ada = Client::builder()
        .router(client_routes(ada_tx))
        .connect(&app.url("/rpc?token=t-ada"))
        .await
        .unwrap();
    let _grace = Client::builder()
        .router(client_routes(grace_tx))
        .connect(&app.url("/rpc?token=t-grace"))
        .await
        .unwrap();
    eventually("both to register", || app.hub.len() == 2).await;
    let broadcast = app.hub.notify_all("news", ("extra!",));
    assert_eq!(broadcast.delivered, 2);
    assert_eq!(within("ada's news", ada_news.recv()).await.unwrap(), "extra!");
    assert_eq!(within("grace's news", grace_news.recv()).await.unwrap(), "extra!");
    // A typed call through the hub, by the hub-wide id, reaches the connection and comes back.
    let id = app.hub.ids()[0];
    let shouted: String = app.hub.call(id, "shout", ("hey",), None).await.unwrap();
    assert_eq!(shouted, "HEY");
    ada.close();
    ada.closed().await;
    eventually("ada to leave the hub", || app.hub.len() == 1).await;
    let hub = app.hub.clone();
    app.stop().await;
    assert_eq!(
        hub.len(),
        0,
        "every connection leaves the hub when the endpoint shuts down"
    );
}

#[tokio::test]
async fn a_shut_endpoint_refuses_upgrades_while_the_app_serves_on() {
    let app = App::start(Server::builder()).await;
    let peer = Client::connect(&app.url("/rpc?token=t-ada")).await.unwrap();
    app.endpoint.shutdown().await;
    let reason = within("the close", peer.closed()).await;
    assert_eq!(reason.code(), CloseCode::GOING_AWAY, "{reason}");
    let refused = Client::connect(&app.url("/rpc?token=t-ada")).await;
    assert!(
        matches!(refused, Err(ConnectError::Rejected { status: 503 })),
        "{refused:?}"
    );
    // The rest of the app is not the endpoint's to stop.
    assert_eq!(http_get(app.addr, "/api/stats", "").await.0, 200);
    app.stop().await;
}

/// The endpoint is a hyper service too: served by hand on a connection, it upgrades and runs the peer. The
/// connection's IO here is not a bare `TcpStream` (as behind TLS, say): the WebSocket runs on hyper's
/// upgraded IO.
#[tokio::test]
async fn the_endpoint_serves_under_hyper_directly_on_any_io() {
    let endpoint = Endpoint::new(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tokio::io::BufStream::new(tcp)), endpoint)
                .with_upgrades()
                .await
        })
    };
    let (news_tx, _news) = mpsc::channel(1);
    let peer = Client::builder()
        .router(client_routes(news_tx))
        .connect(&format!("ws://{addr}/direct"))
        .await
        .unwrap();
    // No admission: no user, and no address either (this server put none in the request).
    let Err(CallError::Remote(error)) = peer.call::<Value>("whoami", ()).await else {
        panic!("a user was attached")
    };
    assert_eq!(error.message(), "no user");
    assert_eq!(peer.call::<String>("greeting", ()).await.unwrap(), "hello ?");
    let relayed: String = peer.call("relay", ("large ".repeat(10_000),)).await.unwrap();
    assert_eq!(relayed.len(), "the client says ".len() + 60_000);
    within("hyper to hand the connection over", serving)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.connection_count(), 1);
    endpoint.shutdown().await;
    assert_eq!(within("the close", peer.closed()).await.code(), CloseCode::GOING_AWAY);
}
