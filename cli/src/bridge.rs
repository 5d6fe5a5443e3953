//! `birpc bridge LISTEN TARGET`: serve LISTEN, and relay each of its connections to a connection of its
//! own to TARGET: a JSON-RPC program on stdio exposed as a WebSocket endpoint (a browser talking to a
//! language server), or the reverse (a stdio tool talking to a WebSocket server).
//!
//! The relay works at the level of JSON-RPC, both ways: each request is called again on the other side
//! (with an id of the relay's own) and its answer, result or error object, goes back unchanged; each
//! notification is sent on. A batch is relayed as its separate calls. The connection to TARGET opens
//! with the first message that arrives on a connection of LISTEN (JSON-RPC clients speak first), and
//! each side's end ends the other.

use std::sync::Arc;

use birpc::layer::IncomingCall;
use birpc::{ErrorObject, ListenOptions, Params, PeerConfig, PeerHandle, Router, Target};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

use crate::args::BridgeArgs;
use crate::connect::{config, target};
use crate::failure::Failure;
use crate::interrupt::interrupted;

/// Serves `args.listen` until Ctrl-C (or, for `stdio`, until stdin ends), relaying to `args.target`.
pub(crate) async fn bridge(args: BridgeArgs) -> Result<(), Failure> {
    let listen = target(&args.listen, args.listen_framing)?;
    let to = Arc::new(target(&args.target, args.framing)?);
    let config = config(args.timeout);
    let options = ListenOptions::default()
        .config(config.clone())
        .max_connections(args.max_connections);
    let listening = listen
        .listen(options)
        .await
        .map_err(|error| Failure::Connection(format!("cannot listen on {}: {error}", args.listen)))?;
    // stdout may be the channel itself (`stdio`): what the bridge says goes to stderr.
    eprintln!("birpc: listening on {}, relaying to {to}", listening.target());
    let serving = listening.serve(move || relay_lazily(to.clone(), config.clone()));
    tokio::select! {
        () = serving.closed() => {}
        () = interrupted() => {}
    }
    serving.shutdown().await;
    Ok(())
}

/// The router of a connection of LISTEN: every message goes on to this connection's own connection to
/// `to`, opened by the first one.
fn relay_lazily(to: Arc<Target>, config: PeerConfig) -> Router {
    let upstream: Arc<OnceCell<PeerHandle>> = Arc::default();
    Router::new().fallback(move |call: IncomingCall| {
        let (to, config, upstream) = (to.clone(), config.clone(), upstream.clone());
        async move {
            let upstream = upstream
                .get_or_try_init(|| open(&to, call.context().peer().clone(), config))
                .await?;
            forward(upstream, &call).await
        }
    })
}

/// Connects to `to` for the connection `downstream`, relaying what `to` sends back to it; whichever
/// ends first ends the other.
async fn open(to: &Target, downstream: PeerHandle, config: PeerConfig) -> Result<PeerHandle, ErrorObject> {
    let upstream = to
        .connect(relay_to(downstream.clone()), config)
        .await
        .map_err(|error| {
            ErrorObject::internal_error().with_detail(format_args!("the bridge cannot reach {to}: {error}"))
        })?;
    let watched = upstream.clone();
    tokio::spawn(async move {
        tokio::select! {
            reason = watched.closed() => {
                eprintln!("birpc: the connection to the target ended ({reason}): closing its client's");
                downstream.close();
            }
            // This side ended: the last owning handle goes with the router, closing the target's side.
            _ = downstream.closed() => {}
        }
    });
    Ok(upstream)
}

/// The router of the connection to TARGET: what it sends goes back to `downstream`.
fn relay_to(downstream: PeerHandle) -> Router {
    Router::new().fallback(move |call: IncomingCall| {
        let downstream = downstream.clone();
        async move { forward(&downstream, &call).await }
    })
}

/// Sends `call` on over `to`: a request's answer comes back as it came (its error object unchanged); a
/// failure of the relay itself (the other side gone, no answer in time) is -32603 with the reason.
async fn forward(to: &PeerHandle, call: &IncomingCall) -> Result<Option<Box<RawValue>>, ErrorObject> {
    let params = raw(call.params())?;
    if call.is_notification() {
        to.notify(call.method(), &params)
            .await
            .map_err(|error| ErrorObject::internal_error().with_detail(error))?;
        return Ok(None);
    }
    match to.call::<Box<RawValue>>(call.method(), &params).await {
        Ok(result) => Ok(Some(result)),
        Err(error) => Err(error
            .error_object()
            .cloned()
            .unwrap_or_else(|| ErrorObject::internal_error().with_detail(format_args!("the bridge: {error}")))),
    }
}

/// The params as received (`None`: the request had none, and the relayed one has none either).
fn raw(params: &Params) -> Result<Option<Box<RawValue>>, ErrorObject> {
    let Some(bytes) = params.as_bytes() else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| ErrorObject::invalid_params("not UTF-8"))?;
    RawValue::from_string(text)
        .map(Some)
        .map_err(ErrorObject::invalid_params)
}
