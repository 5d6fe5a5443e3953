//! Ctrl-C and SIGTERM: the signals that stop a command.

/// Resolves at the first Ctrl-C (SIGINT); never, where the signal cannot be watched.
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A signal that stopped a command before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    /// The exit code a shell gives a command that such a signal ended: 128 and the signal's number.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 128 + 2,
            Stop::Terminate => 128 + 15,
        }
    }

    /// The signal's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// Resolves at the first SIGTERM, or at the first Ctrl-C when `interrupt` is set; when it is not (the
/// commands that answer Ctrl-C themselves, by closing gracefully), at the second Ctrl-C, for a close that
/// takes too long (the other side not closing its end). Never, where neither signal can be watched.
///
/// Without it, the signal's default action would end the process at once, before any of its tasks is
/// dropped: a program spawned for an `exec:` URL would then not be killed, and one that ignores the end
/// of its stdin would be left running.
pub(crate) async fn stopped(interrupt: bool) -> Stop {
    let times = if interrupt { 1 } else { 2 };
    tokio::select! {
        () = interrupts(times) => Stop::Interrupt,
        () = terminated() => Stop::Terminate,
    }
}

/// Resolves at the `times`-th Ctrl-C (counted from this call); never, where it cannot be watched.
async fn interrupts(times: usize) {
    #[cfg(unix)]
    {
        let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) else {
            return std::future::pending().await;
        };
        for _ in 0..times {
            signal.recv().await;
        }
    }
    #[cfg(not(unix))]
    for _ in 0..times {
        interrupted().await;
    }
}

/// Resolves at the first SIGTERM; never, where it cannot be watched.
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        signal.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}
