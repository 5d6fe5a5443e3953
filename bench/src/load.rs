//! Keeping calls in flight through birpc's and jsonrpsee's own clients, and reading streams through them.
//!
//! Like the raw floor, each connection has one task that keeps its calls in flight: it starts `inflight`
//! calls, and each time one is answered (checked, its latency recorded) it starts the next, until the
//! deadline. The calls of a task run concurrently on its connection (a `FuturesUnordered`); one call at a
//! time (the `latency` and `large` scenarios) is awaited as it is made, as the floor's loop does. With
//! `--callers tasks`, a connection's calls in flight are made by as many tasks, each one call at a time
//! (also the server's calls in the server-to-client scenario).
//!
//! The stream scenarios read in waves: a wave opens `streams` streams of `items` items at once on the
//! connection (birpc: `PeerHandle::subscribe("ticks")`; jsonrpsee: `subscribe_ticks`), reads each to its
//! last item, checking that item `k` is `k`, in one task (a `FuturesUnordered`); waves follow each other
//! until the deadline.
//!
//! The hub scenario's broadcasts go one at a time: a client (each in turn) calls `tick(group, seq)` on its
//! server, which broadcasts `tick(seq)` to the group, and the next broadcast is triggered once every
//! client got this one (or after [`BROADCAST_WAIT`]). Every client runs in this process, so a delivery's
//! latency is read on one monotonic clock: from just before the trigger's call to the moment the client's
//! `tick` handler is called.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use birpc::PeerHandle;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClient;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::common::{
    BoxError, BroadcastSummary, HUB_GROUP, Payload, Result, RoundSummary, TickReport, check, percentile, since,
};

/// How long a broadcast of the hub scenario is waited for before its missing deliveries are counted.
pub(crate) const BROADCAST_WAIT: Duration = Duration::from_secs(2);

/// How a connection's calls in flight are made (`--callers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Callers {
    /// One task per connection keeps its calls in flight as futures of a `FuturesUnordered` (the default).
    Unordered,
    /// One task per call in flight, each making one call at a time: the way of a program whose callers
    /// are tasks of their own. (The floor is unchanged: one task per connection.)
    Tasks,
}

impl Callers {
    /// The mode named `name` on the command line (`unordered`, `tasks`).
    pub(crate) fn parse(name: &str) -> Option<Callers> {
        match name {
            "unordered" => Some(Callers::Unordered),
            "tasks" => Some(Callers::Tasks),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Callers::Unordered => "unordered",
            Callers::Tasks => "tasks",
        }
    }
}

/// One call of the benchmark through a library's client: call number `n`, checked.
trait Caller: Clone + Send + Sync + 'static {
    fn call(&self, n: i64) -> impl Future<Output = Result<()>> + Send + '_;
}

/// A birpc connection and what its calls send.
#[derive(Clone)]
struct Birpc(PeerHandle, Payload);

impl Caller for Birpc {
    async fn call(&self, n: i64) -> Result<()> {
        let Birpc(peer, payload) = self;
        match payload {
            Payload::Add => {
                let sum: i64 = peer.call("add", (n, 1)).await?;
                check(sum == n + 1, "add")
            }
            Payload::Echo(text) => {
                let back: String = peer.call("echo", (&**text,)).await?;
                check(back.len() == text.len(), "echo")
            }
        }
    }
}

/// A jsonrpsee client and what its calls send.
#[derive(Clone)]
struct Jsonrpsee(Arc<WsClient>, Payload);

impl Caller for Jsonrpsee {
    async fn call(&self, n: i64) -> Result<()> {
        let Jsonrpsee(client, payload) = self;
        match payload {
            Payload::Add => {
                let sum: i64 = client.request("add", rpc_params![n, 1]).await?;
                check(sum == n + 1, "add")
            }
            Payload::Echo(text) => {
                let back: String = client.request("echo", rpc_params![&**text]).await?;
                check(back.len() == text.len(), "echo")
            }
        }
    }
}

/// The latency of call `n`, in nanoseconds.
async fn timed(caller: &impl Caller, n: i64) -> Result<u64> {
    let start = Instant::now();
    caller.call(n).await.map(|()| since(start))
}

/// Keeps `inflight` calls of `caller` (numbered 0, 1, 2, ...) going until `deadline`, made as `callers`
/// says; returns the latency of each, in nanoseconds.
async fn keep_in_flight(caller: impl Caller, inflight: usize, deadline: Instant, callers: Callers) -> Result<Vec<u64>> {
    if inflight == 1 {
        // One call at a time is awaited as it is made, as a program making one call at a time does (and as
        // the floor does). A `FuturesUnordered` of one call would yield after each poll that finds its only
        // call pending (it yields once it has polled every call it holds): tokio then puts the task at the
        // back of the queue and wakes the other worker thread, a futex call and a context switch per call
        // that are the loop's, not the library's.
        return one_at_a_time(&caller, 0, 1, deadline).await;
    }
    match callers {
        Callers::Unordered => {
            let mut calls = FuturesUnordered::new();
            let mut n = 0_i64;
            for _ in 0..inflight {
                calls.push(timed(&caller, n));
                n += 1;
            }
            let mut latencies = Vec::new();
            while let Some(latency) = calls.next().await {
                latencies.push(latency?);
                if Instant::now() < deadline {
                    calls.push(timed(&caller, n));
                    n += 1;
                }
            }
            Ok(latencies)
        }
        Callers::Tasks => {
            let mut tasks = JoinSet::new();
            for first in 0..inflight {
                let caller = caller.clone();
                tasks.spawn(async move { one_at_a_time(&caller, first as i64, inflight as i64, deadline).await });
            }
            let mut latencies = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                latencies.extend(joined??);
            }
            Ok(latencies)
        }
    }
}

/// Calls `first`, `first + step`, ... one at a time until `deadline`; their latencies.
async fn one_at_a_time(caller: &impl Caller, first: i64, step: i64, deadline: Instant) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut n = first;
    while Instant::now() < deadline {
        latencies.push(timed(caller, n).await?);
        n += step;
    }
    Ok(latencies)
}

/// Keeps `inflight` calls in flight on each of `peers` for `duration`.
pub(crate) async fn birpc_round(
    peers: &[PeerHandle],
    inflight: usize,
    duration: Duration,
    payload: &Payload,
    callers: Callers,
) -> Result<RoundSummary> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for peer in peers {
        tasks.spawn(keep_in_flight(
            Birpc(peer.clone(), payload.clone()),
            inflight,
            deadline,
            callers,
        ));
    }
    collect(tasks, start).await
}

/// Keeps `inflight` calls in flight on each of `clients` for `duration`.
pub(crate) async fn jsonrpsee_round(
    clients: &[Arc<WsClient>],
    inflight: usize,
    duration: Duration,
    payload: &Payload,
    callers: Callers,
) -> Result<RoundSummary> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for client in clients {
        tasks.spawn(keep_in_flight(
            Jsonrpsee(client.clone(), payload.clone()),
            inflight,
            deadline,
            callers,
        ));
    }
    collect(tasks, start).await
}

/// Waits for every connection task of a round that started at `start`, and summarizes it.
pub(crate) async fn collect(mut tasks: JoinSet<Result<Vec<u64>>>, start: Instant) -> Result<RoundSummary> {
    let mut latencies = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        latencies.push(joined??);
    }
    Ok(RoundSummary::from_latencies(latencies, start.elapsed()))
}

/// Runs waves of `streams` streams of `items` items, each opened by `open(items)` and read by `read`,
/// until `deadline` (one wave at least); returns the items read.
async fn waves<S, Open, OpenFut, Read, ReadFut>(
    streams: usize,
    items: u64,
    deadline: Instant,
    open: Open,
    read: Read,
) -> Result<u64>
where
    Open: Fn(u64) -> OpenFut,
    OpenFut: Future<Output = Result<S>>,
    Read: Fn(S, u64) -> ReadFut,
    ReadFut: Future<Output = Result<()>>,
{
    let mut total = 0;
    loop {
        let wave: FuturesUnordered<_> = (0..streams)
            .map(|_| async {
                let stream = open(items).await?;
                read(stream, items).await
            })
            .collect();
        wave.try_collect::<Vec<()>>().await?;
        total += streams as u64 * items;
        if Instant::now() >= deadline {
            return Ok(total);
        }
    }
}

/// Waves of `streams` birpc streams of `items` items on `peer` until `deadline`; the items read. Each
/// stream is read to its end (`$/stream.end`).
pub(crate) async fn birpc_streams(peer: &PeerHandle, streams: usize, items: u64, deadline: Instant) -> Result<u64> {
    waves(
        streams,
        items,
        deadline,
        |items| async move { Ok(peer.subscribe::<u64>("ticks", (items,)).await?) },
        |mut stream, items| async move {
            let mut expected = 0;
            while let Some(item) = stream.next().await {
                check(item? == expected, "stream item")?;
                expected += 1;
            }
            check(expected == items, "stream length")
        },
    )
    .await
}

/// Waves of `streams` jsonrpsee subscriptions of `items` items on `client` until `deadline`; the items
/// read. jsonrpsee tells no end: each subscription is read to its last item, then dropped (which sends
/// `unsubscribe_ticks`, jsonrpsee's only way to let go of a subscription).
pub(crate) async fn jsonrpsee_streams(client: &WsClient, streams: usize, items: u64, deadline: Instant) -> Result<u64> {
    waves(
        streams,
        items,
        deadline,
        |items| async move {
            Ok(client
                .subscribe::<u64, _>("subscribe_ticks", rpc_params![items], "unsubscribe_ticks")
                .await?)
        },
        |mut stream, items| async move {
            for expected in 0..items {
                match stream.next().await {
                    Some(item) => check(item? == expected, "stream item")?,
                    None => {
                        return Err(format!(
                            "the subscription closed after {expected} of {items} items ({:?})",
                            stream.close_reason()
                        )
                        .into());
                    }
                }
            }
            Ok(())
        },
    )
    .await
}

/// What a slow consumer got.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SlowRead {
    /// Items it read.
    pub(crate) received: u64,
    /// Items missing between those it read: item `k` should follow item `k - 1` (jsonrpsee, once a
    /// subscription has lagged, may still deliver a later item before it closes the subscription).
    pub(crate) skipped: u64,
    /// Whether its stream ended before it had read them all (jsonrpsee: the subscription lagged).
    pub(crate) cut_short: bool,
}

impl SlowRead {
    /// Takes item `item` of a stream that numbers its items `0, 1, 2, ...`.
    fn take(&mut self, item: u64) -> Result<()> {
        let expected = self.received + self.skipped;
        check(item >= expected, "stream item (out of order)")?;
        self.skipped += item - expected;
        self.received += 1;
        Ok(())
    }
}

/// Reads `count` items of birpc's endless `forever` stream on `peer`, one every `every`, calling `tick`
/// after each; then drops the stream.
pub(crate) async fn birpc_slow(peer: &PeerHandle, count: u64, every: Duration, tick: impl FnMut()) -> Result<SlowRead> {
    let stream = peer.subscribe::<u64>("forever", ()).await?;
    read_slowly(stream, count, every, tick).await
}

/// Reads `count` items of jsonrpsee's endless `subscribe_forever` on `client`, one every `every`, calling
/// `tick` after each; stops early if jsonrpsee closes the subscription (it does when its buffer of 1,024
/// items per subscription is full: "lagged").
pub(crate) async fn jsonrpsee_slow(
    client: &WsClient,
    count: u64,
    every: Duration,
    tick: impl FnMut(),
) -> Result<SlowRead> {
    let stream = client
        .subscribe::<u64, _>("subscribe_forever", rpc_params![], "unsubscribe_forever")
        .await?;
    read_slowly(stream, count, every, tick).await
}

/// Reads up to `count` items of `stream`, one every `every`, calling `tick` after each; `cut_short` when
/// the stream ended first.
async fn read_slowly<S, E>(mut stream: S, count: u64, every: Duration, mut tick: impl FnMut()) -> Result<SlowRead>
where
    S: futures::Stream<Item = std::result::Result<u64, E>> + Unpin,
    E: Into<BoxError>,
{
    let mut pace = pace(every);
    let mut read = SlowRead::default();
    while read.received < count {
        pace.tick().await;
        match stream.next().await {
            Some(item) => read.take(item.map_err(Into::into)?)?,
            None => break,
        }
        tick();
    }
    read.cut_short = read.received < count;
    Ok(read)
}

/// A steady pace of one tick every `every` (late ticks are not made up in a burst).
fn pace(every: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The `tick` deliveries of the clients of one hub setup, timed against the trigger of the broadcast in
/// progress.
pub(crate) struct Ticks {
    state: Mutex<TickState>,
    /// The last broadcast every client got.
    complete: watch::Sender<u64>,
}

struct TickState {
    /// The broadcast in progress (0: none yet).
    seq: u64,
    /// When it was triggered.
    sent: Instant,
    /// The clients that should get it.
    expected: usize,
    /// Latencies of its deliveries so far, in nanoseconds.
    latencies: Vec<u64>,
    /// Deliveries of an earlier broadcast, after its wait ended.
    late: u64,
}

impl Ticks {
    /// For `expected` clients.
    pub(crate) fn new(expected: usize) -> Arc<Ticks> {
        Arc::new(Ticks {
            state: Mutex::new(TickState {
                seq: 0,
                sent: Instant::now(),
                expected,
                latencies: Vec::with_capacity(expected),
                late: 0,
            }),
            complete: watch::Sender::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TickState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client got broadcast `seq`.
    pub(crate) fn receive(&self, seq: u64) {
        let now = Instant::now();
        let mut state = self.state();
        if seq != state.seq {
            state.late += 1;
            return;
        }
        let latency = crate::common::nanos(now.saturating_duration_since(state.sent));
        state.latencies.push(latency);
        if state.latencies.len() == state.expected {
            self.complete.send_replace(seq);
        }
    }

    /// Broadcast `seq` is triggered now.
    fn start(&self, seq: u64) {
        let mut state = self.state();
        state.seq = seq;
        state.latencies.clear();
        state.sent = Instant::now();
    }

    /// Ends the wait for the broadcast in progress: the latencies of its deliveries, and the late
    /// deliveries of earlier ones so far.
    fn finish(&self) -> (Vec<u64>, u64) {
        let mut state = self.state();
        state.seq = 0;
        let expected = state.expected;
        let latencies = std::mem::replace(&mut state.latencies, Vec::with_capacity(expected));
        (latencies, std::mem::take(&mut state.late))
    }
}

/// Broadcasts to the group of `clients` one at a time until `duration` has passed (one at least): the
/// trigger is client `seq % clients`, the next broadcast is triggered when every client got this one or
/// after [`BROADCAST_WAIT`]. `next_seq` numbers the broadcasts across rounds.
pub(crate) async fn broadcast_round(
    clients: &[PeerHandle],
    ticks: &Ticks,
    next_seq: &mut u64,
    duration: Duration,
) -> Result<BroadcastSummary> {
    let mut complete = ticks.complete.subscribe();
    let mut summary = BroadcastSummary::default();
    let mut latencies = Vec::new();
    let mut lasts = Vec::new();
    let start = Instant::now();
    let deadline = start + duration;
    loop {
        let seq = *next_seq;
        *next_seq += 1;
        let trigger = &clients[usize::try_from(seq)? % clients.len()];
        ticks.start(seq);
        let report: TickReport = trigger.call("tick", (HUB_GROUP, seq)).await?;
        check(report.closed == 0, "no client too slow for a broadcast")?;
        // (The watch's guard is dropped at once: a client's handler sends on it.)
        let completed = matches!(
            tokio::time::timeout(BROADCAST_WAIT, complete.wait_for(|&done| done >= seq)).await,
            Ok(Ok(_))
        );
        let (mut delivered, late) = ticks.finish();
        summary.broadcasts += 1;
        summary.deliveries += delivered.len() as u64;
        summary.missing += (clients.len() - delivered.len()) as u64;
        summary.late += late;
        summary.not_forwarded += u64::from(clients.len() > report.delivered && !report.forwarded);
        if completed {
            lasts.push(delivered.iter().copied().max().unwrap_or(0));
        }
        latencies.append(&mut delivered);
        if Instant::now() >= deadline {
            break;
        }
    }
    summary.elapsed_ns = since(start);
    latencies.sort_unstable();
    lasts.sort_unstable();
    summary.p50_ns = percentile(&latencies, 0.50);
    summary.p99_ns = percentile(&latencies, 0.99);
    summary.last_p50_ns = percentile(&lasts, 0.50);
    Ok(summary)
}
