//! The end of a connection: every pending call on both sides resolves with a disconnect error, running
//! handlers are cancelled, and each side learns why.

mod common;

use std::sync::Arc;

use birpc::prelude::*;
use birpc::{CloseCode, CloseReason};
use common::{Proxy, within};
use tokio::sync::{Semaphore, mpsc};

/// Sets a flag when dropped: shows a handler was cancelled rather than left running.
struct OnDrop(Option<mpsc::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.try_send(());
        }
    }
}

/// `watch()`: sends the connection's close reason on `reasons` once it has ended.
fn watching(reasons: mpsc::Sender<CloseReason>) -> Router {
    Router::new().method("watch", move |ctx: Context, _: NoParams| {
        let (peer, reasons) = (ctx.peer().clone(), reasons.clone());
        tokio::spawn(async move { reasons.send(peer.closed().await).await });
        async { Ok::<_, ErrorObject>(()) }
    })
}

/// `hang()`: reports its arrival, then never answers; reports when it is cancelled.
fn hanging(arrived: Arc<Semaphore>, cancelled: mpsc::Sender<()>) -> Router {
    Router::new().method("hang", move |_: Context, _: NoParams| {
        let (arrived, guard) = (arrived.clone(), OnDrop(Some(cancelled.clone())));
        async move {
            let _guard = guard;
            arrived.add_permits(1);
            futures::future::pending::<Result<(), ErrorObject>>().await
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_every_pending_call_on_both_sides() {
    const N: u32 = 50;
    let server_arrived = Arc::new(Semaphore::new(0));
    let client_arrived = Arc::new(Semaphore::new(0));
    let (server_cancelled_tx, mut server_cancelled) = mpsc::channel(N as usize);
    let (client_cancelled_tx, mut client_cancelled) = mpsc::channel(N as usize);
    let (server_results_tx, mut server_results) = mpsc::channel::<Result<(), CallError>>(N as usize);

    let arrived = server_arrived.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let results = server_results_tx.clone();
        hanging(arrived.clone(), server_cancelled_tx.clone()).method("provoke", move |ctx: Context, (n,): (u32,)| {
            // The server calls the client's `hang` n times, from tasks of its own.
            for _ in 0..n {
                let (call, results) = (ctx.peer().call::<()>("hang", ()), results.clone());
                tokio::spawn(async move {
                    let _ = results.send(call.await).await;
                });
            }
            async { Ok::<_, ErrorObject>(()) }
        })
    });
    let proxy = Proxy::start(server.local_addr()).await;
    let client = Client::builder()
        .router(hanging(client_arrived.clone(), client_cancelled_tx))
        .connect(&format!("ws://{}", proxy.addr))
        .await
        .unwrap();

    client.call::<()>("provoke", (N,)).await.unwrap();
    let pending: Vec<_> = (0..N).map(|_| tokio::spawn(client.call::<()>("hang", ()))).collect();
    // Both sides have N handlers waiting: N calls pending each way.
    within("server handlers", server_arrived.acquire_many(N))
        .await
        .unwrap()
        .forget();
    within("client handlers", client_arrived.acquire_many(N))
        .await
        .unwrap()
        .forget();

    proxy.cut();

    for call in pending {
        let outcome = within("a client call to fail", call).await.unwrap();
        assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    }
    for _ in 0..N {
        let outcome = within("a server call to fail", server_results.recv()).await.unwrap();
        assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    }
    // The handlers left waiting on each side were cancelled.
    for _ in 0..N {
        within("a server handler to be cancelled", server_cancelled.recv())
            .await
            .unwrap();
        within("a client handler to be cancelled", client_cancelled.recv())
            .await
            .unwrap();
    }
    let reason = client.closed().await;
    assert!(matches!(reason, CloseReason::Transport(_)), "{reason:?}");
    // A call after the end fails at once.
    assert!(matches!(
        client.call::<()>("hang", ()).await,
        Err(CallError::Disconnected(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn closing_fails_pending_calls_and_both_sides_learn_the_reason() {
    let (reasons_tx, mut reasons) = mpsc::channel(1);
    let arrived = Arc::new(Semaphore::new(0));
    let (cancelled_tx, _cancelled) = mpsc::channel(1);
    let hang_arrived = arrived.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let reasons = reasons_tx.clone();
        hanging(hang_arrived.clone(), cancelled_tx.clone()).merge(watching(reasons))
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    client.call::<()>("watch", ()).await.unwrap();
    let hang = tokio::spawn(client.call::<()>("hang", ()));
    within("the hanging handler", arrived.acquire()).await.unwrap().forget();

    client.close_with(CloseCode(4000), "done here");
    let outcome = within("the pending call", hang).await.unwrap();
    let Err(CallError::Disconnected(CloseReason::Local(frame))) = outcome else {
        panic!("expected a local close, got {outcome:?}")
    };
    assert_eq!((frame.code, &*frame.reason), (CloseCode(4000), "done here"));
    let server_side = within("the server's close reason", reasons.recv()).await.unwrap();
    assert_eq!(server_side, CloseReason::Remote(frame));
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_shutdown_closes_clients_with_going_away() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| Router::new());
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    within("the shutdown", server.shutdown()).await;
    let reason = within("the close", client.closed()).await;
    assert_eq!(reason.code(), CloseCode::GOING_AWAY, "{reason}");
    assert!(matches!(reason, CloseReason::Remote(_)));
}

#[tokio::test]
async fn dropping_the_last_client_handle_closes_the_connection() {
    let (reasons_tx, mut reasons) = mpsc::channel(1);
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let reasons = reasons_tx.clone();
        watching(reasons)
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let clone = client.clone();
    client.call::<()>("watch", ()).await.unwrap();
    drop(client);
    assert!(!clone.is_closed());
    drop(clone);
    let reason = within("the server to see the close", reasons.recv()).await.unwrap();
    assert_eq!(reason.code(), CloseCode::NORMAL, "{reason}");
    server.shutdown().await;
}

/// A server that shuts down while a client keeps sending: the client reports the server's 1001, not an
/// error of its own about sending after the close, and every call cut off carries that 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_through_a_shutdown_reports_the_servers_going_away() {
    let server = Server::builder()
        .shutdown_grace(std::time::Duration::from_millis(200))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| {
            Router::new().method("work", |_: Context, (ms,): (u64,)| async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok::<_, ErrorObject>(ms)
            })
        });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let sender = tokio::spawn({
        let client = client.clone();
        async move {
            let mut calls = Vec::new();
            while !client.is_closed() {
                calls.push(tokio::spawn(client.call::<u64>("work", (1,))));
                tokio::task::yield_now().await;
            }
            calls
        }
    });
    // Let the calls flow, then shut down under them.
    let first: u64 = within("a first answer", client.call("work", (0,))).await.unwrap();
    assert_eq!(first, 0);
    server.shutdown().await;
    let reason = within("the close", client.closed()).await;
    assert!(
        matches!(&reason, CloseReason::Remote(frame) if frame.code == CloseCode::GOING_AWAY),
        "{reason}"
    );
    let calls = within("the sender", sender).await.unwrap();
    assert!(!calls.is_empty());
    for call in calls {
        match within("a call", call).await.unwrap() {
            Ok(_) => {}
            Err(CallError::Remote(error)) => assert_eq!(error.code(), birpc::code::SHUTTING_DOWN),
            Err(CallError::Disconnected(reason)) => {
                assert_eq!(reason.code(), CloseCode::GOING_AWAY, "{reason}");
            }
            Err(other) => panic!("{other}"),
        }
    }
}

/// The close codes RFC 6455 and the IANA registry allow a peer to send pass through in both directions
/// and are what `closed()` reports on the other side. (1014 is not among them: tokio-tungstenite 0.30
/// refuses it on receipt; the JavaScript client's tests show a birpc server sending it.)
#[tokio::test]
async fn allowed_close_codes_pass_through_both_ways() {
    let codes = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999,
    ];
    let (reasons_tx, mut reasons) = mpsc::channel(4);
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let reasons = reasons_tx.clone();
        watching(reasons).method("close_with", |ctx: Context, (code,): (u16,)| async move {
            ctx.peer().close_with(CloseCode(code), "from the server");
            Ok::<_, ErrorObject>(())
        })
    });
    let url = format!("ws://{}", server.local_addr());
    for code in codes {
        // Client → server.
        let client = Client::connect(&url).await.unwrap();
        client.call::<()>("watch", ()).await.unwrap();
        client.close_with(CloseCode(code), "from the client");
        let seen = within("the server's close reason", reasons.recv()).await.unwrap();
        assert!(
            matches!(&seen, CloseReason::Remote(frame) if frame.code == CloseCode(code) && &*frame.reason == "from the client"),
            "{code}: {seen}"
        );
        // Server → client.
        let client = Client::connect(&url).await.unwrap();
        client.call::<()>("watch", ()).await.unwrap();
        let _ = client.call::<()>("close_with", (code,)).await;
        let seen = within("the client's close reason", client.closed()).await;
        assert!(
            matches!(&seen, CloseReason::Remote(frame) if frame.code == CloseCode(code) && &*frame.reason == "from the server"),
            "{code}: {seen}"
        );
        within("the server's side", reasons.recv()).await.unwrap();
    }
    server.shutdown().await;
}

/// Close codes a peer may not send (1004–1006, 1015, below 1000, 1016–2999, 5000 and up) are a protocol
/// violation: the connection ends with 1002.
#[tokio::test]
async fn forbidden_close_codes_get_1002() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;

    let (reasons_tx, mut reasons) = mpsc::channel(4);
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let reasons = reasons_tx.clone();
        watching(reasons)
    });
    for code in [999u16, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}", server.local_addr()))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"jsonrpc":"2.0","method":"watch","id":1}"#))
            .await
            .unwrap();
        let _answer = within("the answer", ws.next()).await;
        let frame = WsCloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
        let seen = within("the server's close reason", reasons.recv()).await.unwrap();
        assert_eq!(seen.code(), CloseCode::PROTOCOL_ERROR, "{code}: {seen}");
    }
    server.shutdown().await;
}

/// A waker that reports each wake on a channel, so that a test can await the moment a future is woken.
struct Reporting(mpsc::UnboundedSender<()>);

impl futures::task::ArcWake for Reporting {
    fn wake_by_ref(this: &Arc<Self>) {
        let _ = this.0.send(());
    }
}

/// An answer that arrived before the connection ended reaches its call, even when the call is awaited
/// only after the end; a call still pending then fails as disconnected.
#[tokio::test]
async fn an_answer_that_came_before_the_connection_ended_reaches_its_call_after_the_end() {
    let arrived = Arc::new(Semaphore::new(0));
    let (cancelled_tx, _cancelled) = mpsc::channel(1);
    let hang_arrived = arrived.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        hanging(hang_arrived.clone(), cancelled_tx.clone()).method("double", |_: Context, (n,): (u64,)| async move {
            Ok::<_, ErrorObject>(n * 2)
        })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let hang = tokio::spawn(client.call::<()>("hang", ()));
    within("the hanging handler", arrived.acquire()).await.unwrap().forget();

    // Polled once (the request goes out), then left alone until its answer wakes it.
    let (woken_tx, mut woken) = mpsc::unbounded_channel();
    let waker = futures::task::waker(Arc::new(Reporting(woken_tx)));
    let mut answered = std::pin::pin!(client.call::<u64>("double", (21,)));
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(answered.as_mut().poll(&mut cx).is_pending());
    within("the answer's wake-up", woken.recv()).await.unwrap();
    assert_eq!(
        client.stats().pending_calls,
        1,
        "only the hanging call still awaits an answer"
    );

    client.close_with(CloseCode(4000), "done here");
    within("the close", client.closed()).await;
    let outcome = within("the hanging call", hang).await.unwrap();
    assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    assert_eq!(within("the answered call", answered).await.unwrap(), 42);
    server.shutdown().await;
}
