//! Listening on a [`Target`]: a WebSocket, TCP or Unix socket server, or the one connection over stdio.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Hub, Peer, PeerConfig, Router};

use super::Target;
use crate::byte_stream::{ByteStreamTransport, StreamAddr, StreamServer, StreamServerHandle, for_byte_streams};
use crate::serving::Connections;
use crate::ws::{Server, ServerHandle};

/// How a [`Target`] is served: [`Target::listen`]'s settings, with their defaults.
#[derive(Debug, Clone)]
#[must_use]
pub struct ListenOptions {
    config: PeerConfig,
    hub: Option<Hub>,
    max_connections: usize,
    shutdown_grace: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            config: PeerConfig::default(),
            hub: None,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ListenOptions {
    /// Every connection's limits and timings. Default: [`PeerConfig::default`] (with the heartbeat off on
    /// byte streams).
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers every connection in `hub` while it is open. Default: none.
    pub fn hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The most connections open at once (for a server; stdio has one). Default: 10,000; past it, see
    /// [`ws::ServerBuilder::max_connections`](crate::ws::ServerBuilder::max_connections) and
    /// [`StreamServerBuilder::max_connections`](crate::byte_stream::StreamServerBuilder::max_connections).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a shutdown lets running handlers finish. Default: 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Why a [`Target`] cannot be listened on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The target cannot be listened on: `exec:`, a `ws://` URL that is not `ws://HOST:PORT` (with an
    /// optional `/`), `wss://` (a server needs its certificate: use [`ws::Server`](crate::ws::Server)), or a
    /// Unix socket elsewhere than on Unix.
    #[error("cannot listen on {target}: {reason}")]
    Unsupported {
        /// The target.
        target: String,
        /// Why.
        reason: &'static str,
    },
    /// The socket could not be bound (the address is in use, say).
    #[error("cannot listen on {target}: {source}")]
    Io {
        /// The target.
        target: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ListenError {
    /// The IO error, when binding failed.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            ListenError::Io { source, .. } => Some(source),
            ListenError::Unsupported { .. } => None,
        }
    }
}

/// A [`Target`] listened on, not yet serving: [`target`](Self::target) says where (with the real port), and
/// [`serve`](Self::serve) starts.
#[derive(Debug)]
pub struct Listening {
    target: Target,
    bound: Bound,
    options: ListenOptions,
}

#[derive(Debug)]
enum Bound {
    WebSocket(Server),
    Stream(StreamServer),
    Stdio,
}

impl Target {
    /// Listens on this target: binds a `ws://HOST:PORT`, `tcp://HOST:PORT` or `unix:PATH` server (port 0
    /// picks a free port), or takes this process's stdin and stdout for `stdio` (one connection, started by
    /// [`Listening::serve`]).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use rpc_core::Router;
    /// use rpc_transport::{ListenOptions, Target};
    ///
    /// let listening = "tcp://127.0.0.1:0".parse::<Target>()?.listen(ListenOptions::default()).await?;
    /// println!("listening on {}", listening.target()); // tcp://127.0.0.1:PORT
    /// let serving = listening.serve(Router::new);
    /// serving.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// See [`ListenError`].
    pub async fn listen(&self, options: ListenOptions) -> Result<Listening, ListenError> {
        let io = |source| ListenError::Io {
            target: self.to_string(),
            source,
        };
        let unsupported = |reason| ListenError::Unsupported {
            target: self.to_string(),
            reason,
        };
        let (target, bound) = match self {
            Target::WebSocket(url) => {
                let Some(addr) = url.strip_prefix("ws://").map(|a| a.strip_suffix('/').unwrap_or(a)) else {
                    return Err(unsupported(
                        "only ws:// is served here (wss:// needs the server's certificate)",
                    ));
                };
                if addr.contains('/') || addr.contains('?') {
                    return Err(unsupported(
                        "a WebSocket server here serves every path: give ws://HOST:PORT",
                    ));
                }
                let mut builder = Server::builder()
                    .config(options.config.clone())
                    .max_connections(options.max_connections)
                    .shutdown_grace(options.shutdown_grace);
                if let Some(hub) = &options.hub {
                    builder = builder.hub(hub.clone());
                }
                let server = builder.bind(addr).await.map_err(io)?;
                (
                    Target::WebSocket(format!("ws://{}", server.local_addr())),
                    Bound::WebSocket(server),
                )
            }
            Target::Tcp { addr, framing } => {
                let server = self
                    .stream_builder(&options)
                    .bind_tcp(addr.as_str())
                    .await
                    .map_err(io)?;
                let addr = match server.local_addr() {
                    StreamAddr::Tcp(addr) => addr.to_string(),
                    other => other.to_string(),
                };
                let target = Target::Tcp {
                    addr,
                    framing: *framing,
                };
                (target, Bound::Stream(server))
            }
            #[cfg(unix)]
            Target::Unix { path, .. } => {
                let server = self.stream_builder(&options).bind_unix(path).map_err(io)?;
                (self.clone(), Bound::Stream(server))
            }
            #[cfg(not(unix))]
            Target::Unix { .. } => return Err(unsupported("Unix sockets need a Unix platform")),
            Target::Stdio { .. } => (self.clone(), Bound::Stdio),
            Target::Exec { .. } => return Err(unsupported("a command is connected to, not listened on")),
        };
        Ok(Listening { target, bound, options })
    }

    /// The byte-stream server's settings for this target.
    fn stream_builder(&self, options: &ListenOptions) -> crate::byte_stream::StreamServerBuilder {
        let mut builder = StreamServer::builder()
            .config(options.config.clone())
            .framing(self.framing_of().unwrap_or_default())
            .max_connections(options.max_connections)
            .shutdown_grace(options.shutdown_grace);
        if let Some(hub) = &options.hub {
            builder = builder.hub(hub.clone());
        }
        builder
    }
}

impl Listening {
    /// Where it listens, as a URL: with the real port when bound to port 0.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Starts serving on the current tokio runtime: each connection exports a [`Router`] made by `routes`.
    pub fn serve<F>(self, routes: F) -> Serving
    where
        F: Fn() -> Router + Send + Sync + 'static,
    {
        let running = match self.bound {
            Bound::WebSocket(server) => Running::WebSocket(server.serve(move |_| routes())),
            Bound::Stream(server) => Running::Stream(server.serve(move |_| routes())),
            Bound::Stdio => {
                let options = self.options;
                let connections = Arc::new(Connections::new(1, options.hub, options.shutdown_grace));
                let framing = self.target.framing_of().unwrap_or_default();
                let transport = ByteStreamTransport::stdio()
                    .framing(framing)
                    .max_message_size(options.config.max_message_size);
                let Ok(place) = connections.take_place() else {
                    unreachable!("a new server has room for its one connection");
                };
                let peer = Peer::builder()
                    .router(routes())
                    .config(for_byte_streams(options.config));
                let connection = place.peer(peer, &"stdio", transport);
                let ended = connection.1.clone();
                if place.start(|place| place.run(connection)).is_err() {
                    unreachable!("a new server is not shutting down");
                }
                Running::Stdio(connections, ended)
            }
        };
        Serving {
            target: self.target,
            running,
        }
    }
}

/// A [`Target`] being served: [`closed`](Self::closed) says when a `stdio` connection ended,
/// [`shutdown`](Self::shutdown) stops.
#[derive(Debug)]
pub struct Serving {
    target: Target,
    running: Running,
}

enum Running {
    WebSocket(ServerHandle),
    Stream(StreamServerHandle),
    Stdio(Arc<Connections>, rpc_core::PeerHandle),
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Running::WebSocket(_) => "WebSocket",
            Running::Stream(_) => "Stream",
            Running::Stdio(..) => "Stdio",
        })
    }
}

impl Serving {
    /// Where it listens.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Resolves when there is nothing more to serve: for `stdio`, when its one connection ended (stdin
    /// ended, say); a server runs until [`shutdown`](Self::shutdown), so for one this never resolves.
    pub async fn closed(&self) {
        match &self.running {
            Running::Stdio(_, handle) => {
                handle.closed().await;
            }
            Running::WebSocket(_) | Running::Stream(_) => std::future::pending().await,
        }
    }

    /// Shuts down gracefully: stops accepting, lets every connection finish the requests it has started
    /// (new ones are answered -32002 Shutting down) for up to the shutdown grace, then closes it. Returns
    /// when every connection's task has ended.
    pub async fn shutdown(self) {
        match self.running {
            Running::WebSocket(server) => server.shutdown().await,
            Running::Stream(server) => server.shutdown().await,
            Running::Stdio(connections, _) => connections.shutdown().await,
        }
    }
}
