//! The peer never stops listening, over real sockets with default limits: against the interoperability
//! server as a user would try it, and against in-process servers where a test must see inside handlers.
//! (The same cases run on the in-memory pair with tokio's paused clock in `rpc-core/tests/flow_control.rs`,
//! with exact timings.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use birpc::prelude::*;
use birpc::{
    CloseCode, CloseReason, Inbound, Joined, Outbound, ServerHandle, Transport, TransportError, WsTransport, code,
};
use common::{eventually, interop_server, within};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .expect("connect")
        .0
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

/// The next text message as JSON, skipping pings and pongs.
async fn next_json(
    ws: &mut (impl futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        match within("a message", ws.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The burst: 1,536 pipelined `ask_client` requests, each callback answered the moment it is read.
/// Every request is answered within seconds, with its result or (past the documented bounds) -32005;
/// none with -32603.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1536_ask_client_requests_is_all_answered_without_internal_errors() {
    const BURST: u64 = 1536;
    let (_child, addr) = interop_server().await;
    let mut ws = connect(addr).await;
    for id in 0..BURST {
        ws.feed(text(
            json!({"jsonrpc": "2.0", "id": id, "method": "ask_client", "params": ["client.hi", [id]]}),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let mut outcomes = vec![None; BURST as usize];
    let mut remaining = BURST;
    while remaining > 0 {
        let message = next_json(&mut ws).await;
        if message.get("method").is_some() {
            ws.send(text(
                json!({"jsonrpc": "2.0", "id": message["id"], "result": message["params"][0]}),
            ))
            .await
            .unwrap();
            continue;
        }
        let id = message["id"].as_u64().unwrap();
        let outcome = if message["result"] == json!(id) {
            "result"
        } else if message["error"]["code"] == json!(code::BUSY) {
            assert!(message["error"]["data"]["retry_after_ms"].is_u64(), "{message}");
            "busy"
        } else {
            panic!("unexpected answer {message}")
        };
        assert!(
            outcomes[id as usize].replace(outcome).is_none(),
            "answered twice: {message}"
        );
        remaining -= 1;
    }
    let results = outcomes.iter().filter(|o| **o == Some("result")).count();
    assert!(
        results >= 1024,
        "only {results} results: the running and waiting bounds are 256 + 768"
    );
}

/// 257 pipelined `sleep(60000)` requests, then a WebSocket ping: the pong comes while every handler place
/// is taken; a `$/cancelRequest` for the waiting one is answered -32800 at once.
#[tokio::test]
async fn a_ping_and_a_cancel_are_answered_while_257_handlers_are_busy() {
    let (_child, addr) = interop_server().await;
    let mut ws = connect(addr).await;
    for id in 0..257 {
        ws.feed(text(
            json!({"jsonrpc": "2.0", "id": id, "method": "sleep", "params": [60_000]}),
        ))
        .await
        .unwrap();
    }
    ws.send(Message::Ping(b"still there?".to_vec().into())).await.unwrap();
    // Nothing is answered before the pong: every handler sleeps for a minute.
    match within("the pong", ws.next()).await {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"still there?"),
        other => panic!("unexpected {other:?}"),
    }
    ws.send(text(
        json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 256}}),
    ))
    .await
    .unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["id"], 256, "{answer}");
    assert_eq!(answer["error"]["code"], code::REQUEST_CANCELLED, "{answer}");
}

/// Counts handlers dropped before they finished.
struct Dropped(Arc<AtomicUsize>, Arc<Semaphore>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.add_permits(1);
    }
}

/// An in-process server whose `sleep` handlers count their drops (and keep their connection's handle),
/// and whose `note` notifications and `work` requests log their start.
struct Lab {
    server: ServerHandle,
    dropped: Arc<AtomicUsize>,
    dropped_signal: Arc<Semaphore>,
    log: Arc<Mutex<Vec<String>>>,
    peer: Arc<Mutex<Option<PeerHandle>>>,
}

impl Lab {
    /// The server's side of the connection, once `handlers` of its handlers run.
    async fn connection_running(&self, handlers: usize) -> PeerHandle {
        eventually("the handlers to run", || {
            self.peer
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|peer| peer.stats().running_handlers == handlers)
        })
        .await;
        self.peer.lock().unwrap().clone().unwrap()
    }
}

async fn lab(config: PeerConfig) -> Lab {
    let dropped = Arc::new(AtomicUsize::new(0));
    let dropped_signal = Arc::new(Semaphore::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let peer = Arc::new(Mutex::new(None));
    let (d, s, l, p) = (dropped.clone(), dropped_signal.clone(), log.clone(), peer.clone());
    let server = Server::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let (d, s, l, l2, p) = (d.clone(), s.clone(), l.clone(), l.clone(), p.clone());
            Router::new()
                .method("sleep", move |ctx: Context, (ms,): (u64,)| {
                    *p.lock().unwrap() = Some(ctx.peer().clone());
                    let guard = Dropped(d.clone(), s.clone());
                    async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        std::mem::forget(guard);
                        Ok::<_, ErrorObject>(ms)
                    }
                })
                .method("note", move |ctx: Context, (tag,): (String,)| {
                    l.lock().unwrap().push(tag.clone());
                    async move {
                        if tag.starts_with("ask") {
                            let hi = ctx.peer().call::<String>("client.hi", (&tag,)).await;
                            hi.map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                        }
                        Ok::<_, ErrorObject>(())
                    }
                })
                .method("work", move |_: Context, (tag,): (String,)| {
                    l2.lock().unwrap().push(tag);
                    async { Ok::<_, ErrorObject>(()) }
                })
        });
    Lab {
        server,
        dropped,
        dropped_signal,
        log,
        peer,
    }
}

/// A client fills every place and the queue, then vanishes without a word: it neither reads (so it sends
/// no pong) nor closes. The heartbeat finds it within interval plus timeout although every handler is busy,
/// and the handlers are dropped then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_of_a_saturated_connection_are_dropped_when_its_peer_vanishes() {
    let config = PeerConfig::default()
        .heartbeat_interval(Some(Duration::from_millis(300)))
        .heartbeat_timeout(Duration::from_millis(300));
    let lab = lab(config).await;
    let mut ws = connect(lab.server.local_addr()).await;
    for id in 0..1024 {
        ws.feed(text(
            json!({"jsonrpc": "2.0", "id": id, "method": "sleep", "params": [3_600_000]}),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let peer = lab.connection_running(256).await;
    // From now on the client reads nothing and says nothing.
    let reason = within("the server to give the client up", peer.closed()).await;
    assert!(
        matches!(&reason, CloseReason::Local(frame) if frame.code == CloseCode::INTERNAL),
        "{reason}"
    );
    assert!(reason.to_string().contains("no sign of life"), "{reason}");
    let _all = within("the handlers to be dropped", lab.dropped_signal.acquire_many(256))
        .await
        .unwrap();
    assert_eq!(lab.dropped.load(Ordering::SeqCst), 256);
    drop(ws);
    lab.server.shutdown().await;
}

/// A notification and a request in one TCP write start in that order.
#[tokio::test]
async fn a_notification_then_a_request_in_one_write_run_in_that_order() {
    let lab = lab(PeerConfig::default()).await;
    let mut ws = connect(lab.server.local_addr()).await;
    for round in 0..20 {
        ws.feed(text(
            json!({"jsonrpc": "2.0", "method": "note", "params": [format!("n{round}")]}),
        ))
        .await
        .unwrap();
        ws.feed(text(
            json!({"jsonrpc": "2.0", "id": round, "method": "work", "params": [format!("r{round}")]}),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    for _ in 0..20 {
        assert!(next_json(&mut ws).await["id"].is_u64());
    }
    let expected: Vec<String> = (0..20).flat_map(|r| [format!("n{r}"), format!("r{r}")]).collect();
    assert_eq!(*lab.log.lock().unwrap(), expected);
    lab.server.shutdown().await;
}

/// A notification handler calls back its sender and awaits the answer while its queue is full.
#[tokio::test]
async fn a_notification_handler_calls_back_with_its_queue_full() {
    let lab = lab(PeerConfig::default().max_queued_notifications(4)).await;
    let mut ws = connect(lab.server.local_addr()).await;
    for n in 0..5 {
        ws.feed(text(
            json!({"jsonrpc": "2.0", "method": "note", "params": [format!("ask{n}")]}),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    for n in 0..5 {
        let callback = next_json(&mut ws).await;
        assert_eq!(callback["params"], json!([format!("ask{n}")]), "{callback}");
        ws.send(text(json!({"jsonrpc": "2.0", "id": callback["id"], "result": "hi"})))
            .await
            .unwrap();
    }
    ws.send(text(
        json!({"jsonrpc": "2.0", "id": "last", "method": "work", "params": ["last"]}),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["id"], "last");
    assert_eq!(lab.log.lock().unwrap().len(), 6);
    lab.server.shutdown().await;
}

type Socket = WsTransport<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket transport whose receiving half panics on a message that says `boom`.
struct Panicky(Socket);

type Item = Result<Inbound, TransportError>;

impl Transport for Panicky {
    type Io = Joined<
        futures::stream::SplitSink<Socket, Outbound>,
        futures::stream::Map<futures::stream::SplitStream<Socket>, fn(Item) -> Item>,
    >;

    fn into_io(self) -> Self::Io {
        fn check(item: Item) -> Item {
            if let Ok(Inbound::Frame(frame)) = &item {
                assert!(!frame.windows(4).any(|w| w == b"boom"), "the connection's task panics");
            }
            item
        }
        let (sink, stream) = self.0.into_io().split();
        Joined::new(sink, stream.map(check as fn(Item) -> Item))
    }
}

/// When a connection's task panics, every pending call resolves at once with `Disconnected`.
#[tokio::test]
async fn a_panicking_connection_task_resolves_every_pending_call() {
    let lab = lab(PeerConfig::default()).await;
    let ws = connect(lab.server.local_addr()).await;
    let client = Peer::builder().spawn(Panicky(WsTransport::new(ws)));
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(client.call::<u64>("sleep", (3_600_000,))))
        .collect();
    let server_side = lab.connection_running(3).await;
    server_side.notify("boom", ()).await.unwrap();
    for call in calls {
        let outcome = within("the call to resolve", call).await.unwrap();
        assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    }
    lab.server.shutdown().await;
}

/// Chains of nested calls through the interoperability server (each `ask_client` calls this client's
/// `deep`, which calls `ask_client` again). Within the pending tables (450 chains of depth 3 need 1,800
/// places on this side: 450 of the application's, then its handlers' calls up to twice
/// `max_pending_calls`) every chain finishes; past them (1,000 of depth 4 need 5,000) chains fail at once
/// instead of waiting for their timeout, and the connection serves the next round whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_of_nested_calls_through_the_interop_server_never_stall() {
    let (_child, addr) = interop_server().await;
    let deep = Router::new().method("deep", |ctx: Context, (n,): (u64,)| async move {
        if n == 0 {
            return Ok::<_, ErrorObject>(0);
        }
        let below: Result<u64, CallError> = ctx.peer().call("ask_client", ("deep", [n - 1])).await;
        below.map(|depth| depth + 1).map_err(|error| {
            error
                .error_object()
                .cloned()
                .unwrap_or_else(|| ErrorObject::new(-1, error.to_string()))
        })
    });
    let client = Client::builder()
        .router(deep)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    for (chains, depth) in [(450u64, 3u64), (1000, 4), (450, 3)] {
        let calls: Vec<_> = (0..chains)
            .map(|_| tokio::spawn(client.call::<u64>("ask_client", ("deep", [depth]))))
            .collect();
        let mut done = 0;
        let mut seen = std::collections::BTreeMap::new();
        for call in calls {
            // Far within the 60 s call timeout: a stalled chain would wait for it.
            match within("a chain", call).await.unwrap() {
                Ok(reached) => {
                    assert_eq!(reached, depth);
                    done += 1;
                }
                Err(error @ (CallError::Busy { .. } | CallError::Remote(_))) => {
                    *seen.entry(error.to_string()).or_insert(0) += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        if chains * (depth + 1) <= 2048 {
            assert_eq!(done, chains, "{chains} chains of depth {depth}: {seen:?}");
        }
    }
}
