//! An axum app that serves a page, a REST route and the birpc endpoint on one port.
//!
//! ```text
//! cargo run --features axum --example axum_app              # then open http://127.0.0.1:3000
//! cargo run --features axum --example axum_app -- --listen 127.0.0.1:0
//! ```
//!
//! The first line on stdout is `listening on http://HOST:PORT` (the real port). The app's routes:
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /` | a page that connects to `/rpc` and talks to the server both ways |
//! | `GET /api/stats` | `{"connections": N}`, the number of open RPC connections (from the hub) |
//! | `GET /rpc?name=NAME` | the birpc endpoint: a WebSocket upgrade, refused `401` without a name |
//!
//! Over `/rpc` the server exports `app.hello()`, which asks the caller's `client.mood()` before answering,
//! and `app.say(text)`, which sends `client.said(from, text)` to every connection and answers how many.
//! Admission is an axum handler: it takes the visitor's name from the query with axum's `Query` and the
//! endpoint from the app's `State`, and admits the connection with the name attached, which every method
//! reads with `ctx.state`. Ctrl-C or SIGTERM: the calls in flight are answered, every RPC connection closes
//! with 1001, then the app stops.

#[path = "support/listen.rs"]
mod listen;

use std::net::SocketAddr;

use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::{Json, Router};
use birpc::prelude::*;
use birpc::{Admit, Endpoint, Hub, Reject, RpcUpgrade};
use serde::{Deserialize, Serialize};

/// What the server exports over `/rpc`.
#[birpc::rpc(namespace = "app")]
trait App {
    /// Greets the caller, after asking it how it feels.
    async fn hello(&self, ctx: &Context) -> String;
    /// Sends `text` to every connection, the caller's included; answers how many it was sent to.
    async fn say(&self, ctx: &Context, text: String) -> usize;
}

/// What each client exports (the page, in JavaScript; the tests, in Rust).
#[birpc::rpc(namespace = "client")]
pub trait Visiting {
    /// How do you feel?
    async fn mood(&self) -> String;
    /// Someone said something.
    #[rpc(notification)]
    async fn said(&self, from: String, text: String);
}

/// The name a connection was admitted with.
struct Visitor(String);

/// The methods of `/rpc`, shared by every connection.
#[derive(Clone)]
struct AppService {
    hub: Hub,
}

impl App for AppService {
    async fn hello(&self, ctx: &Context) -> String {
        let name = visitor(ctx);
        // A typed stub of the caller's own service, over its connection.
        let mood = VisitingClient::new(ctx.peer().clone())
            .mood()
            .await
            .unwrap_or_else(|error| format!("unknown ({error})"));
        format!("Hello, {name}, who feels {mood}! {} connected.", self.hub.len())
    }

    async fn say(&self, ctx: &Context, text: String) -> usize {
        self.hub
            .notify_all(VisitingMethods::SAID, (visitor(ctx), text))
            .delivered
    }
}

fn visitor(ctx: &Context) -> String {
    ctx.state::<Visitor>().map_or_else(String::new, |v| v.0.clone())
}

/// The axum app's state: the birpc endpoint and its hub.
#[derive(Clone)]
struct AppState {
    rpc: Endpoint,
    hub: Hub,
}

/// Where `RpcUpgrade` finds the endpoint.
impl FromRef<AppState> for Endpoint {
    fn from_ref(state: &AppState) -> Endpoint {
        state.rpc.clone()
    }
}

#[derive(Deserialize)]
struct Join {
    name: Option<String>,
}

/// `GET /rpc`: admits a WebSocket upgrade that says who it is, with the name attached to the connection.
/// `RpcUpgrade` has already checked the upgrade, its origin and the connection limit.
async fn rpc(Query(join): Query<Join>, upgrade: RpcUpgrade) -> Result<Response, Reject> {
    let name = join.name.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() {
        return Err(Reject::unauthorized("say who you are: /rpc?name=NAME"));
    }
    if name.chars().count() > 32 {
        return Err(Reject::new(StatusCode::BAD_REQUEST, "a name of at most 32 characters"));
    }
    Ok(upgrade.admit(Admit::new().with_state(Visitor(name))).await)
}

#[derive(Serialize)]
struct Stats {
    connections: usize,
}

/// `GET /api/stats`.
async fn stats(State(state): State<AppState>) -> Json<Stats> {
    Json(Stats {
        connections: state.hub.len(),
    })
}

/// `GET /`.
async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn app(hub: &Hub) -> (Router, Endpoint) {
    let service = AppService { hub: hub.clone() };
    let endpoint = Server::builder()
        .hub(hub.clone())
        .max_connections(1_000)
        .into_endpoint(move |_connection| service.clone().into_router());
    let router = Router::new()
        .route("/", get(page))
        .route("/api/stats", get(stats))
        .route("/rpc", get(rpc))
        .with_state(AppState {
            rpc: endpoint.clone(),
            hub: hub.clone(),
        });
    (router, endpoint)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = match args.as_slice() {
        [] => "127.0.0.1:3000",
        [flag, addr] if flag == "--listen" => addr.as_str(),
        _ => {
            eprintln!("usage: axum_app [--listen HOST:PORT]");
            std::process::exit(2);
        }
    };
    let hub = Hub::new();
    let (router, endpoint) = app(&hub);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|error| listen::cannot_listen(listen, &error));
    // Watched before the server says it is ready: a signal right after is caught.
    let signal = birpc::shutdown_signal();
    println!("listening on http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // With the connect info, each RPC connection knows its remote address (`ConnectionInfo::remote_addr`).
    let serving = tokio::spawn(
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    signal.await?;
    // The RPC connections are no longer axum's once upgraded: the endpoint answers their calls in flight and
    // closes them with 1001, then axum finishes its requests and stops.
    endpoint.shutdown().await;
    let _ = stop.send(());
    serving.await??;
    Ok(())
}

/// The page: a name, a mood, and a line to say things; it speaks JSON-RPC 2.0 over WebSocket by hand
/// (see `clients/js` for birpc's JavaScript client).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>birpc in axum</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  input, button { font: inherit; }
  #log { border: 1px solid #ccc; padding: .5rem; min-height: 8rem; white-space: pre-wrap; }
</style>
<h1>birpc in axum</h1>
<p>This page, <a href="/api/stats">/api/stats</a> and the RPC endpoint <code>/rpc</code> share one port.
  Open it in two tabs.</p>
<p><input id="name" placeholder="your name"> feeling <input id="mood" value="curious">
  <button id="join">Join</button></p>
<p><input id="text" placeholder="say something" disabled> <button id="say" disabled>Say</button></p>
<div id="log"></div>
<script>
const $ = (id) => document.getElementById(id);
const log = (line) => { $("log").textContent += line + "\n"; };
let socket, next = 1;
const pending = new Map();

function call(method, params) {
  const id = next++;
  socket.send(JSON.stringify({ jsonrpc: "2.0", method, params, id }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

// What the page exports, for the server to call.
const exported = {
  "client.mood": () => $("mood").value,
  "client.said": ([from, text]) => log(`${from}: ${text}`),
};

function received(message) {
  if (message.method === undefined) {
    const waiting = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiting?.reject(new Error(message.error.message));
    else waiting?.resolve(message.result);
    return;
  }
  const method = exported[message.method];
  const answer = (body) => message.id !== undefined &&
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: message.id, ...body }));
  if (method) answer({ result: method(message.params ?? []) ?? null });
  else answer({ error: { code: -32601, message: "Method not found" } });
}

$("join").onclick = () => {
  $("join").disabled = true;
  const name = encodeURIComponent($("name").value);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/rpc?name=${name}`, "birpc.v1");
  socket.onmessage = (event) => received(JSON.parse(event.data));
  socket.onclose = (event) => {
    log(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
    $("join").disabled = false;
    $("text").disabled = $("say").disabled = true;
  };
  socket.onopen = async () => {
    $("text").disabled = $("say").disabled = false;
    log(await call("app.hello", []));
    const stats = await (await fetch("/api/stats")).json();
    log(`the REST route says ${stats.connections} connected`);
  };
};

$("say").onclick = async () => {
  const sent = await call("app.say", [$("text").value]);
  log(`(sent to ${sent})`);
  $("text").value = "";
};
</script>
</html>
"#;
