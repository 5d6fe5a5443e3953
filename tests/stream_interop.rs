//! Streams between birpc and jsonrpsee 0.26 (`docs/streams.md`, "Peers that speak no credits"), over
//! real loopback sockets:
//!
//! - a jsonrpsee WebSocket client subscribes to a birpc stream method, naming `$/stream.cancel` as its
//!   unsubscribe method: it receives every item in order, and dropping its subscription (a `$/stream.cancel`
//!   request with `[id]`, which birpc answers `true`) drops the birpc producer;
//! - a birpc client subscribes to jsonrpsee server subscriptions (`#[rpc]` and
//!   `RpcModule::register_subscription`): every item in order, a refused subscription as the call's error,
//!   and a subscription closed with an error object as one `Err` item (`CallError::Remote`) then the end.
//!
//! A jsonrpsee producer ignores birpc's credits (it announces nothing and reads no `$/stream.credit`): it
//! sends as fast as its connection lets it. The birpc consumers here therefore use a window
//! ([`PeerConfig::stream_window`]) of [`WINDOW`] items, more than any stream here holds, so that no read
//! speed of the test can overrun it; the buffer stays bounded by that window all the same.
//!
//! What does not cross, and is not asserted here: a jsonrpsee client never learns that a birpc stream
//! ended normally (it ignores `$/stream.end` without an error; with an error it closes the subscription,
//! without telling the error); a jsonrpsee subscription whose callback returns `Ok(())` sends nothing, so
//! its birpc consumer never sees an end (the tests count items). A birpc consumer cancels a jsonrpsee
//! subscription by naming its unsubscribe method (`Subscribe::unsubscribe_with`); its default cancel, a
//! `$/stream.cancel` notification, means nothing to a jsonrpsee server. A jsonrpsee subscription failed the
//! usual jsonrpsee way, `Err(e)`, sends the error as a JSON string, which birpc takes as the error's
//! message.

mod common;

use std::sync::{Arc, Mutex};

use birpc::ServerHandle;
use birpc::prelude::*;
use common::within;
use futures::StreamExt;
use jsonrpsee::core::client::{SubscriptionClientT, SubscriptionKind};
use jsonrpsee::core::{ClientError, SubscriptionError, SubscriptionResult, client::ClientT};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::rpc_params;
use jsonrpsee::server::{PendingSubscriptionSink, RpcModule, SubscriptionCloseResponse};
use jsonrpsee::types::{ErrorObjectOwned, SubscriptionId};
use jsonrpsee::ws_client::WsClientBuilder;
use tokio::sync::oneshot;

/// The window of the birpc consumers of jsonrpsee subscriptions: above the items of any stream here.
const WINDOW: u32 = 16_384;

/// Items each stream here carries (below jsonrpsee's client buffer of 1,024 per subscription, so that
/// the jsonrpsee client never drops a subscription for lagging while the test reads).
const ITEMS: u64 = 1_000;

// ---------------------------------------------------------------------------------------------------
// A jsonrpsee client, a birpc server.

/// Sends on `tx` when dropped: put inside a producing stream, it tells when the producer is dropped.
struct OnDrop(Option<oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A birpc server exporting `ticks(from)`: the numbers `from..from + ITEMS`, then nothing more until it is
/// cancelled (a stream that never ends, and never runs ahead of the jsonrpsee client's buffer). Each
/// stream's producer signals its drop on the next sender of the returned list.
async fn ticks_server() -> (ServerHandle, String, Arc<Mutex<Vec<oneshot::Sender<()>>>>) {
    let guards: Arc<Mutex<Vec<oneshot::Sender<()>>>> = Arc::default();
    let senders = guards.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let senders = senders.clone();
        Router::new().stream("ticks", move |_: Context, (from,): (u64,)| {
            let guard = OnDrop(senders.lock().unwrap().pop());
            async move {
                let items = futures::stream::iter(from..from + ITEMS)
                    .chain(futures::stream::pending())
                    .map(move |n| {
                        let _keep = &guard;
                        Ok::<_, ErrorObject>(n)
                    });
                Ok::<_, ErrorObject>(items)
            }
        })
    });
    let url = format!("ws://{}", server.local_addr());
    (server, url, guards)
}

#[tokio::test]
async fn a_jsonrpsee_client_reads_a_birpc_stream_in_order_and_unsubscribes() {
    let (server, url, guards) = ticks_server().await;
    let (dropped_tx, dropped) = oneshot::channel();
    guards.lock().unwrap().push(dropped_tx);
    let client = WsClientBuilder::default().build(&url).await.unwrap();
    let mut ticks = client
        .subscribe::<u64, _>("ticks", rpc_params![7_u64], "$/stream.cancel")
        .await
        .unwrap();
    for expected in 7..7 + ITEMS {
        let item = within("an item", ticks.next())
            .await
            .expect("the subscription ended early");
        assert_eq!(item.unwrap(), expected);
    }
    // jsonrpsee unsubscribes on drop: `{"method":"$/stream.cancel","params":[id]}`, a request.
    drop(ticks);
    within("the birpc producer to be dropped", dropped).await.unwrap();
    // The connection goes on.
    let refused = client
        .request::<u64, _>("no_such_method", rpc_params![])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClientError::Call(ref e) if e.code() == -32601),
        "{refused}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn birpc_answers_a_jsonrpsee_unsubscribe_request_true_then_false() {
    let (server, url, guards) = ticks_server().await;
    let (dropped_tx, dropped) = oneshot::channel();
    guards.lock().unwrap().push(dropped_tx);
    let client = WsClientBuilder::default().build(&url).await.unwrap();
    let mut ticks = client
        .subscribe::<u64, _>("ticks", rpc_params![0_u64], "$/stream.cancel")
        .await
        .unwrap();
    assert_eq!(within("an item", ticks.next()).await.unwrap().unwrap(), 0);
    let id = match ticks.kind() {
        SubscriptionKind::Subscription(SubscriptionId::Num(id)) => *id,
        other => panic!("birpc stream ids are numbers: {other:?}"),
    };
    // The request jsonrpsee sends on drop, made by hand to see its answer: `true` while the stream lives.
    let live: bool = client.request("$/stream.cancel", rpc_params![id]).await.unwrap();
    assert!(live);
    within("the birpc producer to be dropped", dropped).await.unwrap();
    let live: bool = client.request("$/stream.cancel", rpc_params![id]).await.unwrap();
    assert!(!live, "a stream already cancelled is answered false");
    drop(ticks);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------
// A birpc client, a jsonrpsee server.

/// jsonrpsee's side, declared with its `#[rpc]` macro.
#[rpc(server)]
trait Numbers {
    /// The numbers `from..to`, then the subscription ends without a message (jsonrpsee's way).
    #[subscription(name = "subscribe_numbers" => "numbers", unsubscribe = "unsubscribe_numbers", item = u64)]
    async fn numbers(&self, from: u64, to: u64) -> SubscriptionResult;
}

struct JsonrpseeNumbers;

#[jsonrpsee::core::async_trait]
impl NumbersServer for JsonrpseeNumbers {
    async fn numbers(&self, pending: PendingSubscriptionSink, from: u64, to: u64) -> SubscriptionResult {
        if from > to {
            pending
                .reject(ErrorObjectOwned::owned(4001, "from is past to", Some((from, to))))
                .await;
            return Ok(());
        }
        let sink = pending.accept().await?;
        for n in from..to {
            sink.send(serde_json::value::to_raw_value(&n)?).await?;
        }
        Ok(())
    }
}

/// A jsonrpsee server with `subscribe_numbers` (above) and `subscribe_failing(count)`: the numbers
/// `0..count`, then a close with the error object `{"code": 4002, "message": "the feed broke", "data":
/// count}` (`SubscriptionCloseResponse::NotifErr`).
async fn jsonrpsee_server() -> (jsonrpsee::server::ServerHandle, String) {
    let mut module = RpcModule::new(());
    module.merge(JsonrpseeNumbers.into_rpc()).unwrap();
    module
        .register_subscription(
            "subscribe_failing",
            "failing",
            "unsubscribe_failing",
            |params, pending, _, _| async move {
                let Ok(count) = params.one::<u64>() else {
                    return SubscriptionCloseResponse::None;
                };
                let Ok(sink) = pending.accept().await else {
                    return SubscriptionCloseResponse::None;
                };
                for n in 0..count {
                    if sink.send(serde_json::value::to_raw_value(&n).unwrap()).await.is_err() {
                        return SubscriptionCloseResponse::None;
                    }
                }
                let error = ErrorObjectOwned::owned(4002, "the feed broke", Some(count));
                SubscriptionCloseResponse::NotifErr(SubscriptionError::from_json(
                    serde_json::value::to_raw_value(&error).unwrap(),
                ))
            },
        )
        .unwrap();
    let server = jsonrpsee::server::Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    (server.start(module), url)
}

/// A birpc client whose window takes a whole jsonrpsee subscription (see the module's doc).
async fn birpc_client(url: &str) -> PeerHandle {
    Client::builder()
        .config(PeerConfig::default().stream_window(WINDOW))
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_birpc_client_reads_a_jsonrpsee_subscription_in_order() {
    let (server, url) = jsonrpsee_server().await;
    let peer = birpc_client(&url).await;
    let mut numbers = within(
        "the subscription",
        peer.subscribe::<u64>("subscribe_numbers", (5, 5 + ITEMS)),
    )
    .await
    .unwrap();
    // jsonrpsee sends nothing when a subscription's callback returns `Ok(())`: its consumer never learns
    // of the end. So the items are counted, not read to an end.
    for expected in 5..5 + ITEMS {
        assert_eq!(within("an item", numbers.next()).await.unwrap().unwrap(), expected);
    }
    drop(numbers);
    assert_eq!(peer.stats().streams_consumed, 0);
    // Several at once on one connection, each in order.
    let streams = (0..10_u64).map(|i| {
        let peer = peer.clone();
        async move {
            let from = i * 1000;
            let items: Vec<u64> = peer
                .subscribe::<u64>("subscribe_numbers", (from, from + 300))
                .await
                .unwrap()
                .take(300)
                .map(Result::unwrap)
                .collect()
                .await;
            assert_eq!(items, (from..from + 300).collect::<Vec<_>>());
        }
    });
    within("ten subscriptions", futures::future::join_all(streams)).await;
    // The connection goes on.
    let refused = peer.call::<u64>("no_such_method", ()).await.unwrap_err();
    assert!(matches!(refused, CallError::MethodNotFound(_)), "{refused}");
    peer.close();
    server.stop().unwrap();
}

#[tokio::test]
async fn a_refused_jsonrpsee_subscription_fails_the_birpc_subscribe() {
    let (server, url) = jsonrpsee_server().await;
    let peer = birpc_client(&url).await;
    match within("the refusal", peer.subscribe::<u64>("subscribe_numbers", (9, 1))).await {
        Err(CallError::Remote(error)) => {
            assert_eq!(error.code(), 4001);
            assert_eq!(error.message(), "from is past to");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(peer.stats().streams_consumed, 0);
    peer.close();
    server.stop().unwrap();
}

#[tokio::test]
async fn a_jsonrpsee_subscription_closed_with_an_error_object_ends_the_birpc_stream_with_it() {
    let (server, url) = jsonrpsee_server().await;
    let peer = birpc_client(&url).await;
    let mut failing = within("the subscription", peer.subscribe::<u64>("subscribe_failing", (ITEMS,)))
        .await
        .unwrap();
    for expected in 0..ITEMS {
        assert_eq!(within("an item", failing.next()).await.unwrap().unwrap(), expected);
    }
    match within("the error", failing.next()).await {
        Some(Err(CallError::Remote(error))) => {
            assert_eq!(error.code(), 4002);
            assert_eq!(error.message(), "the feed broke");
            assert_eq!(error.data().map(|data| data.get()), Some("1000"));
        }
        other => panic!("{other:?}"),
    }
    assert!(within("the end", failing.next()).await.is_none());
    assert_eq!(peer.stats().streams_consumed, 0);
    peer.close();
    server.stop().unwrap();
}

/// jsonrpsee's own way to fail a subscription, `Err(e)` from a `SubscriptionResult` callback, sends the
/// error as a JSON string, not an error object: `{"subscription": S, "error": "the feed broke"}`.
#[rpc(server)]
trait Strings {
    /// Three numbers, then `Err("the feed broke")`.
    #[subscription(name = "subscribe_three_then_fail" => "three_then_fail", unsubscribe = "unsubscribe_three_then_fail", item = u64)]
    async fn three_then_fail(&self) -> SubscriptionResult;
}

struct StringFailure;

#[jsonrpsee::core::async_trait]
impl StringsServer for StringFailure {
    async fn three_then_fail(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        for n in 0..3_u64 {
            sink.send(serde_json::value::to_raw_value(&n)?).await?;
        }
        Err("the feed broke".into())
    }
}

/// The end above reaches the birpc consumer as its last item: an error object made from the string
/// (-32603, the string as message and data), then the end.
#[tokio::test]
async fn a_jsonrpsee_subscription_failed_with_a_string_error_ends_the_birpc_stream() {
    let server = jsonrpsee::server::Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let server = server.start(StringFailure.into_rpc());
    let peer = birpc_client(&url).await;
    let mut stream = peer.subscribe::<u64>("subscribe_three_then_fail", ()).await.unwrap();
    for expected in 0..3 {
        assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), expected);
    }
    match within("the error", stream.next()).await {
        Some(Err(CallError::Remote(error))) => {
            assert_eq!((error.code(), error.message()), (-32603, "the feed broke"));
        }
        other => panic!("{other:?}"),
    }
    assert!(within("the end", stream.next()).await.is_none());
    peer.close();
    server.stop().unwrap();
}

/// A birpc consumer that names jsonrpsee's unsubscribe method stops the jsonrpsee producer when it drops
/// its subscription.
#[tokio::test]
async fn a_birpc_client_unsubscribes_from_a_jsonrpsee_subscription() {
    let (closed_tx, closed) = oneshot::channel::<()>();
    let mut module = RpcModule::new(Mutex::new(Some(closed_tx)));
    module
        .register_subscription(
            "subscribe_forever",
            "forever",
            "unsubscribe_forever",
            |_, pending, context, _| async move {
                let Ok(sink) = pending.accept().await else {
                    return SubscriptionCloseResponse::None;
                };
                let mut n = 0_u64;
                loop {
                    tokio::select! {
                        () = sink.closed() => break,
                        sent = sink.send(serde_json::value::to_raw_value(&n).unwrap()) => {
                            if sent.is_err() {
                                break;
                            }
                            n += 1;
                        }
                    }
                }
                if let Some(closed) = context.lock().unwrap().take() {
                    let _ = closed.send(());
                }
                SubscriptionCloseResponse::None
            },
        )
        .unwrap();
    let server = jsonrpsee::server::Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let server = server.start(module);
    let peer = birpc_client(&url).await;
    let mut forever = peer
        .subscribe::<u64>("subscribe_forever", ())
        .unsubscribe_with("unsubscribe_forever")
        .await
        .unwrap();
    for expected in 0..10 {
        assert_eq!(within("an item", forever.next()).await.unwrap().unwrap(), expected);
    }
    drop(forever);
    within("the jsonrpsee producer to stop", closed).await.unwrap();
    peer.close();
    server.stop().unwrap();
}
