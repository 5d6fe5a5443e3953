//! Batches sent by a peer: one frame out, each call resolved on its own, in both directions.

mod common;

use birpc::prelude::*;
use birpc::{CallError, ServerHandle};
use common::within;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
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

/// On the wire, a batch is one message: a JSON array of the requests and notifications.
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
    batch.notify("second", ()).unwrap();
    let c = batch.call::<String>("third", serde_json::json!({"k": true})).unwrap();
    batch.send().await.unwrap();
    assert_eq!(within("a", a).await.unwrap(), "first");
    assert_eq!(within("c", c).await.unwrap(), "third");

    let sent = within("the raw server", raw_server).await.unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["params"], serde_json::json!([1]));
    assert!(sent[1].get("id").is_none() && sent[1].get("params").is_none());
    assert_eq!(sent[2]["params"], serde_json::json!({"k": true}));
}

/// A batch the other side rejects as a whole (one error with id `null`, here -32004 Batch too large) fails
/// every call of it at once with that error, instead of each waiting for its timeout.
#[tokio::test]
async fn a_batch_rejected_as_a_whole_fails_every_call_at_once() {
    let server = Server::builder()
        .config(PeerConfig::default().max_batch_len(2))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new().method("one", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) }));
    let peer = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
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
    let server = Server::builder()
        .config(PeerConfig::default().max_batch_len(2))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new().method("one", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) }));
    let peer = Client::builder()
        .config(PeerConfig::default().call_timeout(None))
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
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
