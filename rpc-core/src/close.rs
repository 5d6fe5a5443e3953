//! Why and how a connection ends.

use std::fmt;
use std::sync::Arc;

/// A connection close code.
///
/// The values are those of RFC 6455 so that the WebSocket transport can pass them through unchanged;
/// other transports carry them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the connection did what it was for and is closed on purpose.
    pub const NORMAL: Self = Self(1000);
    /// 1001: this side is going away (a server shutting down, a page being left).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the other side broke the transport's protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1005: the close frame carried no code.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a text frame held invalid UTF-8.
    pub const INVALID_DATA: Self = Self(1007);
    /// 1008: a policy was violated (authentication, origin, a limit of the application).
    pub const POLICY: Self = Self(1008);
    /// 1009: a message was larger than this side accepts.
    pub const TOO_BIG: Self = Self(1009);
    /// 1011: this side met a condition it could not handle.
    pub const INTERNAL: Self = Self(1011);
    /// 1013: this side is overloaded; try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A close code with its human-readable reason, as carried by a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code.
    pub code: CloseCode,
    /// A short reason (WebSocket allows at most 123 bytes; longer reasons are cut by the transport).
    pub reason: Arc<str>,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Arc<str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// A normal close (1000) with an empty reason.
    pub fn normal() -> Self {
        Self::new(CloseCode::NORMAL, "")
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "code {}", self.code)
        } else {
            write!(f, "code {}: {}", self.code, self.reason)
        }
    }
}

/// Why a connection ended, as reported by [`PeerHandle::closed`](crate::PeerHandle::closed) and carried by
/// [`CallError::Disconnected`](crate::CallError::Disconnected).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// This side closed the connection (with [`PeerHandle::close`](crate::PeerHandle::close), a limit, a
    /// missed heartbeat or a shutdown) and sent this close frame.
    Local(CloseFrame),
    /// The other side closed the connection with this close frame.
    Remote(CloseFrame),
    /// The transport failed or ended without a close handshake.
    Transport(Arc<str>),
}

impl CloseReason {
    /// The close code: the one in the close frame, or 1006 when the transport ended without one.
    pub fn code(&self) -> CloseCode {
        match self {
            CloseReason::Local(frame) | CloseReason::Remote(frame) => frame.code,
            CloseReason::Transport(_) => CloseCode::ABNORMAL,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local(frame) => write!(f, "closed by this side ({frame})"),
            CloseReason::Remote(frame) => write!(f, "closed by the other side ({frame})"),
            CloseReason::Transport(message) => write!(f, "transport ended: {message}"),
        }
    }
}

impl std::error::Error for CloseReason {}
