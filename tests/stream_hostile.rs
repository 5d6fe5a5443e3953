//! Streams against a hostile peer: raw WebSocket clients and servers sending hand-made frames of the
//! stream protocol (`docs/streams.md`) to birpc, as producer and as consumer. Credits of every shape,
//! floods of announcements, cancels of streams never produced, items of streams never opened or already
//! over, upload ids reused, producers that overrun or panic, consumers that never grant, odd stream ids,
//! and thousands of streams cut off at once (every task and entry must go).
//!
//! Several tests here found defects, since fixed; each keeps the behaviour it asks for.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use birpc::prelude::*;
use birpc::{ServerHandle, UploadId, code};
use common::{Proxy, eventually, within};
use futures::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a test of a bug waits for the right behaviour before it fails (shorter than the usual
/// patience, so that `--ignored` runs do not take minutes).
const BUG_PATIENCE: Duration = Duration::from_secs(5);

/// Waits `BUG_PATIENCE` for `condition`, then fails with `what`.
async fn soon(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(BUG_PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {BUG_PATIENCE:?}");
}

// ---------------------------------------------------------------------------------------------------
// A raw WebSocket end, either side.
// ---------------------------------------------------------------------------------------------------

/// One end of a WebSocket connection that sends and reads raw JSON text.
struct Wire<S> {
    ws: WebSocketStream<S>,
    probes: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        Self { ws, probes: 0 }
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    /// The next text message (pings and pongs skipped).
    async fn recv_text(&mut self) -> String {
        loop {
            match within("a message", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Binary(bytes))) => return String::from_utf8(bytes.to_vec()).expect("UTF-8"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Sends `request` and returns what comes back with its id, and everything that came before it.
    async fn ask_collecting(&mut self, request: Value) -> (Value, Vec<Value>) {
        let id = request["id"].clone();
        self.send_json(request).await;
        let mut before = Vec::new();
        loop {
            let message = self.recv().await;
            if message.get("method").is_none() && message["id"] == id {
                return (message, before);
            }
            before.push(message);
        }
    }

    /// Sends `request` and returns its answer; nothing else may come first.
    async fn ask(&mut self, request: Value) -> Value {
        let (answer, before) = self.ask_collecting(request).await;
        assert!(before.is_empty(), "came before the answer {answer}: {before:?}");
        answer
    }

    /// A round trip: a request to no method, answered at once by the other side's reader, which reads in
    /// order. Returns what came before its answer.
    async fn probe(&mut self) -> Vec<Value> {
        self.probes += 1;
        let id = format!("probe-{}", self.probes);
        let (answer, before) = self
            .ask_collecting(json!({"jsonrpc": "2.0", "id": id, "method": "probe.absent"}))
            .await;
        assert_eq!(answer["error"]["code"], code::METHOD_NOT_FOUND, "{answer}");
        before
    }

    /// A round trip before which nothing came.
    async fn quiet(&mut self) {
        let before = self.probe().await;
        assert!(before.is_empty(), "unexpected messages: {before:?}");
    }
}

/// The frame of one item of stream `subscription` under `method`.
fn item(method: &str, subscription: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": {"subscription": subscription, "result": result}})
}

fn notice(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A request; `null` params are left out (JSON-RPC allows only an array or an object).
fn request(id: impl Into<Value>, method: &str, params: Value) -> Value {
    let mut request = json!({"jsonrpc": "2.0", "id": id.into(), "method": method});
    if !params.is_null() {
        request["params"] = params;
    }
    request
}

/// Whether `message` is the -32600 error answered (with id `null`) to a message that is not JSON-RPC.
fn is_invalid_request(message: &Value) -> bool {
    message["id"].is_null() && message["error"]["code"] == code::INVALID_REQUEST
}

/// Announces a download of request `id` with `window` credits.
fn open(id: impl Into<Value>, window: impl Into<Value>) -> Value {
    notice("$/stream.open", json!({"id": id.into(), "window": window.into()}))
}

fn credit(subscription: &Value, credit: impl Into<Value>) -> Value {
    notice(
        "$/stream.credit",
        json!({"subscription": subscription, "credit": credit.into()}),
    )
}

fn is_item_of(message: &Value, subscription: &Value) -> bool {
    message["params"]["subscription"] == *subscription && message["params"].get("result").is_some()
}

fn is_end_of(message: &Value, subscription: &Value) -> bool {
    message["method"] == "$/stream.end" && message["params"]["subscription"] == *subscription
}

// ---------------------------------------------------------------------------------------------------
// A birpc server with stream methods, and a raw client.
// ---------------------------------------------------------------------------------------------------

/// Counts while alive.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the server's handlers let the tests see.
#[derive(Clone, Default)]
struct Counters {
    /// Producing streams alive (`forever`, `panics_at`).
    live: Arc<AtomicUsize>,
    /// Producing streams made.
    made: Arc<AtomicUsize>,
    /// Items `forever` streams made.
    items: Arc<AtomicUsize>,
    /// Calls of `tally`, requests and notifications.
    tally: Arc<AtomicUsize>,
    /// `sum` handlers running.
    summing: Arc<AtomicUsize>,
    /// A `panics_at` stream is about to panic.
    panicking: Arc<Notify>,
}

impl Counters {
    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// Items 0, 1, 2, … forever, counted as alive.
fn forever(counters: &Counters) -> impl futures::Stream<Item = Result<u64, ErrorObject>> + Send + use<> {
    counters.made.fetch_add(1, Ordering::SeqCst);
    let alive = Alive::new(&counters.live);
    let items = counters.items.clone();
    futures::stream::iter(0..).map(move |n| {
        let _alive = &alive;
        items.fetch_add(1, Ordering::SeqCst);
        Ok(n)
    })
}

fn router(counters: Counters, peers: mpsc::UnboundedSender<PeerHandle>) -> Router {
    let (c1, c2, c3, c4, c5) = (
        counters.clone(),
        counters.clone(),
        counters.clone(),
        counters.clone(),
        counters.clone(),
    );
    Router::new()
        .stream("numbers", |_: Context, (from, to): (u64, u64)| async move {
            Ok::<_, ErrorObject>(futures::stream::iter(from..to).map(Ok::<_, ErrorObject>))
        })
        .stream("forever", move |_: Context, _: NoParams| {
            let counters = c1.clone();
            async move { Ok::<_, ErrorObject>(forever(&counters)) }
        })
        .stream("panics_at", move |_: Context, (at,): (u64,)| {
            let counters = c2.clone();
            async move {
                counters.made.fetch_add(1, Ordering::SeqCst);
                let alive = Alive::new(&counters.live);
                let panicking = counters.panicking.clone();
                Ok::<_, ErrorObject>(futures::stream::iter(0..).map(move |n| {
                    let _alive = &alive;
                    if n == at {
                        panicking.notify_one();
                        panic!("the producing stream broke at item {at} (on purpose)");
                    }
                    Ok::<u64, ErrorObject>(n)
                }))
            }
        })
        .stream("panics_opening", |_: Context, _: NoParams| async move {
            if true {
                panic!("the stream method broke before its stream (on purpose)");
            }
            Ok::<_, ErrorObject>(futures::stream::iter(0..1_u64).map(Ok::<_, ErrorObject>))
        })
        .method("sum", move |ctx: Context, (id,): (UploadId,)| {
            let counters = c3.clone();
            async move {
                let _running = Alive::new(&counters.summing);
                let mut upload = ctx.upload::<i64>(id)?;
                let mut sum = 0;
                while let Some(value) = upload.next().await {
                    sum += value.map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                }
                Ok::<_, ErrorObject>(sum)
            }
        })
        .method("bind_twice", |ctx: Context, (id,): (Box<RawValue>,)| async move {
            let first: UploadId = serde_json::from_str(id.get()).unwrap();
            let second: UploadId = serde_json::from_str(id.get()).unwrap();
            let mut upload = ctx.upload::<i64>(first)?;
            let refused = match ctx.upload::<i64>(second) {
                Ok(_) => 0,
                Err(error) => error.code(),
            };
            let mut sum = 0;
            while let Some(value) = upload.next().await {
                sum += value.map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            }
            Ok::<_, ErrorObject>((refused, sum))
        })
        // Called with `[upload id]`: takes the upload's first item and drops the upload. Counts every
        // call, notifications included (params of any shape are accepted).
        .method("tally", move |ctx: Context, params: Value| {
            let counters = c4.clone();
            async move {
                counters.tally.fetch_add(1, Ordering::SeqCst);
                let Some(id) = params.get(0) else {
                    return Ok::<_, ErrorObject>(None);
                };
                let id: UploadId = serde_json::from_str(&id.to_string()).unwrap();
                let mut upload = ctx.upload::<i64>(id)?;
                let first = upload.next().await.and_then(Result::ok);
                drop(upload);
                Ok(first)
            }
        })
        .method("tally_count", move |_: Context, _: NoParams| {
            let count = c5.tally.load(Ordering::SeqCst);
            async move { Ok::<_, ErrorObject>(count) }
        })
        // Hands the test this connection's handle on the server's side.
        .method("grab", move |ctx: Context, _: NoParams| {
            let _ = peers.send(ctx.peer().clone());
            async { Ok::<_, ErrorObject>(true) }
        })
}

struct Lab {
    server: ServerHandle,
    counters: Counters,
    peers: mpsc::UnboundedReceiver<PeerHandle>,
}

type ClientWire = Wire<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Lab {
    async fn start(config: PeerConfig) -> Self {
        let counters = Counters::default();
        let (tx, peers) = mpsc::unbounded_channel();
        let for_routes = counters.clone();
        let server = Server::builder()
            .config(config)
            .bind("127.0.0.1:0")
            .await
            .unwrap()
            .serve(move |_| router(for_routes.clone(), tx.clone()));
        Self {
            server,
            counters,
            peers,
        }
    }

    async fn default() -> Self {
        Self::start(PeerConfig::default()).await
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    /// A raw client, and the server's handle of its connection.
    async fn raw(&mut self) -> (ClientWire, PeerHandle) {
        let (ws, _) = tokio_tungstenite::connect_async(self.url()).await.expect("connect");
        let mut wire = Wire::new(ws);
        let answer = wire.ask(request("grab", "grab", json!(null))).await;
        assert_eq!(answer["result"], true, "{answer}");
        let peer = within("the server's handle", self.peers.recv()).await.unwrap();
        (wire, peer)
    }

    async fn stop(self) {
        within("the server's shutdown", self.server.shutdown()).await;
    }
}

/// Opens a download of `method` with `params`, announced with `window` credits (none announced if
/// `None`); its stream id.
async fn download(wire: &mut ClientWire, id: &str, window: Option<Value>, method: &str, params: Value) -> Value {
    if let Some(window) = window {
        wire.send_json(open(id, window)).await;
    }
    let answer = wire.ask(request(id, method, params)).await;
    let subscription = answer["result"].clone();
    assert!(subscription.is_u64(), "{answer}");
    subscription
}

/// Sends request `id` to `method` naming upload `upload`: the first thing back is the callee's grant,
/// once its handler binds the upload (the answer comes at the upload's end).
async fn bind_upload(wire: &mut ClientWire, id: impl Into<Value>, method: &str, upload: Value) -> Value {
    wire.send_json(request(id, method, json!([upload]))).await;
    wire.recv().await
}

// ---------------------------------------------------------------------------------------------------
// Credits and announcements.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn credits_of_any_shape_neither_break_nor_cheat_flow_control() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let s = download(&mut wire, "a", Some(json!(0)), "numbers", json!([0, 100])).await;
    wire.quiet().await;
    // Malformed or empty grants, and grants to streams that do not exist: nothing moves.
    for bogus in [
        credit(&s, 0),
        credit(&s, -1),
        credit(&s, "5"),
        credit(&s, 1.5),
        credit(&s, 5.0),
        credit(&s, json!(null)),
        credit(&s, json!([5])),
        credit(&json!(s.to_string()), 5),
        credit(&json!(-1), 5),
        credit(&json!(999), 5),
        notice("$/stream.credit", json!({"subscription": s})),
        notice("$/stream.credit", json!([s])),
        notice("$/stream.credit", json!([s, 5, 5])),
        json!({"jsonrpc": "2.0", "method": "$/stream.credit"}),
    ] {
        wire.send_json(bogus).await;
    }
    wire.quiet().await;
    // Params that are no JSON-RPC params at all: the message is invalid, answered -32600 (id null).
    wire.send_json(notice("$/stream.credit", json!(null))).await;
    wire.send_json(notice("$/stream.credit", json!(5))).await;
    let invalid = wire.probe().await;
    assert!(
        invalid.len() == 2 && invalid.iter().all(is_invalid_request),
        "{invalid:?}"
    );
    // Exactly the credit granted, no more (had any grant above counted, more items would come first).
    // Positional params `[S, N]` are taken too (serde reads a struct from an array): lenient, harmless.
    wire.send_json(notice("$/stream.credit", json!([s, 2]))).await;
    for n in 0..2 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &s) && message["params"]["result"] == n,
            "{message}"
        );
    }
    wire.quiet().await;
    // Grants that overflow: capped, never wrapped.
    wire.send_json(credit(&s, u64::MAX)).await;
    wire.send_json(credit(&s, u64::MAX)).await;
    wire.send_json(credit(&s, 1_u64 << 31)).await;
    for n in 2..100 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &s) && message["params"]["result"] == n,
            "{message}"
        );
    }
    assert!(is_end_of(&wire.recv().await, &s));
    wire.quiet().await;
    assert!(!server_peer.is_closed());
    eventually("the stream to be over", || server_peer.stats().streams_produced == 0).await;
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn announcements_with_odd_windows_are_capped_or_ignored() {
    let mut lab = Lab::default().await;
    let (mut wire, _server_peer) = lab.raw().await;
    // A window beyond u32 is capped: the stream runs (all 50 items, then the end).
    let s = download(&mut wire, "huge", Some(json!(u64::MAX)), "numbers", json!([0, 50])).await;
    for n in 0..50 {
        assert_eq!(wire.recv().await["params"]["result"], n);
    }
    assert!(is_end_of(&wire.recv().await, &s));
    // Malformed announcements are ignored: the stream runs as for a consumer that grants no credit.
    for (id, window) in [
        ("negative", json!(-1)),
        ("string", json!("64")),
        ("float", json!(2.5)),
        ("object", json!({"n": 1})),
        ("beyond_u64", json!(1e30)),
    ] {
        let s = download(&mut wire, id, Some(window), "numbers", json!([0, 3])).await;
        for n in 0..3 {
            assert_eq!(wire.recv().await["params"]["result"], n, "{id}");
        }
        assert!(is_end_of(&wire.recv().await, &s), "{id}");
    }
    // An announcement without a window, or with no id, is ignored too.
    wire.send_json(notice("$/stream.open", json!({"id": "x"}))).await;
    wire.send_json(notice("$/stream.open", json!({"window": 1}))).await;
    wire.send_json(notice("$/stream.open", json!([1, 2]))).await;
    let s = download(&mut wire, "x", None, "numbers", json!([0, 2])).await;
    for n in 0..2 {
        assert_eq!(wire.recv().await["params"]["result"], n);
    }
    assert!(is_end_of(&wire.recv().await, &s));
    wire.quiet().await;
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn a_flood_of_announcements_keeps_only_the_latest_sixteen() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    for id in 0..10_000 {
        wire.send_json(open(id, 0)).await;
    }
    wire.quiet().await;
    assert!(!server_peer.is_closed());
    assert_eq!(server_peer.stats().waiting_notifications, 0);
    // A recent announcement still holds: window 0, nothing comes.
    let answer = wire.ask(request(9990, "numbers", json!([0, 3]))).await;
    let held = answer["result"].clone();
    assert!(held.is_u64(), "{answer}");
    wire.quiet().await;
    // A forgotten one (id 17) runs without credit.
    let answer = wire.ask(request(17, "numbers", json!([0, 3]))).await;
    let forgotten = answer["result"].clone();
    for n in 0..3 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &forgotten) && message["params"]["result"] == n,
            "{message}"
        );
    }
    assert!(is_end_of(&wire.recv().await, &forgotten));
    // The held stream moves only with credit.
    wire.send_json(credit(&held, 1)).await;
    let message = wire.recv().await;
    assert!(is_item_of(&message, &held), "{message}");
    wire.quiet().await;
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Cancels.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancels_of_streams_never_produced_are_harmless() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let live = download(&mut wire, "live", Some(json!(0)), "forever", json!(null)).await;
    // As notifications: ignored, whatever their params.
    for params in [
        json!({"subscription": 999}),
        json!([999]),
        json!({"subscription": "1"}),
        json!({"subscription": -1}),
        json!({"subscription": u64::MAX}),
        json!([]),
        json!([1, 2]),
        json!({}),
    ] {
        wire.send_json(notice("$/stream.cancel", params)).await;
    }
    wire.send(r#"{"jsonrpc":"2.0","method":"$/stream.cancel"}"#).await;
    wire.quiet().await;
    wire.send_json(notice("$/stream.cancel", json!(null))).await;
    wire.send_json(notice("$/stream.cancel", json!("1"))).await;
    let invalid = wire.probe().await;
    assert!(
        invalid.len() == 2 && invalid.iter().all(is_invalid_request),
        "{invalid:?}"
    );
    assert_eq!(
        server_peer.stats().streams_produced,
        1,
        "the live stream was not touched"
    );
    // As requests: `false` for streams that are not live, -32602 for params that name none.
    for (params, expected) in [
        (json!({"subscription": 999}), json!(false)),
        (json!([999]), json!(false)),
        (json!([0]), json!(false)),
        (json!({"subscription": u64::MAX}), json!(false)),
    ] {
        let answer = wire.ask(request("c", "$/stream.cancel", params.clone())).await;
        assert_eq!(answer["result"], expected, "{params}: {answer}");
    }
    for params in [
        json!({"subscription": "1"}),
        json!({"subscription": -1}),
        json!({"subscription": 1.5}),
        json!([]),
        json!([1, 2]),
        json!({}),
        json!(null),
    ] {
        let answer = wire.ask(request("c", "$/stream.cancel", params.clone())).await;
        assert_eq!(answer["error"]["code"], code::INVALID_PARAMS, "{params}: {answer}");
    }
    let answer = wire.ask(request("c", "$/stream.cancel", json!("1"))).await;
    assert_eq!(answer["error"]["code"], code::INVALID_REQUEST, "{answer}");
    let answer = wire
        .ask(json!({"jsonrpc": "2.0", "id": "c", "method": "$/stream.cancel"}))
        .await;
    assert_eq!(answer["error"]["code"], code::INVALID_PARAMS, "{answer}");
    // In a batch, answered with the batch.
    wire.send(r#"[{"jsonrpc":"2.0","id":"b1","method":"$/stream.cancel","params":[999]},{"jsonrpc":"2.0","id":"b2","method":"$/stream.cancel","params":"x"}]"#)
        .await;
    let answers = wire.recv().await;
    let answers = answers.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 2, "{answers:?}");
    for answer in answers {
        match answer["id"].as_str() {
            Some("b1") => assert_eq!(answer["result"], false),
            Some("b2") => assert_eq!(answer["error"]["code"], code::INVALID_REQUEST),
            _ => panic!("{answer}"),
        }
    }
    // The live stream is cancelled once, then no more.
    let answer = wire.ask(request("c1", "$/stream.cancel", json!([live]))).await;
    assert_eq!(answer["result"], true);
    let answer = wire
        .ask(request("c2", "$/stream.cancel", json!({"subscription": live})))
        .await;
    assert_eq!(answer["result"], false);
    eventually("the producer to be dropped", || lab.counters.live() == 0).await;
    assert_eq!(server_peer.stats().streams_produced, 0);
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Stream methods where no stream can open.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_method_called_as_a_notification_or_in_a_batch_opens_nothing() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    wire.send_json(open(1, 8)).await;
    wire.send_json(json!({"jsonrpc": "2.0", "method": "forever"})).await;
    wire.send_json(notice("forever", json!([]))).await;
    wire.quiet().await;
    // A batch: the stream methods' entries are refused, the rest answered; no item follows.
    wire.send(
        r#"[
            {"jsonrpc":"2.0","method":"$/stream.open","params":{"id":2,"window":8}},
            {"jsonrpc":"2.0","id":2,"method":"forever"},
            {"jsonrpc":"2.0","id":3,"method":"numbers","params":[0,3]},
            {"jsonrpc":"2.0","method":"forever"},
            {"jsonrpc":"2.0","id":4,"method":"no_such_method"}
        ]"#,
    )
    .await;
    let answers = wire.recv().await;
    let answers = answers
        .as_array()
        .unwrap_or_else(|| panic!("a batch answer: {answers}"));
    assert_eq!(answers.len(), 3, "{answers:?}");
    for answer in answers {
        let expected = match answer["id"].as_u64() {
            Some(2 | 3) => code::INVALID_REQUEST,
            Some(4) => code::METHOD_NOT_FOUND,
            _ => panic!("{answer}"),
        };
        assert_eq!(answer["error"]["code"], expected, "{answer}");
    }
    wire.quiet().await;
    assert_eq!(lab.counters.made.load(Ordering::SeqCst), 0);
    assert_eq!(server_peer.stats().streams_produced, 0);
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn past_the_stream_limit_downloads_and_uploads_are_refused_then_allowed_again() {
    let mut lab = Lab::start(PeerConfig::default().max_streams(2)).await;
    let (mut wire, server_peer) = lab.raw().await;
    let a = download(&mut wire, "a", Some(json!(0)), "forever", json!(null)).await;
    let _b = download(&mut wire, "b", Some(json!(0)), "forever", json!(null)).await;
    let answer = wire.ask(request("c", "forever", json!(null))).await;
    assert_eq!(answer["error"]["code"], code::TOO_MANY_STREAMS, "{answer}");
    wire.send_json(notice("$/stream.cancel", json!([a]))).await;
    wire.quiet().await;
    let _c = download(&mut wire, "c", Some(json!(0)), "forever", json!(null)).await;
    assert_eq!(server_peer.stats().streams_produced, 2);
    // Uploads bound by handlers count against the streams this side consumes.
    wire.send_json(request("u1", "sum", json!([1]))).await;
    wire.send_json(request("u2", "sum", json!([2]))).await;
    let mut credits = Vec::new();
    while credits.len() < 2 {
        let message = wire.recv().await;
        assert_eq!(message["method"], "$/stream.credit", "{message}");
        credits.push(message["params"]["subscription"].clone());
    }
    let answer = wire.ask(request("u3", "sum", json!([3]))).await;
    assert_eq!(answer["error"]["code"], code::TOO_MANY_STREAMS, "{answer}");
    assert_eq!(server_peer.stats().streams_consumed, 2);
    for upload in [1, 2] {
        wire.send_json(notice("$/stream.end", json!({"subscription": upload})))
            .await;
    }
    let mut sums = 0;
    while sums < 2 {
        let message = wire.recv().await;
        assert_eq!(message["result"], 0, "{message}");
        sums += 1;
    }
    let granted = bind_upload(&mut wire, "u4", "sum", json!(4)).await;
    assert_eq!(
        granted,
        credit(&json!(4), PeerConfig::default().stream_window),
        "bound once there is room again"
    );
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// A consumer that never grants.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_consumer_that_never_grants_holds_up_nothing_else() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let stalled = download(&mut wire, "stalled", Some(json!(2)), "forever", json!(null)).await;
    for n in 0..2 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &stalled) && message["params"]["result"] == n,
            "{message}"
        );
    }
    // Pings are answered, calls answered, other streams flow, many times over.
    for round in 0..20 {
        let payload = format!("ping {round}");
        wire.ws
            .send(Message::Ping(payload.clone().into_bytes().into()))
            .await
            .unwrap();
        loop {
            match within("the pong", wire.ws.next()).await {
                Some(Ok(Message::Pong(bytes))) => {
                    assert_eq!(&bytes[..], payload.as_bytes());
                    break;
                }
                // The server's own heartbeat.
                Some(Ok(Message::Ping(_))) => continue,
                other => panic!("expected the pong, got {other:?}"),
            }
        }
        wire.quiet().await;
        let id = format!("other-{round}");
        let other = download(&mut wire, &id, Some(json!(4)), "numbers", json!([0, 3])).await;
        for n in 0..3 {
            let message = wire.recv().await;
            assert!(
                is_item_of(&message, &other) && message["params"]["result"] == n,
                "{message}"
            );
        }
        assert!(is_end_of(&wire.recv().await, &other));
    }
    assert_eq!(server_peer.stats().streams_produced, 1);
    assert_eq!(lab.counters.live(), 1);
    wire.send_json(notice("$/stream.cancel", json!({"subscription": stalled})))
        .await;
    eventually("the stalled producer to be dropped", || lab.counters.live() == 0).await;
    eventually("no stream produced", || server_peer.stats().streams_produced == 0).await;
    drop(wire);
    lab.stop().await;
}

/// `docs/streams.md`: each item uses one credit; the end is not an item. A consumer that announced a
/// window of exactly the three items it asked for gets them, and then the end.
#[tokio::test]
async fn the_end_of_a_stream_needs_no_credit() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let s = download(&mut wire, "exact", Some(json!(3)), "numbers", json!([0, 3])).await;
    for n in 0..3 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &s) && message["params"]["result"] == n,
            "{message}"
        );
    }
    let before = wire.probe().await;
    let ended = before.iter().any(|m| is_end_of(m, &s))
        || tokio::time::timeout(BUG_PATIENCE, wire.recv())
            .await
            .is_ok_and(|m| is_end_of(&m, &s));
    assert!(
        ended,
        "no $/stream.end after the last item (the producer still holds stream {s}: {} produced)",
        server_peer.stats().streams_produced
    );
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Panics.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_method_that_panics_before_its_stream_answers_32603_and_the_connection_lives() {
    let lab = Lab::default().await;
    let client = Client::connect(&lab.url()).await.unwrap();
    match client.subscribe::<u64>("panics_opening", ()).await {
        Err(CallError::Remote(error)) => assert_eq!(error.code(), code::INTERNAL_ERROR),
        other => panic!("{other:?}"),
    }
    let items: Vec<u64> = within(
        "a stream after the panic",
        client
            .subscribe::<u64>("numbers", (0, 5))
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(items, [0, 1, 2, 3, 4]);
    assert_eq!(client.stats().streams_consumed, 0);
    lab.stop().await;
}

#[tokio::test]
async fn a_producing_stream_that_panics_leaves_the_connection_and_other_streams_alive() {
    let lab = Lab::default().await;
    let client = Client::connect(&lab.url()).await.unwrap();
    let mut other = client.subscribe::<u64>("forever", ()).window(4).await.unwrap();
    assert_eq!(within("an item", other.next()).await.unwrap().unwrap(), 0);
    let panicking = lab.counters.panicking.notified();
    let mut broken = client.subscribe::<u64>("panics_at", (2,)).await.unwrap();
    for n in 0..2 {
        assert_eq!(within("an item", broken.next()).await.unwrap().unwrap(), n);
    }
    within("the producer's panic", panicking).await;
    eventually("the panicked producer to be dropped", || lab.counters.live() == 1).await;
    // The connection and the other stream go on.
    for n in 1..100 {
        assert_eq!(within("an item", other.next()).await.unwrap().unwrap(), n);
    }
    let refused = client.call::<()>("no_such_method", ()).await.unwrap_err();
    assert!(matches!(refused, CallError::MethodNotFound(_)), "{refused}");
    assert!(client.is_connected());
    lab.stop().await;
}

/// A producing stream whose `poll_next` panics: its consumer must learn that the stream is over (an
/// error end, as a handler's panic answers -32603), and the producer must leave the connection's table.
#[tokio::test]
async fn a_producing_stream_that_panics_ends_with_an_error() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let panicking = lab.counters.panicking.notified();
    let s = download(&mut wire, "p", Some(json!(8)), "panics_at", json!([2])).await;
    for n in 0..2 {
        let message = wire.recv().await;
        assert!(
            is_item_of(&message, &s) && message["params"]["result"] == n,
            "{message}"
        );
    }
    within("the producer's panic", panicking).await;
    soon("the panicked producer to leave the table", || {
        server_peer.stats().streams_produced == 0
    })
    .await;
    let end = tokio::time::timeout(BUG_PATIENCE, wire.recv())
        .await
        .expect("no $/stream.end after the producer panicked");
    assert!(is_end_of(&end, &s), "{end}");
    assert_eq!(end["params"]["error"]["code"], code::INTERNAL_ERROR, "{end}");
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// A request cancelled while its stream's answer waits for room.
// ---------------------------------------------------------------------------------------------------

/// A stream method's handler registers its stream, then waits for room to send the answer; a
/// `$/cancelRequest` aborts it there. The stream must not stay registered (no task produces it, nobody
/// knows its id): it counts against `max_streams` and `stats()` for the rest of the connection.
#[tokio::test]
async fn a_stream_request_cancelled_while_its_answer_waits_leaves_no_stream_behind() {
    let mut lab = Lab::start(PeerConfig::default().max_queued_frames(4)).await;
    let (mut wire, server_peer) = lab.raw().await;
    // A stream without credit fills the server's outgoing queue and the socket: stop reading, and wait
    // until its producer is held up (frames queued or being written, no item made between two looks).
    let flood = wire.ask(request("flood", "forever", json!(null))).await["result"].clone();
    assert!(flood.is_u64());
    let mut last = usize::MAX;
    eventually("the server's socket to back up", || {
        let made = lab.counters.items.load(Ordering::SeqCst);
        let stalled = made == last && server_peer.stats().queued_bytes > 0;
        last = made;
        stalled
    })
    .await;
    // The stream's answer finds no room: its handler waits, as a task. Then the request is cancelled.
    wire.send_json(request("x", "numbers", json!([0, 3]))).await;
    eventually("the stream of \"x\" to be registered, its answer waiting", || {
        let stats = server_peer.stats();
        stats.streams_produced == 2 && stats.running_handlers == 1
    })
    .await;
    wire.send_json(notice("$/cancelRequest", json!({"id": "x"}))).await;
    wire.send_json(notice("$/stream.cancel", json!([flood]))).await;
    eventually("the flood's producer to be dropped", || lab.counters.live() == 0).await;
    // Read again: what was queued goes out (the flood's last items, in any order with the rest), and
    // the answer to "x".
    let is_flood = |message: &Value| is_item_of(message, &flood);
    let x = loop {
        let message = wire.recv().await;
        if message["id"] == "x" {
            break message;
        }
        assert!(is_flood(&message), "{message}");
    };
    let x_stream = x.get("result").cloned();
    if let Some(s) = &x_stream {
        // Answered after all (a fix may choose this): its stream runs to its end.
        loop {
            let message = wire.recv().await;
            if is_end_of(&message, s) {
                break;
            }
            assert!(is_flood(&message) || is_item_of(&message, s), "{message}");
        }
    } else {
        assert_eq!(x["error"]["code"], code::REQUEST_CANCELLED, "{x}");
    }
    let before = wire.probe().await;
    assert!(before.iter().all(is_flood), "{before:?}");
    assert!(!server_peer.is_closed());
    soon("no stream left on the server once both are gone", || {
        server_peer.stats().streams_produced == 0
    })
    .await;
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Uploads from a raw caller.
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_id_bound_twice_is_refused_and_reusable_once_free() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let granted = bind_upload(&mut wire, 1, "sum", json!(5)).await;
    assert_eq!(
        granted,
        credit(&json!(5), PeerConfig::default().stream_window),
        "the callee grants its window once bound"
    );
    // A second request naming the bound upload: -32602, and the first goes on.
    let refused = wire.ask(request(2, "sum", json!([5]))).await;
    assert_eq!(refused["error"]["code"], code::INVALID_PARAMS, "{refused}");
    // The same id as a string is another stream.
    let granted = bind_upload(&mut wire, 3, "sum", json!("5")).await;
    assert_eq!(granted, credit(&json!("5"), PeerConfig::default().stream_window));
    for n in [1, 2, 3] {
        wire.send_json(item("sum", &json!(5), json!(n))).await;
    }
    wire.send_json(item("sum", &json!("5"), json!(100))).await;
    wire.send_json(notice("$/stream.end", json!({"subscription": 5}))).await;
    wire.send_json(notice("$/stream.end", json!({"subscription": "5"})))
        .await;
    let mut sums = std::collections::BTreeMap::new();
    while sums.len() < 2 {
        let answer = wire.recv().await;
        sums.insert(answer["id"].as_u64().unwrap(), answer["result"].clone());
    }
    assert_eq!(sums[&1], 6);
    assert_eq!(sums[&3], 100);
    // Free again: the id may name a new upload.
    let granted = bind_upload(&mut wire, 4, "sum", json!(5)).await;
    assert_eq!(granted["method"], "$/stream.credit");
    wire.send_json(notice("$/stream.end", json!({"subscription": 5}))).await;
    assert_eq!(wire.recv().await, json!({"jsonrpc": "2.0", "id": 4, "result": 0}));
    assert_eq!(server_peer.stats().streams_consumed, 0);
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn a_handler_binding_one_upload_twice_is_refused_the_second_time() {
    let mut lab = Lab::default().await;
    let (mut wire, _server_peer) = lab.raw().await;
    let granted = bind_upload(&mut wire, 1, "bind_twice", json!(7)).await;
    assert_eq!(granted["method"], "$/stream.credit", "{granted}");
    for n in [10, 20] {
        wire.send_json(item("bind_twice", &json!(7), json!(n))).await;
    }
    wire.send_json(notice("$/stream.end", json!({"subscription": 7}))).await;
    let answer = wire.recv().await;
    assert_eq!(answer["result"], json!([code::INVALID_PARAMS, 30]), "{answer}");
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn items_for_uploads_never_bound_or_already_over_are_dropped() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    // Before any upload: items, ends and errors of unknown streams, under known and unknown methods.
    for junk in [
        item("sum", &json!(9), json!(1)),
        item("no_such_method", &json!(9), json!(1)),
        notice("$/stream.end", json!({"subscription": 9})),
        notice(
            "$/stream.end",
            json!({"subscription": 9, "error": {"code": 1, "message": "x"}}),
        ),
        notice("sum", json!({"subscription": 9, "error": "broken"})),
        notice("$/stream.end", json!({"subscription": {"deep": [1, {"x": null}]}})),
        notice("$/stream.end", json!({})),
        notice("$/stream.end", json!([9])),
    ] {
        wire.send_json(junk).await;
    }
    wire.quiet().await;
    // One upload: items before its request's handler binds it are not counted; after its end, none.
    let granted = bind_upload(&mut wire, 1, "sum", json!(9)).await;
    assert_eq!(granted["method"], "$/stream.credit");
    wire.send_json(item("sum", &json!(9), json!(5))).await;
    wire.send_json(item("sum", &json!("9"), json!(1000))).await;
    wire.send_json(item("sum", &json!(9.0), json!(1000))).await;
    wire.send_json(notice("$/stream.end", json!({"subscription": 9}))).await;
    wire.send_json(item("sum", &json!(9), json!(1000))).await;
    assert_eq!(wire.recv().await, json!({"jsonrpc": "2.0", "id": 1, "result": 5}));
    wire.quiet().await;
    assert!(!server_peer.is_closed());
    assert_eq!(server_peer.stats().streams_consumed, 0);
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn an_upload_beyond_its_credit_fails_the_handler_and_is_cancelled() {
    let mut lab = Lab::start(PeerConfig::default().stream_window(4)).await;
    let (mut wire, server_peer) = lab.raw().await;
    let granted = bind_upload(&mut wire, 1, "sum", json!(3)).await;
    assert_eq!(granted, credit(&json!(3), 4));
    // Ten items in one frame (a batch of notifications) against a window of four: the producer
    // overran, whatever the handler took meanwhile.
    let items: Vec<Value> = (0..10).map(|n| item("sum", &json!(3), json!(n))).collect();
    wire.send_json(Value::Array(items)).await;
    let mut cancelled = false;
    loop {
        let message = wire.recv().await;
        if message["method"] == "$/stream.cancel" {
            assert_eq!(message["params"], json!({"subscription": 3}));
            cancelled = true;
            continue;
        }
        if message["method"] == "$/stream.credit" {
            continue;
        }
        assert_eq!(message["id"], 1, "{message}");
        assert_eq!(message["error"]["code"], code::INTERNAL_ERROR, "{message}");
        break;
    }
    assert!(cancelled, "the producer was told to stop");
    wire.quiet().await;
    assert_eq!(server_peer.stats().streams_consumed, 0);
    drop(wire);
    lab.stop().await;
}

#[tokio::test]
async fn a_request_holding_an_upload_ends_with_its_connection() {
    let mut lab = Lab::default().await;
    let (mut wire, server_peer) = lab.raw().await;
    let granted = bind_upload(&mut wire, 1, "sum", json!(5)).await;
    assert_eq!(granted["method"], "$/stream.credit");
    wire.send_json(item("sum", &json!(5), json!(1))).await;
    wire.quiet().await;
    assert_eq!(server_peer.stats().streams_consumed, 1);
    assert_eq!(lab.counters.summing.load(Ordering::SeqCst), 1);
    // Cut: no close frame.
    drop(wire);
    within("the connection's end", server_peer.closed()).await;
    eventually("the upload to be gone", || server_peer.stats().streams_consumed == 0).await;
    eventually("the handler to be dropped", || {
        lab.counters.summing.load(Ordering::SeqCst) == 0
    })
    .await;
    lab.stop().await;
}

/// `docs/streams.md`, uploads, step 4: once the handler is done with the upload, the callee sends
/// `$/stream.cancel` "and drops any later item". Items of that upload still in flight must not reach the
/// method's handler as notifications.
#[tokio::test]
async fn late_items_of_a_cancelled_upload_do_not_run_the_method_again() {
    let mut lab = Lab::default().await;
    let (mut wire, _server_peer) = lab.raw().await;
    let granted = bind_upload(&mut wire, 1, "tally", json!(3)).await;
    assert_eq!(granted, credit(&json!(3), PeerConfig::default().stream_window));
    wire.send_json(item("tally", &json!(3), json!(42))).await;
    // The handler took one item and dropped the upload: the cancel, then its answer.
    assert_eq!(wire.recv().await, notice("$/stream.cancel", json!({"subscription": 3})));
    assert_eq!(wire.recv().await, json!({"jsonrpc": "2.0", "id": 1, "result": 42}));
    let count = wire.ask(request("before", "tally_count", json!(null))).await;
    assert_eq!(count["result"], 1);
    // Items that were in flight when the cancel was sent arrive now.
    for n in 0..3 {
        wire.send_json(item("tally", &json!(3), json!(n))).await;
    }
    wire.send_json(notice("$/stream.end", json!({"subscription": 3}))).await;
    let count = wire.ask(request("count", "tally_count", json!(null))).await;
    assert_eq!(
        count["result"], 1,
        "the late items ran the `tally` handler as notifications"
    );
    drop(wire);
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Thousands of streams, cut off.
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_cut_off_leave_no_task_and_no_entry_on_the_producer() {
    const ANNOUNCED: usize = 1000;
    const UNANNOUNCED: usize = 20;
    let mut lab = Lab::default().await;
    let tasks_before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let (mut wire, server_peer) = lab.raw().await;
    for i in 0..ANNOUNCED {
        wire.send_json(open(i, 1)).await;
        wire.send_json(request(i, "forever", json!(null))).await;
    }
    // Each stream's answer and its one item.
    let (mut answers, mut items) = (0, 0);
    while answers + items < 2 * ANNOUNCED {
        let message = wire.recv().await;
        if message.get("result").is_some() {
            answers += 1;
        } else {
            assert_eq!(message["method"], "forever", "{message}");
            items += 1;
        }
    }
    assert_eq!((answers, items), (ANNOUNCED, ANNOUNCED));
    assert_eq!(server_peer.stats().streams_produced, ANNOUNCED);
    // And streams without credit, which fill the queue; then nothing is read any more.
    for i in 0..UNANNOUNCED {
        wire.send_json(request(format!("u{i}"), "forever", json!(null))).await;
    }
    eventually("every stream to be produced", || {
        server_peer.stats().streams_produced == ANNOUNCED + UNANNOUNCED
    })
    .await;
    assert_eq!(lab.counters.live(), ANNOUNCED + UNANNOUNCED);
    // Cut: the socket goes without a close frame.
    drop(wire);
    within("the connection's end", server_peer.closed()).await;
    // (Its streams end as the connection's task winds up, just after `closed()` resolves.)
    eventually("no stream left on the connection", || {
        let stats = server_peer.stats();
        (stats.streams_produced, stats.streams_consumed) == (0, 0)
    })
    .await;
    eventually("every producer to be dropped", || lab.counters.live() == 0).await;
    eventually("every task to end", || {
        tokio::runtime::Handle::current().metrics().num_alive_tasks() <= tasks_before
    })
    .await;
    assert_eq!(lab.counters.made.load(Ordering::SeqCst), ANNOUNCED + UNANNOUNCED);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscriptions_cut_off_all_end_with_the_disconnection() {
    const STREAMS: usize = 1000;
    let mut lab = Lab::default().await;
    let proxy = Proxy::start(lab.addr()).await;
    let client = Client::connect(&format!("ws://{}", proxy.addr)).await.unwrap();
    assert!(client.call::<bool>("grab", ()).await.unwrap());
    let server_peer = within("the server's handle", lab.peers.recv()).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut stream = client.subscribe::<u64>("forever", ()).window(2).await.unwrap();
        assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), 0);
        streams.push(stream);
    }
    assert_eq!(client.stats().streams_consumed, STREAMS);
    assert_eq!(server_peer.stats().streams_produced, STREAMS);
    proxy.cut();
    for mut stream in streams {
        loop {
            match within("the disconnection", stream.next()).await {
                Some(Ok(_)) => {}
                Some(Err(CallError::Disconnected(_))) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(stream.next().await.is_none());
    }
    assert_eq!(client.stats().streams_consumed, 0);
    within("the server's side to end", server_peer.closed()).await;
    eventually("no stream left on the server's side", || {
        server_peer.stats().streams_produced == 0
    })
    .await;
    eventually("every producer to be dropped", || lab.counters.live() == 0).await;
    lab.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// A raw server producing for a birpc client.
// ---------------------------------------------------------------------------------------------------

type ServerWire = Wire<tokio::net::TcpStream>;

/// A birpc client connected to a raw server.
async fn raw_server() -> (PeerHandle, ServerWire) {
    raw_server_with(PeerConfig::default()).await
}

/// A birpc client of `config` connected to a raw server.
async fn raw_server_with(config: PeerConfig) -> (PeerHandle, ServerWire) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        Wire::new(tokio_tungstenite::accept_async(tcp).await.unwrap())
    };
    let (wire, client) = tokio::join!(accept, Client::builder().config(config).connect(&url));
    (client.unwrap(), wire)
}

/// Reads a subscription's announcement and request; the request's id.
async fn read_subscribe(wire: &mut ServerWire, window: u64) -> Value {
    let announced = wire.recv().await;
    assert_eq!(announced["method"], "$/stream.open", "{announced}");
    assert_eq!(announced["params"]["window"], window, "{announced}");
    let request = wire.recv().await;
    assert_eq!(request["id"], announced["params"]["id"], "{request}");
    request["id"].clone()
}

/// Subscribes `client` to `feed` on the raw server, which answers with stream id `subscription` (JSON
/// text).
async fn subscribed(client: &PeerHandle, wire: &mut ServerWire, window: u32, subscription: &str) -> Subscription<u64> {
    let subscribe = client.subscribe::<u64>("feed", ()).window(window);
    let answering = async {
        let id = read_subscribe(wire, u64::from(window)).await;
        wire.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{subscription}}}"#))
            .await;
    };
    let (subscription, ()) = tokio::join!(subscribe, answering);
    subscription.unwrap()
}

fn item_text(subscription: &str, result: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"feed","params":{{"subscription":{subscription},"result":{result}}}}}"#)
}

fn end_text(subscription: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"$/stream.end","params":{{"subscription":{subscription}}}}}"#)
}

#[tokio::test]
async fn a_producer_that_overruns_the_window_ends_its_stream_and_is_cancelled() {
    let (client, mut wire) = raw_server().await;
    let mut stream = subscribed(&client, &mut wire, 4, "1").await;
    for n in 0..10 {
        wire.send(&item_text("1", n)).await;
    }
    // Past the window: the client cancels at once.
    let before = wire.probe().await;
    assert_eq!(
        before,
        [notice("$/stream.cancel", json!({"subscription": 1}))],
        "{before:?}"
    );
    for n in 0..4 {
        assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), n);
    }
    match within("the overrun", stream.next()).await {
        Some(Err(CallError::Overrun { window: 4 })) => {}
        other => panic!("{other:?}"),
    }
    assert!(stream.next().await.is_none());
    assert_eq!(client.stats().streams_consumed, 0);
    // Items still coming for it are dropped; the connection lives.
    wire.send(&item_text("1", 10)).await;
    wire.send(&end_text("1")).await;
    wire.quiet().await;
    assert!(client.is_connected());
}

#[tokio::test]
async fn items_of_streams_never_opened_or_over_do_not_reach_a_live_subscription() {
    let (client, mut wire) = raw_server().await;
    let mut stream = subscribed(&client, &mut wire, 8, "1").await;
    for junk in [
        item_text("2", 100),
        item_text("\"1\"", 100),
        item_text("1.0", 100),
        end_text("2"),
        end_text("\"1\""),
        r#"{"jsonrpc":"2.0","method":"feed","params":{"subscription":1}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","method":"feed","params":{"subscription":1,"result":1,"error":"both"}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","method":"$/stream.end","params":{"id":1}}"#.to_owned(),
    ] {
        wire.send(&junk).await;
    }
    wire.send(&item_text("1", 7)).await;
    wire.send(&end_text("1")).await;
    wire.send(&item_text("1", 8)).await;
    wire.quiet().await;
    assert_eq!(within("the item", stream.next()).await.unwrap().unwrap(), 7);
    assert!(within("the end", stream.next()).await.is_none());
    assert_eq!(client.stats().streams_consumed, 0);
    assert!(client.is_connected());
}

#[tokio::test]
async fn stream_ids_of_any_json_shape_are_matched_by_their_text_and_cancelled_by_it() {
    let (client, mut wire) = raw_server().await;
    for id in [
        r#""0xab""#,
        "18446744073709551616000",
        r#"{"a":[1,2]}"#,
        "-3",
        "1.5",
        "null",
        "true",
        r#""""#,
    ] {
        let mut stream = subscribed(&client, &mut wire, 8, id).await;
        wire.send(&item_text(id, 1)).await;
        wire.send(&item_text(id, 2)).await;
        wire.send(&end_text(id)).await;
        let items: Vec<u64> = within("the items", (&mut stream).map(Result::unwrap).collect()).await;
        assert_eq!(items, [1, 2], "{id}");
        // Another stream of the same id, dropped before its end: cancelled with the id as it came.
        let stream = subscribed(&client, &mut wire, 8, id).await;
        drop(stream);
        let cancel = wire.recv_text().await;
        assert_eq!(
            cancel,
            format!(r#"{{"jsonrpc":"2.0","method":"$/stream.cancel","params":{{"subscription":{id}}}}}"#),
        );
    }
    assert_eq!(client.stats().streams_consumed, 0);
}

/// `docs/streams.md`: stream ids are unique among a producer's streams "while they live": once a stream
/// is over, its id may name a new one. Dropping the old (ended) subscription must not touch the new.
#[tokio::test]
async fn dropping_an_ended_subscription_leaves_a_new_stream_of_the_same_id_alone() {
    let (client, mut wire) = raw_server().await;
    let mut first = subscribed(&client, &mut wire, 8, "1").await;
    wire.send(&item_text("1", 1)).await;
    wire.send(&end_text("1")).await;
    assert_eq!(within("an item", first.next()).await.unwrap().unwrap(), 1);
    assert!(within("the end", first.next()).await.is_none());
    // The producer reuses the id for the next stream, the first one being over.
    let mut second = subscribed(&client, &mut wire, 8, "1").await;
    wire.send(&item_text("1", 2)).await;
    assert_eq!(within("an item", second.next()).await.unwrap().unwrap(), 2);
    drop(first);
    let before = wire.probe().await;
    assert!(
        before.is_empty(),
        "dropping the ended stream sent {before:?} for the live one"
    );
    assert_eq!(client.stats().streams_consumed, 1, "the live stream was forgotten");
    wire.send(&item_text("1", 3)).await;
    assert_eq!(within("an item", second.next()).await.unwrap().unwrap(), 3);
}

/// A producer that names a live stream's id for a second stream: the second fails at once (birpc's
/// choice); dropping it must leave the first stream alone.
#[tokio::test]
async fn dropping_a_refused_duplicate_stream_leaves_the_live_one_alone() {
    let (client, mut wire) = raw_server().await;
    let mut first = subscribed(&client, &mut wire, 8, "1").await;
    let mut duplicate = subscribed(&client, &mut wire, 8, "1").await;
    match within("the refusal", duplicate.next()).await {
        Some(Err(CallError::Remote(error))) => assert_eq!(error.code(), code::INVALID_REQUEST),
        other => panic!("{other:?}"),
    }
    drop(duplicate);
    let before = wire.probe().await;
    assert!(before.is_empty(), "dropping the duplicate sent {before:?}");
    assert_eq!(client.stats().streams_consumed, 1, "the live stream was forgotten");
    wire.send(&item_text("1", 5)).await;
    assert_eq!(within("an item", first.next()).await.unwrap().unwrap(), 5);
}

/// A subscription given up (its `Subscribe` future dropped) after its answer was handled but before the
/// future was polled again: the stream was bound by the answer, and must be cancelled, not kept.
#[tokio::test]
async fn a_subscription_given_up_after_its_answer_leaves_nothing_behind() {
    let (client, mut wire) = raw_server().await;
    let mut subscribe = Box::pin(client.subscribe::<u64>("feed", ()).window(8));
    let id = tokio::select! {
        id = read_subscribe(&mut wire, 8) => id,
        early = &mut subscribe => panic!("answered before the request came: {early:?}"),
    };
    wire.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":1}}"#)).await;
    // The client has handled the answer once it answers a later probe (it reads in order).
    wire.quiet().await;
    drop(subscribe);
    assert_eq!(
        client.stats().streams_consumed,
        0,
        "the stream stays bound with no consumer"
    );
    let cancel = tokio::time::timeout(BUG_PATIENCE, wire.recv())
        .await
        .expect("the producer was never told to stop");
    assert_eq!(cancel, notice("$/stream.cancel", json!({"subscription": 1})));
}

/// A subscription whose call timed out (the client withdrew it with `$/cancelRequest`) while the producer
/// was answering: the answer, late, opens a stream nobody will read. The producer must be told to stop,
/// or it holds the stream (and a place among its `max_streams`) for as long as the connection lives.
#[tokio::test]
async fn a_subscription_answered_after_it_timed_out_is_cancelled() {
    let (client, mut wire) =
        raw_server_with(PeerConfig::default().call_timeout(Some(Duration::from_millis(200)))).await;
    let subscribe = client.subscribe::<u64>("feed", ()).window(8);
    let producer = async {
        let id = read_subscribe(&mut wire, 8).await;
        // The client gives up: its call times out, and it withdraws the request.
        let withdrawn = wire.recv().await;
        assert_eq!(withdrawn, notice("$/cancelRequest", json!({"id": id})));
        // The answer was on its way: the stream is open on this side.
        wire.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":7}}"#)).await;
        wire.send(&item_text("7", 0)).await;
    };
    let (outcome, ()) = tokio::join!(subscribe, producer);
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    let before = wire.probe().await;
    assert_eq!(client.stats().streams_consumed, 0);
    assert!(
        before.contains(&notice("$/stream.cancel", json!({"subscription": 7}))),
        "the producer of the stream opened too late was not told to stop: {before:?}"
    );
}

#[tokio::test]
async fn a_raw_callee_granting_odd_credits_gets_exactly_what_it_granted() {
    let (client, mut wire) = raw_server().await;
    let upload = client.upload("collect", futures::stream::iter(0..10_u64)).unwrap();
    let id = upload.id();
    let call = client.call::<u64>("collect", (&upload,));
    let callee = async {
        let asked = wire.recv().await;
        assert_eq!(asked["params"], json!([id]), "{asked}");
        // Nothing comes before credit; odd grants move nothing.
        wire.quiet().await;
        for bogus in [
            credit(&json!(id), 0),
            credit(&json!(id), -5),
            credit(&json!(id), "3"),
            credit(&json!(id.to_string()), 3),
            credit(&json!(id + 1), 3),
        ] {
            wire.send_json(bogus).await;
        }
        wire.quiet().await;
        wire.send_json(credit(&json!(id), 3)).await;
        for n in 0..3 {
            let message = wire.recv().await;
            assert!(
                is_item_of(&message, &json!(id)) && message["params"]["result"] == n,
                "{message}"
            );
        }
        wire.quiet().await;
        wire.send_json(credit(&json!(id), u64::MAX)).await;
        for n in 3..10 {
            let message = wire.recv().await;
            assert!(
                is_item_of(&message, &json!(id)) && message["params"]["result"] == n,
                "{message}"
            );
        }
        assert!(is_end_of(&wire.recv().await, &json!(id)));
        wire.send_json(json!({"jsonrpc": "2.0", "id": asked["id"], "result": 45}))
            .await;
    };
    let (sum, ()) = tokio::join!(call, callee);
    assert_eq!(sum.unwrap(), 45);
    drop(upload);
    assert_eq!(client.stats().streams_produced, 0);
}

#[tokio::test]
async fn a_raw_callee_cancelling_an_upload_stops_its_producer() {
    let (client, mut wire) = raw_server().await;
    let live = Arc::new(AtomicUsize::new(0));
    let alive = Alive::new(&live);
    let items = futures::stream::iter(0_u64..).map(move |n| {
        let _alive = &alive;
        n
    });
    let upload = client.upload("collect", items).unwrap();
    let id = upload.id();
    let call = client.call::<u64>("collect", (&upload,));
    let callee = async {
        let asked = wire.recv().await;
        wire.send_json(credit(&json!(id), 2)).await;
        for _ in 0..2 {
            assert!(is_item_of(&wire.recv().await, &json!(id)));
        }
        // A cancel as a request, the way a jsonrpsee client unsubscribes.
        let answer = wire.ask(request("unsub", "$/stream.cancel", json!([id]))).await;
        assert_eq!(answer["result"], true);
        wire.send_json(credit(&json!(id), 100)).await;
        wire.quiet().await;
        wire.send_json(json!({"jsonrpc": "2.0", "id": asked["id"], "result": 1}))
            .await;
    };
    let (answer, ()) = tokio::join!(call, callee);
    assert_eq!(answer.unwrap(), 1);
    eventually("the upload's producer to be dropped", || {
        live.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(client.stats().streams_produced, 0);
    drop(upload);
}
