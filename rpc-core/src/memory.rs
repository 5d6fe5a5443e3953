//! An in-memory connection: two transports joined by bounded channels, for tests and for peers in one
//! process.
//!
//! It behaves like a WebSocket where it matters: pings are answered by the receiving side while it reads,
//! a close frame is answered with a close frame, and dropping one end ends the other's stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use crate::close::CloseFrame;
use crate::transport::{Inbound, Joined, Outbound, Transport, TransportError};
use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Sink, Stream, StreamExt};

/// What crosses the in-memory connection.
#[derive(Debug)]
enum Wire {
    Frame(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(CloseFrame),
}

/// One end of an in-memory connection; see [`pair`].
#[derive(Debug)]
pub struct MemoryTransport {
    to_other: mpsc::Sender<Wire>,
    from_other: mpsc::Receiver<Wire>,
}

/// Two connected ends, each holding at most `capacity` frames in flight towards the other.
///
/// ```
/// use rpc_core::memory;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rpc_core::CallError> {
/// use rpc_core::{Context, ErrorObject, Peer, Router};
///
/// let (a, b) = memory::pair(16);
/// let router = Router::new().method("add", |_: Context, (x, y): (i32, i32)| async move { Ok::<_, ErrorObject>(x + y) });
/// let _server = Peer::builder().router(router).spawn(a);
/// let client = Peer::builder().spawn(b);
/// assert_eq!(client.call::<i32>("add", (2, 3)).await?, 5);
/// # Ok(()) }
/// ```
pub fn pair(capacity: usize) -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, b_rx) = mpsc::channel(capacity.max(1));
    (
        MemoryTransport {
            to_other: b_tx,
            from_other: a_rx,
        },
        MemoryTransport {
            to_other: a_tx,
            from_other: b_rx,
        },
    )
}

impl MemoryTransport {
    /// The connection's sending and receiving halves, for driving it by hand (a test playing the other
    /// side, say).
    pub fn split(self) -> (MemorySink, MemoryStream) {
        let sink = MemorySink {
            to_other: self.to_other.clone(),
            closed: false,
        };
        let stream = MemoryStream {
            from_other: self.from_other,
            answer: self.to_other,
            done: false,
        };
        (sink, stream)
    }
}

impl Transport for MemoryTransport {
    type Io = Joined<MemorySink, MemoryStream>;

    fn into_io(self) -> Self::Io {
        let (sink, stream) = self.split();
        Joined::new(sink, stream)
    }
}

/// The sending half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemorySink {
    to_other: mpsc::Sender<Wire>,
    closed: bool,
}

impl Sink<Outbound> for MemorySink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.closed {
            return Poll::Ready(Err(TransportError::Closed));
        }
        self.to_other.poll_ready(cx).map_err(|_| TransportError::Closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        let wire = match item {
            Outbound::Frame(text) => Wire::Frame(Bytes::from(text)),
            Outbound::Ping(payload) => Wire::Ping(payload),
            Outbound::Close(frame) => {
                self.closed = true;
                Wire::Close(frame)
            }
        };
        self.to_other.start_send(wire).map_err(|_| TransportError::Closed)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.to_other.close_channel();
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemoryStream {
    from_other: mpsc::Receiver<Wire>,
    /// Carries the automatic answers: pongs and the closing handshake.
    answer: mpsc::Sender<Wire>,
    done: bool,
}

impl Stream for MemoryStream {
    type Item = Result<Inbound, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let Some(wire) = futures::ready!(self.from_other.poll_next_unpin(cx)) else {
                self.done = true;
                return Poll::Ready(None);
            };
            match wire {
                Wire::Frame(bytes) => return Poll::Ready(Some(Ok(Inbound::Frame(bytes)))),
                Wire::Pong(payload) => return Poll::Ready(Some(Ok(Inbound::Pong(payload)))),
                Wire::Ping(payload) => {
                    // Best effort, like a WebSocket: a pong that finds no room is skipped.
                    let _ = self.answer.try_send(Wire::Pong(payload));
                }
                Wire::Close(frame) => {
                    let _ = self.answer.try_send(Wire::Close(frame.clone()));
                    self.done = true;
                    return Poll::Ready(Some(Ok(Inbound::Close(frame))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::close::CloseCode;
    use futures::SinkExt;

    use super::*;

    #[tokio::test]
    async fn frames_cross_and_pings_are_answered() {
        let (a, b) = pair(4);
        let (mut a_tx, mut a_rx) = a.split();
        let (_b_tx, mut b_rx) = b.split();
        a_tx.send(Outbound::Frame("hello".into())).await.unwrap();
        a_tx.send(Outbound::Ping(Bytes::from_static(b"p"))).await.unwrap();
        assert_eq!(
            b_rx.next().await.unwrap().unwrap(),
            Inbound::Frame(Bytes::from_static(b"hello"))
        );
        // Reading past the ping answers it.
        a_tx.send(Outbound::Frame("again".into())).await.unwrap();
        assert!(matches!(b_rx.next().await, Some(Ok(Inbound::Frame(_)))));
        assert_eq!(
            a_rx.next().await.unwrap().unwrap(),
            Inbound::Pong(Bytes::from_static(b"p"))
        );
    }

    #[tokio::test]
    async fn a_close_is_answered_and_ends_both_streams() {
        let (a, b) = pair(4);
        let (mut a_tx, mut a_rx) = a.split();
        let (_b_tx, mut b_rx) = b.split();
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye");
        a_tx.send(Outbound::Close(frame.clone())).await.unwrap();
        assert!(a_tx.send(Outbound::Frame("late".into())).await.is_err());
        assert_eq!(b_rx.next().await.unwrap().unwrap(), Inbound::Close(frame.clone()));
        assert!(b_rx.next().await.is_none());
        assert_eq!(a_rx.next().await.unwrap().unwrap(), Inbound::Close(frame));
    }

    #[tokio::test]
    async fn dropping_one_end_ends_the_other() {
        let (a, b) = pair(4);
        drop(a);
        let (_b_tx, mut b_rx) = b.split();
        assert!(b_rx.next().await.is_none());
    }
}
