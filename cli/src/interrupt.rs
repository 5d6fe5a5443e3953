//! Ctrl-C, for the commands that run until stopped.

/// Resolves at the first Ctrl-C (SIGINT); never, where the signal cannot be watched.
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
