//! What a peer needs from a connection: a stream of received frames and a sink for frames to send, as one
//! [`Duplex`] its task polls for both.
//!
//! A transport only moves frames; it knows nothing of JSON-RPC. The WebSocket transport and the in-memory
//! pair live in `birpc-transport`; anything else (a Unix socket with line framing, a test double) plugs in
//! the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

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

/// A connection the [`Peer`](crate::Peer) can drive.
///
/// The peer's one task drives it as a [`Duplex`]: one object it both sends on and receives from. A
/// connection that is one object (a WebSocket) is its own; one made of two halves joins them with
/// [`Joined`].
pub trait Transport: Send + 'static {
    /// The connection as the peer drives it.
    type Io: Duplex;

    /// The connection, ready to be driven.
    fn into_io(self) -> Self::Io;
}

/// What the peer sends on and receives from: a [`Sink`] of [`Outbound`] messages and a [`Stream`] of
/// [`Inbound`] ones, polled by one task.
///
/// The stream ends (`None`) when the connection is over; the sink fails with
/// [`TransportError::Closed`] once it is.
///
/// Once the stream has returned `Pending`, the peer reads it again only after the transport wakes a waker
/// it was polled with (the peer polls both halves with the same one): as `Stream::poll_next` requires, a
/// stream wakes its waker when it has something, including what its own sink put there.
pub trait Duplex:
    Stream<Item = Result<Inbound, TransportError>> + Sink<Outbound, Error = TransportError> + Send + Unpin + 'static
{
    /// Ends this side's output: called once the connection is over, before its end is made known to this
    /// side (for a byte stream, the other side then sees the end of its input first). Default: nothing;
    /// the output ends when the connection is dropped.
    fn end_output(&mut self) {}
}

impl Duplex for Box<dyn Duplex> {
    fn end_output(&mut self) {
        (**self).end_output();
    }
}

/// A connection made of a sending half and a receiving half, as one [`Duplex`]. Ending its output
/// ([`Duplex::end_output`]) drops the sending half; after that, sending fails with
/// [`TransportError::Closed`].
#[derive(Debug)]
pub struct Joined<Si, St> {
    sink: Option<Si>,
    stream: St,
}

impl<Si, St> Joined<Si, St> {
    /// The two halves as one.
    pub fn new(sink: Si, stream: St) -> Self {
        Self {
            sink: Some(sink),
            stream,
        }
    }

    /// The sending half, unless the output was ended.
    fn sink(&mut self) -> Result<Pin<&mut Si>, TransportError>
    where
        Si: Unpin,
    {
        self.sink.as_mut().map(Pin::new).ok_or(TransportError::Closed)
    }
}

impl<Si, St> Stream for Joined<Si, St>
where
    St: Stream + Unpin,
    Si: Unpin,
{
    type Item = St::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

impl<Si, St> Sink<Outbound> for Joined<Si, St>
where
    Si: Sink<Outbound, Error = TransportError> + Unpin,
    St: Unpin,
{
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.sink()?.poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        self.sink()?.start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.sink()?.poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.sink()?.poll_close(cx)
    }
}

impl<Si, St> Duplex for Joined<Si, St>
where
    Si: Sink<Outbound, Error = TransportError> + Send + Unpin + 'static,
    St: Stream<Item = Result<Inbound, TransportError>> + Send + Unpin + 'static,
{
    fn end_output(&mut self) {
        self.sink = None;
    }
}
