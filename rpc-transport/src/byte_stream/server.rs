//! Accepting TCP or Unix socket connections and running a peer over each: [`StreamServer`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use rpc_core::{Hub, Outbound, Peer, PeerConfig, Router, Transport};
use tokio::net::{TcpListener, ToSocketAddrs};

use super::{ByteStreamTransport, for_byte_streams};
use crate::framing::Framing;
use crate::serving::{Connections, NoPlace};

/// Where a byte-stream server listens, or where one of its connections comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket's path; `None` for an unnamed socket (as clients' sockets usually are).
    Unix(Option<PathBuf>),
}

impl fmt::Display for StreamAddr {
    /// `tcp://HOST:PORT`, `unix:PATH`, or `unix:` for an unnamed socket.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
            StreamAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            StreamAddr::Unix(None) => f.write_str("unix:"),
        }
    }
}

/// What a [`StreamServer`] knows of a connection: given to the accept hook (the address only), to the
/// router factory, and to every handler through `Context::state::<StreamConnection>()`.
#[derive(Debug, Clone)]
pub struct StreamConnection {
    id: u64,
    remote_addr: StreamAddr,
}

impl StreamConnection {
    /// A number unique among this server's connections.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address of the other side.
    pub fn remote_addr(&self) -> &StreamAddr {
        &self.remote_addr
    }
}

/// Decides on each accepted connection by the other side's address.
type AcceptHook = Arc<dyn Fn(&StreamAddr) -> bool + Send + Sync>;

/// Settings of a [`StreamServer`], built from [`StreamServer::builder`].
///
/// Byte-stream servers have no admission of the WebSocket kind (there is no request with headers to judge
/// before the first message): [`accept`](Self::accept) decides by the other side's address alone, and
/// anything finer (a login method, say) is the application's, in its handlers.
#[derive(Clone)]
#[must_use = "a builder does nothing until `bind_tcp` or `bind_unix` is awaited"]
pub struct StreamServerBuilder {
    config: PeerConfig,
    framing: Framing,
    max_connections: usize,
    shutdown_grace: Duration,
    hub: Option<Hub>,
    accept: Option<AcceptHook>,
}

impl Default for StreamServerBuilder {
    fn default() -> Self {
        Self {
            config: PeerConfig::default(),
            framing: Framing::default(),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            hub: None,
            accept: None,
        }
    }
}

impl fmt::Debug for StreamServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServerBuilder")
            .field("config", &self.config)
            .field("framing", &self.framing)
            .field("max_connections", &self.max_connections)
            .field("accept hook", &self.accept.is_some())
            .finish_non_exhaustive()
    }
}

/// The JSON-RPC error with which a connection past the limit is turned away (-32005, as a busy peer).
const FULL: &str =
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"too many connections; try again later"}}"#;

/// How long the answer to a connection turned away may take to be written.
const FULL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

impl StreamServerBuilder {
    /// The limits and timings of every connection's peer. Default: [`PeerConfig::default`]. Its
    /// [`max_message_size`](PeerConfig::max_message_size) bounds what the framing accepts; its heartbeat is
    /// turned off ([`for_byte_streams`]).
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// How messages are delimited. Default: [`Framing::Lines`].
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The most connections open at once. Default: 10,000. Past it, a new connection is sent one JSON-RPC
    /// error (-32005, `id` null, "too many connections") and closed.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a shutdown ([`StreamServerHandle::shutdown`]) lets running handlers finish. Default: 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Registers every connection in `hub` while it is open.
    pub fn hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Decides on every accepted connection by the other side's address, before any byte is read:
    /// `false` closes it at once. Default: every connection is accepted.
    pub fn accept<F>(mut self, hook: F) -> Self
    where
        F: Fn(&StreamAddr) -> bool + Send + Sync + 'static,
    {
        self.accept = Some(Arc::new(hook));
        self
    }

    /// Listens on a TCP address (port 0 picks a free port; see [`StreamServer::local_addr`]).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind_tcp(self, addr: impl ToSocketAddrs) -> io::Result<StreamServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = StreamAddr::Tcp(listener.local_addr()?);
        Ok(StreamServer {
            listener: Listener::Tcp(listener),
            local_addr,
            settings: self,
        })
    }

    /// Listens on a Unix socket at `path`, which must not exist yet; the socket file is removed when the
    /// server's shutdown ends (or when a server never served is dropped).
    ///
    /// # Errors
    /// When the socket cannot be bound (the path exists, its directory does not).
    #[cfg(unix)]
    pub fn bind_unix(self, path: impl Into<PathBuf>) -> io::Result<StreamServer> {
        let path = path.into();
        let listener = tokio::net::UnixListener::bind(&path)?;
        Ok(StreamServer {
            listener: Listener::Unix {
                listener,
                _file: SocketFile(path.clone()),
            },
            local_addr: StreamAddr::Unix(Some(path)),
            settings: self,
        })
    }
}

/// A Unix socket's file, removed when dropped.
#[cfg(unix)]
#[derive(Debug)]
struct SocketFile(PathBuf);

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::debug!(target: "birpc::transport", %error, path = %self.0.display(), "could not remove a Unix socket's file");
        }
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        _file: SocketFile,
    },
}

/// A bound TCP or Unix socket server speaking JSON-RPC over byte streams, not yet accepting;
/// [`serve`](Self::serve) starts it. Each connection runs a peer of its own, with a [`Router`] from the
/// closure given to `serve`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use rpc_core::{Context, ErrorObject, Router};
/// use rpc_transport::byte_stream::StreamServer;
/// use rpc_transport::framing::Framing;
///
/// let server = StreamServer::builder().framing(Framing::ContentLength).bind_tcp("127.0.0.1:0").await?;
/// println!("listening on {}", server.local_addr());
/// let running = server.serve(|_connection| {
///     Router::new().method("add", |_: Context, (a, b): (i64, i64)| async move { Ok::<_, ErrorObject>(a + b) })
/// });
/// // ... later:
/// running.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamServer {
    listener: Listener,
    local_addr: StreamAddr,
    settings: StreamServerBuilder,
}

impl StreamServer {
    /// Starts setting up a server.
    pub fn builder() -> StreamServerBuilder {
        StreamServerBuilder::default()
    }

    /// Where the server listens (with the real port when bound to port 0).
    pub fn local_addr(&self) -> &StreamAddr {
        &self.local_addr
    }

    /// Starts accepting connections on the current tokio runtime. `routes` builds each connection's
    /// [`Router`].
    pub fn serve<F>(self, routes: F) -> StreamServerHandle
    where
        F: Fn(&StreamConnection) -> Router + Send + Sync + 'static,
    {
        let settings = self.settings;
        let connections = Arc::new(Connections::new(
            settings.max_connections,
            settings.hub.clone(),
            settings.shutdown_grace,
        ));
        let acceptor = Acceptor {
            connections: connections.clone(),
            routes: Arc::new(routes),
            config: Arc::new(for_byte_streams(settings.config.clone())),
            framing: settings.framing,
            accept: settings.accept.clone(),
        };
        connections.spawn(acceptor.run(self.listener));
        StreamServerHandle {
            local_addr: self.local_addr,
            connections,
        }
    }
}

/// A running [`StreamServer`]: its address, its connections, and the way to stop it.
pub struct StreamServerHandle {
    local_addr: StreamAddr,
    connections: Arc<Connections>,
}

impl fmt::Debug for StreamServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl StreamServerHandle {
    /// Where the server listens.
    pub fn local_addr(&self) -> &StreamAddr {
        &self.local_addr
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Shuts the server down gracefully: stops accepting (a Unix socket's file is removed), lets every
    /// connection finish the requests it has started (new ones are answered -32002 Shutting down) for up to
    /// the shutdown grace, then closes each. Returns when every connection's task has ended.
    pub async fn shutdown(self) {
        // The accept loop is one of the connections' tracked tasks, and ends at once.
        self.connections.shutdown().await;
    }
}

/// Routes for each connection.
type Routes = Arc<dyn Fn(&StreamConnection) -> Router + Send + Sync>;

/// What the accept loop needs to start connections.
struct Acceptor {
    connections: Arc<Connections>,
    routes: Routes,
    config: Arc<PeerConfig>,
    framing: Framing,
    accept: Option<AcceptHook>,
}

impl Acceptor {
    async fn run(self, listener: Listener) {
        while let Some(accepted) = self.connections.accept(|| accept(&listener)).await {
            match accepted {
                Accepted::Tcp(stream, remote) => {
                    self.start(StreamAddr::Tcp(remote), || ByteStreamTransport::tcp(stream));
                }
                #[cfg(unix)]
                Accepted::Unix(stream, remote) => {
                    let remote = StreamAddr::Unix(remote.as_pathname().map(Into::into));
                    self.start(remote, || ByteStreamTransport::unix(stream));
                }
            }
        }
    }

    /// Starts the connection's task, or turns it away.
    fn start<R, W>(&self, remote: StreamAddr, transport: impl FnOnce() -> ByteStreamTransport<R, W>)
    where
        ByteStreamTransport<R, W>: Transport,
    {
        if let Some(hook) = &self.accept
            && !hook(&remote)
        {
            tracing::debug!(target: "birpc::transport", %remote, "the accept hook refused a connection");
            return;
        }
        let transport = transport()
            .framing(self.framing)
            .max_message_size(self.config.max_message_size);
        match self.connections.take_place() {
            Ok(place) => {
                let info = StreamConnection {
                    id: place.id(),
                    remote_addr: remote.clone(),
                };
                let peer = Peer::builder()
                    .router((self.routes)(&info))
                    .config(self.config.clone())
                    .state(info);
                let connection = place.peer(peer, &remote, transport);
                if place.start(|place| place.run(connection)).is_ok() {
                    return;
                }
            }
            Err(NoPlace::Full) => {
                tracing::warn!(target: "birpc::transport", %remote, "too many connections; turning a new one away");
                let mut io = transport.into_io();
                self.connections.spawn(async move {
                    let _ = tokio::time::timeout(FULL_WRITE_TIMEOUT, io.send(Outbound::Frame(FULL.to_owned()))).await;
                });
                return;
            }
            Err(NoPlace::ShuttingDown) => {}
        }
        tracing::debug!(target: "birpc::transport", %remote, "shutting down; closing a new connection");
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream, tokio::net::unix::SocketAddr),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
        #[cfg(unix)]
        Listener::Unix { listener, .. } => listener.accept().await.map(|(s, a)| Accepted::Unix(s, a)),
    }
}
