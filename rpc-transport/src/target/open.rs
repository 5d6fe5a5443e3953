//! Dialling a [`Target`]: with a peer on top, or as a bare transport.

use std::pin::Pin;
use std::time::Duration;

use std::task::{Context, Poll};

use futures::{Sink, Stream};
use rpc_core::{Duplex, Inbound, Outbound, Peer, PeerConfig, PeerHandle, Router, Transport, TransportError};
use tokio::process::Command;

use super::{Target, command_line};
use crate::byte_stream::{ByteStreamTransport, for_byte_streams};
use crate::framing::Framing;
use crate::ws::{Client, ConnectError, WsTransport};

/// How long a TCP or Unix socket connection may take: 10 s, as a WebSocket client's default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Any [`Transport`], boxed: what [`Target::open_transport`] gives for every kind of target, to drive with a
/// [`Peer`] or to move frames by hand (to pipe them between two transports, say): it is a [`Stream`] of
/// received [`Inbound`] messages and a [`Sink`] of [`Outbound`] ones ([`futures::StreamExt::split`]
/// gives them as two halves).
///
/// It behaves as the transport inside: a byte stream drops [`Outbound::Ping`] and receives its end as a
/// normal close (see [`ByteStreamTransport`]).
pub struct BoxTransport {
    io: Box<dyn Duplex>,
}

impl std::fmt::Debug for BoxTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxTransport").finish_non_exhaustive()
    }
}

impl BoxTransport {
    /// Boxes `transport`, made ready to be driven ([`Transport::into_io`]).
    pub fn new<T: Transport>(transport: T) -> Self {
        Self {
            io: Box::new(transport.into_io()),
        }
    }
}

impl Transport for BoxTransport {
    type Io = Self;

    fn into_io(self) -> Self {
        self
    }
}

impl Duplex for BoxTransport {
    fn end_output(&mut self) {
        self.io.end_output();
    }
}

impl Stream for BoxTransport {
    type Item = Result<Inbound, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.io).poll_next(cx)
    }
}

impl Sink<Outbound> for BoxTransport {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.io).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        Pin::new(&mut self.io).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

impl Target {
    /// Connects (or spawns, or takes stdin and stdout) and starts a peer on the current tokio runtime, which
    /// exports `router` and runs with `config`. `ws://` and `wss://` go through [`Client`] (with its
    /// defaults, the heartbeat on); byte streams have the heartbeat off ([`for_byte_streams`]). The
    /// connection closes when the last clone of the handle is dropped, or on [`PeerHandle::close`]; an
    /// `exec:` child then gets its stdin closed, and is killed if it has not exited within
    /// [`CHILD_EXIT_GRACE`](crate::byte_stream::CHILD_EXIT_GRACE).
    ///
    /// # Errors
    /// [`ConnectError::Io`] or [`ConnectError::Timeout`] (10 s) when a socket cannot be connected,
    /// [`ConnectError::Spawn`] when a command cannot be started, [`ConnectError::InvalidUrl`] for a target
    /// this platform lacks (Unix sockets elsewhere than on Unix), and for WebSocket what [`Client`] fails
    /// with.
    pub async fn connect(&self, router: Router, config: PeerConfig) -> Result<PeerHandle, ConnectError> {
        if let Target::WebSocket(url) = self {
            return Client::builder().router(router).config(config).connect(url).await;
        }
        let transport = self.open_byte_stream(&config).await?;
        let url = self.to_string();
        Ok(Peer::builder()
            .router(router)
            .config(for_byte_streams(config))
            .close_on_drop(true)
            .span(tracing::info_span!(target: "birpc::connection", "connection", url, dialled = "out"))
            .spawn(transport))
    }

    /// Connects as [`connect`](Self::connect) does, without starting a peer: the transport, for code that
    /// moves frames itself. `config` gives the maximum message size (and, for WebSocket, the socket's
    /// settings); a peer that drives the transport should have the heartbeat off for byte streams
    /// ([`for_byte_streams`]).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn open_transport(&self, config: &PeerConfig) -> Result<BoxTransport, ConnectError> {
        if let Target::WebSocket(url) = self {
            let dialer = crate::ws::dial::Dialer {
                config: config.clone(),
                ..Default::default()
            };
            return Ok(BoxTransport::new(WsTransport::new(dialer.dial(url).await?)));
        }
        self.open_byte_stream(config).await
    }

    /// The transport of a byte-stream target.
    async fn open_byte_stream(&self, config: &PeerConfig) -> Result<BoxTransport, ConnectError> {
        let max = config.max_message_size;
        let transport = match self {
            Target::WebSocket(url) => {
                return Err(ConnectError::InvalidUrl(format!("{url} is not a byte stream")));
            }
            Target::Tcp { addr, framing } => {
                let stream = timed(tokio::net::TcpStream::connect(addr.as_str())).await?;
                framed(ByteStreamTransport::tcp(stream), *framing, max)
            }
            #[cfg(unix)]
            Target::Unix { path, framing } => {
                let stream = timed(tokio::net::UnixStream::connect(path)).await?;
                framed(ByteStreamTransport::unix(stream), *framing, max)
            }
            #[cfg(not(unix))]
            Target::Unix { .. } => {
                return Err(ConnectError::InvalidUrl(format!(
                    "{self}: Unix sockets need a Unix platform"
                )));
            }
            Target::Stdio { framing } => framed(ByteStreamTransport::stdio(), *framing, max),
            Target::Exec { command, framing } => {
                let spawn_error = |source| ConnectError::Spawn {
                    command: command.clone(),
                    source,
                };
                let words = command_line::split(command)
                    .map_err(|reason| spawn_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)))?;
                let Some((program, args)) = words.split_first() else {
                    return Err(spawn_error(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "an empty command line",
                    )));
                };
                let child = ByteStreamTransport::child(Command::new(program).args(args)).map_err(spawn_error)?;
                framed(child, *framing, max)
            }
        };
        Ok(transport)
    }
}

/// `transport` with this framing and limit, boxed.
fn framed<R, W>(transport: ByteStreamTransport<R, W>, framing: Framing, max: usize) -> BoxTransport
where
    ByteStreamTransport<R, W>: Transport,
{
    BoxTransport::new(transport.framing(framing).max_message_size(max))
}

/// `connect`, within [`CONNECT_TIMEOUT`].
async fn timed<T>(connect: impl Future<Output = std::io::Result<T>>) -> Result<T, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(connected) => Ok(connected?),
        Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
    }
}
