//! The ready-made byte streams: a TCP or Unix socket, this process's stdin and stdout, a child process.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::ByteStreamTransport;

/// A connection over a TCP socket.
pub type TcpTransport = ByteStreamTransport<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>;

/// A connection over a Unix domain socket.
#[cfg(unix)]
pub type UnixTransport = ByteStreamTransport<tokio::net::unix::OwnedReadHalf, tokio::net::unix::OwnedWriteHalf>;

/// A connection over this process's stdin (read) and stdout (written).
pub type StdioTransport = ByteStreamTransport<tokio::io::Stdin, tokio::io::Stdout>;

/// A connection to a child process, over its stdin (written) and stdout (read).
pub type ChildTransport = ByteStreamTransport<ChildStdout, ChildStdin>;

/// How long a child process may take to exit once its connection is over and its stdin closed, before it
/// is killed: 2 s.
pub const CHILD_EXIT_GRACE: Duration = Duration::from_secs(2);

impl TcpTransport {
    /// A transport over a connected TCP socket (Nagle's algorithm is turned off: messages go out at once).
    pub fn tcp(stream: TcpStream) -> Self {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(target: "birpc::transport", %error, "could not disable Nagle's algorithm");
        }
        let (reader, writer) = stream.into_split();
        Self::from_halves(reader, writer)
    }
}

#[cfg(unix)]
impl UnixTransport {
    /// A transport over a connected Unix domain socket.
    pub fn unix(stream: tokio::net::UnixStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self::from_halves(reader, writer)
    }
}

impl StdioTransport {
    /// A transport over this process's stdin and stdout. Nothing else may write to stdout meanwhile (log to
    /// stderr).
    ///
    /// tokio reads stdin on a blocking thread, which a runtime's shutdown waits for: a process whose
    /// connection ended for another reason than the end of stdin should exit (`std::process::exit`) rather
    /// than wait for its runtime to stop.
    pub fn stdio() -> Self {
        Self::from_halves(tokio::io::stdin(), tokio::io::stdout())
    }
}

impl ChildTransport {
    /// Spawns `command` and talks to it over its stdin and stdout; its stderr is this process's (unless
    /// `command` sets it otherwise).
    ///
    /// The two live and die together: when the child exits, its stdout ends and so does the connection (a
    /// normal close); when the connection ends, the child's stdin is closed, and the child is given
    /// [`CHILD_EXIT_GRACE`] to exit before it is killed (at once if there is no tokio runtime then, or if
    /// the runtime stops first).
    ///
    /// # Errors
    /// When the command cannot be started (not found, not executable).
    pub fn child(command: &mut Command) -> io::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("the child's stdin and stdout were not piped"));
        };
        Ok(Self::from_halves(stdout, stdin).attach(Reaper(Some(child))))
    }
}

/// Waits for a child process to exit when its connection is over, killing it after the grace.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Dropped with `kill_on_drop`: killed.
            return;
        };
        runtime.spawn(async move {
            match tokio::time::timeout(CHILD_EXIT_GRACE, child.wait()).await {
                Ok(Ok(status)) => tracing::debug!(target: "birpc::transport", %status, "a child process exited"),
                Ok(Err(error)) => tracing::debug!(target: "birpc::transport", %error, "waiting for a child process failed"),
                Err(_) => {
                    tracing::debug!(target: "birpc::transport", "a child process did not exit within {CHILD_EXIT_GRACE:?}; killing it");
                    if let Err(error) = child.kill().await {
                        tracing::debug!(target: "birpc::transport", %error, "killing a child process failed");
                    }
                }
            }
        });
    }
}
