//! The signals that ask a server to stop.

/// Resolves when the process is asked to stop: Ctrl-C (`SIGINT`) anywhere, or `SIGTERM` on Unix, the
/// signal service managers (systemd, Docker, Kubernetes) send first. Await it, then shut down
/// gracefully ([`ServerHandle::shutdown`](crate::ws::ServerHandle::shutdown)), so that the calls in
/// flight are answered before the connections close with 1001.
///
/// On Unix the handlers are installed when this is called, not when the future is first polled: call it
/// before saying the server is ready, so that a signal sent right after is caught rather than ending the
/// process at once (the signals' default action).
///
/// ```no_run
/// # async fn run(server: rpc_transport::ws::ServerHandle) -> std::io::Result<()> {
/// let stop = rpc_transport::shutdown_signal();
/// println!("listening on ws://{}", server.local_addr());
/// stop.await?;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the signal handlers cannot be installed (the operating system refused), reported when awaited.
///
/// # Panics
/// Called outside a tokio runtime with its IO driver enabled (tokio's signal handling needs one).
pub fn shutdown_signal() -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed =
            signal(SignalKind::terminate()).and_then(|terminate| Ok((terminate, signal(SignalKind::interrupt())?)));
        async move {
            let (mut terminate, mut interrupt) = installed?;
            tokio::select! {
                _ = terminate.recv() => Ok(()),
                _ = interrupt.recv() => Ok(()),
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
    }
}
