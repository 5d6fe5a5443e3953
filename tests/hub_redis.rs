//! One hub across three server processes on a real `redis-server` (started by the test on a free port):
//! hub-wide ids, groups listed across nodes, notifications and calls to members on any node, a node
//! killed (its members leave, calls routed to it fail at once), Redis killed and brought back, and a node
//! that shuts down cleanly. (With the facade's `redis` feature, as the README's test command builds.)
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use birpc::prelude::*;
use common::{RedisServer, interop_server_with, within};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The liveness time the nodes run with: a killed node is found dead within it plus a third.
const LIVENESS_MS: u64 = 900;

/// A client of one node, named, that answers `whoami`, never answers `hang` if `hangs`, and reports
/// every `news` notification.
struct Member {
    name: String,
    peer: PeerHandle,
    id: u64,
    news: mpsc::UnboundedReceiver<Value>,
}

async fn member(addr: SocketAddr, name: &str, hangs: bool) -> Member {
    let (tx, news) = mpsc::unbounded_channel();
    let me = name.to_owned();
    let router = Router::new()
        .method("whoami", move |_: Context, _: NoParams| {
            let me = me.clone();
            async move { Ok::<_, ErrorObject>(me) }
        })
        .method("hang", move |_: Context, _: NoParams| async move {
            if hangs {
                std::future::pending::<()>().await;
            }
            Ok::<_, ErrorObject>("done")
        })
        .method("news", move |_: Context, params: Value| {
            let _ = tx.send(params);
            async { Ok::<_, ErrorObject>(()) }
        });
    let peer = Client::builder()
        .router(router)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    let id: u64 = peer.call("id", ()).await.unwrap();
    Member {
        name: name.to_owned(),
        peer,
        id,
        news,
    }
}

/// Starts a node of hub `hub` on `redis`.
async fn node(redis: &RedisServer, hub: &str) -> (tokio::process::Child, SocketAddr) {
    let liveness = LIVENESS_MS.to_string();
    interop_server_with(&["--redis", &redis.url(), "--hub", hub, "--liveness-ms", &liveness]).await
}

/// Asks `member`'s node for `group`'s members until they are `expected` (membership reaches Redis
/// asynchronously, and a dead node is found within the liveness time).
async fn members_become(member: &Member, group: &str, mut expected: Vec<u64>) {
    expected.sort_unstable();
    within("the group's members", async {
        loop {
            if let Ok(ids) = member.peer.call::<Vec<u64>>("members", (group,)).await
                && ids == expected
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_spans_three_server_processes() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(&redis, "spans").await);
    }
    let mut members = Vec::new();
    for (n, (_, addr)) in nodes.iter().enumerate() {
        for i in 0..2 {
            members.push(member(*addr, &format!("n{n}c{i}"), false).await);
        }
    }
    // Hub-wide ids: distinct, and exact in JavaScript.
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        6,
        "{ids:?}"
    );
    assert!(ids.iter().all(|&id| id < 1 << 53), "{ids:?}");
    for m in &members {
        assert!(m.peer.call::<bool>("join", ("room",)).await.unwrap());
    }
    members_become(&members[0], "room", ids.clone()).await;
    members_become(&members[5], "room", ids.clone()).await;

    // A notification from one node reaches every member on every node.
    members[0]
        .peer
        .call::<()>("notify_group", ("room", "news", ["hello"]))
        .await
        .unwrap();
    for m in &mut members {
        assert_eq!(
            within("the news", m.news.recv()).await.unwrap(),
            json!(["hello"]),
            "{}",
            m.name
        );
    }

    // A call to the whole group, from another node, collects each member's typed answer.
    let answers: BTreeMap<String, Value> = members[3]
        .peer
        .call("call_group", ("room", "whoami", (), 5000))
        .await
        .unwrap();
    let expected: BTreeMap<String, Value> = members
        .iter()
        .map(|m| (m.id.to_string(), json!({"result": m.name})))
        .collect();
    assert_eq!(answers, expected);

    // One connection of another node, by its hub-wide id.
    let name: String = members[0]
        .peer
        .call("call_member", (members[4].id, "whoami", (), 5000))
        .await
        .unwrap();
    assert_eq!(name, "n2c0");

    // Leaving, seen from every node.
    assert!(members[2].peer.call::<bool>("leave", ("room",)).await.unwrap());
    let without: Vec<u64> = ids.iter().copied().filter(|&id| id != members[2].id).collect();
    members_become(&members[5], "room", without).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_ghosts_and_redis_can_come_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (_a, a) = node(&redis, "faults").await;
    let (mut b, b_addr) = node(&redis, "faults").await;
    let (mut c, c_addr) = node(&redis, "faults").await;
    let mut on_a = [member(a, "a0", false).await, member(a, "a1", false).await];
    let on_b = member(b_addr, "b0", false).await;
    let on_c = member(c_addr, "c0", true).await;
    for m in on_a.iter().chain([&on_b, &on_c]) {
        m.peer.call::<bool>("join", ("room",)).await.unwrap();
    }
    let all = vec![on_a[0].id, on_a[1].id, on_b.id, on_c.id];
    members_become(&on_a[0], "room", all.clone()).await;

    // A group call that waits on node C, which is then killed: the call does not wait for its 60 s.
    let caller = on_a[0].peer.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let answers: BTreeMap<String, Value> = caller
            .call::<BTreeMap<String, Value>>("call_group", ("room", "hang", (), 60_000))
            .timeout(Some(Duration::from_secs(90)))
            .await
            .unwrap();
        (answers, started.elapsed())
    });
    // Node C has the call once C's member is asked: its `hang` answers nothing, the others answer.
    c.kill().await.unwrap();
    let (answers, took) = within("the group call", waiting).await.unwrap();
    assert!(took < Duration::from_secs(10), "the group call took {took:?}");
    assert_eq!(answers[&on_a[1].id.to_string()], json!({"result": "done"}));
    assert_eq!(answers[&on_b.id.to_string()], json!({"result": "done"}));
    let of_c = &answers[&on_c.id.to_string()];
    assert!(of_c.get("gone").is_some(), "{of_c}");
    // No ghost: C's member left the group, within the liveness time and a third.
    let living = vec![on_a[0].id, on_a[1].id, on_b.id];
    members_become(&on_a[0], "room", living.clone()).await;

    // Redis dies: this node still reaches its own members; the others are out of reach.
    redis.kill();
    on_a[0]
        .peer
        .call::<()>("notify_group", ("room", "news", ["while down"]))
        .await
        .unwrap();
    assert_eq!(
        within("local news", on_a[1].news.recv()).await.unwrap(),
        json!(["while down"])
    );
    assert!(on_a[0].peer.call::<Vec<u64>>("members", ("room",)).await.is_err());

    // Redis comes back empty: every node registers again with its members, and messages flow again.
    assert!(redis.restart().await);
    members_become(&on_a[0], "room", living.clone()).await;
    members_become(&on_b, "room", living).await;

    // Node B shuts down cleanly (SIGTERM): its member leaves at once, not after the liveness time.
    let pid = b.id().expect("node B's pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    within("node B to exit", b.wait()).await.unwrap();
    let left = on_a[0].peer.call::<Vec<u64>>("members", ("room",)).await.unwrap();
    let mut expected = vec![on_a[0].id, on_a[1].id];
    expected.sort_unstable();
    assert_eq!(left, expected);
}

/// Two hubs of one process on one Redis (each its own node): what the interop server does not reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_methods_reach_connections_of_another_node() {
    use birpc::redis::RedisBackplane;
    use birpc::{CallError, Hub, ServerHandle};

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    async fn node_of(redis: &RedisServer) -> (Hub, ServerHandle) {
        let backplane = RedisBackplane::builder(&redis.url()).hub("methods").build().unwrap();
        let hub = Hub::with_backplane(backplane).await.unwrap();
        let ids = hub.clone();
        let server = Server::builder()
            .hub(hub.clone())
            .bind("127.0.0.1:0")
            .await
            .unwrap()
            .serve(move |_| {
                let hub = ids.clone();
                Router::new().method("id", move |ctx: Context, _: NoParams| {
                    let id = hub.id_of(ctx.peer());
                    async move { Ok::<_, ErrorObject>(id) }
                })
            });
        (hub, server)
    }
    let (one, server_one) = node_of(&redis).await;
    let (two, server_two) = node_of(&redis).await;
    assert_ne!(one.node(), two.node());
    // A member on each node; the server's id for it, as the other node knows it.
    let mut a = member(server_one.local_addr(), "a", false).await;
    let mut b = member(server_two.local_addr(), "b", false).await;
    let (a_id, b_id) = (a.id, b.id);
    eventually_known(&one, a_id).await;
    eventually_known(&two, b_id).await;

    // Node one puts node two's connection in a group, and reaches it there.
    assert!(one.join(b_id, "pair"));
    assert!(one.join(a_id, "pair"));
    let mut expected = vec![a_id, b_id];
    expected.sort_unstable();
    within("the pair", async {
        loop {
            let mut ids = one.member_ids("pair").await.unwrap();
            ids.sort_unstable();
            if ids == expected && two.groups_of(b_id) == ["pair"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    one.notify(b_id, "news", ["to b"]).await.unwrap();
    assert_eq!(within("b's news", b.news.recv()).await.unwrap(), json!(["to b"]));
    // Everyone but a (named by its hub-wide id on node two).
    two.notify_group_except("pair", a_id, "news", ["not to a"]);
    assert_eq!(within("b's news", b.news.recv()).await.unwrap(), json!(["not to a"]));
    one.notify_all("news", ["to all"]);
    assert_eq!(within("a's news", a.news.recv()).await.unwrap(), json!(["to all"]));
    assert_eq!(within("b's news", b.news.recv()).await.unwrap(), json!(["to all"]));

    // Typed calls to a connection of the other node, its errors as they are.
    let name: String = one.call(b_id, "whoami", (), None).await.unwrap();
    assert_eq!(name, "b");
    match one.call::<String, _>(b_id, "no_such_method", (), None).await {
        Err(CallError::MethodNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
    let nobody = (u64::from(two.node()) << 32) | 0xffff_fff0;
    match one
        .call::<String, _>(nobody, "whoami", (), Some(Duration::from_secs(5)))
        .await
    {
        Err(CallError::Disconnected(reason)) => assert!(reason.to_string().contains("no such connection"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Leaving from the other node.
    assert!(one.leave(b_id, "pair"));
    within("b to leave", async {
        while !two.groups_of(b_id).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server_one.shutdown().await;
    server_two.shutdown().await;
    one.detach().await;
    two.detach().await;
}

/// Waits until `hub` has connection `id` (registered as the connection is accepted).
async fn eventually_known(hub: &birpc::Hub, id: u64) {
    within("the connection in the hub", async {
        while hub.get(id).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
