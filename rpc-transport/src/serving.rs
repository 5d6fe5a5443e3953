//! What every server of this crate does with its connections, whatever their transport: a bounded count,
//! a table of the open ones, the hub, and a graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rpc_core::{CloseCode, CloseReason, Hub, Peer, PeerHandle, Transport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The close reason of connections ended by a shutdown.
pub(crate) const SHUTDOWN_REASON: &str = "server shutting down";

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
    /// Every connection's task (and whatever else the server tracks until its shutdown ends).
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
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

    /// A number for a new connection, unique among this server's.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A place for a new connection, if fewer than `max` are taken.
    pub(crate) fn take_place(self: &Arc<Self>) -> Option<Place> {
        let max = self.max;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Place(self.clone()))
    }

    /// Runs `peer` until it ends, in the table of open connections (as `id`) and in the hub meanwhile. A
    /// connection that starts while the server shuts down is closed at once with 1001.
    pub(crate) async fn run<T: Transport>(&self, id: u64, peer: Peer<T>, handle: PeerHandle) -> CloseReason {
        self.open().insert(id, handle.clone());
        let registration = self.hub.as_ref().map(|hub| hub.register(handle.clone()));
        if self.shutdown.is_cancelled() {
            handle.close_with(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
        let reason = peer.run().await;
        self.open().remove(&id);
        if let Some(registration) = registration {
            registration.end(&reason);
        }
        reason
    }

    /// Shuts down gracefully: no new connections (the accept loops and upgrades watch the token), every
    /// open one finishes the requests it has started (new ones are answered -32002 Shutting down) for up
    /// to the grace, then closes with 1001. Returns when every tracked task has ended.
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

/// A place among a server's connections, given back when dropped.
pub(crate) struct Place(Arc<Connections>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}
