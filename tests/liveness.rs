//! Liveness: heartbeats on both sides, late and unknown answers, malformed answers, graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use birpc::prelude::*;
use birpc::{CloseCode, CloseReason, ServerHandle, code};
use common::{RawClient, eventually, within};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

fn quick_heartbeat() -> PeerConfig {
    PeerConfig::default()
        .heartbeat_interval(Some(Duration::from_millis(100)))
        .heartbeat_timeout(Duration::from_millis(100))
}

/// A server that reports, for each connection that calls `watch`, why it ended.
async fn watching_server(config: PeerConfig) -> (ServerHandle, mpsc::Receiver<CloseReason>) {
    let (reasons_tx, reasons) = mpsc::channel(4);
    let server = Server::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let reasons = reasons_tx.clone();
            Router::new().method("watch", move |ctx: Context, _: NoParams| {
                let (peer, reasons) = (ctx.peer().clone(), reasons.clone());
                tokio::spawn(async move { reasons.send(peer.closed().await).await });
                async { Ok::<_, ErrorObject>(()) }
            })
        });
    (server, reasons)
}

#[tokio::test]
async fn the_server_gives_up_a_client_that_answers_no_ping() {
    let (server, mut reasons) = watching_server(quick_heartbeat()).await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    raw.ask(r#"{"jsonrpc":"2.0","method":"watch","id":1}"#).await;
    // The raw client stops reading, so it answers no ping (a WebSocket answers pings while reading).
    let reason = within("the server to give up", reasons.recv()).await.unwrap();
    let CloseReason::Local(frame) = reason else {
        panic!("{reason:?}")
    };
    assert_eq!(frame.code, CloseCode::INTERNAL);
    assert!(frame.reason.contains("no sign of life"), "{frame}");
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_gives_up_a_server_that_answers_no_ping() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mute = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // Accepts the WebSocket, then never reads it again.
        tokio_tungstenite::accept_async(tcp).await.unwrap()
    });
    let peer = Client::builder()
        .config(quick_heartbeat())
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    let _socket = mute.await.unwrap();
    let reason = within("the client to give up", peer.closed()).await;
    assert_eq!(reason.code(), CloseCode::INTERNAL, "{reason}");
}

#[tokio::test]
async fn a_quiet_but_healthy_connection_stays_up() {
    let (server, _reasons) = watching_server(quick_heartbeat()).await;
    let peer = Client::builder()
        .config(quick_heartbeat())
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    // Ten heartbeat intervals of silence, answered by pings and pongs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!peer.is_closed());
    peer.call::<()>("watch", ()).await.unwrap();
    server.shutdown().await;
}

/// A raw server that answers the client's first call only after that call was withdrawn (it waits for
/// the `$/cancelRequest`), then answers the next call normally.
#[tokio::test]
async fn a_late_answer_is_dropped_and_the_connection_lives_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let first = next_json(&mut ws).await;
        let cancel = next_json(&mut ws).await;
        assert_eq!(cancel["method"], "$/cancelRequest");
        assert_eq!(cancel["params"]["id"], first["id"]);
        // Too late: the answer, an answer nobody asked for, and a malformed one.
        send_json(&mut ws, json!({"jsonrpc": "2.0", "id": first["id"], "result": "late"})).await;
        send_json(&mut ws, json!({"jsonrpc": "2.0", "id": 987654, "result": "unknown"})).await;
        send_json(
            &mut ws,
            json!({"jsonrpc": "2.0", "id": "not ours", "error": {"code": 1, "message": "?"}}),
        )
        .await;
        let second = next_json(&mut ws).await;
        send_json(
            &mut ws,
            json!({"jsonrpc": "2.0", "id": second["id"], "result": "on time"}),
        )
        .await;
        ws
    });
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let first = peer
        .call::<String>("slow", ())
        .timeout(Some(Duration::from_millis(50)))
        .await;
    assert!(matches!(first, Err(CallError::Timeout(_))));
    assert_eq!(peer.call::<String>("fast", ()).await.unwrap(), "on time");
    assert!(!peer.is_closed());
    let _ws = raw_server.await.unwrap();
}

#[tokio::test]
async fn a_malformed_answer_fails_its_call_only() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let first = next_json(&mut ws).await;
        let both = json!({"jsonrpc": "2.0", "id": first["id"], "result": 1, "error": {"code": 1, "message": "x"}});
        send_json(&mut ws, both).await;
        let second = next_json(&mut ws).await;
        send_json(&mut ws, json!({"jsonrpc": "1.0", "id": second["id"], "result": 1})).await;
        let third = next_json(&mut ws).await;
        send_json(&mut ws, json!({"jsonrpc": "2.0", "id": third["id"], "result": 3})).await;
        ws
    });
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    assert!(matches!(
        peer.call::<u8>("a", ()).await,
        Err(CallError::InvalidResponse(_))
    ));
    assert!(matches!(
        peer.call::<u8>("b", ()).await,
        Err(CallError::InvalidResponse(_))
    ));
    assert_eq!(peer.call::<u8>("c", ()).await.unwrap(), 3);
    let _ws = raw_server.await.unwrap();
}

/// Shutdown lets a running handler finish and answer, refuses new requests with -32002 meanwhile, then
/// closes with 1001.
#[tokio::test]
async fn a_graceful_shutdown_finishes_what_runs_and_refuses_the_rest() {
    let entered = Arc::new(Semaphore::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (entered2, gate2) = (entered.clone(), gate.clone());
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let (entered, gate) = (entered2.clone(), gate2.clone());
        Router::new()
            .method("slow", move |_: Context, _: NoParams| {
                let (entered, gate) = (entered.clone(), gate.clone());
                async move {
                    entered.add_permits(1);
                    gate.acquire()
                        .await
                        .map_err(|_| ErrorObject::internal_error())?
                        .forget();
                    Ok::<_, ErrorObject>("finished")
                }
            })
            .method("quick", |_: Context, _: NoParams| async {
                Ok::<_, ErrorObject>("quick")
            })
    });
    let peer = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let slow = tokio::spawn(peer.call::<String>("slow", ()));
    within("the slow handler", entered.acquire()).await.unwrap().forget();
    let shutdown = tokio::spawn(server.shutdown());

    // Sooner or later (once the shutdown has reached this connection), new requests are refused.
    let refused = within("a refusal", async {
        loop {
            match peer.call::<String>("quick", ()).await {
                Ok(_) => tokio::task::yield_now().await,
                Err(error) => return error,
            }
        }
    })
    .await;
    let Some(object) = refused.error_object() else {
        panic!("{refused:?}")
    };
    assert_eq!(object.code(), code::SHUTTING_DOWN);

    gate.add_permits(1);
    assert_eq!(within("the slow answer", slow).await.unwrap().unwrap(), "finished");
    let reason = within("the close", peer.closed()).await;
    assert_eq!(
        reason,
        CloseReason::Remote(birpc::CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"))
    );
    within("the shutdown", shutdown).await.unwrap();
}

#[tokio::test]
async fn a_shutdown_does_not_wait_past_its_grace() {
    let server = Server::builder()
        .shutdown_grace(Duration::from_millis(100))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| {
            Router::new().method("forever", |_: Context, _: NoParams| async {
                futures::future::pending::<Result<(), ErrorObject>>().await
            })
        });
    let peer = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let stuck = tokio::spawn(peer.call::<()>("forever", ()));
    // Make sure the call is running before shutting down.
    eventually("the call to be pending", || peer.stats().pending_calls == 1).await;
    within("the shutdown", server.shutdown()).await;
    let outcome = within("the stuck call", stuck).await.unwrap();
    assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
}

async fn next_json<S>(ws: &mut WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match within("a message", ws.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}

async fn send_json<S>(ws: &mut WebSocketStream<S>, value: Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Two peers on an in-memory pair, the first with `config` and `router`.
fn idle_pair(config: PeerConfig, router: Router) -> (PeerHandle, PeerHandle) {
    let (a, b) = birpc::memory::pair(16);
    let watched = Peer::builder().config(config).router(router).spawn(a);
    let other = Peer::builder()
        .config(PeerConfig::default().heartbeat_interval(None))
        .spawn(b);
    (watched, other)
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout_and_not_before() {
    let config = PeerConfig::default()
        .heartbeat_interval(None)
        .idle_timeout(Some(Duration::from_secs(30)));
    let router = Router::new().method("ping", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>("pong") });
    let (watched, other) = idle_pair(config, router);
    let started = tokio::time::Instant::now();
    // A call at 20 s: the silence starts again from its arrival.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(other.call::<String>("ping", ()).await.unwrap(), "pong");
    let reason = watched.closed().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(50),
        "30 s after the last thing heard"
    );
    let CloseReason::Local(frame) = reason else {
        panic!("{reason:?}")
    };
    assert_eq!((frame.code, &*frame.reason), (CloseCode::GOING_AWAY, "idle"));
    let CloseReason::Remote(frame) = other.closed().await else {
        panic!("the other side should see the close frame")
    };
    assert_eq!(frame.code, CloseCode::GOING_AWAY);
}

#[tokio::test(start_paused = true)]
async fn a_connection_waiting_on_a_handler_is_not_idle() {
    let config = PeerConfig::default()
        .heartbeat_interval(None)
        .idle_timeout(Some(Duration::from_secs(5)));
    let router = Router::new().method("slow", |_: Context, _: NoParams| async {
        tokio::time::sleep(Duration::from_secs(50)).await;
        Ok::<_, ErrorObject>("done")
    });
    let (watched, other) = idle_pair(config, router);
    let started = tokio::time::Instant::now();
    // 50 s of silence on the wire while the handler runs: the answer still comes.
    assert_eq!(other.call::<String>("slow", ()).await.unwrap(), "done");
    assert_eq!(started.elapsed(), Duration::from_secs(50));
    assert!(!watched.is_closed());
    // Then idle: closed 5 s later.
    watched.closed().await;
    assert_eq!(started.elapsed(), Duration::from_secs(55));
}

/// Two peers over an in-memory pair without heartbeats: `caller` with `config`; the other exporting `never`
/// (never answered) and `slow` (answered 1 after 500 ms).
fn quiet_pair(config: PeerConfig) -> (PeerHandle, PeerHandle) {
    let router = Router::new()
        .method("never", |_: Context, _: NoParams| async {
            std::future::pending::<()>().await;
            Ok::<_, ErrorObject>(())
        })
        .method("slow", |_: Context, _: NoParams| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, ErrorObject>(1)
        });
    let (a, b) = birpc::memory::pair(16);
    let caller = Peer::builder().config(config).spawn(a);
    let callee = Peer::builder()
        .config(PeerConfig::default().heartbeat_interval(None))
        .router(router)
        .spawn(b);
    (caller, callee)
}

/// After 10 ms of quiet, a call of `never` with a timeout of 200 ms fails with a timeout at exactly 200 ms.
async fn a_200_ms_call_times_out_at_200_ms(caller: &PeerHandle) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = tokio::time::Instant::now();
    let call = caller.call::<()>("never", ()).timeout(Some(Duration::from_millis(200)));
    // (A call whose deadline is never set would wait for ever: give up after 10 s of the paused clock.)
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call timed out by its own timeout");
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

/// On a connection with an idle timeout of 1 s, a call of `slow` (with `timeout`) made 0.9 s into the quiet
/// and answered 0.5 s later: past the idle timeout, but the call was in flight, so it is answered.
async fn a_slow_call_outlives_the_idle_timeout(timeout: Option<Duration>) {
    let config = PeerConfig::default()
        .heartbeat_interval(None)
        .idle_timeout(Some(Duration::from_secs(1)));
    let (caller, _callee) = quiet_pair(config);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(caller.call::<u32>("slow", ()).timeout(timeout).await.unwrap(), 1);
    assert!(!caller.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_call_made_on_a_quiet_connection_times_out_at_its_own_timeout() {
    // Nothing else wakes the caller's connection: no heartbeat, no traffic; the call alone must.
    let (caller, _callee) = quiet_pair(PeerConfig::default().heartbeat_interval(None));
    a_200_ms_call_times_out_at_200_ms(&caller).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_made_beside_one_without_timeout_is_still_timed() {
    // The table is not empty (a call without timeout waits): the new call alone must wake the connection.
    let (caller, _callee) = quiet_pair(PeerConfig::default().heartbeat_interval(None));
    let forever = tokio::spawn(caller.call::<()>("never", ()).timeout(None));
    a_200_ms_call_times_out_at_200_ms(&caller).await;
    assert!(!forever.is_finished(), "the call without timeout still waits");
    forever.abort();
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_keeps_an_idle_timeout_from_closing_the_connection() {
    a_slow_call_outlives_the_idle_timeout(PeerConfig::default().call_timeout).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_without_timeout_in_flight_keeps_an_idle_timeout_from_closing_the_connection() {
    // No deadline to set, yet the call in flight counts: the first call in an empty table wakes the
    // connection, and the idle timer looks at the table again before it closes.
    a_slow_call_outlives_the_idle_timeout(None).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_due_before_the_armed_timer_moves_it() {
    // The connection's timer is armed for the heartbeat a minute away: the call's deadline comes first.
    let config = PeerConfig::default().heartbeat_interval(Some(Duration::from_secs(60)));
    let (caller, _callee) = quiet_pair(config);
    a_200_ms_call_times_out_at_200_ms(&caller).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_made_after_a_longer_one_is_timed_by_its_own_timeout() {
    let (caller, _callee) = quiet_pair(PeerConfig::default().heartbeat_interval(None));
    let long = tokio::spawn(caller.call::<()>("never", ()).timeout(Some(Duration::from_secs(10))));
    a_200_ms_call_times_out_at_200_ms(&caller).await;
    assert!(!long.is_finished(), "the 10 s call still waits");
    long.abort();
}

#[tokio::test(start_paused = true)]
async fn a_call_due_after_the_armed_timer_is_timed_from_when_it_was_made() {
    let (caller, _callee) = quiet_pair(PeerConfig::default().heartbeat_interval(None));
    let started = tokio::time::Instant::now();
    let first = caller.call::<()>("never", ()).timeout(Some(Duration::from_millis(200)));
    let second = async {
        // Made while the timer waits for the first call's deadline, and due 200 ms after it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = caller
            .call::<()>("never", ())
            .timeout(Some(Duration::from_millis(300)))
            .await;
        (outcome, started.elapsed())
    };
    let ((first, first_at), (second, second_at)) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(async { (first.await, started.elapsed()) }, second)
    })
    .await
    .expect("both calls timed out by their own timeouts");
    assert!(matches!(first, Err(CallError::Timeout(_))), "{first:?}");
    assert!(matches!(second, Err(CallError::Timeout(_))), "{second:?}");
    assert_eq!(first_at, Duration::from_millis(200));
    assert_eq!(second_at, Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn a_call_made_while_a_handler_runs_is_timed_although_the_idle_timer_went_away() {
    // The caller's timer was set for the idle timeout; a handler starts, nothing is timed any more, and
    // then a call is made: its deadline must set the timer again.
    let config = PeerConfig::default()
        .heartbeat_interval(None)
        .idle_timeout(Some(Duration::from_secs(5)));
    let hold = Router::new().method("hold", |_: Context, _: NoParams| async {
        tokio::time::sleep(Duration::from_secs(50)).await;
        Ok::<_, ErrorObject>(())
    });
    let never = Router::new().method("never", |_: Context, _: NoParams| async {
        std::future::pending::<()>().await;
        Ok::<_, ErrorObject>(())
    });
    let (a, b) = birpc::memory::pair(16);
    let caller = Peer::builder().config(config).router(hold).spawn(a);
    let callee = Peer::builder()
        .config(PeerConfig::default().heartbeat_interval(None))
        .router(never)
        .spawn(b);
    let held = tokio::spawn(callee.call::<()>("hold", ()).timeout(None));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    let call = caller.call::<()>("never", ()).timeout(Some(Duration::from_secs(10)));
    let outcome = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call timed out by its own timeout, before the handler's end");
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert!(!held.is_finished(), "the handler still runs");
    held.abort();
}

#[tokio::test(start_paused = true)]
async fn a_call_made_on_an_idle_connection_restarts_its_idle_time() {
    let config = PeerConfig::default()
        .heartbeat_interval(None)
        .idle_timeout(Some(Duration::from_secs(1)))
        .close_timeout(Duration::from_millis(100));
    // The other end is never read: nothing answers (not even a close frame: a close ends 100 ms after it is
    // asked for), nothing arrives.
    let (a, _silent) = birpc::memory::pair(16);
    let caller = Peer::builder().config(config).spawn(a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A call in flight from 0.5 s to 0.9 s, given up by its caller: the connection was not idle then.
    let given_up = tokio::time::timeout(Duration::from_millis(400), caller.call::<()>("never", ()).timeout(None)).await;
    assert!(given_up.is_err(), "the call was given up");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !caller.is_closed(),
        "closed as idle 1.5 s in, though a call was in flight until 0.9 s"
    );
}
