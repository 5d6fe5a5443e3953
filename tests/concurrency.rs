//! Many calls in flight in both directions on one connection, answered out of order; handlers that call
//! back their caller, nested, with the concurrency bound reached.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use birpc::prelude::*;
use common::within;
use futures::future::join_all;
use tokio::sync::Notify;

/// Handlers of `slot(i)` that all wait until `n` of them are running, then finish in the reverse order of
/// `i`: `slot(n-1)` first, `slot(0)` last. Each answers `2i + 1`.
struct Gate {
    n: usize,
    arrived: AtomicUsize,
    turns: Vec<Notify>,
    finished: Mutex<Vec<usize>>,
}

impl Gate {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            n,
            arrived: AtomicUsize::new(0),
            turns: (0..n).map(|_| Notify::new()).collect(),
            finished: Mutex::new(Vec::with_capacity(n)),
        })
    }

    async fn slot(&self, i: usize) -> Result<usize, ErrorObject> {
        if i >= self.n {
            return Err(ErrorObject::invalid_params("slot out of range"));
        }
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.turns[self.n - 1].notify_one();
        }
        self.turns[i].notified().await;
        self.finished.lock().unwrap().push(i);
        if i > 0 {
            self.turns[i - 1].notify_one();
        }
        Ok(2 * i + 1)
    }

    fn router(self: &Arc<Self>) -> Router {
        let gate = self.clone();
        Router::new().method("slot", move |_: Context, (i,): (usize,)| {
            let gate = gate.clone();
            async move { gate.slot(i).await }
        })
    }

    fn assert_reversed(&self) {
        let finished = self.finished.lock().unwrap();
        let expected: Vec<usize> = (0..self.n).rev().collect();
        assert_eq!(*finished, expected);
    }
}

/// Calls `slot(0..n)` at once and checks every answer against its own request; returns the order in which
/// the answers arrived.
async fn call_slots(peer: &PeerHandle, n: usize) -> Vec<usize> {
    let arrivals = Mutex::new(Vec::with_capacity(n));
    join_all((0..n).map(|i| {
        let arrivals = &arrivals;
        async move {
            let answer: usize = peer.call("slot", (i,)).await.expect("slot answered");
            assert_eq!(answer, 2 * i + 1, "slot({i}) got another call's answer");
            arrivals.lock().unwrap().push(i);
        }
    }))
    .await;
    arrivals.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_each_way_answered_out_of_order() {
    const N: usize = 1000;
    let server_gate = Gate::new(N);
    let client_gate = Gate::new(N);

    let gate = server_gate.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        // `storm(n)`: the server calls the client's `slot(0..n)` all at once, while the client calls its.
        gate.router()
            .method("storm", |ctx: Context, (n,): (usize,)| async move {
                let arrivals = call_slots(ctx.peer(), n).await;
                Ok::<_, ErrorObject>(arrivals)
            })
    });
    let client = Client::builder()
        .router(client_gate.router())
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();

    let storm = async { client.call::<Vec<usize>>("storm", (N,)).await.expect("storm answered") };
    let (server_side_arrivals, client_side_arrivals) =
        within("2,000 calls", futures::future::join(storm, call_slots(&client, N))).await;

    // Every handler ran at once on each side (the gates only open with all N waiting), and they finished
    // in reverse order: every answer was matched to its call by id, not by position.
    server_gate.assert_reversed();
    client_gate.assert_reversed();
    for arrivals in [&server_side_arrivals, &client_side_arrivals] {
        assert_eq!(arrivals.len(), N);
        assert!(!arrivals.is_sorted(), "answers arrived in request order");
    }
    server.shutdown().await;
}

/// `nest(n)` on either side: at 0 answers its side's name, else calls `nest(n - 1)` on the other side and
/// prefixes its own name.
fn nesting(name: &'static str) -> Router {
    Router::new().method("nest", move |ctx: Context, (depth,): (u32,)| async move {
        if depth == 0 {
            return Ok::<_, ErrorObject>(name.to_owned());
        }
        let inner: String = ctx
            .peer()
            .call("nest", (depth - 1,))
            .await
            .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
        Ok(format!("{name}>{inner}"))
    })
}

#[tokio::test]
async fn handlers_call_back_their_caller_three_deep_with_the_bound_reached() {
    // One handler at a time on each side: every nested call arrives while the only place is taken by the
    // handler waiting for it.
    let tight = PeerConfig::default().max_concurrent_requests(1);
    let server = Server::builder()
        .config(tight.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| nesting("server"));
    let client = Client::builder()
        .router(nesting("client"))
        .config(tight)
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();

    // client -> server(3) -> client(2) -> server(1) -> client(0).
    let path: String = within("nested calls", client.call("nest", (3,))).await.unwrap();
    assert_eq!(path, "server>client>server>client");
    // Many such chains at once still resolve.
    let paths = within(
        "concurrent nested calls",
        join_all((0..20).map(|_| client.call::<String>("nest", (5,)))),
    )
    .await;
    for path in paths {
        assert_eq!(path.unwrap(), "server>client>server>client>server>client");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn notifications_are_handled_one_after_another_in_order() {
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel(512);
    let running = Arc::new(AtomicUsize::new(0));
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let (seen_tx, running) = (seen_tx.clone(), running.clone());
        Router::new().method("note", move |_: Context, (i,): (u32,)| {
            let (seen_tx, running) = (seen_tx.clone(), running.clone());
            async move {
                // Never two at once, even though each one yields in the middle.
                assert_eq!(
                    running.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two notification handlers overlapped"
                );
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                seen_tx.send(i).await.map_err(|_| ErrorObject::internal_error())
            }
        })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    for i in 0..300u32 {
        client.notify("note", (i,)).await.unwrap();
    }
    for want in 0..300u32 {
        assert_eq!(within("a notification", seen.recv()).await, Some(want));
    }
    server.shutdown().await;
}
