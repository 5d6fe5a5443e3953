//! The signals that ask a server to stop.

/// Resolves when the process is asked to stop: Ctrl-C (`SIGINT`) anywhere, or `SIGTERM` on Unix, the
/// signal service managers (systemd, Docker, Kubernetes) send first. Await it, then shut down
/// gracefully ([`ServerHandle::shutdown`](crate::ws::ServerHandle::shutdown)), so that the calls in
/// flight are answered before the connections close with 1001:
///
/// ```no_run
/// # async fn run(server: rpc_transport::ws::ServerHandle) -> std::io::Result<()> {
/// rpc_transport::shutdown_signal().await?;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the signal handlers cannot be installed (the operating system refused).
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
