//! Why a command failed, and the exit code that tells it to a script.

use std::process::ExitCode;

use birpc::{CallError, ConnectError, ErrorObject};

use crate::interrupt::Stop;

/// The exit codes, as `--help` and the README list them.
pub(crate) mod code {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// The other side answered with a JSON-RPC error object (printed on stdout).
    pub(crate) const ERROR_OBJECT: u8 = 1;
    /// Usage: bad arguments, params or answers file, or a URL of another scheme (clap's own usage
    /// errors exit 2 too).
    pub(crate) const USAGE: u8 = 2;
    /// The connection could not be made, or it ended before the answer (or the output could not be
    /// written).
    pub(crate) const CONNECTION: u8 = 3;
    /// No answer within `--timeout`.
    pub(crate) const TIMEOUT: u8 = 4;
}

/// The exit codes, for the end of `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the other side answered with a JSON-RPC error object (printed on stdout as JSON)
  2  usage: bad arguments, params or answers file, or a URL scheme it does not speak
  3  connection: it could not be made, or it ended before the answer (or stdout failed)
  4  timeout: no answer within --timeout
  130, 143  stopped by Ctrl-C (SIGINT) or SIGTERM (listen, stream and bridge end on Ctrl-C with 0)";

/// A command's failure. The error object of an answer is printed where it is received, and reported here
/// only by its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The other side answered with an error object (already printed).
    #[error("the other side answered with error {}", .0.code())]
    ErrorObject(ErrorObject),
    /// Bad input from the command line or a file it names.
    #[error("{0}")]
    Usage(String),
    /// The connection could not be made, or ended.
    #[error("{0}")]
    Connection(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Whoever read stdout has gone (`birpc stream … | head -3`): the command ends quietly.
    #[error("the output was closed")]
    OutputClosed,
    /// Stopped by a signal (Ctrl-C, SIGTERM): the command ends quietly, with the signal's exit code.
    #[error("stopped by {}", .0.name())]
    Stopped(Stop),
}

impl Failure {
    /// The process's exit code for this failure.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::ErrorObject(_) => code::ERROR_OBJECT,
            Failure::Usage(_) => code::USAGE,
            Failure::Connection(_) => code::CONNECTION,
            Failure::Timeout(_) => code::TIMEOUT,
            Failure::OutputClosed => code::OK,
            Failure::Stopped(signal) => signal.exit_code(),
        })
    }

    /// Whether to say nothing more on stderr: an error object was printed on stdout as the answer, and a
    /// closed output is no failure.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(
            self,
            Failure::ErrorObject(_) | Failure::OutputClosed | Failure::Stopped(_)
        )
    }

    /// A failed connection attempt to `url`.
    pub(crate) fn connect(url: &str, error: &ConnectError) -> Self {
        Failure::Connection(format!("cannot connect to {url}: {error}"))
    }
}

impl From<CallError> for Failure {
    fn from(error: CallError) -> Self {
        if let Some(object) = error.error_object() {
            return Failure::ErrorObject(object.clone());
        }
        match error {
            CallError::Timeout(limit) => Failure::Timeout(limit),
            CallError::Disconnected(reason) => Failure::Connection(format!("the connection ended: {reason}")),
            CallError::Encode(_) | CallError::TooLarge { .. } => Failure::Usage(error.to_string()),
            other => Failure::Connection(other.to_string()),
        }
    }
}

/// Writing to stdout failed: a closed pipe ends the command quietly.
impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure::OutputClosed;
        }
        Failure::Connection(format!("cannot write the output: {error}"))
    }
}
