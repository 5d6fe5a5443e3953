//! What every server of this crate does with its connections, whatever their transport: a bounded count,
//! numbers unique per server, a table of the open ones, the hub, their tasks, and a graceful shutdown.
//!
//! A server takes a [`Place`] for a connection before it says yes to it (the WebSocket endpoint before its
//! `101 Switching Protocols`, a byte-stream server before the first byte); the place starts the connection's
//! task ([`Place::start`]), builds its peer ([`Place::peer`]) and runs it ([`Place::run`]), and is given back when the connection ends.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use rpc_core::{CloseCode, Hub, Peer, PeerBuilder, PeerHandle, Transport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The close reason of connections ended by a shutdown.
pub(crate) const SHUTDOWN_REASON: &str = "server shutting down";

/// How long an accept loop waits after a failed accept (out of file descriptors or memory, most likely)
/// before it tries again, instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A server's connections: their places (at most `max`), the open ones by number, their tasks, and the
/// token that starts the shutdown.
pub(crate) struct Connections {
    open: Mutex<HashMap<u64, PeerHandle>>,
    /// Connections admitted (starting or open), out of `max`.
    admitted: AtomicUsize,
    max: usize,
    next_id: AtomicU64,
    hub: Option<Hub>,
    grace: Duration,
    /// Every connection's task, and whatever else the server tracks until its shutdown ends (its accept
    /// loop, its HTTP connections).
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// Why a new connection gets no [`Place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoPlace {
    /// The server is shutting down.
    ShuttingDown,
    /// `max` connections are admitted already.
    Full,
}

impl Connections {
    /// At most `max` connections, registered in `hub` if any; a shutdown lets their handlers run for
    /// `grace`.
    pub(crate) fn new(max: usize, hub: Option<Hub>, grace: Duration) -> Self {
        Self {
            open: Mutex::default(),
            admitted: AtomicUsize::new(0),
            max,
            next_id: AtomicU64::new(1),
            hub,
            grace,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, PeerHandle>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of open connections.
    pub(crate) fn len(&self) -> usize {
        self.open().len()
    }

    /// Whether the shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Resolves when the shutdown begins.
    pub(crate) async fn shutting_down(&self) {
        self.shutdown.cancelled().await;
    }

    /// A place, with a number unique among this server's connections, for a new connection: unless the
    /// server is shutting down or `max` places are taken.
    pub(crate) fn take_place(self: &Arc<Self>) -> Result<Place, NoPlace> {
        if self.is_shutting_down() {
            return Err(NoPlace::ShuttingDown);
        }
        let max = self.max;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| NoPlace::Full)?;
        Ok(Place {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            connections: self.clone(),
        })
    }

    /// Runs `task` on the current runtime; the shutdown waits for it.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// The next thing `accept` accepts, or `None` once the shutdown began. A failed accept is logged and
    /// tried again a little later.
    pub(crate) async fn accept<T, A>(&self, mut accept: impl FnMut() -> A) -> Option<T>
    where
        A: Future<Output = io::Result<T>>,
    {
        loop {
            let accepted = tokio::select! {
                () = self.shutting_down() => return None,
                accepted = accept() => accepted,
            };
            match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(target: "birpc::transport", %error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    /// Shuts down gracefully: no new connections (accept loops end, places are refused), every open one
    /// finishes the requests it has started (new ones are answered -32002 Shutting down) for up to the
    /// grace, then closes with 1001. Returns when every tracked task has ended; calling it again waits again.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        let open: Vec<PeerHandle> = self.open().values().cloned().collect();
        for peer in open {
            peer.close_gracefully(CloseCode::GOING_AWAY, SHUTDOWN_REASON, self.grace);
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// A place among a server's connections, with the connection's number; given back when dropped.
pub(crate) struct Place {
    id: u64,
    connections: Arc<Connections>,
}

impl Place {
    /// The connection's number, unique among this server's.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Starts the connection's task, `connection(self)`, which the shutdown waits for; unless the shutdown
    /// has begun (then the connection is refused, and its place given back).
    pub(crate) fn start<C>(self, connection: impl FnOnce(Place) -> C) -> Result<(), NoPlace>
    where
        C: Future<Output = ()> + Send + 'static,
    {
        let connections = self.connections.clone();
        // Nothing is awaited from the check to the spawn; the token keeps a shutdown that starts in between
        // from finishing before the task is tracked (the task then closes its connection at once).
        let _in_between = connections.tracker.token();
        if connections.is_shutting_down() {
            return Err(NoPlace::ShuttingDown);
        }
        connections.tracker.spawn(connection(self));
        Ok(())
    }

    /// The connection's peer over `transport`, built by `peer` in the connection's span (its number, the
    /// other side's address, dialled in); run it with [`run`](Self::run).
    pub(crate) fn peer<T: Transport>(
        &self,
        peer: PeerBuilder,
        remote: &dyn fmt::Display,
        transport: T,
    ) -> (Peer<T>, PeerHandle) {
        let id = self.id;
        let span = tracing::info_span!(target: "birpc::connection", "connection", id, peer = %remote, dialled = "in");
        peer.span(span).build(transport)
    }

    /// Runs the connection's peer until it ends, in the table of open connections and in the hub meanwhile;
    /// the place is given back then. A connection that starts while the server shuts down is closed at once
    /// with 1001.
    ///
    /// The bookkeeping is done here, before the returned future is first polled, so that the future holds
    /// only the peer, its running state and what its end needs: it lives as long as the connection.
    pub(crate) fn run<T: Transport>(self, (peer, handle): (Peer<T>, PeerHandle)) -> impl Future<Output = ()> + Send {
        let id = self.id;
        self.connections.open().insert(id, handle.clone());
        let registration = self.connections.hub.as_ref().map(|hub| hub.register(handle.clone()));
        if self.connections.is_shutting_down() {
            handle.close_with(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
        drop(handle);
        // Not an `async` block: one would keep the `Peer` it captured (the transport, spent by `run`) for the
        // connection's life beside the peer's future, and a future made outside and awaited in it would be
        // stored twice (the capture, and the copy being awaited).
        peer.run().map(move |reason| {
            self.connections.open().remove(&id);
            if let Some(registration) = registration {
                registration.end(&reason);
            }
            tracing::debug!(target: "birpc::transport", %reason, id, "connection ended");
        })
    }

    /// Runs the connection's peer as [`run`](Self::run) does, in a task of its own that the shutdown waits
    /// for: the task that set the connection up (and its memory) ends now.
    pub(crate) fn spawn_run<T: Transport>(self, connection: (Peer<T>, PeerHandle)) {
        let connections = self.connections.clone();
        connections.tracker.spawn(self.run(connection));
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.connections.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}
