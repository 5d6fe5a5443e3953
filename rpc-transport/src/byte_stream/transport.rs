//! Any reader and writer of bytes as a birpc [`Transport`], framed by a [`Framing`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use rpc_core::{CloseCode, CloseFrame, Inbound, Joined, Outbound, PeerConfig, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::framing::{FrameCodec, Framing};

/// What a reading half keeps alive until it is dropped (a child process and its reaper, say).
type Attached = Box<dyn Send + 'static>;

/// A connection over a byte stream: a reader and a writer of bytes, framed by a [`Framing`], ready to be
/// driven by a [`Peer`](rpc_core::Peer).
///
/// Byte streams have no control frames, so what the peer asks for beyond messages is done this way:
///
/// - **Close** ([`Outbound::Close`]): what is queued is flushed and the write half is shut down (the other
///   side reads the end of the stream). A close for a violation by the other side (any code but 1000
///   normal, 1001 going away, and 1005) is first told as a JSON-RPC error response with a `null` id, its
///   `message` the close reason and its `data` `{"close_code": N}`: -32700 for bad framing or invalid UTF-8
///   (1002, 1007), -32600 for a message too large (1009), -32603 otherwise.
/// - **The end of the stream** at a message boundary is received as a normal close
///   ([`Inbound::Close`] with 1000), so that a peer whose other side closes ends as closed by it; the end
///   in the middle of a message is a [`Protocol`](TransportError::Protocol) error.
/// - **Ping** ([`Outbound::Ping`]): there is no ping on a byte stream; it is dropped and never answered,
///   and no pong is ever received. The heartbeat must therefore be off
///   ([`PeerConfig::heartbeat_interval`] `None`), or a quiet other side is given up after the heartbeat's
///   interval and timeout: [`for_byte_streams`] turns it off, and every ready-made byte-stream client and
///   server of this crate uses it.
///
/// The read buffer grows to hold the message being read, up to the limit
/// ([`max_message_size`](Self::max_message_size)); the write buffer holds what the peer wrote since its last
/// flush (the peer bounds that by its outgoing queue).
#[derive(Debug)]
pub struct ByteStreamTransport<R, W> {
    reader: R,
    writer: W,
    framing: Framing,
    max_message_size: usize,
    attached: Option<AttachedDebug>,
}

/// [`Attached`], shown by name only; held, never read.
pub(crate) struct AttachedDebug {
    _value: Attached,
}

impl std::fmt::Debug for AttachedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attached")
    }
}

/// `config` with the heartbeat off, as byte streams need: they cannot ping (see [`ByteStreamTransport`]).
pub fn for_byte_streams(config: PeerConfig) -> PeerConfig {
    config.heartbeat_interval(None)
}

impl<S: AsyncRead + AsyncWrite> ByteStreamTransport<ReadHalf<S>, WriteHalf<S>> {
    /// A transport over one stream that both reads and writes, split with [`tokio::io::split`]. Framing:
    /// [`Framing::Lines`]; maximum message size: that of [`PeerConfig::default`] (4 MiB).
    pub fn new(io: S) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self::from_halves(reader, writer)
    }
}

impl<R, W> ByteStreamTransport<R, W> {
    /// A transport reading from `reader` and writing to `writer` (the halves of a socket, stdin and stdout).
    /// Framing: [`Framing::Lines`]; maximum message size: that of [`PeerConfig::default`] (4 MiB).
    pub fn from_halves(reader: R, writer: W) -> Self {
        Self {
            reader,
            writer,
            framing: Framing::default(),
            max_message_size: PeerConfig::default().max_message_size,
            attached: None,
        }
    }

    /// How messages are delimited. Default: [`Framing::Lines`].
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The largest message received, in bytes; a larger one ends the connection with
    /// [`TooLarge`](TransportError::TooLarge). Default: 4 MiB. Give it the peer's
    /// [`PeerConfig::max_message_size`], as the ready-made clients and servers do.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Keeps `value` alive as long as the reading half.
    pub(crate) fn attach(mut self, value: impl Send + 'static) -> Self {
        self.attached = Some(AttachedDebug {
            _value: Box::new(value),
        });
        self
    }
}

impl<R, W> ByteStreamTransport<R, W> {
    /// The connection's sending and receiving halves, framed, for driving it by hand.
    pub fn split(self) -> (ByteStreamSink<W>, ByteStreamStream<R>) {
        let codec = self.framing.codec(self.max_message_size);
        (
            ByteStreamSink {
                framed: FramedWrite::new(self.writer, codec.clone()),
                state: SinkState::Open,
            },
            ByteStreamStream {
                framed: FramedRead::new(self.reader, codec),
                ended: false,
                _attached: self.attached,
            },
        )
    }
}

impl<R, W> Transport for ByteStreamTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// The halves joined: ending the peer's output drops the writing half, which ends the other side's
    /// input (a child's stdin, a socket's write side).
    type Io = Joined<ByteStreamSink<W>, ByteStreamStream<R>>;

    fn into_io(self) -> Self::Io {
        let (sink, stream) = self.split();
        Joined::new(sink, stream)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SinkState {
    Open,
    /// A close was sent: the next flush shuts the write half down.
    Closing,
    Closed,
}

/// The sending half of a [`ByteStreamTransport`].
#[derive(Debug)]
pub struct ByteStreamSink<W> {
    framed: FramedWrite<W, FrameCodec>,
    state: SinkState,
}

impl<W: AsyncWrite + Unpin> Sink<Outbound> for ByteStreamSink<W> {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.state != SinkState::Open {
            return Poll::Ready(Err(TransportError::Closed));
        }
        Sink::<String>::poll_ready(Pin::new(&mut self.framed), cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        if self.state != SinkState::Open {
            return Err(TransportError::Closed);
        }
        match item {
            Outbound::Frame(text) => Pin::new(&mut self.framed).start_send(text),
            // No ping on a byte stream (see `ByteStreamTransport`).
            Outbound::Ping(_) => Ok(()),
            Outbound::Close(frame) => {
                if let Some(last) = violation_notice(&frame) {
                    Pin::new(&mut self.framed).start_send(last)?;
                }
                self.state = SinkState::Closing;
                Ok(())
            }
            _ => Err(TransportError::Protocol("unsupported outbound message".into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self.state {
            SinkState::Open => Sink::<String>::poll_flush(Pin::new(&mut self.framed), cx),
            SinkState::Closing => {
                let closed = futures::ready!(Sink::<String>::poll_close(Pin::new(&mut self.framed), cx));
                self.state = SinkState::Closed;
                Poll::Ready(closed)
            }
            SinkState::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.state == SinkState::Closed {
            return Poll::Ready(Ok(()));
        }
        let closed = futures::ready!(Sink::<String>::poll_close(Pin::new(&mut self.framed), cx));
        self.state = SinkState::Closed;
        Poll::Ready(closed)
    }
}

/// The JSON-RPC error that tells the other side why the connection ends, for a close that answers a
/// violation (see [`ByteStreamTransport`]).
fn violation_notice(frame: &CloseFrame) -> Option<String> {
    let code = match frame.code {
        CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode::NO_STATUS => return None,
        CloseCode::PROTOCOL_ERROR | CloseCode::INVALID_DATA => -32700,
        CloseCode::TOO_BIG => -32600,
        _ => -32603,
    };
    let message = if frame.reason.is_empty() {
        "the connection is closing"
    } else {
        &*frame.reason
    };
    let notice = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message, "data": { "close_code": frame.code.0 } },
    });
    Some(notice.to_string())
}

/// The receiving half of a [`ByteStreamTransport`].
#[derive(Debug)]
pub struct ByteStreamStream<R> {
    framed: FramedRead<R, FrameCodec>,
    ended: bool,
    _attached: Option<AttachedDebug>,
}

impl<R: AsyncRead + Unpin> Stream for ByteStreamStream<R> {
    type Item = Result<Inbound, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match futures::ready!(Pin::new(&mut self.framed).poll_next(cx)) {
            Some(Ok(message)) => return Poll::Ready(Some(Ok(Inbound::Frame(message)))),
            Some(Err(error)) => Err(error),
            // The end of the stream, between two messages: the other side closed.
            None => Ok(Inbound::Close(CloseFrame::new(CloseCode::NORMAL, "end of stream"))),
        };
        self.ended = true;
        Poll::Ready(Some(next))
    }
}

/// A message as the bytes of a frame, for tests.
#[cfg(test)]
fn frame(text: &str) -> Inbound {
    Inbound::Frame(bytes::Bytes::copy_from_slice(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn frames_cross_and_the_end_of_the_stream_is_a_normal_close() -> Result<(), TransportError> {
        let (a, b) = tokio::io::duplex(64);
        let (mut a_sink, _a_stream) = ByteStreamTransport::new(a).framing(Framing::ContentLength).split();
        let (_b_sink, mut b_stream) = ByteStreamTransport::new(b).framing(Framing::ContentLength).split();
        a_sink.send(Outbound::Frame("{\"a\":1}".into())).await?;
        a_sink.send(Outbound::Ping(bytes::Bytes::new())).await?;
        a_sink.send(Outbound::Frame("[]".into())).await?;
        a_sink.send(Outbound::Close(CloseFrame::normal())).await?;
        assert_eq!(b_stream.next().await.transpose()?, Some(frame("{\"a\":1}")));
        assert_eq!(b_stream.next().await.transpose()?, Some(frame("[]")));
        assert!(matches!(b_stream.next().await, Some(Ok(Inbound::Close(f))) if f.code == CloseCode::NORMAL));
        assert!(b_stream.next().await.is_none());
        assert!(matches!(
            a_sink.send(Outbound::Frame("late".into())).await,
            Err(TransportError::Closed)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_close_for_a_violation_tells_the_other_side_then_ends_the_stream() -> Result<(), TransportError> {
        let (a, mut b) = tokio::io::duplex(1024);
        let (mut sink, _stream) = ByteStreamTransport::new(a).split();
        sink.send(Outbound::Close(CloseFrame::new(CloseCode::TOO_BIG, "too big")))
            .await?;
        let mut written = String::new();
        b.read_to_string(&mut written).await?;
        let notice: serde_json::Value =
            serde_json::from_str(written.trim_end()).map_err(|e| TransportError::Protocol(e.to_string()))?;
        assert_eq!(notice["id"], serde_json::Value::Null);
        assert_eq!(notice["error"]["code"], -32600);
        assert_eq!(notice["error"]["message"], "too big");
        assert_eq!(notice["error"]["data"]["close_code"], 1009);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_not_given_up_for_lack_of_pings() -> Result<(), rpc_core::CallError> {
        use rpc_core::{Context, ErrorObject, Peer, Router};
        // The default heartbeat (30 s, then 10 s for the answer), on tokio's paused clock: byte streams have
        // it off, so a minute of silence leaves the connection up.
        let (a, b) = tokio::io::duplex(1024);
        let config = for_byte_streams(PeerConfig::default());
        let router = Router::new().method("add", |_: Context, (x, y): (i64, i64)| async move {
            Ok::<_, ErrorObject>(x + y)
        });
        let _server = Peer::builder()
            .router(router)
            .config(config.clone())
            .spawn(ByteStreamTransport::new(a));
        let client = Peer::builder().config(config).spawn(ByteStreamTransport::new(b));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(client.is_connected());
        assert_eq!(client.call::<i64>("add", (1, 2)).await?, 3);
        Ok(())
    }

    #[tokio::test]
    async fn bad_framing_is_an_error_then_the_end() -> Result<(), TransportError> {
        let (a, mut b) = tokio::io::duplex(1024);
        let (_sink, mut stream) = ByteStreamTransport::new(a).max_message_size(4).split();
        b.write_all(b"[1]\n[1234]\n[2]\n").await?;
        assert_eq!(stream.next().await.transpose()?, Some(frame("[1]")));
        assert!(matches!(
            stream.next().await,
            Some(Err(TransportError::TooLarge { size: 6, limit: 4 }))
        ));
        assert!(stream.next().await.is_none());
        Ok(())
    }
}
