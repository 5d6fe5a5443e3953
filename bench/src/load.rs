//! Keeping calls in flight through birpc's and jsonrpsee's own clients, and reading streams through them.
//!
//! Like the raw floor, each connection has one task that keeps its calls in flight: it starts `inflight`
//! calls, and each time one is answered (checked, its latency recorded) it starts the next, until the
//! deadline. The calls of a task run concurrently on its connection (a `FuturesUnordered`).
//!
//! The stream scenarios read in waves: a wave opens `streams` streams of `items` items at once on the
//! connection (birpc: `PeerHandle::subscribe("ticks")`; jsonrpsee: `subscribe_ticks`), reads each to its
//! last item, checking that item `k` is `k`, in one task (a `FuturesUnordered`); waves follow each other
//! until the deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use birpc::PeerHandle;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClient;
use tokio::task::JoinSet;

use crate::common::{Payload, Result, RoundSummary, check, since};

/// Keeps `inflight` calls made by `call(n)` (for n = 0, 1, 2, ...) going until `deadline`; returns the
/// latency of each, in nanoseconds.
async fn keep_in_flight<F, Fut>(inflight: usize, deadline: Instant, call: F) -> Result<Vec<u64>>
where
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let timed = |n: i64| {
        let call = &call;
        async move {
            let start = Instant::now();
            call(n).await.map(|()| since(start))
        }
    };
    let mut calls = FuturesUnordered::new();
    let mut n = 0_i64;
    for _ in 0..inflight {
        calls.push(timed(n));
        n += 1;
    }
    let mut latencies = Vec::new();
    while let Some(latency) = calls.next().await {
        latencies.push(latency?);
        if Instant::now() < deadline {
            calls.push(timed(n));
            n += 1;
        }
    }
    Ok(latencies)
}

/// `inflight` birpc calls in flight on `peer` until `deadline`.
pub(crate) async fn birpc_connection(
    peer: PeerHandle,
    inflight: usize,
    deadline: Instant,
    payload: Payload,
) -> Result<Vec<u64>> {
    keep_in_flight(inflight, deadline, |n| {
        let (peer, payload) = (&peer, &payload);
        async move {
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
    })
    .await
}

/// `inflight` jsonrpsee calls in flight on `client` until `deadline`.
pub(crate) async fn jsonrpsee_connection(
    client: Arc<WsClient>,
    inflight: usize,
    deadline: Instant,
    payload: Payload,
) -> Result<Vec<u64>> {
    keep_in_flight(inflight, deadline, |n| {
        let (client, payload) = (&client, &payload);
        async move {
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
    })
    .await
}

/// Keeps `inflight` calls in flight on each of `peers` for `duration`.
pub(crate) async fn birpc_round(
    peers: &[PeerHandle],
    inflight: usize,
    duration: Duration,
    payload: &Payload,
) -> Result<RoundSummary> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for peer in peers {
        tasks.spawn(birpc_connection(peer.clone(), inflight, deadline, payload.clone()));
    }
    collect(tasks, start).await
}

/// Keeps `inflight` calls in flight on each of `clients` for `duration`.
pub(crate) async fn jsonrpsee_round(
    clients: &[Arc<WsClient>],
    inflight: usize,
    duration: Duration,
    payload: &Payload,
) -> Result<RoundSummary> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for client in clients {
        tasks.spawn(jsonrpsee_connection(
            client.clone(),
            inflight,
            deadline,
            payload.clone(),
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
pub(crate) async fn birpc_slow(
    peer: &PeerHandle,
    count: u64,
    every: Duration,
    mut tick: impl FnMut(),
) -> Result<SlowRead> {
    let mut stream = peer.subscribe::<u64>("forever", ()).await?;
    let mut pace = pace(every);
    let mut read = SlowRead::default();
    while read.received < count {
        pace.tick().await;
        match stream.next().await {
            Some(item) => read.take(item?)?,
            None => break,
        }
        tick();
    }
    read.cut_short = read.received < count;
    Ok(read)
}

/// Reads `count` items of jsonrpsee's endless `subscribe_forever` on `client`, one every `every`, calling
/// `tick` after each; stops early if jsonrpsee closes the subscription (it does when its buffer of 1,024
/// items per subscription is full: "lagged").
pub(crate) async fn jsonrpsee_slow(
    client: &WsClient,
    count: u64,
    every: Duration,
    mut tick: impl FnMut(),
) -> Result<SlowRead> {
    let mut stream = client
        .subscribe::<u64, _>("subscribe_forever", rpc_params![], "unsubscribe_forever")
        .await?;
    let mut pace = pace(every);
    let mut read = SlowRead::default();
    while read.received < count {
        pace.tick().await;
        match stream.next().await {
            Some(item) => read.take(item?)?,
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
