//! Batches sent by a peer: one frame out, each call resolved on its own, in both directions.

mod common;

use birpc::prelude::*;
use birpc::{CallError, ServerHandle};
use common::{eventually, within};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn arithmetic(notes: mpsc::Sender<String>) -> Router {
    Router::new()
        .method("add", |_: Context, (a, b): (i64, i64)| async move {
            Ok::<_, ErrorObject>(a + b)
        })
        .method(
            "echo",
            |_: Context, (s,): (String,)| async move { Ok::<_, ErrorObject>(s) },
        )
        .method("note", move |_: Context, (s,): (String,)| {
            let notes = notes.clone();
            async move { notes.send(s).await.map_err(|_| ErrorObject::internal_error()) }
        })
}

async fn server(notes: mpsc::Sender<String>) -> ServerHandle {
    Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        arithmetic(notes.clone()).method("batch_back", |ctx: Context, _: NoParams| async move {
            // The server sends a batch to the client that called.
            let mut batch = ctx.peer().batch();
            let sum = batch
                .call::<i64>("add", (20, 22))
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            let echo = batch
                .call::<String>("echo", ("back",))
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            batch
                .send()
                .await
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            let (sum, echo) =
                futures::try_join!(sum, echo).map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            Ok::<_, ErrorObject>(format!("{sum} {echo}"))
        })
    })
}

#[tokio::test]
async fn a_batch_resolves_each_call_and_runs_its_notifications() {
    let (notes_tx, mut notes) = mpsc::channel(4);
    let server = server(notes_tx).await;
    let peer = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();

    let mut batch = peer.batch();
    let sum = batch.call::<i64>("add", (1, 2)).unwrap();
    let echo = batch.call::<String>("echo", ("hi",)).unwrap();
    let missing = batch.call::<()>("missing", ()).unwrap();
    batch.notify("note", ("from a batch",)).unwrap();
    assert_eq!(batch.len(), 4);
    batch.send().await.unwrap();

    assert_eq!(within("sum", sum).await.unwrap(), 3);
    assert_eq!(within("echo", echo).await.unwrap(), "hi");
    assert!(matches!(
        within("missing", missing).await,
        Err(CallError::MethodNotFound(_))
    ));
    assert_eq!(within("the note", notes.recv()).await.unwrap(), "from a batch");
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_sends_batches_to_its_client_too() {
    let (notes_tx, _notes) = mpsc::channel(4);
    let server = server(notes_tx.clone()).await;
    let peer = Client::builder()
        .router(arithmetic(notes_tx))
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    assert_eq!(peer.call::<String>("batch_back", ()).await.unwrap(), "42 back");
    server.shutdown().await;
}

#[tokio::test]
async fn an_unsent_batch_resolves_its_calls_as_not_sent() {
    let (notes_tx, _notes) = mpsc::channel(4);
    let server = server(notes_tx).await;
    let peer = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let mut batch = peer.batch();
    let sum = batch.call::<i64>("add", (1, 2)).unwrap();
    drop(batch);
    assert!(matches!(sum.await, Err(CallError::NotSent)));
    server.shutdown().await;
}

/// On the wire, a batch is one message: a JSON array of the requests and notifications, without the calls
/// given up before it was sent.
#[tokio::test]
async fn a_batch_is_one_frame() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no batch")
        };
        let batch: Vec<Value> = serde_json::from_str(&text).unwrap();
        let answers: Vec<Value> = batch
            .iter()
            .filter(|m| m.get("id").is_some())
            .map(|m| serde_json::json!({"jsonrpc": "2.0", "id": m["id"], "result": m["method"]}))
            .collect();
        ws.send(Message::text(serde_json::to_string(&answers).unwrap()))
            .await
            .unwrap();
        batch
    });
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let mut batch = peer.batch();
    let a = batch.call::<String>("first", (1,)).unwrap();
    // Given up before the batch is sent, by a drop or by an await: both are left out of the frame.
    drop(batch.call::<String>("dropped", ()).unwrap());
    let early = batch.call::<String>("awaited", ()).unwrap();
    assert!(matches!(early.await, Err(CallError::NotSent)));
    batch.notify("second", ()).unwrap();
    let c = batch.call::<String>("third", serde_json::json!({"k": true})).unwrap();
    batch.send().await.unwrap();
    assert_eq!(within("a", a).await.unwrap(), "first");
    assert_eq!(within("c", c).await.unwrap(), "third");

    let sent = within("the raw server", raw_server).await.unwrap();
    let methods: Vec<&str> = sent.iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["first", "second", "third"]);
    assert_eq!(sent[0]["params"], serde_json::json!([1]));
    assert!(sent[1].get("id").is_none() && sent[1].get("params").is_none());
    assert_eq!(sent[2]["params"], serde_json::json!({"k": true}));
}

/// A server that takes batches of at most two entries, with a method `one` answering 1, and a client of it
/// configured with `client`.
async fn short_batches(client: PeerConfig) -> (ServerHandle, PeerHandle) {
    let server = Server::builder()
        .config(PeerConfig::default().max_batch_len(2))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new().method("one", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) }));
    let peer = Client::builder()
        .config(client)
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    (server, peer)
}

/// A batch the other side rejects as a whole (one error with id `null`, here -32004 Batch too large) fails
/// every call of it at once with that error, instead of each waiting for its timeout.
#[tokio::test]
async fn a_batch_rejected_as_a_whole_fails_every_call_at_once() {
    let (server, peer) = short_batches(PeerConfig::default()).await;
    // A batch that fits, then one that does not, then another that fits.
    let mut fits = peer.batch();
    let first = fits.call::<i64>("one", ()).unwrap();
    fits.send().await.unwrap();
    let mut too_long = peer.batch();
    let calls: Vec<_> = (0..3).map(|_| too_long.call::<i64>("one", ()).unwrap()).collect();
    too_long.send().await.unwrap();
    let mut fits_too = peer.batch();
    let last = fits_too.call::<i64>("one", ()).unwrap();
    fits_too.send().await.unwrap();
    for call in calls {
        let outcome = within("the rejection", call).await;
        assert!(
            matches!(&outcome, Err(CallError::Remote(e)) if e.code() == birpc::code::BATCH_TOO_LARGE),
            "{outcome:?}"
        );
    }
    assert_eq!(within("the first batch", first).await.unwrap(), 1);
    assert_eq!(within("the last batch", last).await.unwrap(), 1);
    server.shutdown().await;
}

/// A batch rejected as a whole fails its other calls even when one of its calls was dropped (withdrawn)
/// before the rejection arrived: without a call timeout they would wait for ever.
#[tokio::test]
async fn a_rejected_batch_with_a_dropped_call_still_fails_the_others() {
    let (server, peer) = short_batches(PeerConfig::default().call_timeout(None)).await;
    let mut too_long = peer.batch();
    let mut calls: Vec<_> = (0..3).map(|_| too_long.call::<i64>("one", ()).unwrap()).collect();
    too_long.send().await.unwrap();
    drop(calls.pop());
    // A call sent after: its answer comes after the rejection, which is handled by then.
    assert_eq!(within("a later call", peer.call::<i64>("one", ())).await.unwrap(), 1);
    for call in calls {
        let outcome = futures::FutureExt::now_or_never(call);
        assert!(
            matches!(&outcome, Some(Err(CallError::Remote(e))) if e.code() == birpc::code::BATCH_TOO_LARGE),
            "{outcome:?} (pending calls: {})",
            peer.stats().pending_calls
        );
    }
    assert_eq!(peer.stats().pending_calls, 0);
    server.shutdown().await;
}

/// A server whose connection to a raw client that does not read has its outgoing queue full (8 frames of
/// 64 KiB), and the server's handle of that connection.
async fn saturated() -> (ServerHandle, common::RawClient, PeerHandle) {
    use std::sync::Arc;
    use tokio::sync::Notify;
    let ready = Arc::new(Notify::new());
    let slot = Arc::new(std::sync::Mutex::new(None));
    let (ready2, slot2) = (ready.clone(), slot.clone());
    let server = Server::builder()
        .config(
            PeerConfig::default()
                .max_queued_frames(8)
                .heartbeat_interval(None)
                .call_timeout(None),
        )
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
    let mut raw = common::RawClient::connect(server.local_addr()).await;
    raw.ask(r#"{"jsonrpc":"2.0","method":"hello","id":1}"#).await;
    within("the handler", ready.notified()).await;
    let peer = slot.lock().unwrap().clone().unwrap();
    let payload = "n".repeat(64 << 10);
    within("a full queue", async {
        while peer.try_notify("news", (&payload,)).is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    (server, raw, peer)
}

/// A `send` given up while it waits for room in the outgoing queue (dropped by a `select!` or an outer
/// timeout) leaves no call in the pending table: they were registered but never sent, and their
/// `BatchCall`s resolve `NotSent`.
#[tokio::test]
async fn a_send_given_up_while_waiting_for_room_leaves_no_call_pending() {
    let (server, raw, peer) = saturated().await;
    let mut batch = peer.batch();
    let call = batch.call::<()>("anything", ()).unwrap();
    assert!(
        futures::FutureExt::now_or_never(batch.send()).is_none(),
        "the send waits for room"
    );
    assert!(matches!(
        futures::FutureExt::now_or_never(call),
        Some(Err(CallError::NotSent))
    ));
    assert_eq!(
        peer.stats().pending_calls,
        0,
        "the call of a batch never sent holds a place"
    );
    drop(raw);
    server.shutdown().await;
}

/// A call given up while its batch waits for room is withdrawn once the batch is queued: the other side
/// gets the batch, then `$/cancelRequest` for that call, and no place stays taken.
#[tokio::test]
async fn a_call_given_up_while_its_batch_waits_for_room_is_withdrawn_once_sent() {
    let (server, mut raw, peer) = saturated().await;
    let mut batch = peer.batch();
    let call = batch.call::<()>("anything", ()).unwrap();
    let mut send = std::pin::pin!(batch.send());
    assert!(futures::poll!(&mut send).is_pending(), "the send waits for room");
    assert_eq!(peer.stats().pending_calls, 1);
    drop(call);
    let read = async {
        // The notifications queued before, then the batch, then the cancel of its call.
        let batch = loop {
            let frame = raw.recv_json().await;
            if frame.is_array() {
                break frame;
            }
        };
        (batch[0]["id"].clone(), raw.recv_json().await)
    };
    let (sent, (id, cancel)) = within("the batch and the cancel", async { tokio::join!(send, read) }).await;
    sent.unwrap();
    assert_eq!(cancel["method"], "$/cancelRequest");
    assert_eq!(cancel["params"]["id"], id);
    assert_eq!(peer.stats().pending_calls, 0);
    drop(raw);
    server.shutdown().await;
}

/// -32004 "at most N entries" counts every entry, notifications included: a batch of two calls and one
/// notification over a limit of two is the one rejected, and its calls fail with the error.
#[tokio::test]
async fn a_batch_too_long_by_its_notifications_fails_its_calls() {
    let (server, peer) = short_batches(PeerConfig::default().call_timeout(None)).await;
    let mut batch = peer.batch();
    let calls: Vec<_> = (0..2).map(|_| batch.call::<i64>("one", ()).unwrap()).collect();
    batch.notify("one", ()).unwrap();
    batch.send().await.unwrap();
    // A call sent after: its answer comes after the rejection, which is handled by then.
    assert_eq!(within("a later call", peer.call::<i64>("one", ())).await.unwrap(), 1);
    for call in calls {
        let outcome = futures::FutureExt::now_or_never(call);
        assert!(
            matches!(&outcome, Some(Err(CallError::Remote(e))) if e.code() == birpc::code::BATCH_TOO_LARGE),
            "{outcome:?} (pending calls: {})",
            peer.stats().pending_calls
        );
    }
    server.shutdown().await;
}

/// A raw server that answers the first batch it reads with one error with id `null` (rejected as a
/// whole, not for its length) and every later batch normally, echoing each call's method.
async fn rejecting_first_batch() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut batches = 0;
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else { continue };
            let Ok(Value::Array(batch)) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            batches += 1;
            let reply = if batches == 1 {
                invalid_whole()
            } else {
                echo_all(&batch)
            };
            ws.send(Message::text(reply.to_string())).await.unwrap();
        }
    });
    (addr, task)
}

/// A batch with one of its two calls withdrawn still takes the rejection answered to it as a whole: its
/// other call fails with it, and a later batch is answered normally.
#[tokio::test]
async fn a_rejection_of_a_partly_withdrawn_batch_spares_the_next_batch() {
    let (addr, raw) = rejecting_first_batch().await;
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let mut first = peer.batch();
    let dropped = first.call::<String>("a1", ()).unwrap();
    let kept = first.call::<String>("a2", ()).unwrap();
    first.send().await.unwrap();
    drop(dropped);
    let mut second = peer.batch();
    let b = second.call::<String>("b", ()).unwrap();
    second.send().await.unwrap();
    assert!(matches!(within("a2", kept).await, Err(CallError::Remote(e)) if e.code() == -32600));
    assert_eq!(within("b", b).await.unwrap(), "b");
    raw.abort();
}

/// A batch whose calls were all withdrawn is still remembered: the error answered with id `null` to it as a
/// whole does not fall on the next batch, whose call gets its own answer.
#[tokio::test]
async fn a_rejection_of_a_fully_withdrawn_batch_spares_the_next_batch() {
    let (addr, raw) = rejecting_first_batch().await;
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let mut first = peer.batch();
    let dropped = first.call::<String>("a1", ()).unwrap();
    first.send().await.unwrap();
    drop(dropped);
    let mut second = peer.batch();
    let b = second.call::<String>("b", ()).unwrap();
    second.send().await.unwrap();
    assert_eq!(within("b", b).await.unwrap(), "b");
    raw.abort();
}

/// Calls of batches dropped or awaited on other threads while their batch is being sent: none stays
/// pending, and every handler started at the other side for one is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_given_up_on_other_threads_while_it_is_sent_leave_nothing_behind() {
    let started = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (s, e) = (started.clone(), ended.clone());
    struct End(Arc<AtomicUsize>);
    impl Drop for End {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let server = Server::builder()
        .config(
            PeerConfig::default()
                .max_concurrent_requests(100_000)
                .max_batch_len(100_000),
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let (s, e) = (s.clone(), e.clone());
            Router::new().method("slow", move |_: Context, _: NoParams| {
                let (s, e) = (s.clone(), e.clone());
                async move {
                    let _end = End(e);
                    s.fetch_add(1, Ordering::SeqCst);
                    futures::future::pending::<Result<(), ErrorObject>>().await
                }
            })
        });
    let peer = Client::builder()
        .config(PeerConfig::default().call_timeout(None))
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    let mut not_sent = 0usize;
    for round in 0..300usize {
        let peer2 = peer.clone();
        let tasks = tokio::spawn(async move {
            let mut batch = peer2.batch();
            let calls: Vec<_> = (0..4).map(|_| batch.call::<()>("slow", ()).unwrap()).collect();
            let mut tasks = Vec::new();
            for (i, call) in calls.into_iter().enumerate() {
                let yields = (round * 7 + i * 3) % 5;
                let await_it = (round + i) % 2 == 0;
                tasks.push(tokio::spawn(async move {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    if await_it {
                        // Awaited once, then dropped.
                        let mut call = std::pin::pin!(call);
                        match futures::poll!(call.as_mut()) {
                            std::task::Poll::Ready(Err(CallError::NotSent)) => 1,
                            std::task::Poll::Pending => 0,
                            other => panic!("{other:?}"),
                        }
                    } else {
                        drop(call);
                        0
                    }
                }));
            }
            tokio::task::yield_now().await;
            batch.send().await.unwrap();
            tasks
        })
        .await
        .unwrap();
        for task in tasks {
            not_sent += task.await.unwrap();
        }
    }
    eventually("no call pending", || peer.stats().pending_calls == 0).await;
    // Every handler started at the other side for a call given up was cancelled.
    eventually("every started handler cancelled", || {
        started.load(Ordering::SeqCst) == ended.load(Ordering::SeqCst)
    })
    .await;
    assert!(not_sent > 0, "no call was given up before its batch went out");
    assert!(started.load(Ordering::SeqCst) > 0, "no batch reached the other side");
    server.shutdown().await;
}

/// A batch whose `send` was given up before its frame was queued is forgotten: the next rejection of a
/// whole batch falls on the batch really sent.
#[tokio::test]
async fn a_rejection_after_a_send_given_up_fails_the_batch_really_sent() {
    let (server, mut raw, peer) = saturated().await;
    let mut never_sent = peer.batch();
    let _given_up = never_sent.call::<()>("never", ()).unwrap();
    assert!(
        futures::FutureExt::now_or_never(never_sent.send()).is_none(),
        "the send waits for room"
    );
    assert_eq!(peer.stats().pending_calls, 0);
    let mut sent = peer.batch();
    let call = sent.call::<String>("q", ()).unwrap();
    let read = async {
        loop {
            let frame = raw.recv_json().await;
            if frame.is_array() {
                break frame;
            }
        }
    };
    let (done, frame) = within("the batch", async { tokio::join!(sent.send(), read) }).await;
    done.unwrap();
    assert_eq!(frame[0]["method"], "q", "only the second batch went out");
    raw.send(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#)
        .await;
    let outcome = within("the rejection of the batch sent", call).await;
    assert!(
        matches!(&outcome, Err(CallError::Remote(e)) if e.code() == -32600),
        "{outcome:?}"
    );
    drop(raw);
    server.shutdown().await;
}

/// A raw server that reads `count` batches, then answers them with `reply` (given each batch's index
/// and entries; `None`: no reply), in the order `order`.
async fn raw_batch_server(
    count: usize,
    order: Vec<usize>,
    reply: fn(usize, &[Value]) -> Option<Value>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut batches = Vec::new();
        while batches.len() < count {
            let Some(Ok(Message::Text(text))) = ws.next().await else {
                return;
            };
            if let Ok(Value::Array(batch)) = serde_json::from_str::<Value>(&text) {
                batches.push(batch);
            }
        }
        for index in order {
            if let Some(answer) = reply(index, &batches[index]) {
                ws.send(Message::text(answer.to_string())).await.unwrap();
            }
        }
        // Keep the connection open.
        while let Some(Ok(_)) = ws.next().await {}
    });
    (addr, task)
}

/// A client of the raw server at `addr`, with `config`.
async fn client(addr: std::net::SocketAddr, config: PeerConfig) -> PeerHandle {
    Client::builder()
        .config(config)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap()
}

fn echo_all(batch: &[Value]) -> Value {
    Value::Array(
        batch
            .iter()
            .filter(|m| m.get("id").is_some())
            .map(|m| serde_json::json!({"jsonrpc": "2.0", "id": m["id"], "result": m["method"]}))
            .collect(),
    )
}

fn invalid_whole() -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid Request"}})
}

/// A call timed out here says nothing of whether the other side accepted its batch: a later batch timed
/// out leaves an earlier one to be rejected, and the batch after gets its own answer.
#[tokio::test]
async fn a_later_batch_timed_out_does_not_make_an_earlier_one_unrejectable() {
    // Batch 0 (A) is rejected as a whole; batches 1 (B, timed out) and 2 (C) are answered.
    let (addr, raw) = raw_batch_server(3, vec![0, 1, 2], |index, batch| {
        Some(if index == 0 { invalid_whole() } else { echo_all(batch) })
    })
    .await;
    let peer = client(addr, PeerConfig::default().call_timeout(None)).await;
    let mut a = peer.batch();
    let a_calls: Vec<_> = (0..2).map(|_| a.call::<String>("a", ()).unwrap()).collect();
    a.send().await.unwrap();
    let mut b = peer.batch().timeout(Some(std::time::Duration::from_millis(50)));
    let b_call = b.call::<String>("b", ()).unwrap();
    b.send().await.unwrap();
    assert!(matches!(within("b", b_call).await, Err(CallError::Timeout(_))));
    let mut c = peer.batch();
    let c_call = c.call::<String>("c", ()).unwrap();
    c.send().await.unwrap();
    let c_outcome = within("c", c_call).await;
    let pending = peer.stats().pending_calls;
    assert!(
        matches!(&c_outcome, Ok(s) if s == "c"),
        "C got A's rejection: {c_outcome:?}"
    );
    for call in a_calls {
        let outcome = futures::FutureExt::now_or_never(call);
        assert!(
            matches!(&outcome, Some(Err(CallError::Remote(e))) if e.code() == -32600),
            "{outcome:?} (pending calls: {pending})"
        );
    }
    raw.abort();
}

/// A rejection skips the batches older than one answered: with A (answered last), B (answered) and C
/// (rejected as a whole), the rejection fails C's call, not A's.
#[tokio::test]
async fn a_rejection_skips_batches_older_than_an_answered_one() {
    // Answers B (1), rejects C (2), then answers A (0).
    let (addr, raw) = raw_batch_server(3, vec![1, 2, 0], |index, batch| {
        Some(if index == 2 { invalid_whole() } else { echo_all(batch) })
    })
    .await;
    let peer = client(addr, PeerConfig::default().call_timeout(None)).await;
    let mut a = peer.batch();
    let a_call = a.call::<String>("a", ()).unwrap();
    a.send().await.unwrap();
    let mut b = peer.batch();
    let b_call = b.call::<String>("b", ()).unwrap();
    b.send().await.unwrap();
    let mut c = peer.batch();
    let c_call = c.call::<String>("c", ()).unwrap();
    c.send().await.unwrap();
    assert_eq!(within("b", b_call).await.unwrap(), "b");
    let a_outcome = within("a", a_call).await;
    assert!(
        matches!(&a_outcome, Ok(s) if s == "a"),
        "A got C's rejection: {a_outcome:?}"
    );
    let c_outcome = within("c", c_call).await;
    assert!(
        matches!(&c_outcome, Err(CallError::Remote(e)) if e.code() == -32600),
        "C: {c_outcome:?} (pending calls: {})",
        peer.stats().pending_calls
    );
    raw.abort();
}

/// An error with id `null` inside an array of responses answers one entry the other side could not read
/// (a batch rejected as a whole gets one error object alone, JSON-RPC 2.0 section 6): it fails no batch,
/// the batch's other call keeps its answer, and the call it was for times out (nothing names it).
#[tokio::test]
async fn an_id_null_error_among_a_batchs_responses_rejects_no_batch() {
    let (addr, raw) = raw_batch_server(1, vec![0], |_, batch| {
        let answers = vec![
            invalid_whole(),
            serde_json::json!({"jsonrpc": "2.0", "id": batch[1]["id"], "result": "second"}),
        ];
        Some(Value::Array(answers))
    })
    .await;
    let peer = client(
        addr,
        PeerConfig::default().call_timeout(Some(std::time::Duration::from_millis(300))),
    )
    .await;
    let mut a = peer.batch();
    let first = a.call::<String>("first", ()).unwrap();
    let second = a.call::<String>("second", ()).unwrap();
    a.send().await.unwrap();
    let (first, second) = within("both", async { tokio::join!(first, second) }).await;
    assert!(matches!(&second, Ok(s) if s == "second"), "second: {second:?}");
    assert!(matches!(&first, Err(CallError::Timeout(_))), "first: {first:?}");
    raw.abort();
}
