//! The peer never stops listening, on the in-memory pair and tokio's paused clock: every timing is exact.
//!
//! One side is a birpc peer; the other is either a birpc peer or the raw end of the pair, which sends and
//! reads frames by hand (and can stop reading, or vanish).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rpc_core::memory::{self, MemorySink, MemoryStream, MemoryTransport};
use rpc_core::{
    CallError, CloseCode, CloseReason, Context, ErrorObject, Inbound, Joined, Outbound, Peer, PeerConfig, PeerHandle,
    Router, Transport, TransportError, code,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Counts handlers dropped before they finished (cancelled with their connection).
struct Dropped {
    count: AtomicUsize,
    signal: Semaphore,
}

impl Default for Dropped {
    fn default() -> Self {
        Self {
            count: AtomicUsize::new(0),
            signal: Semaphore::new(0),
        }
    }
}

struct Guard(Arc<Dropped>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        self.0.signal.add_permits(1);
    }
}

/// The server's methods: `sleep(ms)`, `ask(method)` (calls its caller back and returns the answer),
/// `note(tag)` (a notification that records its tag, then sleeps `ms`), `work(tag)` (records its tag).
fn router(dropped: Arc<Dropped>, log: Arc<std::sync::Mutex<Vec<String>>>) -> Router {
    let note_log = log.clone();
    Router::new()
        .method("sleep", move |_: Context, (ms,): (u64,)| {
            let guard = Guard(dropped.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                std::mem::forget(guard);
                Ok::<_, ErrorObject>(ms)
            }
        })
        .method("ask", |ctx: Context, (method,): (String,)| async move {
            ctx.peer()
                .call::<Value>(&method, ())
                .await
                .map_err(|e| ErrorObject::internal_error().with_detail(e))
        })
        .method("note", move |ctx: Context, (tag, ms): (String, u64)| {
            note_log.lock().unwrap().push(tag.clone());
            async move {
                if tag.starts_with("ask") {
                    ctx.peer()
                        .call::<Value>("client.hi", (tag,))
                        .await
                        .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, ErrorObject>(())
            }
        })
        .method("work", move |_: Context, (tag,): (String,)| {
            log.lock().unwrap().push(tag);
            async { Ok::<_, ErrorObject>(()) }
        })
}

struct Setup {
    server: PeerHandle,
    dropped: Arc<Dropped>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    raw: Raw,
}

fn serve(config: PeerConfig) -> Setup {
    let (ours, theirs) = memory::pair(4096);
    let dropped = Arc::new(Dropped::default());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = Peer::builder()
        .router(router(dropped.clone(), log.clone()))
        .config(config)
        .spawn(ours);
    Setup {
        server,
        dropped,
        log,
        raw: Raw::new(theirs),
    }
}

/// The raw end of the pair.
struct Raw {
    sink: MemorySink,
    stream: MemoryStream,
}

impl Raw {
    fn new(transport: MemoryTransport) -> Self {
        let (sink, stream) = transport.split();
        Self { sink, stream }
    }

    async fn send(&mut self, message: Value) {
        self.sink.send(Outbound::Frame(message.to_string())).await.unwrap();
    }

    async fn request(&mut self, id: u64, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// The next thing received: a frame as JSON, or `{"pong": true}`, or `{"close": code}`.
    async fn recv(&mut self) -> Value {
        match self.stream.next().await {
            Some(Ok(Inbound::Frame(frame))) => serde_json::from_slice(&frame).unwrap(),
            Some(Ok(Inbound::Pong(_))) => json!({"pong": true}),
            Some(Ok(Inbound::Close(frame))) => json!({"close": frame.code.0}),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// 256 handlers run and 44 wait; a ping, an answer to the server's own call and a cancel of a waiting
/// request all take effect at once (no time passes on the paused clock).
#[tokio::test(start_paused = true)]
async fn pings_answers_and_cancels_take_effect_while_every_place_is_taken() {
    let Setup { server, mut raw, .. } = serve(PeerConfig::default().heartbeat_interval(None));
    for id in 0..300 {
        raw.request(id, "sleep", json!([3_600_000])).await;
    }
    let start = Instant::now();
    raw.sink.send(Outbound::Ping(Bytes::from_static(b"?"))).await.unwrap();
    assert_eq!(raw.recv().await, json!({"pong": true}));
    tokio::task::yield_now().await;
    let stats = server.stats();
    assert_eq!((stats.running_handlers, stats.waiting_requests), (256, 44), "{stats:?}");

    // A waiting request is withdrawn: answered -32800 at once, and it never runs.
    raw.notify("$/cancelRequest", json!({"id": 299})).await;
    let answer = raw.recv().await;
    assert_eq!(answer["id"], 299);
    assert_eq!(answer["error"]["code"], code::REQUEST_CANCELLED);
    // A running one is aborted and answered -32800 too; its place goes to the first waiting request.
    raw.notify("$/cancelRequest", json!({"id": 3})).await;
    let answer = raw.recv().await;
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (json!(3), json!(code::REQUEST_CANCELLED))
    );
    tokio::task::yield_now().await;
    assert_eq!(server.stats().waiting_requests, 42);

    // The server calls this side while saturated; the answer reaches it at once. (While the call awaits
    // it, the waiting requests may start on extra places.)
    let call = tokio::spawn({
        let server = server.clone();
        async move { server.call::<String>("client.name", ()).await }
    });
    let request = loop {
        let message = raw.recv().await;
        if message.get("method").is_some() {
            break message;
        }
    };
    assert_eq!(request["method"], "client.name");
    raw.send(json!({"jsonrpc": "2.0", "id": request["id"], "result": "raw"}))
        .await;
    assert_eq!(call.await.unwrap().unwrap(), "raw");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(server.stats().waiting_requests, 0);
}

/// Past running and waiting, requests are refused at once with -32005 and a retry hint, and never run;
/// a birpc caller sees `CallError::Busy`.
#[tokio::test(start_paused = true)]
async fn requests_past_the_queue_are_refused_busy_and_never_run() {
    let config = PeerConfig::default()
        .max_concurrent_requests(2)
        .max_queued_requests(3)
        .heartbeat_interval(None);
    let (ours, theirs) = memory::pair(64);
    let dropped = Arc::new(Dropped::default());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _server = Peer::builder().router(router(dropped, log)).config(config).spawn(ours);
    let client = Peer::builder().spawn(theirs);
    let calls: Vec<_> = (0..8)
        .map(|_| tokio::spawn(client.call::<u64>("sleep", (1000,))))
        .collect();
    let start = Instant::now();
    let mut done = Vec::new();
    for call in calls {
        done.push(call.await.unwrap());
    }
    let busy: Vec<_> = done
        .iter()
        .filter_map(|outcome| match outcome {
            Err(CallError::Busy { retry_after, error }) => Some((*retry_after, error.code())),
            _ => None,
        })
        .collect();
    assert_eq!(busy, vec![(Some(Duration::from_millis(100)), code::BUSY); 3]);
    assert_eq!(done.iter().filter(|o| matches!(o, Ok(1000))).count(), 5);
    // Two places: five calls of one second take three rounds.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// The burst of the issue with a birpc peer on both sides and default limits: 1,024 calls (all a
/// default peer keeps pending) whose handlers each call the caller back. None is refused, none fails.
#[tokio::test(start_paused = true)]
async fn default_limits_fit_together_for_a_burst_of_nested_calls() {
    let (ours, theirs) = memory::pair(4096);
    let dropped = Arc::new(Dropped::default());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _server = Peer::builder().router(router(dropped, log)).spawn(ours);
    let client_methods = Router::new().method("client.hi", |_: Context, _: rpc_core::NoParams| async {
        Ok::<_, ErrorObject>("hi")
    });
    let client = Peer::builder().router(client_methods).spawn(theirs);
    let calls: Vec<_> = (0..1024)
        .map(|_| tokio::spawn(client.call::<String>("ask", ("client.hi",))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "hi");
    }
}

/// 1,536 pipelined `ask` requests whose callbacks are answered as soon as they are read: every request is
/// answered, with its result or (past the documented bounds) -32005, none with -32603.
#[tokio::test(start_paused = true)]
async fn a_pipelined_burst_of_callbacks_is_answered_without_internal_errors() {
    let Setup { mut raw, .. } = serve(PeerConfig::default().heartbeat_interval(None));
    for id in 0..1536 {
        raw.request(id, "ask", json!(["client.hi"])).await;
    }
    let mut answered = vec![None; 1536];
    let mut remaining = 1536;
    while remaining > 0 {
        let message = raw.recv().await;
        if message.get("method").is_some() {
            raw.send(json!({"jsonrpc": "2.0", "id": message["id"], "result": "hi"}))
                .await;
            continue;
        }
        let id = message["id"].as_u64().unwrap() as usize;
        let outcome = match (&message["result"], &message["error"]["code"]) {
            (Value::String(hi), _) if hi == "hi" => "result",
            (_, code) if code == &json!(code::BUSY) => "busy",
            _ => panic!("unexpected answer {message}"),
        };
        assert!(answered[id].replace(outcome).is_none(), "answered twice: {message}");
        remaining -= 1;
    }
    let results = answered.iter().filter(|a| **a == Some("result")).count();
    // 256 run and 768 wait at once; while their callbacks await answers, waiting requests start on
    // extra places, so the queue keeps room and at least the first 1,024 run.
    assert!(results >= 1024, "{results} results");
}

/// A client that sends requests until every place and the queue are full, then vanishes without a word
/// (it neither reads nor closes): the heartbeat, which judges by what arrives, finds it within interval
/// plus timeout, and the running handlers are dropped.
#[tokio::test(start_paused = true)]
async fn a_vanished_peer_is_found_within_interval_plus_timeout_while_saturated() {
    let Setup {
        server,
        dropped,
        mut raw,
        ..
    } = serve(PeerConfig::default());
    for id in 0..1024 {
        raw.request(id, "sleep", json!([3_600_000])).await;
    }
    let start = Instant::now();
    // From now on nothing is read on this side, so no pong is ever sent.
    let reason = server.closed().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30 + 10));
    assert!(
        matches!(&reason, CloseReason::Local(frame) if frame.code == CloseCode::INTERNAL),
        "{reason}"
    );
    let _all = dropped.signal.acquire_many(256).await.unwrap();
    assert_eq!(dropped.count.load(Ordering::SeqCst), 256);
    drop(raw);
}

/// A peer that stops reading: the writer makes no progress, and at `write_timeout` the connection ends
/// with 1008; pending calls fail with `Disconnected`, running handlers are dropped.
#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_read_is_given_up_at_write_timeout() {
    let (ours, theirs) = memory::pair(4);
    let dropped = Arc::new(Dropped::default());
    let server = Peer::builder()
        .router(router(dropped.clone(), Arc::default()))
        .config(PeerConfig::default().heartbeat_interval(None))
        .spawn(ours);
    let mut raw = Raw::new(theirs);
    raw.request(1, "sleep", json!([3_600_000])).await;
    let pending = tokio::spawn({
        let server = server.clone();
        async move { server.call::<Value>("client.never", ()).await }
    });
    let start = Instant::now();
    let flood = tokio::spawn({
        let server = server.clone();
        async move { while server.notify("news", ("x".repeat(1000),)).await.is_ok() {} }
    });
    let reason = server.closed().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(
        matches!(&reason, CloseReason::Local(frame) if frame.code == CloseCode::POLICY),
        "{reason}"
    );
    assert!(matches!(pending.await.unwrap(), Err(CallError::Disconnected(_))));
    flood.await.unwrap();
    let _one = dropped.signal.acquire().await.unwrap();
    drop(raw);
}

/// Handlers start in the order their messages arrived: a request that arrived after two notifications
/// starts after both, although a place was free for it all along.
#[tokio::test(start_paused = true)]
async fn handlers_start_in_arrival_order() {
    let Setup {
        server, log, mut raw, ..
    } = serve(PeerConfig::default().heartbeat_interval(None));
    raw.notify("note", json!(["n1", 1000])).await;
    raw.notify("note", json!(["n2", 0])).await;
    raw.request(1, "work", json!(["r"])).await;
    let answer = raw.recv().await;
    assert_eq!(answer["id"], 1);
    assert_eq!(*log.lock().unwrap(), ["n1", "n2", "r"]);
    drop(server);
}

/// A notification handler calls its sender back and awaits the answer while its queue is full.
#[tokio::test(start_paused = true)]
async fn a_notification_handler_calls_back_with_its_queue_full() {
    let Setup {
        server, log, mut raw, ..
    } = serve(
        PeerConfig::default()
            .max_queued_notifications(4)
            .heartbeat_interval(None),
    );
    for n in 0..5 {
        raw.notify("note", json!([format!("ask{n}"), 0])).await;
    }
    for n in 0..5 {
        let callback = raw.recv().await;
        assert_eq!(callback["method"], "client.hi");
        assert_eq!(callback["params"], json!([format!("ask{n}")]));
        raw.send(json!({"jsonrpc": "2.0", "id": callback["id"], "result": "hi"}))
            .await;
    }
    raw.request(9, "work", json!(["after"])).await;
    assert_eq!(raw.recv().await["id"], 9);
    assert_eq!(log.lock().unwrap().len(), 6);
    assert!(!server.is_closed());
}

/// One notification more than the queue holds closes the connection with 1008: never dropped in silence.
#[tokio::test(start_paused = true)]
async fn notifications_past_their_queue_close_the_connection_with_1008() {
    let Setup { server, mut raw, .. } = serve(
        PeerConfig::default()
            .max_queued_notifications(4)
            .heartbeat_interval(None),
    );
    for n in 0..6 {
        raw.notify("note", json!([format!("n{n}"), 60_000])).await;
    }
    assert_eq!(raw.recv().await, json!({"close": 1008}));
    let reason = server.closed().await;
    assert!(
        reason.to_string().contains("too many notifications waiting"),
        "{reason}"
    );
}

/// A transport whose receiving half panics on the frame `"boom"`: the connection's task dies.
struct Panicky(MemoryTransport);

type PanickyStream =
    futures::stream::Map<MemoryStream, fn(Result<Inbound, TransportError>) -> Result<Inbound, TransportError>>;

impl Transport for Panicky {
    type Io = Joined<MemorySink, PanickyStream>;

    fn into_io(self) -> Self::Io {
        let (sink, stream) = self.0.split();
        fn check(item: Result<Inbound, TransportError>) -> Result<Inbound, TransportError> {
            if let Ok(Inbound::Frame(frame)) = &item {
                assert!(&frame[..] != b"\"boom\"", "the connection's task panics");
            }
            item
        }
        Joined::new(sink, stream.map(check as fn(_) -> _))
    }
}

/// When the connection's task panics, every pending call and every call waiting for a place resolves at
/// once with `Disconnected`, and `closed()` says so.
#[tokio::test(start_paused = true)]
async fn a_panicking_connection_task_resolves_every_call_at_once() {
    let (ours, theirs) = memory::pair(64);
    let config = PeerConfig::default().max_pending_calls(3).heartbeat_interval(None);
    let server = Peer::builder().config(config).spawn(Panicky(ours));
    let mut raw = Raw::new(theirs);
    let calls: Vec<_> = (0..4)
        .map(|_| tokio::spawn(server.call::<Value>("client.never", ())))
        .collect();
    for _ in 0..3 {
        assert_eq!(raw.recv().await["method"], "client.never");
    }
    assert_eq!(server.stats().pending_calls, 3);
    let start = Instant::now();
    raw.sink.send(Outbound::Frame("\"boom\"".into())).await.unwrap();
    for call in calls {
        let outcome = call.await.unwrap();
        assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    let reason = server.closed().await;
    assert!(reason.to_string().contains("panicked or was dropped"), "{reason}");
    // The transport went with the task: the other side sees the end.
    assert!(raw.stream.next().await.is_none());
    let late = server.call::<Value>("client.never", ()).await;
    assert!(matches!(late, Err(CallError::Disconnected(_))));
}

/// A peer that is built but never run, then dropped, leaves no call waiting.
#[tokio::test(start_paused = true)]
async fn a_peer_dropped_unrun_leaves_no_call_waiting() {
    let (ours, _theirs) = memory::pair(4);
    let (peer, handle) = Peer::builder().build(ours);
    let call = tokio::spawn(handle.call::<Value>("anything", ()));
    tokio::task::yield_now().await;
    drop(peer);
    assert!(matches!(call.await.unwrap(), Err(CallError::Disconnected(_))));
}

/// Chains of nested calls, each side calling the other back `depth` times, many at once, with default
/// limits: no chain waits for a timeout. Each finishes, or (past the bounds, at this load) fails at once
/// with `Busy` or `TooManyPending`.
#[tokio::test(start_paused = true)]
async fn chains_of_nested_calls_never_wait_for_a_timeout() {
    fn chain_router(next: &'static str) -> Router {
        Router::new().method("deep", move |ctx: Context, (n,): (u64,)| async move {
            if n == 0 {
                return Ok::<_, ErrorObject>(0);
            }
            match ctx.peer().call::<u64>(next, (n - 1,)).await {
                Ok(depth) => Ok(depth + 1),
                Err(error) => Err(error
                    .error_object()
                    .cloned()
                    .unwrap_or_else(|| ErrorObject::new(-1, error.to_string()))),
            }
        })
    }
    for (chains, depth) in [(200, 5), (1000, 1), (1000, 4), (600, 6)] {
        let (ours, theirs) = memory::pair(8192);
        let server = Peer::builder().router(chain_router("deep")).spawn(ours);
        let client = Peer::builder().router(chain_router("deep")).spawn(theirs);
        let start = Instant::now();
        let calls: Vec<_> = (0..chains)
            .map(|_| tokio::spawn(client.call::<u64>("deep", (depth,))))
            .collect();
        let mut done = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(reached) => {
                    assert_eq!(reached, depth);
                    done += 1;
                }
                Err(CallError::Busy { .. } | CallError::Remote(_)) => {}
                Err(other) => panic!("{chains}×{depth}: {other}"),
            }
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "{chains}×{depth}: a chain waited");
        println!("{chains} chains of depth {depth}: {done} done");
        if chains * depth <= 1000 {
            assert_eq!(done, chains, "{chains}×{depth}");
        }
        drop((server, client));
    }
}

/// A peer that asks for large results and reads none: after the outgoing queue's bytes and as many again
/// of answers waiting for room, no further request starts; they wait, then are refused. What the
/// connection holds stays within those two budgets, whatever the number of handler places.
#[tokio::test(start_paused = true)]
async fn answers_nobody_reads_stop_new_requests_instead_of_piling_up() {
    const MIB: usize = 1 << 20;
    let (ours, theirs) = memory::pair(1);
    let blobs = Router::new().method("blob", |_: Context, (len,): (usize,)| async move {
        Ok::<_, ErrorObject>("b".repeat(len))
    });
    let config = PeerConfig::default()
        .max_queued_bytes(8 * MIB)
        .heartbeat_interval(None)
        .write_timeout(None);
    let server = Peer::builder().router(blobs).config(config).spawn(ours);
    let mut raw = Raw::new(theirs);
    for id in 0..300 {
        raw.request(id, "blob", json!([MIB])).await;
    }
    tokio::task::yield_now().await;
    let stats = server.stats();
    // 8 answers (and the one the writer holds) in the queue, 8 waiting for room, the rest waiting to start.
    assert!(stats.queued_bytes <= 9 * MIB, "{stats:?}");
    assert!(stats.running_handlers <= 9, "{stats:?}");
    assert!(stats.waiting_requests >= 280, "{stats:?}");
    drop(raw);
}

/// A handler's own calls (in its task) may use the reserve and fail at once past it; the same handle used
/// from a task the handler spawned is an ordinary caller, which waits for a place.
#[tokio::test(start_paused = true)]
async fn the_reserve_is_for_calls_made_while_handling() {
    let (ours, theirs) = memory::pair(64);
    let spawned = Arc::new(std::sync::Mutex::new(None));
    let slot = spawned.clone();
    let router = Router::new().method("fan", move |ctx: Context, (n,): (usize,)| {
        let slot = slot.clone();
        async move {
            let calls = (0..n).map(|_| ctx.peer().call::<Value>("client.never", ()).timeout(None));
            let outcomes = futures::future::join_all(calls).await;
            let refused = outcomes
                .iter()
                .filter(|o| matches!(o, Err(CallError::TooManyPending { limit: 4 })))
                .count();
            // The same handle, from a task of its own: it waits for a place instead.
            let peer = ctx.peer().clone();
            *slot.lock().unwrap() = Some(tokio::spawn(async move {
                peer.call::<Value>("client.never", ())
                    .timeout(Some(Duration::from_secs(5)))
                    .await
            }));
            Ok::<_, ErrorObject>(refused)
        }
    });
    let config = PeerConfig::default().max_pending_calls(2).heartbeat_interval(None);
    let server = Peer::builder().router(router).config(config).spawn(ours);
    let mut raw = Raw::new(theirs);
    // Five calls at once from one handler: four fit (2 + the reserve of 2), one is refused at once; the
    // four stay pending, since nobody answers them.
    raw.request(1, "fan", json!([5])).await;
    for _ in 0..4 {
        assert_eq!(raw.recv().await["method"], "client.never");
    }
    tokio::task::yield_now().await;
    assert_eq!(server.stats().pending_calls, 4);
    // The handler waits for its four calls; meanwhile an ordinary caller finds the table full and waits.
    let ordinary = server
        .call::<Value>("client.never", ())
        .timeout(Some(Duration::from_secs(5)));
    let start = Instant::now();
    assert!(matches!(ordinary.await, Err(CallError::Timeout(_))));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // Answer the four: the handler reports one refusal, and its spawned task then waits like anyone.
    for id in 1..=4 {
        raw.send(json!({"jsonrpc": "2.0", "id": id, "result": null})).await;
    }
    let answer = raw.recv().await;
    assert_eq!(answer["result"], 1, "{answer}");
    let task = spawned.lock().unwrap().take().unwrap();
    assert_eq!(
        raw.recv().await["method"],
        "client.never",
        "the spawned task's call was sent"
    );
    assert!(matches!(task.await.unwrap(), Err(CallError::Timeout(_))));
}
