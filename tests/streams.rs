//! Streams over real sockets: typed downloads and uploads from `#[rpc]` traits in both directions, a
//! server opening a stream its client exports, cancels from each side, the end of a connection
//! mid-stream, typed error ends, a thousand streams on one connection, and the wire as specified in
//! `docs/streams.md`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use birpc::prelude::*;
use birpc::{ServerHandle, code};
use common::{RawClient, eventually, within};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum FeedError {
    NoSuchTopic(String),
    Broken { after: u64 },
}

/// A service with a stream each way.
#[birpc::rpc]
trait Feed {
    /// The numbers `from..to`; fails with `Broken` at `fail_at` if given.
    async fn numbers(&self, from: u64, to: u64, fail_at: Option<u64>) -> Result<ItemStream<u64, FeedError>, FeedError>;

    /// Sums what the caller uploads.
    async fn sum(&self, values: Upload<i64>) -> Result<i64, FeedError>;
}

struct Numbers;

impl Feed for Numbers {
    async fn numbers(&self, from: u64, to: u64, fail_at: Option<u64>) -> Result<ItemStream<u64, FeedError>, FeedError> {
        if from > to {
            return Err(FeedError::NoSuchTopic(format!("{from}..{to}")));
        }
        Ok(ItemStream::new(futures::stream::iter(from..to).map(
            move |n| match fail_at {
                Some(at) if n == at => Err(FeedError::Broken { after: n }),
                _ => Ok(n),
            },
        )))
    }

    async fn sum(&self, mut values: Upload<i64>) -> Result<i64, FeedError> {
        let mut sum = 0;
        while let Some(value) = values.next().await {
            sum += value.map_err(|e| FeedError::NoSuchTopic(e.to_string()))?;
        }
        Ok(sum)
    }
}

async fn feed_server() -> (ServerHandle, String) {
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Numbers.into_router());
    let url = format!("ws://{}", server.local_addr());
    (server, url)
}

#[tokio::test]
async fn a_typed_download_yields_its_items_then_ends() {
    let (server, url) = feed_server().await;
    let client = FeedClient::new(Client::connect(&url).await.unwrap());
    let stream = client.numbers(3, 300, None).await.unwrap();
    let items: Vec<u64> = within("the stream", stream.map(Result::unwrap).collect()).await;
    assert_eq!(items, (3..300).collect::<Vec<_>>());
    assert_eq!(client.peer().stats().streams_consumed, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn typed_errors_reach_the_caller_when_opening_and_mid_stream() {
    let (server, url) = feed_server().await;
    let client = FeedClient::new(Client::connect(&url).await.unwrap());
    match client.numbers(5, 1, None).await {
        Err(CallError::Application(FeedError::NoSuchTopic(topic))) => assert_eq!(topic, "5..1"),
        other => panic!("{other:?}"),
    }
    let mut stream = client.numbers(0, 10, Some(4)).await.unwrap();
    for expected in 0..4 {
        assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), expected);
    }
    match within("the error", stream.next()).await {
        Some(Err(CallError::Application(FeedError::Broken { after: 4 }))) => {}
        other => panic!("{other:?}"),
    }
    assert!(within("the end", stream.next()).await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn a_typed_upload_is_summed_by_the_callee() {
    let (server, url) = feed_server().await;
    let client = FeedClient::new(Client::connect(&url).await.unwrap());
    let sum = within("the sum", client.sum(futures::stream::iter(1..=10_000_i64)))
        .await
        .unwrap();
    assert_eq!(sum, 50_005_000);
    eventually("the upload to be gone on both sides", || {
        client.peer().stats().streams_produced == 0
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_opens_a_stream_its_client_exports() {
    // The client exports `Feed`; the server, on the client's request, reads the client's numbers.
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new().method("collect_from_caller", |ctx: Context, (n,): (u64,)| async move {
            let caller = FeedClient::new(ctx.peer().clone());
            let items = caller
                .numbers(0, n, None)
                .await
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            let items: Vec<u64> = items.map(|item| item.unwrap()).collect().await;
            // And an upload the other way: the server uploads to the client.
            let sum = caller
                .sum(futures::stream::iter(
                    items.iter().map(|&n| n as i64).collect::<Vec<_>>(),
                ))
                .await
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            Ok::<_, ErrorObject>((items.len(), sum))
        })
    });
    let client = Client::builder()
        .router(Numbers.into_router())
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    let (count, sum): (usize, i64) = within("the server's collection", client.call("collect_from_caller", (500,)))
        .await
        .unwrap();
    assert_eq!((count, sum), (500, (0..500).sum::<i64>()));
    server.shutdown().await;
}

/// A producing stream that counts what it yields and says when it is dropped.
fn watched(
    count: Arc<AtomicU64>,
    dropped: oneshot::Sender<()>,
) -> impl futures::Stream<Item = Result<u64, ErrorObject>> {
    struct OnDrop(Option<oneshot::Sender<()>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    let guard = OnDrop(Some(dropped));
    futures::stream::iter(0..u64::MAX).map(move |n| {
        let _keep = &guard;
        count.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    })
}

#[tokio::test]
async fn dropping_a_download_drops_its_producer_and_credit_bounds_it_meanwhile() {
    let produced = Arc::new(AtomicU64::new(0));
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let counter = produced.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let counter = counter.clone();
        let dropped_tx = dropped_tx.clone();
        Router::new().stream("forever", move |_: Context, _: NoParams| {
            let stream = watched(counter.clone(), dropped_tx.lock().unwrap().take().unwrap());
            async move { Ok::<_, ErrorObject>(stream) }
        })
    });
    let window = 8;
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let mut stream = client.subscribe::<u64>("forever", ()).window(window).await.unwrap();
    for expected in 0..100 {
        assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), expected);
    }
    // Not reading: the producer stops at the credit granted: the first window, and back every item
    // taken (granted in steps of a quarter of the window, and 100 is a multiple of 2).
    let credit = 100 + u64::from(window);
    eventually("the producer to use its credit", || {
        produced.load(Ordering::Relaxed) > credit
    })
    .await;
    // A round trip over the connection: everything in flight before it has arrived.
    let refused = client.call::<()>("no_such_method", ()).await.unwrap_err();
    assert!(matches!(refused, CallError::MethodNotFound(_)), "{refused}");
    // The credit, and the one item a producer out of credit holds, unsent, until credit comes.
    assert_eq!(
        produced.load(Ordering::Relaxed),
        credit + 1,
        "the producer ran beyond its credit"
    );
    drop(stream);
    within("the producer to be dropped", dropped).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_callee_dropping_an_upload_stops_its_producer() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new().method("first_three", |ctx: Context, (id,): (birpc::UploadId,)| async move {
            let upload = ctx.upload::<u64>(id)?;
            let first: Vec<u64> = upload.take(3).map(|item| item.unwrap()).collect().await;
            Ok::<_, ErrorObject>(first)
        })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let produced = Arc::new(AtomicU64::new(0));
    let (dropped_tx, dropped) = oneshot::channel();
    let items = watched(produced.clone(), dropped_tx).map(|item| item.unwrap());
    let upload = client.upload("first_three", items).unwrap();
    let first: Vec<u64> = client.call("first_three", (&upload,)).await.unwrap();
    assert_eq!(first, [0, 1, 2]);
    // The callee cancelled: the producer goes, although this side still holds the upload.
    within("the upload's producer to be dropped", dropped).await.unwrap();
    // Never beyond the first window the callee granted (it took 3 items: too few to grant more), and
    // the one item a producer without credit may hold unsent.
    let window = u64::from(PeerConfig::default().stream_window);
    assert!(produced.load(Ordering::Relaxed) <= window + 1, "{produced:?}");
    drop(upload);
    server.shutdown().await;
}

#[tokio::test]
async fn the_end_of_the_connection_ends_every_stream_on_both_sides() {
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let dropped_tx = dropped_tx.clone();
        Router::new().stream("forever", move |_: Context, _: NoParams| {
            let stream = watched(Arc::default(), dropped_tx.lock().unwrap().take().unwrap());
            async move { Ok::<_, ErrorObject>(stream) }
        })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let mut stream = client.subscribe::<u64>("forever", ()).await.unwrap();
    assert_eq!(within("an item", stream.next()).await.unwrap().unwrap(), 0);
    client.close_with(birpc::CloseCode(4000), "leaving");
    // The consumer learns at once (items still buffered are dropped), the producer is dropped.
    loop {
        match within("the disconnection", stream.next()).await {
            Some(Ok(_)) => {}
            Some(Err(CallError::Disconnected(reason))) => {
                assert_eq!(reason.code(), birpc::CloseCode(4000));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(stream.next().await.is_none());
    within("the producer to be dropped", dropped).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_thousand_streams_share_one_connection() {
    let (server, url) = feed_server().await;
    let client = FeedClient::new(Client::connect(&url).await.unwrap());
    let streams = (0..1000_u64).map(|i| {
        let client = client.clone();
        async move {
            let items: Vec<u64> = client
                .numbers(i, i + 100, None)
                .await
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
                .await;
            assert_eq!(items, (i..i + 100).collect::<Vec<_>>());
        }
    });
    within("a thousand streams", futures::future::join_all(streams)).await;
    assert_eq!(client.peer().stats().streams_consumed, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn past_the_stream_limit_a_download_is_refused_with_32006() {
    let server = Server::builder()
        .config(PeerConfig::default().max_streams(2))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Numbers.into_router());
    let client = FeedClient::new(Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap());
    let _a = client.numbers(0, 1_000_000, None).await.unwrap();
    let _b = client.numbers(0, 1_000_000, None).await.unwrap();
    match client.numbers(0, 10, None).await {
        Err(CallError::Remote(error)) => assert_eq!(error.code(), code::TOO_MANY_STREAMS),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

/// The wire of `docs/streams.md`, byte for byte, from a raw client: a download announced with a window
/// of 2, credit granted by hand, a cancel as a request (as a jsonrpsee client unsubscribes).
#[tokio::test]
async fn the_wire_is_as_specified() {
    let (server, _url) = feed_server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.send(r#"{"jsonrpc":"2.0","method":"$/stream.open","params":{"id":"a","window":2}}"#)
        .await;
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","id":"a","method":"numbers","params":[10,20]}"#)
        .await;
    let subscription = answer["result"].clone();
    assert!(subscription.is_u64(), "{answer}");
    for n in [10, 11] {
        assert_eq!(
            raw.recv_json().await,
            json!({"jsonrpc":"2.0","method":"numbers","params":{"subscription":subscription,"result":n}})
        );
    }
    // No credit left: nothing more comes until granted (the answer to a later request comes first).
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","id":"ping","method":"no_such_method"}"#)
        .await;
    assert_eq!(answer["id"], "ping", "{answer}");
    raw.send(&format!(
        r#"{{"jsonrpc":"2.0","method":"$/stream.credit","params":{{"subscription":{subscription},"credit":1}}}}"#
    ))
    .await;
    assert_eq!(raw.recv_json().await["params"]["result"], 12);
    let cancelled = raw
        .ask(&format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"$/stream.cancel","params":[{subscription}]}}"#
        ))
        .await;
    assert_eq!(cancelled, json!({"jsonrpc":"2.0","id":9,"result":true}));
    // A stream that ends sends `$/stream.end`; without an announcement it runs without credit.
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","id":2,"method":"numbers","params":[0,3]}"#)
        .await;
    let subscription = answer["result"].clone();
    for n in 0..3 {
        assert_eq!(raw.recv_json().await["params"]["result"], n);
    }
    assert_eq!(
        raw.recv_json().await,
        json!({"jsonrpc":"2.0","method":"$/stream.end","params":{"subscription":subscription}})
    );
    // In a batch (answered as a whole, after all of its requests) a stream cannot open.
    let answers = raw
        .ask(r#"[{"jsonrpc":"2.0","id":3,"method":"numbers","params":[0,3]}]"#)
        .await;
    assert_eq!(answers[0]["error"]["code"], code::INVALID_REQUEST, "{answers}");
    // Gone without a closing handshake: the server does not wait for one.
    drop(raw);
    server.shutdown().await;
}
