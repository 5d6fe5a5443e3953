//! The reconnecting client: a server restart under a connected client, which reconnects by itself and goes
//! on calling through the same typed stub; calls made while disconnected; calls in flight at the drop;
//! events; giving up.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use birpc::prelude::*;
use birpc::{ClientEvent, CloseCode, CloseReason, Reconnect, ReconnectingClient, Reject, ServerHandle, WhileDown};
use common::within;
use tokio::sync::{Semaphore, broadcast};

#[birpc::rpc]
trait Counter {
    /// Counts the calls this server has answered.
    async fn count(&self) -> u64;
    /// Never answers; counts its invocations.
    async fn hang(&self);
}

#[derive(Clone)]
struct Counts {
    count: Arc<AtomicU64>,
    hang: Arc<AtomicU64>,
    hanging: Arc<Semaphore>,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            count: Arc::default(),
            hang: Arc::default(),
            hanging: Arc::new(Semaphore::new(0)),
        }
    }
}

struct CounterService(Counts);

impl Counter for CounterService {
    async fn count(&self) -> u64 {
        self.0.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn hang(&self) {
        self.0.hang.fetch_add(1, Ordering::SeqCst);
        self.0.hanging.add_permits(1);
        std::future::pending::<()>().await;
    }
}

async fn start(addr: SocketAddr, counts: Counts) -> ServerHandle {
    Server::builder()
        .shutdown_grace(Duration::from_millis(50))
        .bind(addr)
        .await
        .expect("bind (again) to the port")
        .serve(move |_| CounterService(counts.clone()).into_router())
}

fn quick() -> Reconnect {
    Reconnect::default().delays(Duration::from_millis(10), Duration::from_millis(100))
}

fn client(addr: SocketAddr, policy: Reconnect) -> ReconnectingClient {
    Client::builder()
        .reconnect(policy)
        .reconnecting(&format!("ws://{addr}"))
        .unwrap()
}

/// Reads events until one matches.
async fn wait_for(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    matches: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(event) if matches(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("no more events before {what}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_to_and_the_same_stub_goes_on() {
    let first = Counts::default();
    let server = start("127.0.0.1:0".parse().unwrap(), first.clone()).await;
    let addr = server.local_addr();
    let client = client(addr, quick());
    let mut events = client.events();
    client.connected().await.unwrap();
    let counter = CounterClient::new(client.peer().clone());
    assert_eq!(counter.count().await.unwrap(), 1);

    server.shutdown().await;
    let event = wait_for(&mut events, "the disconnection", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    let ClientEvent::Disconnected { reason } = event else {
        unreachable!()
    };
    assert_eq!(reason.code(), CloseCode::GOING_AWAY);
    // Nothing listens: attempts fail and the client waits longer each time.
    wait_for(&mut events, "a failed attempt", |e| {
        matches!(e, ClientEvent::Reconnecting { error: Some(_), .. })
    })
    .await;

    let second = Counts::default();
    let server = start(addr, second.clone()).await;
    wait_for(
        &mut events,
        "the reconnection",
        |e| matches!(e, ClientEvent::Connected { attempt } if *attempt > 0),
    )
    .await;
    assert_eq!(counter.count().await.unwrap(), 1, "answered by the new server");
    assert_eq!(counter.count().await.unwrap(), 2);
    assert_eq!(first.count.load(Ordering::SeqCst), 1);
    client.close();
    server.shutdown().await;
}

#[tokio::test]
async fn calls_made_while_disconnected_wait_for_the_next_connection() {
    let counts = Counts::default();
    let server = start("127.0.0.1:0".parse().unwrap(), counts.clone()).await;
    let addr = server.local_addr();
    let client = client(addr, quick());
    let mut events = client.events();
    client.connected().await.unwrap();
    server.shutdown().await;
    wait_for(&mut events, "the disconnection", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    assert!(!client.is_connected());

    let waiting = tokio::spawn(CounterClient::new(client.peer().clone()).count());
    let server = start(addr, counts.clone()).await;
    assert_eq!(within("the waiting call", waiting).await.unwrap().unwrap(), 1);
    client.close();
    server.shutdown().await;
}

#[tokio::test]
async fn calls_made_while_disconnected_can_fail_at_once() {
    let server = start("127.0.0.1:0".parse().unwrap(), Counts::default()).await;
    let client = client(server.local_addr(), quick().while_down(WhileDown::Fail));
    let mut events = client.events();
    client.connected().await.unwrap();
    server.shutdown().await;
    wait_for(&mut events, "the disconnection", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    let outcome = CounterClient::new(client.peer().clone()).count().await;
    assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");
    client.close();
}

/// A call in flight when the connection drops fails; it is not sent again on the next connection.
#[tokio::test]
async fn a_call_in_flight_at_the_drop_fails_and_is_never_sent_again() {
    let first = Counts::default();
    let server = start("127.0.0.1:0".parse().unwrap(), first.clone()).await;
    let addr = server.local_addr();
    let client = client(addr, quick());
    client.connected().await.unwrap();
    let counter = CounterClient::new(client.peer().clone());
    let in_flight = tokio::spawn(counter.hang());
    within("the call to arrive", first.hanging.acquire())
        .await
        .unwrap()
        .forget();

    server.shutdown().await;
    let outcome = within("the call in flight", in_flight).await.unwrap();
    assert!(matches!(outcome, Err(CallError::Disconnected(_))), "{outcome:?}");

    let second = Counts::default();
    let server = start(addr, second.clone()).await;
    assert_eq!(counter.count().await.unwrap(), 1);
    assert_eq!(first.hang.load(Ordering::SeqCst), 1);
    assert_eq!(second.hang.load(Ordering::SeqCst), 0, "the call was sent again");
    client.close();
    server.shutdown().await;
}

#[tokio::test]
async fn a_refusal_that_cannot_change_stops_the_client() {
    let server = Server::builder()
        .admit(|_| async { Err::<birpc::Admit, _>(Reject::unauthorized("no")) })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new());
    let client = client(server.local_addr(), quick());
    let reason = within("the client to stop", client.connected()).await.unwrap_err();
    assert!(reason.to_string().contains("401"), "{reason}");
    assert!(client.peer().is_closed());
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_gives_up_after_its_attempts() {
    // A port nobody listens on.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = client(addr, quick().max_attempts(Some(2)));
    let mut events = client.events();
    let reason = within("the client to give up", client.closed()).await;
    assert!(reason.to_string().contains("gave up after 2 attempts"), "{reason}");
    let outcome = client.peer().call::<u64>("count", ()).await;
    assert!(matches!(outcome, Err(CallError::Disconnected(_))));
    // The events were sent; a late subscriber still sees the end.
    let _ = events.try_recv();
}

#[tokio::test]
async fn closing_the_client_stops_it_for_good() {
    let server = start("127.0.0.1:0".parse().unwrap(), Counts::default()).await;
    let client = client(server.local_addr(), quick());
    let mut events = client.events();
    client.connected().await.unwrap();
    client.close();
    let event = wait_for(&mut events, "the end", |e| matches!(e, ClientEvent::Stopped { .. })).await;
    let ClientEvent::Stopped { reason } = event else {
        unreachable!()
    };
    assert!(
        matches!(reason, CloseReason::Local(ref frame) if frame.code == CloseCode::NORMAL),
        "{reason:?}"
    );
    assert_eq!(within("closed", client.closed()).await, reason);
    server.shutdown().await;
}

/// `Connected` is sent once the client follows the new connection: a call made the moment the event
/// arrives goes over it, even when calls made while down fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_on_connected_goes_over_the_new_connection() {
    let counts = Counts::default();
    let mut server = start("127.0.0.1:0".parse().unwrap(), counts.clone()).await;
    let addr = server.local_addr();
    let client = client(addr, quick().while_down(WhileDown::Fail));
    let mut events = client.events();
    let counter = CounterClient::new(client.peer().clone());
    for round in 1..=5u64 {
        wait_for(&mut events, "a connection", |e| {
            matches!(e, ClientEvent::Connected { .. })
        })
        .await;
        let outcome = counter.count().await;
        assert_eq!(outcome.unwrap(), round, "round {round}");
        server.shutdown().await;
        wait_for(&mut events, "the disconnection", |e| {
            matches!(e, ClientEvent::Disconnected { .. })
        })
        .await;
        server = start(addr, counts.clone()).await;
    }
    client.close();
    server.shutdown().await;
}
