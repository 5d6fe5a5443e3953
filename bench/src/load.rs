//! Keeping calls in flight through birpc's and jsonrpsee's own clients.
//!
//! Like the raw floor, each connection has one task that keeps its calls in flight: it starts `inflight`
//! calls, and each time one is answered (checked, its latency recorded) it starts the next, until the
//! deadline. The calls of a task run concurrently on its connection (a `FuturesUnordered`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use birpc::PeerHandle;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jsonrpsee::core::client::ClientT;
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
