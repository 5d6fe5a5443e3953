//! Every limit holds over a real socket: batches, concurrent requests (a bounded queue, then -32005 Busy), pending
//! calls, the outgoing queue against a client that stops reading, connections, handshakes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use birpc::prelude::*;
use birpc::{CloseCode, CloseReason, ConnectError, ServerHandle, code};
use common::{RawClient, eventually, resident_bytes, within};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Handlers that wait at a gate, counting how many run at once.
struct Gate {
    open: Semaphore,
    running: AtomicUsize,
    most: AtomicUsize,
    entered: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            open: Semaphore::new(0),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
        }
    }
}

impl Gate {
    async fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.open.acquire().await.expect("gate").forget();
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    fn open_wide(&self) {
        self.open.add_permits(1 << 20);
    }
}

async fn gated_server(
    gate: Arc<Gate>,
    config: PeerConfig,
) -> (ServerHandle, Arc<std::sync::Mutex<Option<PeerHandle>>>) {
    let peer_slot = Arc::new(std::sync::Mutex::new(None));
    let slot = peer_slot.clone();
    let server = Server::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let (gate, slot) = (gate.clone(), slot.clone());
            Router::new()
                .method("wait", move |ctx: Context, (pad,): (String,)| {
                    let gate = gate.clone();
                    *slot.lock().unwrap() = Some(ctx.peer().clone());
                    async move {
                        gate.pass().await;
                        Ok::<_, ErrorObject>(pad.len())
                    }
                })
                .method("blob", |_: Context, (len,): (usize,)| async move {
                    Ok::<_, ErrorObject>("b".repeat(len))
                })
                .method("ok", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(true) })
        });
    (server, peer_slot)
}

#[tokio::test]
async fn an_over_long_batch_gets_one_error_and_the_connection_lives_on() {
    let gate = Arc::new(Gate::default());
    let (server, _) = gated_server(gate, PeerConfig::default().max_batch_len(4)).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let entry = r#"{"jsonrpc":"2.0","method":"ok","id":1}"#;
    let answer = raw.ask(&format!("[{}]", [entry; 5].join(","))).await;
    assert_eq!(answer["error"]["code"], code::BATCH_TOO_LARGE);
    assert!(answer["id"].is_null());
    let answer = raw.ask(&format!("[{}]", [entry; 4].join(","))).await;
    assert_eq!(answer.as_array().unwrap().len(), 4);
    drop(raw);
    server.shutdown().await;
}

/// A client floods requests far faster than they are handled: the server keeps reading, runs at most its
/// bound, queues up to its queue's bound, and refuses the rest at once with -32005 Busy (they never run);
/// every request gets exactly one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_past_the_queue_is_refused_busy_and_nothing_is_lost() {
    const FLOOD: usize = 2000;
    let gate = Arc::new(Gate::default());
    let config = PeerConfig::default()
        .max_concurrent_requests(4)
        .max_queued_requests(16)
        .busy_retry_after(Duration::from_millis(250))
        .heartbeat_interval(None);
    let (server, _) = gated_server(gate.clone(), config).await;
    let (mut sink, mut stream) = RawClient::connect(server.local_addr()).await.into_inner().split();
    let flood = tokio::spawn(async move {
        for id in 0..FLOOD {
            let request = format!(r#"{{"jsonrpc":"2.0","method":"wait","params":["{id}"],"id":{id}}}"#);
            sink.feed(Message::text(request)).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    // With the gate shut, 4 run, 16 wait, and every other request is refused at once.
    let mut answers = vec![None; FLOOD];
    let next_answer = async |stream: &mut futures::stream::SplitStream<_>| -> serde_json::Value {
        let Some(Ok(Message::Text(text))) = within("an answer", stream.next()).await else {
            panic!("no answer")
        };
        serde_json::from_str(&text).unwrap()
    };
    for _ in 0..FLOOD - 20 {
        let answer = next_answer(&mut stream).await;
        assert_eq!(answer["error"]["code"], code::BUSY, "{answer}");
        assert_eq!(answer["error"]["data"]["retry_after_ms"], 250, "{answer}");
        let id = answer["id"].as_u64().unwrap() as usize;
        assert!(answers[id].replace(answer).is_none(), "answered twice");
    }
    let _sink = within("the flood to be sent", flood).await.unwrap();
    assert_eq!(gate.entered.load(Ordering::SeqCst), 4, "a refused request ran");
    gate.open_wide();
    for _ in 0..20 {
        let answer = next_answer(&mut stream).await;
        let id = answer["id"].as_u64().unwrap() as usize;
        assert_eq!(answer["result"], id.to_string().len(), "{answer}");
        assert!(answers[id].replace(answer).is_none(), "answered twice");
    }
    // The first 4 ran at once, the next 16 waited and ran in turn.
    assert!((0..20).all(|id| answers[id].as_ref().is_some_and(|a| a.get("result").is_some())));
    assert_eq!(gate.entered.load(Ordering::SeqCst), 20);
    assert!(
        gate.most.load(Ordering::SeqCst) <= 4,
        "more handlers ran at once than the bound"
    );
    server.shutdown().await;
}

/// A client asks for large results and never reads them: the server's writer blocks, its queue fills up
/// to the byte budget, as many bytes of answers wait for room, and no further request starts (with the
/// default 256 handler places); memory stays bounded, and the connection is given up within
/// `write_timeout` (or sooner, when the refusals it cannot write pile up), with 1008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_cannot_grow_server_memory_and_is_given_up() {
    const ASKED: usize = 300;
    const RESULT: usize = 1 << 20;
    let gate = Arc::new(Gate::default());
    let config = PeerConfig::default()
        .max_queued_bytes(4 << 20)
        .write_timeout(Some(Duration::from_secs(2)))
        .heartbeat_interval(None)
        .close_timeout(Duration::from_millis(200));
    let (server, server_peer) = gated_server(gate, config).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    // Register the connection's handle, then stop reading for good.
    raw.send(r#"{"jsonrpc":"2.0","method":"wait","params":[""],"id":"w"}"#)
        .await;
    eventually("the connection to register", || server_peer.lock().unwrap().is_some()).await;
    let before = resident_bytes();

    let (mut sink, _unread) = raw.into_inner().split();
    let flood = tokio::spawn(async move {
        for id in 0..ASKED {
            let request = format!(r#"{{"jsonrpc":"2.0","method":"blob","params":[{RESULT}],"id":{id}}}"#);
            if sink.send(Message::text(request)).await.is_err() {
                break;
            }
        }
    });
    let peer = server_peer.lock().unwrap().clone().unwrap();
    eventually("the outgoing queue to fill", || {
        peer.is_closed() || peer.stats().queued_bytes >= 3 << 20
    })
    .await;
    let stats = peer.stats();
    assert!(stats.queued_bytes <= 4 << 20, "{stats:?}");
    // 300 MiB were asked for; what the server holds is a few results (queued, waiting for room, written,
    // being written).
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "the server grew by {grown} bytes");
    assert!(stats.running_handlers <= 8, "{stats:?}");
    let reason = within("the connection to be given up", peer.closed()).await;
    assert_eq!(reason.code(), CloseCode::POLICY, "{reason}");
    assert!(matches!(reason, CloseReason::Local(_)), "{reason}");
    flood.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn calls_wait_for_a_pending_place_within_their_timeout() {
    let gate = Arc::new(Gate::default());
    let (server, _) = gated_server(gate.clone(), PeerConfig::default()).await;
    let peer = Client::builder()
        .config(PeerConfig::default().max_pending_calls(2))
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    let first = tokio::spawn(peer.call::<usize>("wait", ("a",)));
    let second = tokio::spawn(peer.call::<usize>("wait", ("bb",)));
    eventually("two handlers", || gate.entered.load(Ordering::SeqCst) == 2).await;
    assert_eq!(peer.stats().pending_calls, 2);
    let third = peer
        .call::<usize>("wait", ("ccc",))
        .timeout(Some(Duration::from_millis(100)))
        .await;
    assert!(matches!(third, Err(CallError::Timeout(_))), "{third:?}");
    assert_eq!(gate.entered.load(Ordering::SeqCst), 2, "the third call was sent");
    gate.open_wide();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!(peer.call::<usize>("wait", ("dddd",)).await.unwrap(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn past_max_connections_upgrades_are_refused_with_503() {
    let server = Server::builder()
        .max_connections(2)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new());
    let url = format!("ws://{}", server.local_addr());
    let first = Client::connect(&url).await.unwrap();
    let _second = Client::connect(&url).await.unwrap();
    let refused = Client::connect(&url).await;
    assert!(
        matches!(refused, Err(ConnectError::Rejected { status: 503 })),
        "{refused:?}"
    );
    first.close();
    first.closed().await;
    eventually("the place to be freed", || server.connection_count() == 1).await;
    let _third = within("a connection", async {
        loop {
            // The place is given back when the connection's task ends, just after the count drops.
            if let Ok(peer) = Client::connect(&url).await {
                return peer;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn clients_that_never_finish_the_handshake_are_dropped() {
    let server = Server::builder()
        .handshake_timeout(Duration::from_millis(200))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new());
    // One sends nothing, one sends half a request and stops.
    let mut silent = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    for socket in [&mut silent, &mut slow] {
        let mut buffer = [0u8; 1024];
        let read = within("the server to hang up", socket.read(&mut buffer)).await;
        // Closed (0 bytes, or reset); an HTTP error page is acceptable too, but no upgrade.
        if let Ok(n) = read {
            assert!(!String::from_utf8_lossy(&buffer[..n]).contains("101"));
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_requests_get_426() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| Router::new());
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    within("the answer", tcp.read_to_string(&mut answer)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    server.shutdown().await;
}

/// Notifications are queued up to the limits; `try_notify` says when there is no room instead of waiting.
#[tokio::test]
async fn try_notify_fails_when_the_queue_is_full() {
    let ready = Arc::new(Notify::new());
    let slot = Arc::new(std::sync::Mutex::new(None));
    let (ready2, slot2) = (ready.clone(), slot.clone());
    let server = Server::builder()
        .config(PeerConfig::default().max_queued_frames(8).heartbeat_interval(None))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let (ready, slot) = (ready2.clone(), slot2.clone());
            Router::new().method("hello", move |ctx: Context, _: NoParams| {
                *slot.lock().unwrap() = Some(ctx.peer().clone());
                ready.notify_one();
                async { Ok::<_, ErrorObject>(()) }
            })
        });
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.ask(r#"{"jsonrpc":"2.0","method":"hello","id":1}"#).await;
    within("the handler", ready.notified()).await;
    let peer = slot.lock().unwrap().clone().unwrap();
    // The client reads nothing more: sooner or later the queue is full.
    let payload = "n".repeat(64 << 10);
    let mut sent = 0usize;
    let full = within("a full queue", async {
        loop {
            match peer.try_notify("news", (&payload,)) {
                Ok(()) => sent += 1,
                Err(error) => return error,
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(matches!(full, CallError::Full), "{full:?}");
    assert!(peer.stats().queued_frames <= 8);
    assert!(sent > 0);
    drop(raw);
    server.shutdown().await;
}

/// RFC 6455 section 4.2.1: an upgrade over HTTP/1.0, or whose `Sec-WebSocket-Key` is not 16 bytes in
/// base64, is refused with 400; the well-formed one is accepted.
#[tokio::test]
async fn malformed_upgrades_are_refused_with_400() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| Router::new());
    let upgrade = |version: &str, key: &str| {
        format!(
            "GET / {version}\r\nHost: example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
    };
    let cases = [
        (upgrade("HTTP/1.0", "dGhlIHNhbXBsZSBub25jZQ=="), "HTTP/1.0 400"),
        (upgrade("HTTP/1.1", "c2hvcnQ="), "HTTP/1.1 400"),
        (upgrade("HTTP/1.1", "not base64 at all, no!!"), "HTTP/1.1 400"),
        (upgrade("HTTP/1.1", "dGhlIHNhbXBsZSBub25jZQ=="), "HTTP/1.1 101"),
    ];
    for (request, expected) in cases {
        let mut tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let n = within("the answer", tcp.read(&mut answer)).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with(expected), "{request:?} got {answer}");
    }
    server.shutdown().await;
}
