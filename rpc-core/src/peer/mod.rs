//! The symmetric peer: one per connection, the same on both sides.
//!
//! A [`Peer`] drives one connection. Its driver (`driver.rs`) owns the connection's IO and state and always
//! reads; the dispatcher (`dispatch.rs`, sans-IO) decides what each received message does: answers go to
//! the pending calls (`pending.rs`), requests and notifications to their handlers (`handlers.rs`) within
//! the running and queue bounds, the rest is refused or answered at once. The writer (`outbound.rs`) sends
//! what is queued (`queue.rs`). A [`PeerHandle`] is how the rest of the program calls the other side.
//! "Server" and "client" only say who dialled.

mod batch;
mod call;
mod dispatch;
mod driver;
mod handle;
mod handlers;
mod heartbeat;
mod lifecycle;
pub(crate) mod link;
mod outbound;
mod pending;
mod queue;
mod reads;
mod sent_batches;
mod shared;
mod signal;
mod stats;
mod timer;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use self::batch::{Batch, BatchCall};
pub use self::call::Call;
use self::driver::Ending;
pub use self::handle::PeerHandle;
pub use self::link::{Relay, WhileDown};
pub(crate) use self::shared::{Ids, Refused, Shared};
pub use self::stats::PeerStats;
use crate::close::CloseReason;
use crate::config::PeerConfig;
use crate::extensions::Extensions;
use crate::router::Router;
use crate::transport::Transport;

/// Sets up a [`Peer`]: its router, its limits, and whether dropping its handles closes it.
///
/// ```
/// use rpc_core::{Peer, PeerConfig, PeerHandle, Router, Transport};
///
/// fn serve<T: Transport>(transport: T, router: Router) -> PeerHandle {
///     Peer::builder()
///         .router(router)
///         .config(PeerConfig::default().max_concurrent_requests(32))
///         .spawn(transport)
/// }
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct PeerBuilder {
    router: Router,
    config: Arc<PeerConfig>,
    close_on_drop: bool,
    extensions: Extensions,
    span: Option<tracing::Span>,
}

impl PeerBuilder {
    /// The methods this side exports. Default: none.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The limits and timings: a [`PeerConfig`], or an `Arc<PeerConfig>` that many connections share (a
    /// server's connections need not each hold a copy of its 200 bytes). Default: [`PeerConfig::default`].
    pub fn config(mut self, config: impl Into<Arc<PeerConfig>>) -> Self {
        self.config = config.into();
        self
    }

    /// Whether the connection closes (1000) when the last handle returned by
    /// [`build`](Self::build)/[`spawn`](Self::spawn) (and its clones) is dropped. Default: `false`: the
    /// connection lives until either side closes it.
    ///
    /// Handles given to handlers through their [`Context`](crate::Context) never keep a connection open.
    pub fn close_on_drop(mut self, close_on_drop: bool) -> Self {
        self.close_on_drop = close_on_drop;
        self
    }

    /// Attaches a typed value to the connection (the authenticated user, say): handlers read it with
    /// [`Context::state`](crate::Context::state). One value per type.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The `tracing` span the connection runs in (the spans of its calls are its children). Default: a
    /// `connection` span (target `birpc::connection`, level info) with the connection's id.
    pub fn span(mut self, span: tracing::Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Attaches every value of `extensions` to the connection.
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Makes the peer for `transport`; run it with [`Peer::run`].
    pub fn build<T: Transport>(self, transport: T) -> (Peer<T>, PeerHandle) {
        self.build_with_ids(transport, Ids::Own(AtomicU64::new(1)))
    }

    /// [`build`](Self::build), numbering this side's calls with `ids` (shared by a relay's connections).
    pub(crate) fn build_with_ids<T: Transport>(self, transport: T, ids: Ids) -> (Peer<T>, PeerHandle) {
        let shared = Arc::new(Shared::new(self.config, ids, self.extensions));
        let span = self.span.unwrap_or_else(
            || tracing::info_span!(target: "birpc::connection", "connection", id = shared.connection_id),
        );
        let peer = Peer {
            transport,
            router: self.router,
            handle: PeerHandle::new(shared.clone(), false),
            ending: Ending(shared.clone()),
            span,
        };
        (peer, PeerHandle::new(shared, self.close_on_drop))
    }

    /// Makes the peer for `transport` and runs it as a task of the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn<T: Transport>(self, transport: T) -> PeerHandle {
        let (peer, handle) = self.build(transport);
        tokio::spawn(peer.run());
        handle
    }
}

/// One end of a connection, exporting a [`Router`] and calling the other side through its [`PeerHandle`]s.
///
/// Built with [`Peer::builder`]; [`run`](Self::run) drives it until the connection ends.
pub struct Peer<T> {
    transport: T,
    router: Router,
    /// Ends the connection's state however the peer goes: run to its end, or dropped (unrun, or with its
    /// task, if that panics).
    ending: Ending,
    /// The handle given to handlers (it does not keep the connection open).
    handle: PeerHandle,
    /// The span the connection runs in.
    span: tracing::Span,
}

impl Peer<()> {
    /// Starts setting up a peer.
    pub fn builder() -> PeerBuilder {
        PeerBuilder::default()
    }
}

impl<T: Transport> Peer<T> {
    /// Drives the connection until it ends, and tells why.
    ///
    /// When it returns, every call still pending has failed with
    /// [`CallError::Disconnected`](crate::CallError::Disconnected) and every handler still running has been
    /// cancelled. The same holds if the returned future is dropped before its end (its task panicked, or
    /// was aborted): nothing waits forever for a connection whose driver is gone.
    pub fn run(self) -> impl Future<Output = CloseReason> + Send + 'static {
        let Peer {
            transport,
            router,
            ending,
            handle,
            span,
        } = self;
        // Made ready before the future is: it holds the connection, not the transport it came from.
        let io = transport.into_io();
        tracing::Instrument::instrument(driver::drive::<T>(io, router, ending, handle), span)
    }
}
