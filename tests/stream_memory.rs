//! A million items through one stream to a consumer slower than its producer, over a real socket: the
//! process's memory stays bounded, because the producer never runs more than a window ahead. (A test
//! binary of its own, so that the peak it reads is this scenario's alone.)

mod common;

use std::time::Duration;

use birpc::prelude::*;
use common::within;
use futures::StreamExt;

const ITEMS: u64 = 1_000_000;

/// The peak resident memory of this process so far, in bytes (VmHWM from /proc).
fn peak_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_to_a_slow_consumer_hold_a_bounded_amount_of_memory() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new().stream("flood", |_: Context, _: NoParams| async move {
            // Each item is a 100-byte string: a million of them held at once would be over 100 MB.
            Ok::<_, ErrorObject>(futures::stream::iter(0..ITEMS).map(|n| Ok::<_, ErrorObject>(format!("{n:0>100}"))))
        })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    let before = peak_bytes();
    let mut stream = client.subscribe::<String>("flood", ()).await.unwrap();
    let mut count = 0_u64;
    within_long(async {
        while let Some(item) = stream.next().await {
            let item = item.unwrap();
            assert_eq!(item.len(), 100);
            count += 1;
            // Slower than the producer: a pause now and then hands the producer every chance to run ahead.
            if count.is_multiple_of(1024) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
    .await;
    assert_eq!(count, ITEMS);
    let peak = peak_bytes();
    let growth = peak.saturating_sub(before);
    println!(
        "{ITEMS} items of 100 bytes through one stream: peak resident memory {} KiB, {} KiB above the start",
        peak / 1024,
        growth / 1024
    );
    // Everything in flight is bounded by the window (256 items) and the outgoing queue (256 frames): far
    // below the 100 MB the items would take if they piled up.
    assert!(growth < 32 << 20, "the peak grew by {growth} bytes");
    within("the server's end", server.shutdown()).await;
}

/// The stream takes a while in a debug build; allow it ten minutes instead of the usual patience.
async fn within_long<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(600), future)
        .await
        .expect("the million items did not arrive within ten minutes")
}
