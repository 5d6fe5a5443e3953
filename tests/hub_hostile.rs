//! The hub across servers on a real `redis-server`, treated roughly: garbage published by hand on the
//! hub's channels, a node killed in the middle of a group call, calls to nodes that are gone or never
//! were, Redis emptied under the nodes' feet (FLUSHALL), and Redis dropping a node's connection.
//! Every node here is a hub of this process on its own backplane; a node is "killed" by dropping the
//! runtime it runs on (its tasks stop at once, its sockets close, it never says goodbye).
//!
//! Several tests here found defects, since fixed; each keeps the behaviour it asks for.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use birpc::prelude::*;
use birpc::redis::RedisBackplane;
use birpc::{Hub, NodeId, ServerHandle};
use common::{RedisServer, within};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// The liveness time of the nodes that must be found dead quickly.
const LIVENESS: Duration = Duration::from_millis(900);

/// How long a test of a bug waits for the right behaviour before it fails.
const BUG_PATIENCE: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------------------
// Redis by hand.
// ---------------------------------------------------------------------------------------------------

/// A connection to Redis speaking RESP by hand (no client library in the tests' dependencies).
struct Resp {
    stream: BufReader<TcpStream>,
}

/// A reply of Redis.
#[derive(Debug, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Resp {
    async fn connect(redis: &RedisServer) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", redis.port))
            .await
            .expect("connect to Redis");
        Self {
            stream: BufReader::new(stream),
        }
    }

    async fn command(&mut self, args: &[&[u8]]) -> Reply {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&frame).await.expect("write to Redis");
        within("Redis's reply", self.reply()).await
    }

    async fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("read from Redis");
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(rest.parse().unwrap()),
            "$" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut bulk = vec![0; usize::try_from(len).unwrap() + 2];
                self.stream.read_exact(&mut bulk).await.unwrap();
                bulk.truncate(bulk.len() - 2);
                Reply::Bulk(Some(bulk))
            }
            "*" => {
                let len: i64 = rest.parse().unwrap();
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(Box::pin(self.reply()).await);
                }
                Reply::Array(items)
            }
            other => panic!("unexpected reply {other}{rest}"),
        }
    }

    /// Publishes `payload` on `channel`; how many subscribers got it.
    async fn publish(&mut self, channel: &str, payload: &[u8]) -> i64 {
        match self.command(&[b"PUBLISH", channel.as_bytes(), payload]).await {
            Reply::Integer(receivers) => receivers,
            other => panic!("PUBLISH: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Nodes and members.
// ---------------------------------------------------------------------------------------------------

/// A node of the hub running on the test's runtime.
struct Node {
    hub: Hub,
    server: ServerHandle,
}

async fn serve(hub: &Hub) -> ServerHandle {
    let ids = hub.clone();
    Server::builder()
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
        })
}

async fn attach(redis: &RedisServer, name: &str, liveness: Duration) -> Hub {
    let backplane = RedisBackplane::builder(&redis.url())
        .hub(name)
        .liveness(liveness)
        .build()
        .unwrap();
    Hub::with_backplane(backplane).await.unwrap()
}

async fn node(redis: &RedisServer, name: &str, liveness: Duration) -> Node {
    let hub = attach(redis, name, liveness).await;
    let server = serve(&hub).await;
    Node { hub, server }
}

impl Node {
    async fn stop(self) {
        within("the server's shutdown", self.server.shutdown()).await;
        within("the detach", self.hub.detach()).await;
    }
}

/// A node running on a runtime of its own, in a thread, that the test can kill.
struct Doomed {
    node: NodeId,
    addr: SocketAddr,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Doomed {
    fn start(redis: &RedisServer, name: &str, liveness: Duration) -> Self {
        let url = redis.url();
        let name = name.to_owned();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let backplane = RedisBackplane::builder(&url)
                    .hub(&name)
                    .liveness(liveness)
                    .build()
                    .unwrap();
                let hub = Hub::with_backplane(backplane).await.unwrap();
                let server = serve(&hub).await;
                let (kill, killed) = oneshot::channel::<()>();
                ready_tx.send((hub.node(), server.local_addr(), kill)).unwrap();
                let _ = killed.await;
                // Nothing is shut down: the runtime goes with every task of the node.
                std::mem::forget(server);
                std::mem::forget(hub);
            });
            runtime.shutdown_background();
        });
        let (node, addr, kill) = ready.recv_timeout(common::PATIENCE).expect("the doomed node to start");
        Self {
            node,
            addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Kills the node: its runtime is dropped with everything on it.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of a node: it answers `whoami` with its name, `hang` never if it hangs (reporting that it was
/// asked), and reports every `news` notification.
struct Member {
    peer: PeerHandle,
    id: u64,
    news: mpsc::UnboundedReceiver<Value>,
    asked: mpsc::UnboundedReceiver<()>,
}

async fn member(addr: SocketAddr, name: &str, hangs: bool) -> Member {
    let (news_tx, news) = mpsc::unbounded_channel();
    let (asked_tx, asked) = mpsc::unbounded_channel();
    let me = name.to_owned();
    let router = Router::new()
        .method("whoami", move |_: Context, _: NoParams| {
            let me = me.clone();
            async move { Ok::<_, ErrorObject>(me) }
        })
        .method("hang", move |_: Context, _: NoParams| {
            let _ = asked_tx.send(());
            async move {
                if hangs {
                    std::future::pending::<()>().await;
                }
                Ok::<_, ErrorObject>("done".to_owned())
            }
        })
        .method("news", move |_: Context, params: Value| {
            let _ = news_tx.send(params);
            async { Ok::<_, ErrorObject>(()) }
        });
    let peer = Client::builder()
        .router(router)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    let id: u64 = peer.call("id", ()).await.unwrap();
    Member { peer, id, news, asked }
}

/// Waits until `hub` has connection `id` (registered as the connection is accepted).
async fn known(hub: &Hub, id: u64) {
    within("the connection in the hub", async {
        while hub.get(id).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Waits until `hub` sees `group`'s members (on every node) as `expected`.
async fn members_become(hub: &Hub, group: &str, mut expected: Vec<u64>) {
    expected.sort_unstable();
    within("the group's members", async {
        loop {
            if let Ok(mut ids) = hub.member_ids(group).await {
                ids.sort_unstable();
                if ids == expected {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Whether `hub` sees `group` with `id` in it, within `limit`.
async fn joins_within(hub: &Hub, group: &str, id: u64, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        loop {
            if hub.member_ids(group).await.is_ok_and(|ids| ids.contains(&id)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

fn channel_all(name: &str) -> String {
    format!("birpc:{name}:all")
}

fn channel_of(name: &str, node: NodeId) -> String {
    format!("birpc:{name}:node:{node}")
}

// ---------------------------------------------------------------------------------------------------
// Garbage on the bus.
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_hubs_channels_crashes_no_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "garbage";
    let one = node(&redis, name, LIVENESS).await;
    let two = node(&redis, name, LIVENESS).await;
    let mut a = member(one.server.local_addr(), "a", false).await;
    let mut b = member(two.server.local_addr(), "b", false).await;
    known(&one.hub, a.id).await;
    known(&two.hub, b.id).await;
    assert!(one.hub.join(a.id, "room"));
    assert!(one.hub.join(b.id, "room"));
    members_become(&one.hub, "room", vec![a.id, b.id]).await;

    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_params = format!(
        r#"{{"call":{{"from":{},"call":7,"ids":[],"method":"whoami","params":{deep_array}}}}}"#,
        one.hub.node()
    );
    let mut garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{}".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        br#"{"notify":{}}"#.to_vec(),
        br#"{"notify":{"from":"x","target":"all","frame":1}}"#.to_vec(),
        br#"{"notify":{"from":999,"target":{"group":["room"]},"frame":"x"}}"#.to_vec(),
        br#"{"call":{"from":999,"call":1,"ids":"nope","method":"whoami"}}"#.to_vec(),
        br#"{"call":{"from":999,"call":1,"ids":[1.5],"method":"whoami"}}"#.to_vec(),
        br#"{"answers":{"call":999999,"outcomes":[[1,{"result":1}]]}}"#.to_vec(),
        br#"{"answers":{"call":1,"outcomes":"x"}}"#.to_vec(),
        br#"{"answers":{"call":1,"outcomes":[[1,{"timeout":18446744073709551615}]]}}"#.to_vec(),
        br#"{"join":{"id":"x","group":"room"}}"#.to_vec(),
        br#"{"leave":{"id":-1,"group":7}}"#.to_vec(),
        br#"{"unknown":{"id":1}}"#.to_vec(),
        br#"{"notify":{"from":999,"target":"all","frame":"x"},"join":{"id":1,"group":"g"}}"#.to_vec(),
        // Valid envelopes with a frame that is no JSON-RPC: delivered as is to the clients, which answer
        // -32700 (the server drops that answer to nothing it sent).
        br#"{"notify":{"from":999,"target":"all","frame":"x"}}"#.to_vec(),
        br#"{"notify":{"from":999,"target":{"group":"room"},"frame":"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}"}}"#
            .to_vec(),
        b"node-down:".to_vec(),
        b"node-down:abc".to_vec(),
        b"node-down:-1".to_vec(),
        b"node-down:4294967296".to_vec(),
        b"node-down:99999999999999999999999".to_vec(),
        b"node-down:0".to_vec(),
        deep_array.clone().into_bytes(),
        deep_params.into_bytes(),
        vec![b'x'; 1 << 20],
    ];
    // A call from a node that does not exist, to a real connection, with the longest timeout there is:
    // node two runs it and answers into the void.
    garbage.push(
        format!(
            r#"{{"call":{{"from":999,"call":5,"ids":[{}],"method":"whoami","timeout_ms":18446744073709551615}}}}"#,
            b.id
        )
        .into_bytes(),
    );
    let mut resp = Resp::connect(&redis).await;
    for payload in &garbage {
        assert_eq!(resp.publish(&channel_all(name), payload).await, 2);
        for node in [one.hub.node(), two.hub.node()] {
            assert_eq!(resp.publish(&channel_of(name, node), payload).await, 1);
        }
    }

    // Both nodes still carry everything: broadcasts, calls and group calls across nodes, membership.
    one.hub.notify_group("room", "news", ["after the garbage"]);
    assert_eq!(
        within("a's news", a.news.recv()).await.unwrap(),
        json!(["after the garbage"])
    );
    assert_eq!(
        within("b's news", b.news.recv()).await.unwrap(),
        json!(["after the garbage"])
    );
    let name_of_b: String = within(
        "a call to b",
        one.hub.call(b.id, "whoami", (), Some(Duration::from_secs(5))),
    )
    .await
    .unwrap();
    assert_eq!(name_of_b, "b");
    let answers = within(
        "a group call",
        two.hub
            .call_group::<String, _>("room", "whoami", (), Some(Duration::from_secs(5))),
    )
    .await;
    let answers: BTreeMap<u64, String> = answers.into_iter().map(|(id, r)| (id, r.unwrap())).collect();
    assert_eq!(
        answers,
        BTreeMap::from([(a.id, "a".to_owned()), (b.id, "b".to_owned())])
    );
    assert!(two.hub.leave(a.id, "room"));
    members_become(&two.hub, "room", vec![b.id]).await;
    assert!(a.peer.is_connected() && b.peer.is_connected());
    one.stop().await;
    two.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Nodes that die or never were.
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_waiting_on_a_node_killed_mid_call_ends_when_the_node_is_found_dead() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "killed";
    let one = node(&redis, name, LIVENESS).await;
    let mut doomed = Doomed::start(&redis, name, LIVENESS);
    let mut a = member(one.server.local_addr(), "a", false).await;
    let mut b = member(doomed.addr, "b", true).await;
    known(&one.hub, a.id).await;
    assert!(one.hub.join(a.id, "room"));
    assert!(one.hub.join(b.id, "room"));
    members_become(&one.hub, "room", vec![a.id, b.id]).await;
    // No timeout at all: only the node's death can end b's call.
    let hub = one.hub.clone();
    let calling = tokio::spawn(async move { hub.call_group::<String, _>("room", "hang", (), None).await });
    within("a to be asked", a.asked.recv()).await.unwrap();
    within("b to be asked", b.asked.recv()).await.unwrap();
    doomed.kill();
    let answers = within("the group call", calling).await.unwrap();
    let answers: BTreeMap<u64, Result<String, CallError>> = answers.into_iter().collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[&a.id].as_ref().unwrap(), "done");
    assert!(
        matches!(&answers[&b.id], Err(CallError::Disconnected(_))),
        "{:?}",
        answers[&b.id]
    );
    assert_ne!(doomed.node, one.hub.node());
    // No ghost left behind.
    members_become(&one.hub, "room", vec![a.id]).await;
    one.stop().await;
}

/// `Hub::call`: "[`CallError::Disconnected`] when there is no such connection, or its node is gone". A
/// connection id naming a node that never existed is no such connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_connection_of_a_node_that_never_existed_fails() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let one = node(&redis, "nowhere", LIVENESS).await;
    let nobody = (77_u64 << 32) | 5;
    let outcome = tokio::time::timeout(BUG_PATIENCE, one.hub.call::<String, _>(nobody, "whoami", (), None)).await;
    match outcome {
        Ok(Err(CallError::Disconnected(_))) => {}
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("a call to node 77, which never existed, was still waiting after {BUG_PATIENCE:?}"),
    }
    one.stop().await;
}

/// The same for a node that was found dead before the call: the caller's hub got its `NodeDown` already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_connection_of_a_node_found_dead_before_fails() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "found-dead";
    let one = node(&redis, name, LIVENESS).await;
    let mut doomed = Doomed::start(&redis, name, LIVENESS);
    let b = member(doomed.addr, "b", false).await;
    assert!(one.hub.join(b.id, "room"));
    members_become(&one.hub, "room", vec![b.id]).await;
    doomed.kill();
    // Found dead: its members taken out, and the node-down message sent to every node along with that.
    members_become(&one.hub, "room", vec![]).await;
    let outcome = tokio::time::timeout(BUG_PATIENCE, one.hub.call::<String, _>(b.id, "whoami", (), None)).await;
    match outcome {
        Ok(Err(CallError::Disconnected(_))) => {}
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("a call to a node found dead was still waiting after {BUG_PATIENCE:?}"),
    }
    one.stop().await;
}

// ---------------------------------------------------------------------------------------------------
// Redis losing its data, or a node's connection.
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_comes_back_after_redis_flushes_everything() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "flushed";
    let one = node(&redis, name, LIVENESS).await;
    let two = node(&redis, name, LIVENESS).await;
    let mut a = member(one.server.local_addr(), "a", false).await;
    let mut b = member(two.server.local_addr(), "b", false).await;
    known(&one.hub, a.id).await;
    known(&two.hub, b.id).await;
    assert!(one.hub.join(a.id, "room"));
    assert!(two.hub.join(b.id, "room"));
    assert!(two.hub.join(b.id, "other"));
    members_become(&one.hub, "room", vec![a.id, b.id]).await;
    let mut resp = Resp::connect(&redis).await;
    assert_eq!(resp.command(&[b"FLUSHALL"]).await, Reply::Status("OK".into()));
    assert_eq!(
        resp.command(&[b"EXISTS", format!("birpc:{name}:nodes").as_bytes()])
            .await,
        Reply::Integer(0)
    );
    // Every node finds its registration gone and writes it again, with its members.
    members_become(&one.hub, "room", vec![a.id, b.id]).await;
    members_become(&two.hub, "other", vec![b.id]).await;
    // Messages flow as before (the subscriptions were never lost).
    two.hub.notify_group("room", "news", ["after the flush"]);
    assert_eq!(
        within("a's news", a.news.recv()).await.unwrap(),
        json!(["after the flush"])
    );
    assert_eq!(
        within("b's news", b.news.recv()).await.unwrap(),
        json!(["after the flush"])
    );
    let answers = within(
        "a group call",
        one.hub
            .call_group::<String, _>("room", "whoami", (), Some(Duration::from_secs(5))),
    )
    .await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.iter().all(|(_, r)| r.is_ok()), "{answers:?}");
    // Changes after the flush reach Redis too.
    assert!(one.hub.leave(b.id, "room"));
    members_become(&one.hub, "room", vec![a.id]).await;
    one.stop().await;
    two.stop().await;
}

/// After Redis lost everything (a restart without persistence, a FLUSHALL), the node counter starts over.
/// A node attaching before the live nodes have registered again (within a third of their liveness time)
/// must still get a number no live node has: two nodes of one number share a channel and hub-wide ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_attached_after_redis_lost_everything_gets_a_number_of_its_own() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "renumbered";
    // A long liveness: the nodes renew (and register again) every 10 s.
    let liveness = Duration::from_secs(30);
    let one = attach(&redis, name, liveness).await;
    let two = attach(&redis, name, liveness).await;
    let mut resp = Resp::connect(&redis).await;
    assert_eq!(resp.command(&[b"FLUSHALL"]).await, Reply::Status("OK".into()));
    let three = attach(&redis, name, liveness).await;
    let numbers = [one.node(), two.node(), three.node()];
    assert!(
        three.node() != one.node() && three.node() != two.node(),
        "node numbers {numbers:?}: the new node took a live node's number"
    );
    for hub in [one, two, three] {
        hub.detach().await;
    }
}

/// Redis refuses a node's write for a moment (it is at its memory limit, say) but keeps its data: the
/// membership change that was on its way fails. It must still reach Redis once Redis takes writes again
/// (the crate's docs: membership changes "reach Redis in the order they were made"; one lost "is put
/// right … within a heartbeat of Redis coming back"), not stay missing for as long as the connection lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_refused_for_a_moment_is_put_right() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let name = "refused";
    let one = node(&redis, name, LIVENESS).await;
    let a = member(one.server.local_addr(), "a", false).await;
    known(&one.hub, a.id).await;
    assert!(one.hub.join(a.id, "before"));
    members_become(&one.hub, "before", vec![a.id]).await;
    let mut resp = Resp::connect(&redis).await;
    async fn config(resp: &mut Resp, key: &[u8], value: &[u8]) {
        let reply = resp.command(&[b"CONFIG", b"SET", key, value]).await;
        assert_eq!(reply, Reply::Status("OK".into()));
    }
    let refusals = refused_sadds(&mut resp).await;
    // Redis refuses every write that needs memory (OOM), and keeps what it has.
    config(&mut resp, b"maxmemory-policy", b"noeviction").await;
    config(&mut resp, b"maxmemory", b"1").await;
    assert!(one.hub.join(a.id, "lost"));
    within("Redis to refuse the node's write", async {
        while refused_sadds(&mut resp).await == refusals {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Writes are taken again: a change made now reaches Redis.
    config(&mut resp, b"maxmemory", b"0").await;
    assert!(one.hub.join(a.id, "after"));
    assert!(joins_within(&one.hub, "after", a.id, common::PATIENCE).await);
    // The refused one must follow within a few heartbeats.
    assert!(
        joins_within(&one.hub, "lost", a.id, BUG_PATIENCE).await,
        "the join refused by Redis never reached it"
    );
    one.stop().await;
}

/// How many SADD commands Redis refused so far (`INFO commandstats`): only a membership change (or a
/// node registering again) sends one.
async fn refused_sadds(resp: &mut Resp) -> u64 {
    let Reply::Bulk(Some(info)) = resp.command(&[b"INFO", b"commandstats"]).await else {
        panic!("INFO commandstats");
    };
    let info = String::from_utf8(info).unwrap();
    let Some(sadd) = info.lines().find_map(|line| line.strip_prefix("cmdstat_sadd:")) else {
        return 0;
    };
    sadd.split(',')
        .find_map(|field| field.strip_prefix("rejected_calls="))
        .map_or(0, |count| count.trim().parse().unwrap())
}
