//! Values cross the wire exactly: every finite `f64` bit for bit, in both directions, through the
//! interoperability server (a separate process) and back.

mod common;

use birpc::prelude::*;
use common::{interop_server, within};

/// 5,000 finite `f64` drawn from every bit pattern (a fixed seed: the same values every run), and the
/// edges.
fn floats() -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_f10a);
    let mut values = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        8.988465674311579e307,
        0.1 + 0.2,
    ];
    while values.len() < 5_000 {
        let value = f64::from_bits(rng.u64(..));
        if value.is_finite() {
            values.push(value);
        }
    }
    values
}

fn assert_same_bits(sent: &[f64], back: &[f64]) {
    assert_eq!(sent.len(), back.len());
    let off: Vec<_> = sent
        .iter()
        .zip(back)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .take(5)
        .collect();
    assert!(off.is_empty(), "values changed on the way: {off:?}");
}

#[tokio::test]
async fn every_f64_round_trips_bit_for_bit_both_ways() {
    let (_child, addr) = interop_server().await;
    let values = floats();
    // This side's `give_back` answers the server's call with what it was given.
    let methods = Router::new().method("give_back", |_: Context, (values,): (Vec<f64>,)| async move {
        Ok::<_, ErrorObject>(values)
    });
    let client = Client::builder()
        .router(methods)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    // Client → server → client: `echo`.
    let echoed: Vec<f64> = within("echo", client.call("echo", (&values,))).await.unwrap();
    assert_same_bits(&values, &echoed);
    // Client → server → client → server → client: `ask_client` makes the server call this side.
    let asked: Vec<f64> = within("ask_client", client.call("ask_client", ("give_back", [&values])))
        .await
        .unwrap();
    assert_same_bits(&values, &asked);
}
