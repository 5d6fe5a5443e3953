//! What a peer needs from a connection: a stream of received frames and a sink for frames to send.
//!
//! A transport only moves frames; it knows nothing of JSON-RPC. The WebSocket transport and the in-memory
//! pair live in `birpc-transport`; anything else (a Unix socket with line framing, a test double) plugs in
//! the same way.

use bytes::Bytes;
use futures::{Sink, Stream};

use crate::close::{CloseCode, CloseFrame};

/// What the peer hands to the transport to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outbound {
    /// One message (a WebSocket text message, a line).
    Frame(String),
    /// A liveness probe the other side answers at transport level (a WebSocket ping).
    Ping(Bytes),
    /// The close frame; nothing is sent after it.
    Close(CloseFrame),
}

/// What the transport hands to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound {
    /// One message, as bytes (text or binary on the wire; the peer checks that it is UTF-8 JSON).
    Frame(Bytes),
    /// The answer to a [`Outbound::Ping`] (or any unsolicited pong): the other side is alive.
    Pong(Bytes),
    /// The other side's close frame. The transport answers it itself; the stream ends soon after.
    Close(CloseFrame),
}

/// Why a transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A received message was larger than the transport accepts.
    #[error("message of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The size of the message, as far as it was read.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The other side broke the transport's protocol (a bad WebSocket frame, say).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A text message held invalid UTF-8.
    #[error("a text message held invalid UTF-8")]
    InvalidUtf8,
    /// The connection is already closed.
    #[error("connection closed")]
    Closed,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// The close code that answers this failure when it came from the other side: 1009 for a message too
    /// large, 1007 for invalid UTF-8, 1002 for a protocol violation; `None` for a failure of the connection
    /// itself, which leaves nobody to tell.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            TransportError::TooLarge { .. } => Some(CloseCode::TOO_BIG),
            TransportError::InvalidUtf8 => Some(CloseCode::INVALID_DATA),
            TransportError::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            TransportError::Closed | TransportError::Io(_) => None,
        }
    }
}

/// A connection the [`Peer`](crate::Peer) can drive: split into a sending half and a receiving half.
///
/// The receiving half ends (`None`) when the connection is over; the sending half fails with
/// [`TransportError::Closed`] once it is.
pub trait Transport: Send + 'static {
    /// The sending half.
    type Sink: Sink<Outbound, Error = TransportError> + Send + Unpin + 'static;
    /// The receiving half.
    type Stream: Stream<Item = Result<Inbound, TransportError>> + Send + Unpin + 'static;

    /// Splits the connection into its halves.
    fn split(self) -> (Self::Sink, Self::Stream);
}
