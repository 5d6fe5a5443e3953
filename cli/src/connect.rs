//! Connecting to an endpoint by its URL: the one place that knows the schemes.

use birpc::{Client, PeerConfig, PeerHandle, Router};

use crate::failure::Failure;

/// The schemes `connect` takes, for error messages and `--help`.
pub(crate) const SCHEMES: &str = "ws://HOST:PORT/PATH, wss://HOST:PORT/PATH";

/// Connects to `url`, exporting `router` to the other side (for its calls back), with the limits and
/// timeouts of `config`, and starts the peer on the current runtime.
///
/// # Errors
/// [`Failure::Usage`] for a URL of a scheme this build does not speak; [`Failure::Connection`] when the
/// connection cannot be made.
pub(crate) async fn connect(url: &str, router: Router, config: PeerConfig) -> Result<PeerHandle, Failure> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    match scheme {
        "ws" | "wss" => Client::builder()
            .router(router)
            .config(config)
            .connect(url)
            .await
            .map_err(|error| Failure::connect(url, &error)),
        _ => Err(Failure::Usage(format!(
            "cannot connect to {url:?}: the URL's scheme is not one of {SCHEMES}"
        ))),
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
