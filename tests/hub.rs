//! The hub over real sockets: connections by id with connect and disconnect callbacks, groups, broadcasts,
//! typed calls to one and to every member of a group, and slow consumers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use birpc::prelude::*;
use birpc::{CloseCode, CloseReason, Hub, SLOW_CONSUMER, ServerHandle};
use common::{RawClient, eventually, within};
use tokio::sync::{Semaphore, mpsc};

/// What clients export: the server calls it through the generated stub.
#[birpc::rpc]
trait Member {
    #[rpc(notification)]
    async fn news(&self, text: String);
    async fn still_there(&self) -> String;
}

struct Terminal {
    name: &'static str,
    news: mpsc::Sender<String>,
    /// Holds `still_there` until it has a permit (the slow member's is never given one at first).
    answer_gate: Arc<Semaphore>,
}

impl Member for Terminal {
    async fn news(&self, text: String) {
        let _ = self.news.send(text).await;
    }

    async fn still_there(&self) -> String {
        if let Ok(permit) = self.answer_gate.acquire().await {
            permit.forget();
        }
        format!("{} is here", self.name)
    }
}

/// A server whose connections join the groups named in `?groups=a,b` (or "lobby") and report to the test.
async fn server(hub: &Hub) -> ServerHandle {
    let joining = hub.clone();
    Server::builder()
        .hub(hub.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(move |_| {
            let hub = joining.clone();
            Router::new().method("join", move |ctx: Context, (groups,): (Vec<String>,)| {
                let hub = hub.clone();
                async move {
                    for group in &groups {
                        hub.join(ctx.peer().id(), group);
                    }
                    Ok::<_, ErrorObject>(ctx.peer().id())
                }
            })
        })
}

struct Joined {
    peer: PeerHandle,
    id: u64,
    news: mpsc::Receiver<String>,
    gate: Arc<Semaphore>,
}

async fn join(server: &ServerHandle, name: &'static str, groups: &[&str], open: bool) -> Joined {
    let (news_tx, news) = mpsc::channel(64);
    let gate = Arc::new(Semaphore::new(if open { 1 << 20 } else { 0 }));
    let terminal = Terminal {
        name,
        news: news_tx,
        answer_gate: gate.clone(),
    };
    let peer = Client::builder()
        .router(terminal.into_router())
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    let id: u64 = peer.call("join", (groups,)).await.unwrap();
    Joined { peer, id, news, gate }
}

#[tokio::test]
async fn connections_come_and_go_with_their_groups_and_callbacks() {
    let hub = Hub::new();
    let (events_tx, mut events) = mpsc::channel(16);
    let (connected, disconnected) = (events_tx.clone(), events_tx);
    hub.on_connect(move |peer| {
        let _ = connected.try_send(format!("+{}", peer.id()));
    });
    hub.on_disconnect(move |departure| {
        let (id, code) = (departure.peer.id(), departure.reason.code());
        let _ = disconnected.try_send(format!("-{id} {code} {:?}", departure.groups));
    });
    let server = server(&hub).await;
    let ada = join(&server, "ada", &["lobby", "ops"], true).await;
    let bob = join(&server, "bob", &["lobby"], true).await;
    assert_eq!(
        within("a connect event", events.recv()).await.unwrap(),
        format!("+{}", ada.id)
    );
    assert_eq!(
        within("a connect event", events.recv()).await.unwrap(),
        format!("+{}", bob.id)
    );
    assert_eq!(hub.len(), 2);
    let mut groups = hub.groups_of(ada.id);
    groups.sort();
    assert_eq!(groups, ["lobby", "ops"]);
    assert_eq!(hub.members("lobby").len(), 2);
    assert!(hub.leave(ada.id, "ops"));
    assert!(hub.members("ops").is_empty());

    bob.peer.close();
    assert_eq!(
        within("a disconnect event", events.recv()).await.unwrap(),
        format!("-{} 1000 [\"lobby\"]", bob.id)
    );
    assert!(hub.get(bob.id).is_none());
    assert_eq!(hub.members("lobby").len(), 1, "bob left his groups with his connection");
    server.shutdown().await;
}

async fn receive(member: &mut Joined) -> String {
    within("news", member.news.recv()).await.unwrap()
}

#[tokio::test]
async fn notifications_reach_one_a_group_or_everyone() {
    let hub = Hub::new();
    let server = server(&hub).await;
    let mut ada = join(&server, "ada", &["lobby"], true).await;
    let mut bob = join(&server, "bob", &["lobby"], true).await;
    let mut eve = join(&server, "eve", &["attic"], true).await;

    hub.notify(ada.id, "news", ("for ada",)).await.unwrap();
    let report = hub.notify_group("lobby", "news", ("for the lobby",));
    assert_eq!(report.delivered, 2);
    let report = hub.notify_group_except("lobby", bob.id, "news", ("not for bob",));
    assert_eq!(report.delivered, 1);
    assert_eq!(hub.notify_all("news", ("for all",)).delivered, 3);

    for expected in ["for ada", "for the lobby", "not for bob", "for all"] {
        assert_eq!(receive(&mut ada).await, expected);
    }
    for expected in ["for the lobby", "for all"] {
        assert_eq!(receive(&mut bob).await, expected);
    }
    assert_eq!(receive(&mut eve).await, "for all");
    server.shutdown().await;
}

/// The server calls every member of a group through the typed stub and collects each answer; a member that
/// is slow to answer delays nobody else's, and its own outcome is its timeout.
#[tokio::test]
async fn calls_to_a_group_collect_each_answer_without_waiting_for_the_slow() {
    let hub = Hub::new();
    let server = server(&hub).await;
    let ada = join(&server, "ada", &["lobby"], true).await;
    let bob = join(&server, "bob", &["lobby"], true).await;
    let slow = join(&server, "slow", &["lobby"], false).await;

    // A typed call to one member.
    let one = MemberClient::new(hub.get(ada.id).unwrap());
    assert_eq!(one.still_there().await.unwrap(), "ada is here");

    // Each answer is reported as it comes: the fast ones arrive while the slow one is still held.
    let (arrived_tx, mut arrived) = mpsc::channel(4);
    let collecting = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.each("lobby", |peer| {
                let arrived = arrived_tx.clone();
                async move {
                    let answer = MemberClient::new(peer.clone()).still_there().await;
                    let _ = arrived.send(peer.id()).await;
                    answer
                }
            })
            .await
        })
    };
    let mut fast = vec![
        within("an answer", arrived.recv()).await.unwrap(),
        within("an answer", arrived.recv()).await.unwrap(),
    ];
    fast.sort();
    let mut expected = vec![ada.id, bob.id];
    expected.sort();
    assert_eq!(fast, expected);
    slow.gate.add_permits(1);
    let answers = within("every answer", collecting).await.unwrap();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|(_, answer)| answer.is_ok()));

    // With a timeout, a member that does not answer in time gets its timeout, the others their answer.
    let answers = hub
        .call_group::<String, _>("lobby", "still_there", (), Some(Duration::from_millis(200)))
        .await;
    for (id, answer) in answers {
        if id == slow.id {
            assert!(matches!(answer, Err(CallError::Timeout(_))), "{answer:?}");
        } else {
            assert!(answer.unwrap().ends_with("is here"));
        }
    }
    server.shutdown().await;
}

/// A member that stops reading cannot stall a broadcast: once its queue is full it is closed with 1008,
/// and everyone else gets every message.
#[tokio::test]
async fn a_slow_consumer_is_closed_and_the_broadcast_goes_on() {
    let hub = Hub::new();
    let (reasons_tx, mut reasons) = mpsc::channel(4);
    hub.on_disconnect(move |departure| {
        let _ = reasons_tx.try_send((departure.peer.id(), departure.reason.clone()));
    });
    let server = Server::builder()
        .config(
            PeerConfig::default()
                .max_queued_frames(16)
                .heartbeat_interval(None)
                .close_timeout(Duration::from_millis(200)),
        )
        .hub(hub.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve({
            let hub = hub.clone();
            move |_| {
                let hub = hub.clone();
                Router::new().method("join", move |ctx: Context, (groups,): (Vec<String>,)| {
                    let hub = hub.clone();
                    async move {
                        for group in &groups {
                            hub.join(ctx.peer().id(), group);
                        }
                        Ok::<_, ErrorObject>(ctx.peer().id())
                    }
                })
            }
        });
    let mut reader = join(&server, "reader", &["news"], true).await;
    let mut stuck = RawClient::connect(server.local_addr()).await;
    stuck
        .ask(r#"{"jsonrpc":"2.0","method":"join","params":[["news"]],"id":1}"#)
        .await;
    // From now on the raw client reads nothing.
    let payload = "x".repeat(32 << 10);
    let mut sent = 0;
    let closed = within("the slow consumer to be closed", async {
        loop {
            let report = hub.notify_group("news", "news", (&payload,));
            sent += 1;
            if !report.closed.is_empty() {
                return report.closed;
            }
            // Give the writers a turn, as a real broadcaster between messages would.
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(closed.len(), 1);
    assert_ne!(closed[0], reader.id);
    let (id, reason) = within("the disconnect", reasons.recv()).await.unwrap();
    assert_eq!(id, closed[0]);
    let CloseReason::Local(frame) = reason else {
        panic!("{reason:?}")
    };
    assert_eq!((frame.code, &*frame.reason), (CloseCode::POLICY, SLOW_CONSUMER));
    // The reader got every message, and the broadcast goes on for it.
    for _ in 0..sent {
        within("a message", reader.news.recv()).await.unwrap();
    }
    assert_eq!(hub.notify_group("news", "news", ("after",)).delivered, 1);
    assert_eq!(within("the last message", reader.news.recv()).await.unwrap(), "after");
    drop(stuck);
    eventually("the hub to forget the slow consumer", || hub.len() == 1).await;
    server.shutdown().await;
}

/// The hub works from outside any handler: a background task broadcasting on a timer, say.
#[tokio::test]
async fn the_hub_is_reachable_from_outside_handlers() {
    let hub = Hub::new();
    let server = server(&hub).await;
    let mut ada = join(&server, "ada", &["lobby"], true).await;
    let background = tokio::spawn({
        let hub = hub.clone();
        async move { hub.notify_all("news", ("from a task",)).delivered }
    });
    assert_eq!(background.await.unwrap(), 1);
    assert_eq!(within("news", ada.news.recv()).await.unwrap(), "from a task");
    server.shutdown().await;
}
