//! The server process: `bench serve --impl birpc|jsonrpsee|raw|raw-default --listen ADDR [--s2c]`, or a birpc server with a
//! hub (the hub scenario): `bench serve --impl birpc --listen ADDR --hub local|REDIS_URL [--hub-name NAME]`.
//!
//! It prints `listening on ws://HOST:PORT` on its first stdout line, then takes commands on stdin, one a
//! line, answering each with one line on stdout:
//! - `s2c CONNS INFLIGHT MILLIS` (a server started with `--s2c`, which alone keeps a registry of its
//!   connections): waits until `CONNS` clients are connected (and, for birpc, registered),
//!   then calls `add` on every one of them with `INFLIGHT` calls in flight each for `MILLIS` ms, and
//!   answers a [`RoundSummary`] as JSON (or `error: ...`);
//! - `produced`: answers how many items the `forever` streams of this process have produced so far;
//! - `ping`: answers `pong`.
//!
//! It exits when stdin closes (a node of a hub on Redis detaches from it first).
//!
//! A server with a hub registers every connection in it (`ServerBuilder::hub`) and serves, besides `add`
//! and `echo`: `join(group)` (answers the connection's hub-wide id), `members(group)` (how many members
//! the group has on every node), `tick(group, seq)` (`Hub::notify_group(group, "tick", (seq,))`, answers
//! a [`TickReport`]) and `group_calls(group, millis, members)` (`Hub::call_group(group, "add", (k, 1))` one
//! after the other for `millis` ms, each expected to reach `members` members, answers a
//! [`GroupCallSummary`]).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use birpc::Hub;
use birpc::prelude::*;
use birpc::redis::RedisBackplane;
use futures::StreamExt;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::server::{PendingSubscriptionSink, ServerConfig, SubscriptionMessage, SubscriptionSink};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::common::{
    GroupCallSummary, Impl, Payload, Result, RoundSummary, TickReport, percentile, raise_fd_limit, since,
};
use crate::{load, raw};

/// The connection limit of the birpc and jsonrpsee servers here (their defaults are 10,000 and 100): above
/// the 10,001 connections of the memory scenario.
pub(crate) const MAX_CONNECTIONS: u32 = 11_000;

/// The methods every implementation serves, as jsonrpsee declares them.
#[rpc(server)]
pub(crate) trait Bench {
    /// `a + b`.
    #[method(name = "add")]
    fn add(&self, a: i64, b: i64) -> RpcResult<i64>;

    /// `text`, unchanged.
    #[method(name = "echo")]
    fn echo(&self, text: String) -> RpcResult<String>;

    /// The numbers `0..count` as fast as the connection takes them (the stream scenarios). jsonrpsee sends
    /// nothing when a subscription ends: the client counts its items.
    #[subscription(name = "subscribe_ticks" => "ticks", unsubscribe = "unsubscribe_ticks", item = u64)]
    async fn ticks(&self, count: u64) -> SubscriptionResult;

    /// The numbers `0..` without end, counted in [`PRODUCED`] (the slow-consumer scenario).
    #[subscription(name = "subscribe_forever" => "forever", unsubscribe = "unsubscribe_forever", item = u64)]
    async fn forever(&self) -> SubscriptionResult;
}

/// Items the `forever` streams of this process have produced: for birpc, taken from the producing stream
/// (which is polled only with credit); for jsonrpsee, queued by `SubscriptionSink::send`.
static PRODUCED: AtomicU64 = AtomicU64::new(0);

struct JsonrpseeBench;

#[jsonrpsee::core::async_trait]
impl BenchServer for JsonrpseeBench {
    fn add(&self, a: i64, b: i64) -> RpcResult<i64> {
        Ok(a.wrapping_add(b))
    }

    fn echo(&self, text: String) -> RpcResult<String> {
        Ok(text)
    }

    async fn ticks(&self, pending: PendingSubscriptionSink, count: u64) -> SubscriptionResult {
        let sink = pending.accept().await?;
        for n in 0..count {
            send_item(&sink, n).await?;
        }
        Ok(())
    }

    async fn forever(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        for n in 0.. {
            send_item(&sink, n).await?;
            PRODUCED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Sends item `n` on `sink`, waiting for room; fails once the subscription or connection is closed. The
/// whole notification is encoded in one allocation (`SubscriptionMessage::new`), jsonrpsee's cheapest way.
async fn send_item(sink: &SubscriptionSink, n: u64) -> Result<(), jsonrpsee::core::SubscriptionError> {
    let message = SubscriptionMessage::new(sink.method_name(), sink.subscription_id(), &n)?;
    sink.send(message).await.map_err(|_| "the subscription is closed")?;
    Ok(())
}

/// birpc's `add` and `echo`: what the server exports, and what its clients export for the server to call.
pub(crate) fn birpc_router() -> Router {
    Router::new()
        .method("add", |_: Context, (a, b): (i64, i64)| async move {
            Ok::<_, ErrorObject>(a.wrapping_add(b))
        })
        .method("echo", |_: Context, (text,): (String,)| async move {
            Ok::<_, ErrorObject>(text)
        })
}

/// birpc's stream methods (the stream scenarios): `ticks(count)`, the numbers `0..count`, and `forever()`,
/// the numbers `0..` counted in [`PRODUCED`]; each produced as fast as the consumer's credit allows.
fn birpc_streams() -> Router {
    Router::new()
        .stream("ticks", |_: Context, (count,): (u64,)| async move {
            Ok::<_, ErrorObject>(futures::stream::iter(0..count).map(Ok::<_, ErrorObject>))
        })
        .stream("forever", |_: Context, _: NoParams| async move {
            Ok::<_, ErrorObject>(futures::stream::iter(0_u64..).map(|n| {
                PRODUCED.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ErrorObject>(n)
            }))
        })
}

/// The connections a server can call back.
enum Callable {
    /// birpc: the handles of the clients that called `register`.
    Birpc(Arc<Mutex<Vec<PeerHandle>>>),
    /// The floor: a way to hand each connection's task a round to drive.
    Raw(Arc<Mutex<Vec<mpsc::Sender<DriveOrder>>>>),
    /// jsonrpsee has no server-to-client call.
    None,
}

/// Asks a raw connection task to drive calls to its client.
struct DriveOrder {
    inflight: usize,
    deadline: Instant,
    done: oneshot::Sender<Result<Vec<u64>>>,
}

/// The hub of a server of the hub scenario (`--hub`).
#[derive(Debug, Clone)]
pub(crate) enum HubMode {
    /// `local`: a plain `Hub` of this process alone.
    Local,
    /// A Redis URL: a node of hub `name` on that Redis (`Hub::with_backplane(RedisBackplane…)`).
    Redis { url: String, name: String },
}

impl HubMode {
    /// The `--hub` and `--hub-name` arguments of a server with this hub.
    pub(crate) fn args(&self) -> Vec<String> {
        match self {
            HubMode::Local => vec!["--hub".into(), "local".into()],
            HubMode::Redis { url, name } => vec!["--hub".into(), url.clone(), "--hub-name".into(), name.clone()],
        }
    }
}

/// Runs the server process.
pub(crate) fn main(imp: Impl, listen: &str, hub: Option<HubMode>, s2c: bool) -> Result<()> {
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut joined = None;
        let (addr, callable, _keep) = match (imp, hub) {
            (Impl::Birpc, Some(mode)) => {
                let (started, hub) = start_birpc_hub(listen, &mode).await?;
                joined = Some(hub);
                started
            }
            (_, Some(_)) => return Err("only birpc has a hub".into()),
            (Impl::Birpc, None) => start_birpc(listen, s2c).await?,
            (Impl::Jsonrpsee, None) => start_jsonrpsee(listen).await?,
            (Impl::Raw | Impl::RawDefault, None) => start_raw(listen, imp, s2c).await?,
        };
        say(&format!("listening on ws://{addr}"));
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let answer = match command(&callable, &line).await {
                Ok(answer) => answer,
                Err(error) => format!("error: {error}"),
            };
            say(&answer);
        }
        if let Some(hub) = joined {
            // Leave the hub on Redis cleanly (nothing to do for a hub of one process).
            let _ = tokio::time::timeout(Duration::from_secs(5), hub.detach()).await;
        }
        Ok::<_, crate::common::BoxError>(())
    })?;
    // Whatever is still running goes with the process.
    std::process::exit(0)
}

/// Writes one line to stdout at once.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Something a server keeps alive while it runs.
type Keep = Box<dyn std::any::Any + Send>;

/// birpc's server; with `s2c` (the server-to-client scenario) it also serves `register`, which keeps the
/// calling connection's `PeerHandle` to call it back.
async fn start_birpc(listen: &str, s2c: bool) -> Result<(SocketAddr, Callable, Keep)> {
    let mut router = birpc_router().merge(birpc_streams());
    let mut callable = Callable::None;
    if s2c {
        let registry = Arc::new(Mutex::new(Vec::new()));
        let register = registry.clone();
        router = router.method("register", move |ctx: Context, _: NoParams| {
            let registry = register.clone();
            async move {
                registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(ctx.peer().clone());
                Ok::<_, ErrorObject>(true)
            }
        });
        callable = Callable::Birpc(registry);
    }
    let server = Server::builder()
        .max_connections(MAX_CONNECTIONS as usize)
        .bind(listen)
        .await?;
    let addr = server.local_addr();
    let handle = server.serve(move |_| router.clone());
    Ok((addr, callable, Box::new(handle)))
}

/// A birpc server whose connections are in `mode`'s hub, serving `add`, `echo` and the hub methods.
async fn start_birpc_hub(listen: &str, mode: &HubMode) -> Result<((SocketAddr, Callable, Keep), Hub)> {
    let hub = match mode {
        HubMode::Local => Hub::new(),
        HubMode::Redis { url, name } => Hub::with_backplane(RedisBackplane::builder(url).hub(name).build()?).await?,
    };
    let router = birpc_router().merge(hub_methods(&hub));
    let server = Server::builder()
        .max_connections(MAX_CONNECTIONS as usize)
        .hub(hub.clone())
        .bind(listen)
        .await?;
    let addr = server.local_addr();
    let handle = server.serve(move |_| router.clone());
    Ok(((addr, Callable::None, Box::new(handle)), hub))
}

/// The hub methods of the hub scenario's servers (see the module's documentation).
fn hub_methods(hub: &Hub) -> Router {
    let failed = |error: &dyn std::fmt::Display| ErrorObject::internal_error().with_detail(error.to_string());
    Router::new()
        .method("join", {
            let hub = hub.clone();
            move |ctx: Context, (group,): (String,)| {
                let joined = hub.join(ctx.peer().id(), &group);
                let id = hub.id_of(ctx.peer());
                async move { if joined { Ok(id) } else { Err(failed(&"not in the hub")) } }
            }
        })
        .method("members", {
            let hub = hub.clone();
            move |_: Context, (group,): (String,)| {
                let hub = hub.clone();
                async move {
                    let ids = hub.member_ids(&group).await.map_err(|error| failed(&error))?;
                    Ok::<_, ErrorObject>(ids.len())
                }
            }
        })
        .method("tick", {
            let hub = hub.clone();
            move |_: Context, (group, seq): (String, u64)| {
                let report = hub.notify_group(&group, "tick", (seq,));
                async move {
                    Ok::<_, ErrorObject>(TickReport {
                        delivered: report.delivered,
                        closed: report.closed.len(),
                        forwarded: report.forwarded,
                    })
                }
            }
        })
        .method("group_calls", {
            let hub = hub.clone();
            move |_: Context, (group, millis, members): (String, u64, usize)| {
                let hub = hub.clone();
                async move { Ok::<_, ErrorObject>(group_calls(&hub, &group, members, Duration::from_millis(millis)).await) }
            }
        })
}

/// `hub.call_group(group, "add", (k, 1))` for k = 0, 1, 2, ..., one after the other, until `duration`
/// has passed (one at least); each of the group's `members` should answer `k + 1`.
async fn group_calls(hub: &Hub, group: &str, members: usize, duration: Duration) -> GroupCallSummary {
    let start = Instant::now();
    let deadline = start + duration;
    let mut summary = GroupCallSummary::default();
    let mut durations = Vec::new();
    for k in 0_i64.. {
        let call_start = Instant::now();
        let outcomes = hub.call_group::<i64, _>(group, "add", (k, 1), None).await;
        durations.push(since(call_start));
        summary.group_calls += 1;
        let right = outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Ok(sum) if *sum == k + 1))
            .count();
        summary.answered += right as u64;
        summary.failed += (outcomes.len().max(members) - right) as u64;
        if Instant::now() >= deadline {
            break;
        }
    }
    summary.elapsed_ns = since(start);
    durations.sort_unstable();
    summary.p50_ns = percentile(&durations, 0.50);
    summary.p99_ns = percentile(&durations, 0.99);
    summary
}

async fn start_jsonrpsee(listen: &str) -> Result<(SocketAddr, Callable, Keep)> {
    let config = ServerConfig::builder().max_connections(MAX_CONNECTIONS).build();
    let server = jsonrpsee::server::Server::builder()
        .set_config(config)
        .build(listen)
        .await?;
    let addr = server.local_addr()?;
    let handle = server.start(JsonrpseeBench.into_rpc());
    Ok((addr, Callable::None, Box::new(handle)))
}

/// A raw floor's server (`imp`'s buffers): one task per connection that answers requests; with `s2c` (the
/// server-to-client scenario) each connection is also registered, with a channel on which its task takes
/// orders to call its client. Without it, a connection holds nothing but its socket and its task.
async fn start_raw(listen: &str, imp: Impl, s2c: bool) -> Result<(SocketAddr, Callable, Keep)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let config = raw::config(imp);
    let registry = s2c.then(|| Arc::new(Mutex::new(Vec::new())));
    let register = registry.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of file descriptors, most likely: wait a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let register = register.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
                    return;
                };
                match register {
                    Some(register) => {
                        let (orders, inbox) = mpsc::channel(1);
                        register.lock().unwrap_or_else(PoisonError::into_inner).push(orders);
                        raw_connection(ws, inbox).await;
                    }
                    None => raw::answer(ws).await,
                }
            });
        }
    });
    let callable = registry.map_or(Callable::None, Callable::Raw);
    Ok((addr, callable, Box::new(AbortOnDrop(accept))))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection of the raw server: answers requests, and drives calls to the client when told to.
async fn raw_connection(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mut orders: mpsc::Receiver<DriveOrder>,
) {
    loop {
        tokio::select! {
            Some(order) = orders.recv() => {
                let outcome = raw::drive(&mut ws, order.inflight, order.deadline, &Payload::Add).await;
                let _ = order.done.send(outcome);
            }
            next = ws.next() => match next {
                Some(Ok(message)) => {
                    if raw::answer_burst(&mut ws, &message).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

async fn command(callable: &Callable, line: &str) -> Result<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["ping"] => Ok("pong".into()),
        ["produced"] => Ok(PRODUCED.load(Ordering::Relaxed).to_string()),
        ["s2c", conns, inflight, millis, callers] => {
            let summary = server_to_client(
                callable,
                conns.parse()?,
                inflight.parse()?,
                Duration::from_millis(millis.parse()?),
                load::Callers::parse(callers).ok_or("unknown callers")?,
            )
            .await?;
            Ok(serde_json::to_string(&summary)?)
        }
        _ => Err(format!("unknown command {line:?}").into()),
    }
}

/// Calls every connected client, `inflight` calls in flight on each, for `duration`.
async fn server_to_client(
    callable: &Callable,
    conns: usize,
    inflight: usize,
    duration: Duration,
    callers: load::Callers,
) -> Result<RoundSummary> {
    let ready_by = Instant::now() + Duration::from_secs(30);
    match callable {
        Callable::None => {
            Err("this server cannot call its clients (jsonrpsee, or a server not started with --s2c)".into())
        }
        Callable::Birpc(registry) => {
            let peers = wait_for(registry, conns, ready_by).await?;
            load::birpc_round(&peers, inflight, duration, &Payload::Add, callers).await
        }
        Callable::Raw(registry) => {
            let connections = wait_for(registry, conns, ready_by).await?;
            let start = Instant::now();
            let deadline = start + duration;
            let mut tasks = JoinSet::new();
            for connection in connections {
                let (done, outcome) = oneshot::channel();
                connection
                    .send(DriveOrder {
                        inflight,
                        deadline,
                        done,
                    })
                    .await
                    .map_err(|_| "a connection is gone")?;
                tasks.spawn(async move { outcome.await.map_err(|_| "a connection is gone")? });
            }
            load::collect(tasks, start).await
        }
    }
}

/// The first `count` entries of `registry`, once it has that many.
async fn wait_for<T: Clone>(registry: &Mutex<Vec<T>>, count: usize, ready_by: Instant) -> Result<Vec<T>> {
    loop {
        {
            let registered = registry.lock().unwrap_or_else(PoisonError::into_inner);
            if registered.len() >= count {
                return Ok(registered[..count].to_vec());
            }
        }
        if Instant::now() > ready_by {
            return Err(format!("fewer than {count} clients connected").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
