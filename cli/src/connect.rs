//! Connecting to an endpoint by its URL: the one place that knows the schemes.

use birpc::framing::Framing;
use birpc::{PeerConfig, PeerHandle, Router, Target};

use crate::args::Endpoint;
use crate::failure::Failure;

/// The URLs `connect` takes, for error messages and `--help`.
pub(crate) const SCHEMES: &str =
    "ws://HOST:PORT/PATH, wss://HOST:PORT/PATH, tcp://HOST:PORT, unix:PATH, stdio, exec:COMMAND LINE";

/// The endpoint `url` names, with `framing` for byte streams when one is given (else the URL's own, or
/// one message a line).
///
/// # Errors
/// [`Failure::Usage`] for a URL that names no endpoint.
pub(crate) fn target(url: &str, framing: Option<Framing>) -> Result<Target, Failure> {
    let target: Target = url
        .parse()
        .map_err(|error| Failure::Usage(format!("{error} (one of {SCHEMES})")))?;
    Ok(match framing {
        Some(framing) => target.framing(framing),
        None => target,
    })
}

/// Connects to `url` (with `framing` for byte streams, see [`target`]), exporting `router` to the other
/// side (for its calls back), with the limits and timeouts of `config`, and starts the peer on the
/// current runtime.
///
/// # Errors
/// [`Failure::Usage`] for a URL that names no endpoint, or `stdio` (the commands print there);
/// [`Failure::Connection`] when the connection
/// cannot be made (a refused socket, a command that cannot be started, a refused upgrade).
pub(crate) async fn connect(
    url: &str,
    framing: Option<Framing>,
    router: Router,
    config: PeerConfig,
) -> Result<PeerHandle, Failure> {
    let target = target(url, framing)?;
    if matches!(target, Target::Stdio { .. }) {
        // This command prints on stdout: it cannot be the channel too.
        return Err(Failure::Usage(format!(
            "{url}: this command prints on stdout, so it cannot talk over it; stdio is for `birpc bridge`"
        )));
    }
    target
        .connect(router, config)
        .await
        .map_err(|error| Failure::connect(url, &error))
}

impl Endpoint {
    /// Connects to this endpoint (its URL and framing), exporting `router`, with calls that wait
    /// `--timeout` for their answers: see [`connect`].
    ///
    /// # Errors
    /// As [`connect`].
    pub(crate) async fn open(&self, router: Router) -> Result<PeerHandle, Failure> {
        connect(&self.url, self.framing, router, config(self.timeout)).await
    }
}

/// The peer's settings for a command: calls wait `timeout` for their answers (forever when `None`, as
/// long as the connection lasts).
pub(crate) fn config(timeout: Option<std::time::Duration>) -> PeerConfig {
    PeerConfig::default().call_timeout(timeout)
}

/// Closes the connection once what is queued is sent, and waits for the close to complete.
pub(crate) async fn hang_up(peer: &PeerHandle) {
    peer.close();
    peer.closed().await;
}
