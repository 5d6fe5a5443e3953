//! 10,000 calls from a client, and as many from the server, across connections cut at random moments:
//! every call on both sides resolves (answered correctly, or failed with a disconnection); none hangs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use birpc::prelude::*;
use common::{Proxy, eventually, within};
use futures::future::join_all;
use tokio::sync::{Notify, mpsc};

const ROUNDS: usize = 20;
const CALLS_PER_ROUND: usize = 500;

/// `work(i)`: yields a few times (so answers come out of order), then answers `i`.
fn work() -> Router {
    Router::new().method("work", |_: Context, (i,): (u64,)| async move {
        for _ in 0..i % 5 {
            tokio::task::yield_now().await;
        }
        Ok::<_, ErrorObject>(i)
    })
}

/// What the server reports of its own calls to the client.
enum Report {
    Issued(usize),
    Outcome(u64, Result<u64, CallError>),
}

/// Checks an outcome: a right answer, or a disconnection.
fn check(i: u64, outcome: &Result<u64, CallError>) -> bool {
    match outcome {
        Ok(answer) => {
            assert_eq!(*answer, i, "call {i} got another call's answer");
            true
        }
        Err(CallError::Disconnected(_)) => false,
        Err(other) => panic!("call {i} failed otherwise: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_resolves_across_random_cuts() {
    let (reports_tx, mut reports) = mpsc::channel::<Report>(4 * CALLS_PER_ROUND);
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let reports = reports_tx.clone();
        work().method("storm", move |ctx: Context, (base, n): (u64, usize)| {
            let reports = reports.clone();
            let peer = ctx.peer().clone();
            async move {
                reports
                    .send(Report::Issued(n))
                    .await
                    .map_err(|_| ErrorObject::internal_error())?;
                for j in 0..n as u64 {
                    let (call, reports) = (peer.call::<u64>("work", (base + j,)), reports.clone());
                    tokio::spawn(async move {
                        let _ = reports.send(Report::Outcome(base + j, call.await)).await;
                    });
                }
                Ok::<_, ErrorObject>(())
            }
        })
    });

    let mut rng = fastrand::Rng::with_seed(0x00b1_79c0);
    let (mut client_ok, mut client_cut, mut server_ok, mut server_cut) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        let proxy = Proxy::start(server.local_addr()).await;
        let peer = Client::builder()
            .router(work())
            .connect(&format!("ws://{}", proxy.addr))
            .await
            .unwrap();
        let base = (round * 2 * CALLS_PER_ROUND) as u64;

        // Cut after a random number of the client's calls have been answered (sometimes none).
        let cut_after = rng.usize(0..CALLS_PER_ROUND);
        let answered = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(Notify::new());
        let cutter = {
            let (answered, progress) = (answered.clone(), progress.clone());
            tokio::spawn(async move {
                while answered.load(Ordering::SeqCst) < cut_after {
                    progress.notified().await;
                }
                proxy.cut();
            })
        };
        let storm = tokio::spawn(peer.call::<()>("storm", (base + CALLS_PER_ROUND as u64, CALLS_PER_ROUND)));
        let calls = (0..CALLS_PER_ROUND as u64).map(|i| {
            let (call, answered, progress) = (
                peer.call::<u64>("work", (base + i,)),
                answered.clone(),
                progress.clone(),
            );
            async move {
                let outcome = call.await;
                answered.fetch_add(1, Ordering::SeqCst);
                progress.notify_one();
                (base + i, outcome)
            }
        });
        let outcomes = within("the client's calls to resolve", join_all(calls)).await;
        for (i, outcome) in &outcomes {
            if check(*i, outcome) {
                client_ok += 1;
            } else {
                client_cut += 1;
            }
        }
        within("the cut", cutter).await.unwrap();
        let _ = within("the storm call", storm).await.unwrap();

        // Once the server has seen this connection end, every call it made here has resolved or will at once.
        eventually("the server to release the connection", || {
            server.connection_count() == 0
        })
        .await;
        let mut issued = 0usize;
        let mut resolved = 0usize;
        loop {
            // Done when every call the storm issued has resolved, or when the storm never reached the
            // server before the cut (it reports before issuing anything).
            if (issued > 0 && resolved == issued) || (issued == 0 && reports.is_empty()) {
                break;
            }
            match within("the server's calls to resolve", reports.recv()).await {
                Some(Report::Issued(n)) => issued += n,
                Some(Report::Outcome(i, outcome)) => {
                    resolved += 1;
                    if check(i, &outcome) {
                        server_ok += 1;
                    } else {
                        server_cut += 1;
                    }
                }
                None => unreachable!("the server holds a sender"),
            }
        }
    }

    println!("client: {client_ok} answered, {client_cut} cut; server: {server_ok} answered, {server_cut} cut");
    assert_eq!(client_ok + client_cut, ROUNDS * CALLS_PER_ROUND);
    assert!(
        client_ok > 0 && client_cut > 0,
        "the cuts should fall in the middle of the traffic"
    );
    assert!(server_ok + server_cut > 0, "the server called the client");
    server.shutdown().await;
}
