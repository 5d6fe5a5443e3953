//! `birpc call` and `birpc notify`.

use birpc::{PeerHandle, Router};
use serde_json::value::RawValue;

use crate::args::{CallArgs, NotifyArgs};
use crate::connect::hang_up;
use crate::failure::Failure;
use crate::output::{self, Layout};
use crate::params::{self, CallParams};

/// Calls the method and prints its result, or its error object (then fails with it).
pub(crate) async fn call(args: CallArgs) -> Result<(), Failure> {
    let params = parse_params(&args.invocation.params)?;
    let layout = Layout::choose(args.layout.pretty, args.layout.compact);
    let peer = args.endpoint.open(Router::new()).await?;
    let outcome = call_and_print(&peer, &args.invocation.method, &params, layout).await;
    hang_up(&peer).await;
    outcome
}

/// Sends the notification, and closes once it is sent.
pub(crate) async fn notify(args: NotifyArgs) -> Result<(), Failure> {
    let params = parse_params(&args.invocation.params)?;
    let peer = args.endpoint.open(Router::new()).await?;
    let sent = peer.notify(&args.invocation.method, &params).await;
    hang_up(&peer).await;
    Ok(sent?)
}

/// The params of the words, or a usage failure.
pub(crate) fn parse_params(words: &[String]) -> Result<CallParams, Failure> {
    params::parse(words).map_err(|e| Failure::Usage(e.to_string()))
}

/// Calls `method` and prints what comes back on stdout: the result, or the error object (then the
/// failure is [`Failure::ErrorObject`]).
pub(crate) async fn call_and_print(
    peer: &PeerHandle,
    method: &str,
    params: &CallParams,
    layout: Layout,
) -> Result<(), Failure> {
    match peer.call::<Box<RawValue>>(method, params).await {
        Ok(result) => Ok(output::print(layout, &result)?),
        Err(error) => {
            let failure = Failure::from(error);
            if let Failure::ErrorObject(object) = &failure {
                output::print(layout, &output::raw(object))?;
            }
            Err(failure)
        }
    }
}
