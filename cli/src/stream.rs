//! `birpc stream`: subscribe to a stream method and print its items as they come.

use birpc::Router;
use futures::StreamExt;
use serde_json::value::RawValue;

use crate::args::StreamArgs;
use crate::call::parse_params;
use crate::connect::hang_up;
use crate::failure::Failure;
use crate::interrupt::interrupted;
use crate::output::{self, Layout};

/// Subscribes and prints each item on a line of its own, until the stream ends, `--count` items came,
/// or Ctrl-C; then unsubscribes (if the stream is still open) and closes.
pub(crate) async fn stream(args: StreamArgs) -> Result<(), Failure> {
    let params = parse_params(&args.invocation.params)?;
    let peer = args.endpoint.open(Router::new()).await?;
    let outcome = tokio::select! {
        outcome = follow(&peer, &args.invocation.method, &params, args.count) => outcome,
        () = interrupted() => Ok(()),
    };
    // The subscription is dropped by now, so its cancel goes out before the close.
    hang_up(&peer).await;
    outcome
}

/// Reads the stream until its end or `count` items.
async fn follow(
    peer: &birpc::PeerHandle,
    method: &str,
    params: &crate::params::CallParams,
    count: Option<u64>,
) -> Result<(), Failure> {
    let failed = |error: birpc::CallError| {
        let failure = Failure::from(error);
        if let Failure::ErrorObject(object) = &failure {
            output::print(Layout::Compact, &output::raw(object))?;
        }
        Err(failure)
    };
    if count == Some(0) {
        return Ok(());
    }
    let mut items = match peer.subscribe::<Box<RawValue>>(method, params).await {
        Ok(items) => items,
        Err(error) => return failed(error),
    };
    let mut seen = 0_u64;
    while let Some(item) = items.next().await {
        match item {
            Ok(item) => output::print(Layout::Compact, &item)?,
            Err(error) => return failed(error),
        }
        seen += 1;
        if count.is_some_and(|count| seen >= count) {
            break;
        }
    }
    Ok(())
}
