//! How handler outcomes reach the caller: errors, panics, timeouts with cancellation, size limits.

mod common;

use std::time::Duration;

use birpc::prelude::*;
use birpc::{ServerHandle, code};
use common::{RawClient, within};
use serde_json::json;
use tokio::sync::mpsc;

struct OnDrop(mpsc::Sender<&'static str>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_send("dropped");
    }
}

async fn server(events: mpsc::Sender<&'static str>, config: PeerConfig) -> ServerHandle {
    Server::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let events = events.clone();
            let notify_events = events.clone();
            Router::new()
                .method("ok", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>("fine") })
                .method("boom", |_: Context, _: NoParams| async {
                    panic!("a handler that panics at once");
                    #[allow(unreachable_code)]
                    Ok::<(), ErrorObject>(())
                })
                .method("boom_later", |_: Context, _: NoParams| async {
                    tokio::task::yield_now().await;
                    panic!("a handler that panics after yielding");
                    #[allow(unreachable_code)]
                    Ok::<(), ErrorObject>(())
                })
                .method("fail", |_: Context, (code,): (i64,)| async move {
                    Err::<(), _>(
                        ErrorObject::new(code, "it failed")
                            .with_data(&json!({"why": "asked to"}))
                            .unwrap(),
                    )
                })
                .method("blob", |_: Context, (len,): (usize,)| async move {
                    Ok::<_, ErrorObject>("x".repeat(len))
                })
                .method("slow", move |_: Context, _: NoParams| {
                    let events = events.clone();
                    async move {
                        let _guard = OnDrop(events.clone());
                        let _ = events.send("started").await;
                        futures::future::pending::<Result<(), ErrorObject>>().await
                    }
                })
                .method("note_boom", move |_: Context, _: NoParams| {
                    let events = notify_events.clone();
                    async move {
                        let _ = events.send("note").await;
                        panic!("a notification handler that panics");
                        #[allow(unreachable_code)]
                        Ok::<(), ErrorObject>(())
                    }
                })
        })
}

async fn connect(server: &ServerHandle) -> PeerHandle {
    Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap()
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_error_and_the_connection_lives_on() {
    let (events, _rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    for method in ["boom", "boom_later"] {
        let Err(CallError::Remote(e)) = peer.call::<()>(method, ()).await else {
            panic!("{method} did not fail")
        };
        assert_eq!(e.code(), code::INTERNAL_ERROR);
        assert_eq!(peer.call::<String>("ok", ()).await.unwrap(), "fine");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_notification_handler_leaves_the_connection_up() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    peer.notify("note_boom", ()).await.unwrap();
    assert_eq!(within("the notification", rx.recv()).await, Some("note"));
    assert_eq!(peer.call::<String>("ok", ()).await.unwrap(), "fine");
    server.shutdown().await;
}

#[tokio::test]
async fn errors_reach_the_caller_as_sent() {
    let (events, _rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let Err(CallError::Remote(e)) = peer.call::<()>("fail", (42,)).await else {
        panic!()
    };
    assert_eq!((e.code(), e.message()), (42, "it failed"));
    assert_eq!(
        e.parse_data::<serde_json::Value>().unwrap().unwrap(),
        json!({"why": "asked to"})
    );
    assert!(matches!(
        peer.call::<()>("nope", ()).await,
        Err(CallError::MethodNotFound(_))
    ));
    assert!(matches!(
        peer.call::<()>("fail", ("x",)).await,
        Err(CallError::InvalidParams(_))
    ));
    assert!(matches!(peer.call::<u32>("ok", ()).await, Err(CallError::Decode(_))));
    server.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_call_is_withdrawn_and_its_handler_cancelled() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let call = peer.call::<()>("slow", ()).timeout(Some(Duration::from_millis(200)));
    let outcome = within("the timeout", call).await;
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    assert_eq!(within("the handler start", rx.recv()).await, Some("started"));
    // `$/cancelRequest` reached the server, which dropped the handler.
    assert_eq!(within("the handler cancellation", rx.recv()).await, Some("dropped"));
    assert_eq!(peer.call::<String>("ok", ()).await.unwrap(), "fine");
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_call_is_withdrawn_too() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let call = tokio::spawn(peer.call::<()>("slow", ()));
    assert_eq!(within("the handler start", rx.recv()).await, Some("started"));
    call.abort();
    assert_eq!(within("the handler cancellation", rx.recv()).await, Some("dropped"));
    server.shutdown().await;
}

/// A call of a sent batch that is dropped without being awaited is withdrawn as a dropped call is: its
/// place in the pending table is freed and the other side is told.
#[tokio::test]
async fn a_batch_call_dropped_unawaited_is_withdrawn() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let mut batch = peer.batch();
    let slow = batch.call::<()>("slow", ()).unwrap();
    let ok = batch.call::<String>("ok", ()).unwrap();
    within("the batch to be sent", batch.send()).await.unwrap();
    assert_eq!(within("the handler start", rx.recv()).await, Some("started"));
    assert_eq!(peer.stats().pending_calls, 2);
    drop(slow);
    assert_eq!(peer.stats().pending_calls, 1);
    // The server answers a batch as a whole: the withdrawn entry -32800, once its handler is dropped.
    assert_eq!(within("the handler cancellation", rx.recv()).await, Some("dropped"));
    assert_eq!(within("the other entry", ok).await.unwrap(), "fine");
    assert_eq!(peer.stats().pending_calls, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn cancelling_by_hand_answers_request_cancelled() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.send(r#"{"jsonrpc":"2.0","method":"slow","id":"s1"}"#).await;
    assert_eq!(within("the handler start", rx.recv()).await, Some("started"));
    raw.send(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"s1"}}"#)
        .await;
    let answer = raw.recv_json().await;
    assert_eq!(answer["id"], "s1");
    assert_eq!(answer["error"]["code"], code::REQUEST_CANCELLED);
    // A client that never answers the server's close frame would hold the shutdown for the close timeout.
    drop(raw);
    server.shutdown().await;
}

/// An entry of a batch can be withdrawn on its own: it is answered -32800, the rest of the batch goes on.
#[tokio::test]
async fn cancelling_one_entry_of_a_batch_answers_it_cancelled() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.send(r#"[{"jsonrpc":"2.0","method":"slow","id":"s"},{"jsonrpc":"2.0","method":"ok","id":"o"}]"#)
        .await;
    assert_eq!(within("the slow entry to start", rx.recv()).await, Some("started"));
    raw.send(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"s"}}"#)
        .await;
    assert_eq!(within("the slow entry to be dropped", rx.recv()).await, Some("dropped"));
    let answers = raw.recv_json().await;
    let answers = answers.as_array().expect("a batch answer");
    let by_id = |id: &str| answers.iter().find(|a| a["id"] == id).cloned().unwrap();
    assert_eq!(by_id("s")["error"]["code"], code::REQUEST_CANCELLED);
    assert_eq!(by_id("o")["result"], "fine");
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn size_limits_fail_the_call_not_the_connection() {
    let (events, _rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default().max_message_size(1024)).await;
    let peer = Client::builder()
        .config(PeerConfig::default().max_message_size(1024))
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    // A call too large to send is refused here.
    let outcome = peer.call::<()>("ok", ("y".repeat(2000),)).await;
    assert!(
        matches!(outcome, Err(CallError::TooLarge { limit: 1024, .. })),
        "{outcome:?}"
    );
    // A result too large to send is replaced by an error there.
    let Err(CallError::Remote(e)) = peer.call::<String>("blob", (5000,)).await else {
        panic!()
    };
    assert_eq!(e.code(), code::RESPONSE_TOO_LARGE);
    assert_eq!(peer.call::<String>("blob", (10,)).await.unwrap(), "x".repeat(10));
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_limit_closes_the_connection_with_1009() {
    let (events, _rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default().max_message_size(1024)).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.send(&format!(
        r#"{{"jsonrpc":"2.0","method":"ok","params":["{}"],"id":1}}"#,
        "z".repeat(4096)
    ))
    .await;
    assert_eq!(raw.expect_close().await, 1009);
    server.shutdown().await;
}

/// A call dropped before its batch is sent is left out of the batch: it takes no place in the pending
/// table, and the other side never runs it.
#[tokio::test]
async fn a_batch_call_dropped_before_send_is_left_out() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let mut batch = peer.batch();
    let slow = batch.call::<()>("slow", ()).unwrap();
    let ok = batch.call::<String>("ok", ()).unwrap();
    drop(slow);
    within("the batch to be sent", batch.send()).await.unwrap();
    // The server answers a batch as a whole: with the slow call in it, this answer would never come.
    assert_eq!(within("the other entry", ok).await.unwrap(), "fine");
    assert_eq!(peer.stats().pending_calls, 0);
    assert!(rx.try_recv().is_err(), "the dropped call's handler never started");
    server.shutdown().await;
}

/// A batch call awaited before its batch is sent resolves `NotSent`, and is not sent after all (it would
/// hold a place until answered: here never, the handler never answers).
#[tokio::test]
async fn a_batch_call_awaited_before_send_is_not_sent_after_all() {
    let (events, mut rx) = mpsc::channel(8);
    let server = server(events, PeerConfig::default()).await;
    let peer = connect(&server).await;
    let mut batch = peer.batch();
    let slow = batch.call::<()>("slow", ()).unwrap();
    assert!(matches!(slow.await, Err(birpc::CallError::NotSent)));
    within("the batch to be sent", batch.send()).await.unwrap();
    assert_eq!(peer.stats().pending_calls, 0);
    // A call after it: had the batch gone out, the server would have started its handler first.
    assert_eq!(
        within("a later call", peer.call::<String>("ok", ())).await.unwrap(),
        "fine"
    );
    assert!(
        rx.try_recv().is_err(),
        "the call awaited before the batch was sent never started"
    );
    server.shutdown().await;
}
