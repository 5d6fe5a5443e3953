//! A tokio-tungstenite WebSocket as a birpc [`Transport`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream, StreamExt};
use rpc_core::{CloseCode, CloseFrame, Duplex, Inbound, Outbound, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as WsCloseFrame, Message};

/// The longest close reason a WebSocket close frame can carry, in bytes.
const MAX_REASON: usize = 123;

/// A WebSocket connection (either role) ready to be driven by a [`Peer`](rpc_core::Peer): a [`Duplex`]
/// of its own.
///
/// Text and binary messages are both received as frames; frames are sent as text. Pings are answered by
/// tungstenite while reading.
#[derive(Debug)]
pub struct WsTransport<S> {
    socket: WebSocketStream<S>,
}

impl<S> WsTransport<S> {
    /// Wraps an open WebSocket.
    pub fn new(socket: WebSocketStream<S>) -> Self {
        Self { socket }
    }
}

impl<S> Transport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = Self;

    /// The WebSocket itself, not split: the peer's one task reads and writes it, without a lock between
    /// two halves (splitting it behind `futures`' lock took about 3 % of a pipelined call's CPU time).
    fn into_io(self) -> Self {
        self
    }
}

impl<S> Duplex for WsTransport<S> where S: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Outbound> for WsTransport<S> {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.socket).poll_ready(cx).map_err(transport_error)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        let message = match item {
            Outbound::Frame(text) => Message::text(text),
            Outbound::Ping(payload) => Message::Ping(payload),
            Outbound::Close(frame) => Message::Close(Some(WsCloseFrame {
                code: WsCloseCode::from(frame.code.0),
                reason: truncate(&frame.reason).to_owned().into(),
            })),
            _ => return Err(TransportError::Protocol("unsupported outbound message".into())),
        };
        Pin::new(&mut self.socket).start_send(message).map_err(transport_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(transport_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(transport_error)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsTransport<S> {
    type Item = Result<Inbound, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let inbound = match futures::ready!(self.socket.poll_next_unpin(cx)) {
                // The connection ended; without a close frame the peer reports it as such.
                None
                | Some(Err(
                    WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                )) => return Poll::Ready(None),
                Some(Err(e)) => Err(transport_error(e)),
                Some(Ok(Message::Text(text))) => Ok(Inbound::Frame(text.into())),
                Some(Ok(Message::Binary(bytes))) => Ok(Inbound::Frame(bytes)),
                Some(Ok(Message::Pong(payload))) => Ok(Inbound::Pong(payload)),
                Some(Ok(Message::Close(frame))) => Ok(Inbound::Close(match frame {
                    Some(frame) => CloseFrame::new(CloseCode(frame.code.into()), frame.reason.as_str()),
                    None => CloseFrame::new(CloseCode::NO_STATUS, ""),
                })),
                // Pings are answered by tungstenite; raw frames are not produced while reading.
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
            };
            return Poll::Ready(Some(inbound));
        }
    }
}

/// The transport error for a tungstenite error.
pub(crate) fn transport_error(error: WsError) -> TransportError {
    match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed,
        WsError::Io(e) => TransportError::Io(e),
        // RFC 6455 section 5.2: the most significant bit of a 64-bit payload length must be 0. Such a
        // frame is a protocol error, not merely a large one.
        WsError::Capacity(CapacityError::MessageTooLong { size, .. })
            if u64::try_from(size).is_ok_and(|s| s >> 63 == 1) =>
        {
            TransportError::Protocol("a frame length with its most significant bit set (RFC 6455 section 5.2)".into())
        }
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::TooLarge { size, limit: max_size }
        }
        WsError::Utf8(_) => TransportError::InvalidUtf8,
        other => TransportError::Protocol(other.to_string()),
    }
}

/// `reason` cut to what a close frame can carry, at a character boundary.
fn truncate(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(100);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_REASON);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    /// The bytes a WebSocket peer's running future may take: every idle connection holds it for its whole
    /// life, in its task (1,400 bytes with or without every feature when this was last changed, the
    /// WebSocket itself among them: it is not split into halves that share it in an allocation of its own;
    /// the task's allocation is rounded up to 128 bytes, so a little growth can cost a whole step per
    /// connection).
    const PEER_FUTURE_BUDGET: usize = 1_400;

    #[tokio::test]
    async fn a_websocket_peers_future_stays_within_its_budget() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dial = tokio::spawn(tokio::net::TcpStream::connect(listener.local_addr().unwrap()));
        let (accepted, _) = listener.accept().await.unwrap();
        let _dialled = dial.await.unwrap().unwrap();
        let socket = WebSocketStream::from_raw_socket(accepted, Role::Server, None).await;
        let (peer, _handle) = rpc_core::Peer::builder().build(WsTransport::new(socket));
        let run = peer.run();
        let size = std::mem::size_of_val(&run);
        assert!(size <= PEER_FUTURE_BUDGET, "the peer's future takes {size} bytes");
    }
}
