//! Which connection a handle talks to: one for good, or whichever connection a [`Relay`] has now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::handle::PeerHandle;
use super::shared::{Ids, Shared, next_connection_id};
use super::{Peer, PeerBuilder};
use crate::call_error::CallError;
use crate::close::{CloseFrame, CloseReason};
use crate::config::PeerConfig;
use crate::transport::Transport;

/// What a call does while a relay has no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhileDown {
    /// Wait for the next connection, within the call's timeout. The default.
    #[default]
    Wait,
    /// Fail at once with [`CallError::Disconnected`].
    Fail,
}

/// The connection a handle talks to.
#[derive(Clone)]
pub(crate) enum Link {
    Fixed(Arc<Shared>),
    Relayed(Arc<RelayState>),
}

pub(crate) struct RelayState {
    id: u64,
    config: PeerConfig,
    /// Shared by every connection of the relay, so that a call numbered for one connection cannot collide
    /// with another's.
    ids: Arc<AtomicU64>,
    while_down: WhileDown,
    current: watch::Sender<Option<Arc<Shared>>>,
    /// Why the last connection ended, for calls that fail while down.
    last_reason: Mutex<Option<CloseReason>>,
    /// Set when the handles' owner asks the relay to stop.
    stop: watch::Sender<Option<CloseFrame>>,
    /// Set once, when the relay has ended for good.
    ended: watch::Sender<Option<CloseReason>>,
}

impl Link {
    /// The identifier of the connection, or of the relay.
    pub(crate) fn id(&self) -> u64 {
        match self {
            Link::Fixed(shared) => shared.connection_id,
            Link::Relayed(relay) => relay.id,
        }
    }

    pub(crate) fn config(&self) -> &PeerConfig {
        match self {
            Link::Fixed(shared) => &shared.config,
            Link::Relayed(relay) => &relay.config,
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        match self {
            Link::Fixed(shared) => shared.next_id(),
            Link::Relayed(relay) => relay.ids.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The connection now, if there is one that has not ended.
    pub(crate) fn now(&self) -> Option<Arc<Shared>> {
        match self {
            Link::Fixed(shared) => Some(shared.clone()),
            Link::Relayed(relay) => relay.current.borrow().clone().filter(|shared| !shared.is_closed()),
        }
    }

    /// The connection to send on: the current one, or (for a relay that waits) the next one.
    pub(crate) async fn connection(&self) -> Result<Arc<Shared>, CallError> {
        let relay = match self {
            Link::Fixed(shared) => return Ok(shared.clone()),
            Link::Relayed(relay) => relay,
        };
        let mut current = relay.current.subscribe();
        let mut ended = relay.ended.subscribe();
        loop {
            if let Some(reason) = ended.borrow().clone() {
                return Err(CallError::Disconnected(reason));
            }
            let up = current.borrow_and_update().clone().filter(|shared| !shared.is_closed());
            if let Some(shared) = up {
                return Ok(shared);
            }
            if relay.while_down == WhileDown::Fail {
                return Err(self.disconnected());
            }
            // No live connection: only the next one attached, or the end of the relay, changes that.
            tokio::select! {
                changed = current.changed() => if changed.is_err() { return Err(self.disconnected()) },
                _ = ended.changed() => {}
            }
        }
    }

    /// The error for a call that found no connection.
    pub(crate) fn disconnected<E>(&self) -> CallError<E> {
        match self {
            Link::Fixed(shared) => shared.disconnected(),
            Link::Relayed(relay) => {
                let reason = relay.ended.borrow().clone().or_else(|| relay.last_reason());
                CallError::Disconnected(reason.unwrap_or_else(|| CloseReason::Transport("not connected yet".into())))
            }
        }
    }

    /// Asks the connection (and a relay, for good) to close.
    pub(crate) fn request_close(&self, frame: CloseFrame) {
        if let Link::Relayed(relay) = self {
            relay
                .stop
                .send_if_modified(|stop| stop.replace(frame.clone()).is_none());
        }
        if let Some(shared) = self.now() {
            shared.request_close(frame);
        }
    }

    /// Why it ended, once it has ended (for a relay: for good).
    pub(crate) async fn closed(&self) -> CloseReason {
        match self {
            Link::Fixed(shared) => shared.closed().await,
            Link::Relayed(relay) => {
                let mut ended = relay.ended.subscribe();
                match ended.wait_for(Option::is_some).await {
                    Ok(reason) => reason.clone().unwrap_or_else(|| CloseReason::Transport("ended".into())),
                    Err(_) => CloseReason::Transport("ended".into()),
                }
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Link::Fixed(shared) => shared.is_closed(),
            Link::Relayed(relay) => relay.ended.borrow().is_some(),
        }
    }
}

impl RelayState {
    fn last_reason(&self) -> Option<CloseReason> {
        let last = self.last_reason.lock().unwrap_or_else(|p| p.into_inner()).clone();
        last.or_else(|| self.current.borrow().as_ref().and_then(|shared| shared.closed_reason()))
    }
}

/// Connections one after another behind one [`PeerHandle`]: what a reconnecting client is built on.
///
/// Handles of a relay send each call on the connection attached at that moment; while there is none,
/// calls wait for the next one or fail at once ([`WhileDown`]). A call in flight when its connection ends
/// fails with [`CallError::Disconnected`]; it is never sent again on the next connection (it may not be
/// idempotent).
///
/// ```
/// use rpc_core::{CloseReason, PeerBuilder, PeerConfig, Relay, Transport, WhileDown};
///
/// /// Keeps a relay connected, one connection after another, until it is told to stop.
/// async fn keep_connected<T: Transport>(relay: Relay, mut dial: impl AsyncFnMut() -> Option<T>) {
///     while !relay.is_stopped() {
///         let Some(transport) = dial().await else { break };
///         relay.attach(PeerBuilder::default(), transport).run().await;
///     }
///     relay.finish(CloseReason::Transport("stopped".into()));
/// }
///
/// let relay = Relay::new(PeerConfig::default(), WhileDown::Wait);
/// // Typed stubs built on this handle keep working from one connection to the next.
/// let handle = relay.handle(true);
/// # drop(handle);
/// ```
#[derive(Clone)]
pub struct Relay {
    state: Arc<RelayState>,
}

impl Relay {
    /// A relay with no connection yet. `config` applies to every connection attached.
    pub fn new(config: PeerConfig, while_down: WhileDown) -> Self {
        Self {
            state: Arc::new(RelayState {
                id: next_connection_id(),
                config,
                ids: Arc::new(AtomicU64::new(1)),
                while_down,
                current: watch::Sender::new(None),
                last_reason: Mutex::new(None),
                stop: watch::Sender::new(None),
                ended: watch::Sender::new(None),
            }),
        }
    }

    /// A handle following the relay's connections. With `close_on_drop`, dropping the last such handle
    /// (and its clones) stops the relay and closes its connection.
    pub fn handle(&self, close_on_drop: bool) -> PeerHandle {
        PeerHandle::from_link(Link::Relayed(self.state.clone()), close_on_drop)
    }

    /// Makes the peer of the next connection with `builder` (its config is replaced by the relay's); the
    /// relay's handles follow it from now on. Run it with [`Peer::run`].
    pub fn attach<T: Transport>(&self, builder: PeerBuilder, transport: T) -> Peer<T> {
        let previous = self.state.current.borrow().clone();
        if let Some(reason) = previous.and_then(|shared| shared.closed_reason()) {
            *self.state.last_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        }
        let (peer, _) = builder
            .config(self.state.config.clone())
            .build_with_ids(transport, Ids::Shared(self.state.ids.clone()));
        self.state.current.send_replace(Some(peer.ending.0.clone()));
        peer
    }

    /// Whether the handles' owner asked the relay to stop (a handle's `close`, or the last owning handle
    /// dropped): attach no more connections.
    pub fn is_stopped(&self) -> bool {
        self.state.stop.borrow().is_some()
    }

    /// Resolves when the handles' owner asks the relay to stop; gives the close frame asked for.
    pub async fn stopped(&self) -> CloseFrame {
        let mut stop = self.state.stop.subscribe();
        match stop.wait_for(Option::is_some).await {
            Ok(frame) => frame.clone().unwrap_or_else(CloseFrame::normal),
            Err(_) => CloseFrame::normal(),
        }
    }

    /// Ends the relay for good: calls waiting for a connection fail, and the handles' `closed` resolves
    /// with `reason`.
    pub fn finish(&self, reason: CloseReason) {
        self.state.ended.send_if_modified(|ended| {
            if ended.is_none() {
                *ended = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// How long the relay's calls wait by default: its config's call timeout.
    pub fn call_timeout(&self) -> Option<Duration> {
        self.state.config.call_timeout
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("stopped", &self.is_stopped())
            .field("ended", &self.state.ended.borrow().is_some())
            .finish_non_exhaustive()
    }
}
