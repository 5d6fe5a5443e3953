//! Endpoints named by URL, for tools and servers that take any transport on their command line.
//!
//! - this module: [`Target`], parsed from and written as a URL;
//! - `command_line`: splitting an `exec:` command line into its words;
//! - `open`: dialling a target, with a peer ([`Target::connect`]) or as a bare [`BoxTransport`]
//!   ([`Target::open_transport`]);
//! - `listen`: listening on a target ([`Target::listen`]) and serving each connection.

mod command_line;
mod listen;
mod open;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::framing::Framing;

pub use listen::{ListenError, ListenOptions, Listening, Serving};
pub use open::BoxTransport;

/// Where to connect or listen, as a URL:
///
/// | URL | connect | listen |
/// | --- | --- | --- |
/// | `ws://HOST:PORT/PATH`, `wss://…` | a WebSocket client ([`ws::Client`](crate::ws::Client)) | a WebSocket server ([`ws::Server`](crate::ws::Server)) on `HOST:PORT` |
/// | `tcp://HOST:PORT` | a TCP connection | a TCP server (port 0 picks one) |
/// | `unix:PATH` | a Unix socket connection | a Unix socket server (the path must not exist) |
/// | `stdio` | this process's stdin and stdout | the same: one connection, over stdin and stdout |
/// | `exec:COMMAND LINE` | a child process, spawned from the command line, over its stdin and stdout | — |
///
/// Byte-stream targets (all but `ws` and `wss`) take `?framing=lines` (the default: one message a line,
/// JSON Lines) or `?framing=content-length` (`Content-Length` headers, as the Language Server Protocol),
/// as in `tcp://127.0.0.1:9000?framing=content-length` or `stdio?framing=content-length`. The rest of an
/// `exec:` URL is the command line, so its framing is set with [`framing`](Self::framing) instead. An
/// `exec:` command line is split into words at whitespace, with `'…'` and `"…"` quoting and `\` escaping
/// as in a POSIX shell (no variables, globs or pipes: the program is run directly).
///
/// [`Display`](fmt::Display) writes the URL back (the framing only when it is not the default, and never
/// for `exec:`), so that parsing what is written gives the same target.
///
/// ```
/// use rpc_transport::Target;
/// use rpc_transport::framing::Framing;
///
/// let target: Target = "tcp://127.0.0.1:9000?framing=content-length".parse()?;
/// assert_eq!(target, Target::Tcp { addr: "127.0.0.1:9000".into(), framing: Framing::ContentLength });
/// assert_eq!(target.to_string(), "tcp://127.0.0.1:9000?framing=content-length");
/// let server: Target = "exec:interop_server --listen stdio".parse()?;
/// let server = server.framing(Framing::ContentLength);
/// # let _ = server;
/// # Ok::<(), rpc_transport::ParseTargetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// A `ws://` or `wss://` URL, whole.
    WebSocket(String),
    /// `tcp://HOST:PORT`.
    Tcp {
        /// `HOST:PORT` (a name, an IPv4 address, or an IPv6 address in brackets).
        addr: String,
        /// How messages are delimited.
        framing: Framing,
    },
    /// `unix:PATH`.
    Unix {
        /// The socket's path.
        path: PathBuf,
        /// How messages are delimited.
        framing: Framing,
    },
    /// `stdio`: this process's stdin and stdout.
    Stdio {
        /// How messages are delimited.
        framing: Framing,
    },
    /// `exec:COMMAND LINE`: a child process (connect only).
    Exec {
        /// The command line, as written after `exec:`.
        command: String,
        /// How messages are delimited.
        framing: Framing,
    },
}

/// Why a string is not a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseTargetError {
    /// Not one of the URL forms of [`Target`].
    #[error(
        "{0:?} is not a target: expected ws://HOST:PORT, wss://HOST:PORT, tcp://HOST:PORT, unix:PATH, stdio or exec:COMMAND"
    )]
    UnknownScheme(String),
    /// A `tcp://` URL without a `HOST:PORT` (with a port from 0 to 65535).
    #[error("{0:?}: a tcp:// URL needs HOST:PORT")]
    InvalidAddress(String),
    /// A `ws://` or `wss://` URL that is not one (no host, a malformed authority), an empty `unix:` path or
    /// `exec:` command line, or unbalanced quotes in the command line.
    #[error("{target:?}: {reason}")]
    Invalid {
        /// The URL.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query parameter other than `framing`, or a framing other than `lines` and `content-length`.
    #[error("{target:?}: {reason}")]
    InvalidQuery {
        /// The URL.
        target: String,
        /// What is wrong with its query.
        reason: String,
    },
}

impl Target {
    /// The target with this framing, for byte-stream targets (`ws` and `wss` stay as they are: WebSocket
    /// frames its messages itself).
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        match &mut self {
            Target::WebSocket(_) => {}
            Target::Tcp { framing: f, .. }
            | Target::Unix { framing: f, .. }
            | Target::Stdio { framing: f }
            | Target::Exec { framing: f, .. } => *f = framing,
        }
        self
    }

    /// The framing of a byte-stream target; `None` for WebSocket.
    pub fn framing_of(&self) -> Option<Framing> {
        match self {
            Target::WebSocket(_) => None,
            Target::Tcp { framing, .. }
            | Target::Unix { framing, .. }
            | Target::Stdio { framing }
            | Target::Exec { framing, .. } => Some(*framing),
        }
    }
}

/// `rest` without its query, and the framing the query gives (the default without one).
fn framing_query<'a>(target: &str, rest: &'a str) -> Result<(&'a str, Framing), ParseTargetError> {
    let Some((before, query)) = rest.rsplit_once('?') else {
        return Ok((rest, Framing::default()));
    };
    let invalid = |reason: String| ParseTargetError::InvalidQuery {
        target: target.to_owned(),
        reason,
    };
    let mut framing = Framing::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "framing" => framing = value.parse().map_err(|e| invalid(format!("{e}")))?,
            other => {
                return Err(invalid(format!(
                    "unknown parameter {other:?} (only `framing` is known)"
                )));
            }
        }
    }
    Ok((before, framing))
}

/// Whether `addr` is `HOST:PORT`.
fn is_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.ends_with(']') && inner.len() > 1
    } else {
        !host.is_empty() && !host.contains(['/', '[', ']', ':'])
    };
    host_ok && port.parse::<u16>().is_ok()
}

impl FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(s: &str) -> Result<Self, ParseTargetError> {
        let invalid = |reason: &str| ParseTargetError::Invalid {
            target: s.to_owned(),
            reason: reason.to_owned(),
        };
        let lower = s.get(..6).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("ws://") || lower.starts_with("wss://") {
            // Checked as the WebSocket client will read it, so that a malformed one is refused here as a URL
            // rather than later as a failed connection.
            return match s.parse::<http::Uri>() {
                Ok(uri) if uri.host().is_some_and(|host| !host.is_empty()) => Ok(Target::WebSocket(s.to_owned())),
                Ok(_) => Err(invalid("not a WebSocket URL: it names no host")),
                Err(error) => Err(invalid(&format!("not a WebSocket URL: {error}"))),
            };
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (addr, framing) = framing_query(s, rest)?;
            let addr = addr.strip_suffix('/').unwrap_or(addr);
            if !is_host_port(addr) {
                return Err(ParseTargetError::InvalidAddress(s.to_owned()));
            }
            return Ok(Target::Tcp {
                addr: addr.to_owned(),
                framing,
            });
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            let (path, framing) = framing_query(s, rest)?;
            // `unix:///run/x.sock` is accepted for `unix:/run/x.sock`.
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid("a unix: URL needs a path"));
            }
            return Ok(Target::Unix {
                path: PathBuf::from(path),
                framing,
            });
        }
        if s == "stdio" || s.starts_with("stdio?") || s.starts_with("stdio:") {
            let rest = s["stdio".len()..].trim_start_matches(':');
            let (empty, framing) = framing_query(s, rest)?;
            if !empty.is_empty() {
                return Err(ParseTargetError::UnknownScheme(s.to_owned()));
            }
            return Ok(Target::Stdio { framing });
        }
        if let Some(command) = s.strip_prefix("exec:") {
            let words = command_line::split(command).map_err(|reason| invalid(&reason))?;
            if words.is_empty() {
                return Err(invalid("an exec: URL needs a command line"));
            }
            return Ok(Target::Exec {
                command: command.to_owned(),
                framing: Framing::default(),
            });
        }
        Err(ParseTargetError::UnknownScheme(s.to_owned()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = |framing: &Framing| match framing {
            Framing::Lines => String::new(),
            other => format!("?framing={other}"),
        };
        match self {
            Target::WebSocket(url) => f.write_str(url),
            Target::Tcp { addr, framing } => write!(f, "tcp://{addr}{}", query(framing)),
            Target::Unix { path, framing } => write!(f, "unix:{}{}", path.display(), query(framing)),
            Target::Stdio { framing } => write!(f, "stdio{}", query(framing)),
            Target::Exec { command, .. } => write!(f, "exec:{command}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_round_trips() -> Result<(), ParseTargetError> {
        for url in [
            "ws://127.0.0.1:9000",
            "wss://example.org/rpc?token=x",
            "tcp://127.0.0.1:9000",
            "tcp://[::1]:0?framing=content-length",
            "tcp://localhost:80",
            "unix:/tmp/birpc.sock",
            "unix:relative/x.sock?framing=content-length",
            "stdio",
            "stdio?framing=content-length",
            "exec:interop_server --listen 'stdio?framing=content-length'",
        ] {
            let target: Target = url.parse()?;
            assert_eq!(target.to_string(), url);
            assert_eq!(target.to_string().parse::<Target>()?, target);
        }
        Ok(())
    }

    #[test]
    fn byte_stream_targets_carry_their_framing() -> Result<(), ParseTargetError> {
        assert_eq!(
            "unix:///run/x.sock?framing=lines".parse::<Target>()?,
            Target::Unix {
                path: "/run/x.sock".into(),
                framing: Framing::Lines
            }
        );
        let exec = "exec:node server.js".parse::<Target>()?.framing(Framing::ContentLength);
        assert_eq!(exec.framing_of(), Some(Framing::ContentLength));
        assert_eq!(exec.to_string(), "exec:node server.js");
        let ws = "ws://h:1".parse::<Target>()?.framing(Framing::ContentLength);
        assert_eq!(ws.framing_of(), None);
        Ok(())
    }

    #[test]
    fn malformed_targets_are_refused_with_the_reason() {
        for (url, expected) in [
            ("http://x:1", "is not a target"),
            ("127.0.0.1:9000", "is not a target"),
            ("tcp://127.0.0.1", "needs HOST:PORT"),
            ("tcp://:80", "needs HOST:PORT"),
            ("tcp://h:99999", "needs HOST:PORT"),
            ("unix:", "needs a path"),
            ("exec:   ", "needs a command line"),
            ("exec:echo 'open", "quote"),
            ("stdio?framing=xml", "unknown framing"),
            ("tcp://h:1?color=red", "unknown parameter"),
            ("stdiox", "is not a target"),
            ("ws://[::1", "not a WebSocket URL"),
            ("ws://", "not a WebSocket URL"),
            ("wss://h:1:2/x", "not a WebSocket URL"),
            ("ws://h:1/a b", "not a WebSocket URL"),
        ] {
            match url.parse::<Target>() {
                Ok(target) => panic!("{url:?} parsed as {target:?}"),
                Err(error) => assert!(error.to_string().contains(expected), "{url:?}: {error}"),
            }
        }
    }
}
