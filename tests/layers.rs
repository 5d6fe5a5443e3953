//! Tower layers on a router: each received call goes through them before its handler (auth by method,
//! timeouts, shared concurrency limits with load shedding), and they see how each call ended.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use birpc::layer::{Answer, IncomingCall};
use birpc::{
    Admit, CallError, Client, ConnectionInfo, Context, ErrorObject, NoParams, Peer, PeerHandle, Reject, Router, Server,
    code, memory,
};
use common::within;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::filter::FilterLayer;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::util::MapResponseLayer;

/// Who the admission hook let in (from `?role=`).
struct Role(String);

/// Only admins may call `admin.*`: the filter refuses the others with its own error object, before the
/// handler runs.
fn admins_only(call: IncomingCall) -> Result<IncomingCall, ErrorObject> {
    let admin = call.context().state::<Role>().is_some_and(|role| role.0 == "admin");
    if call.method().starts_with("admin.") && !admin {
        return Err(ErrorObject::new(403, "admins only"));
    }
    Ok(call)
}

#[tokio::test]
async fn a_filter_layer_refuses_a_method_by_the_connections_state_before_its_handler_runs() {
    let resets = Arc::new(AtomicUsize::new(0));
    let counted = resets.clone();
    let router = Router::new()
        .method("report", |_: Context, _: NoParams| async {
            Ok::<_, ErrorObject>("all quiet")
        })
        .method("admin.reset", move |_: Context, _: NoParams| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ErrorObject>(true) }
        })
        .layer(FilterLayer::new(admins_only));
    let server = Server::builder()
        .admit(|request: ConnectionInfo| async move {
            let role = request.query("role").ok_or_else(|| Reject::unauthorized("no role"))?;
            Ok(Admit::new().with_state(Role(role)))
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_: &ConnectionInfo| router.clone());
    let url = |role: &str| format!("ws://{}/?role={role}", server.local_addr());
    let guest = Client::builder().connect(&url("guest")).await.unwrap();
    let admin = Client::builder().connect(&url("admin")).await.unwrap();

    let refused = guest.call::<bool>("admin.reset", ()).await.unwrap_err();
    let error = refused.error_object().expect("an error object");
    assert_eq!((error.code(), error.message()), (403, "admins only"));
    assert_eq!(
        resets.load(Ordering::SeqCst),
        0,
        "the handler must not run for a refused call"
    );
    assert_eq!(guest.call::<String>("report", ()).await.unwrap(), "all quiet");
    assert!(admin.call::<bool>("admin.reset", ()).await.unwrap());
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

/// Two peers on an in-memory pair: `router` served on one side, the other side's handle returned.
fn serve(router: Router) -> (PeerHandle, PeerHandle) {
    let (a, b) = memory::pair(64);
    let server = Peer::builder().router(router).spawn(a);
    let client = Peer::builder().spawn(b);
    (server, client)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_layer_stops_a_slow_handler_and_answers_32007() {
    let router = Router::new()
        .method("stuck", |_: Context, _: NoParams| async {
            std::future::pending::<()>().await;
            Ok::<_, ErrorObject>(())
        })
        .method("quick", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) })
        .layer(TimeoutLayer::new(Duration::from_secs(5)));
    let (_server, client) = serve(router);
    let started = tokio::time::Instant::now();
    let error = client.call::<()>("stuck", ()).await.unwrap_err();
    assert_eq!(
        error.error_object().map(ErrorObject::code),
        Some(code::TIMED_OUT),
        "{error:?}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "the layer's time, on the paused clock"
    );
    assert_eq!(client.call::<i32>("quick", ()).await.unwrap(), 1);
}

#[tokio::test]
async fn a_concurrency_limit_is_shared_by_every_connection_of_the_router_and_load_shedding_answers_busy() {
    // One call at a time across all connections; the rest refused at once with -32005 Busy.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let (held, signal) = (gate.clone(), entered.clone());
    let router = Router::new()
        .method("work", move |_: Context, _: NoParams| {
            let (held, signal) = (held.clone(), signal.clone());
            async move {
                signal.notify_one();
                let _permit = held.acquire().await.map_err(|_| ErrorObject::internal_error())?;
                Ok::<_, ErrorObject>("done")
            }
        })
        .layer(
            ServiceBuilder::new()
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(1)),
        );
    let (_first_server, first) = serve(router.clone());
    let (_second_server, second) = serve(router);

    let running = tokio::spawn(async move { first.call::<String>("work", ()).await });
    within("the first call to start", entered.notified()).await;
    let refused = within("the second call's answer", second.call::<String>("work", ())).await;
    match refused {
        Err(CallError::Busy { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_millis(100))),
        other => panic!("expected Busy from the other connection, got {other:?}"),
    }
    gate.add_permits(1);
    assert_eq!(
        within("the first call's answer", running).await.unwrap().unwrap(),
        "done"
    );
    // The place is free again.
    gate.add_permits(1);
    assert_eq!(
        within("a call after it", second.call::<String>("work", ()))
            .await
            .unwrap(),
        "done"
    );
}

#[tokio::test]
async fn a_layer_sees_how_each_call_ended_and_wraps_only_the_methods_exported_before_it() {
    let outcomes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let seen = outcomes.clone();
    let record = MapResponseLayer::new(move |answer: Answer| {
        let outcome = answer.error_code().map_or("ok".to_owned(), |code| code.to_string());
        *seen.lock().unwrap().entry(outcome).or_default() += 1;
        answer
    });
    let router = Router::new()
        .method("fine", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) })
        .method("fails", |_: Context, _: NoParams| async {
            Err::<(), _>(ErrorObject::new(7, "no"))
        })
        .method("add", |_: Context, (a, b): (i64, i64)| async move {
            Ok::<_, ErrorObject>(a + b)
        })
        .stream("count", |_: Context, (n,): (u64,)| async move {
            Ok::<_, ErrorObject>(futures::stream::iter(1..=n).map(Ok::<_, ErrorObject>))
        })
        .layer(record)
        .method("unwrapped", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(0) });
    let (_server, client) = serve(router);

    assert_eq!(client.call::<i32>("fine", ()).await.unwrap(), 1);
    assert_eq!(
        client
            .call::<()>("fails", ())
            .await
            .unwrap_err()
            .error_object()
            .map(ErrorObject::code),
        Some(7)
    );
    let bad = client.call::<i64>("add", ("one", 2)).await.unwrap_err();
    assert!(matches!(bad, CallError::InvalidParams(_)), "{bad:?}");
    let items: Vec<u64> = client
        .subscribe::<u64>("count", (3,))
        .await
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
        .await;
    assert_eq!(items, [1, 2, 3], "a stream method still streams through the layer");
    assert_eq!(client.call::<i32>("unwrapped", ()).await.unwrap(), 0);

    let outcomes = outcomes.lock().unwrap().clone();
    let expected = BTreeMap::from([
        ("ok".to_owned(), 2),
        ("7".to_owned(), 1),
        (code::INVALID_PARAMS.to_string(), 1),
    ]);
    assert_eq!(
        outcomes, expected,
        "fine and the stream's opening ok, fails 7, add -32602; unwrapped unseen"
    );
}

#[tokio::test]
async fn the_fallback_is_layered_too_and_its_layer_sees_the_received_name() {
    let router = Router::new()
        .fallback(|call: IncomingCall| async move { Ok::<_, ErrorObject>(format!("answered {}", call.method())) })
        .layer(FilterLayer::new(|call: IncomingCall| {
            if call.method().starts_with("secret.") {
                return Err(ErrorObject::new(403, "not that one"));
            }
            Ok(call)
        }));
    let (_server, client) = serve(router);
    assert_eq!(
        client.call::<String>("anything", ()).await.unwrap(),
        "answered anything"
    );
    let refused = client.call::<String>("secret.plans", ()).await.unwrap_err();
    assert_eq!(refused.error_object().map(ErrorObject::code), Some(403));
}

/// A layer whose service panics where `which` says: in `poll_ready`, or in `call`.
#[derive(Clone)]
struct Panicking<S> {
    inner: S,
    in_poll_ready: bool,
}

impl<S: tower::Service<IncomingCall>> tower::Service<IncomingCall> for Panicking<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        assert!(!self.in_poll_ready, "a layer panicking in poll_ready");
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: IncomingCall) -> S::Future {
        panic!("a layer panicking in call ({})", call.method());
    }
}

#[tokio::test]
async fn a_layer_that_panics_in_poll_ready_or_call_answers_32603_and_the_connection_lives_on() {
    for in_poll_ready in [true, false] {
        let router = Router::new()
            .method("hit", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) })
            .layer(tower::layer::layer_fn(move |inner| Panicking { inner, in_poll_ready }))
            .method("fine", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(2) });
        let (_server, client) = serve(router);
        let error = within("the panicking layer's answer", client.call::<i32>("hit", ()))
            .await
            .unwrap_err();
        assert_eq!(error.error_object().map(ErrorObject::code), Some(code::INTERNAL_ERROR));
        assert_eq!(
            within("a call after it", client.call::<i32>("fine", ())).await.unwrap(),
            2
        );
    }
}

#[tokio::test]
async fn a_handler_or_fallback_that_panics_before_returning_its_future_answers_32603_and_the_connection_lives_on() {
    fn refuse(name: &str) -> bool {
        name.starts_with("boom")
    }
    let router = Router::new()
        .method("boom", |_: Context, _: NoParams| {
            // The panic happens while the handler is called, before any future exists.
            assert!(!refuse("boom"), "a handler panicking at once");
            async { Ok::<_, ErrorObject>(0) }
        })
        .method("fine", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(2) })
        .fallback(|call: IncomingCall| {
            assert!(!refuse(call.method()), "a fallback panicking at once");
            async { Ok::<_, ErrorObject>(0) }
        });
    let (server, client) = serve(router);
    for method in ["boom", "boom.unrouted"] {
        let error = within("the panicking handler's answer", client.call::<i32>(method, ()))
            .await
            .unwrap_err();
        assert_eq!(
            error.error_object().map(ErrorObject::code),
            Some(code::INTERNAL_ERROR),
            "{method}: {error}"
        );
    }
    // A notification and a batch entry panicking the same way leave the connection up.
    client.notify("boom", ()).await.unwrap();
    let mut batch = client.batch();
    let boom = batch.call::<i32>("boom", ()).unwrap();
    let fine = batch.call::<i32>("fine", ()).unwrap();
    within("the batch", batch.send()).await.unwrap();
    assert_eq!(
        within("the batch's panicking entry", boom)
            .await
            .unwrap_err()
            .error_object()
            .map(ErrorObject::code),
        Some(code::INTERNAL_ERROR)
    );
    assert_eq!(within("the batch's fine entry", fine).await.unwrap(), 2);
    assert_eq!(
        within("a call after them", client.call::<i32>("fine", ()))
            .await
            .unwrap(),
        2
    );
    assert!(server.is_connected() && client.is_connected());
}

/// A layer whose service is never ready; each call's clone tells `dropped` when it is dropped after having
/// been polled for readiness (so when the call waiting on it is given up).
#[derive(Clone)]
struct NeverReady {
    polled: tokio::sync::mpsc::UnboundedSender<()>,
    dropped: tokio::sync::mpsc::UnboundedSender<()>,
    armed: bool,
}

impl tower::Service<IncomingCall> for NeverReady {
    type Response = Answer;
    type Error = ErrorObject;
    type Future = std::future::Ready<Result<Answer, ErrorObject>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ErrorObject>> {
        if !self.armed {
            self.armed = true;
            let _ = self.polled.send(());
        }
        std::task::Poll::Pending
    }

    fn call(&mut self, _: IncomingCall) -> Self::Future {
        unreachable!("never ready, never called")
    }
}

impl Drop for NeverReady {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.dropped.send(());
        }
    }
}

#[tokio::test]
async fn a_call_waiting_on_a_layer_that_is_never_ready_ends_on_cancellation_and_on_close() {
    let (polled_tx, mut polled) = tokio::sync::mpsc::unbounded_channel();
    let (dropped_tx, mut dropped) = tokio::sync::mpsc::unbounded_channel();
    let never = NeverReady {
        polled: polled_tx,
        dropped: dropped_tx,
        armed: false,
    };
    let router = Router::new()
        .method("wait", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(()) })
        .layer(tower::layer::layer_fn(move |_| never.clone()));
    let (_server, client) = serve(router);

    // Cancelled: the call dropped after it went out sends `$/cancelRequest`.
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call::<()>("wait", ()).await }
    });
    within("the layer polled", polled.recv()).await;
    call.abort();
    within("the cancelled call's service dropped", dropped.recv()).await;

    // Closed: the connection's end ends the waiting call.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call::<()>("wait", ()).await }
    });
    within("the layer polled again", polled.recv()).await;
    client.close();
    within("the closed connection's call dropped", dropped.recv()).await;
    assert!(within("the call's end", waiting).await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_layer_bounds_the_opening_of_a_stream_not_the_items_that_follow() {
    let router = Router::new()
        .stream("slow_ticks", |_: Context, (n,): (u64,)| async move {
            let ticks = futures::stream::iter(1..=n).then(|i| async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok::<_, ErrorObject>(i)
            });
            Ok::<_, ErrorObject>(ticks)
        })
        .stream("slow_to_open", |_: Context, _: NoParams| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, ErrorObject>(futures::stream::iter([Ok::<_, ErrorObject>(1)]))
        })
        .layer(TimeoutLayer::new(Duration::from_secs(1)));
    let (_server, client) = serve(router);
    // Ten seconds of items, each two seconds apart, through a one-second timeout.
    let items: Vec<u64> = client
        .subscribe::<u64>("slow_ticks", (5,))
        .await
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
        .await;
    assert_eq!(items, [1, 2, 3, 4, 5]);
    let refused = client.subscribe::<u64>("slow_to_open", ()).await.unwrap_err();
    assert_eq!(refused.error_object().map(ErrorObject::code), Some(code::TIMED_OUT));
}
