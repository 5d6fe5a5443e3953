//! The symmetric peer: one per connection, the same on both sides.
//!
//! A [`Peer`] drives one connection: its reader parses what arrives and admits requests to their handlers,
//! its writer sends what is queued, and notifications are handled one after another. A [`PeerHandle`] is
//! how the rest of the program calls the other side. "Server" and "client" only say who dialled.

mod batch;
mod handle;
mod heartbeat;
mod inbound;
pub(crate) mod link;
mod outbound;
mod pending;
mod queue;
mod running;
mod shared;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use self::batch::{Batch, BatchCall};
pub use self::handle::{Call, PeerHandle};
use self::heartbeat::{Beat, Heartbeat};
use self::inbound::{Reader, ReaderEnd};
pub use self::link::{Relay, WhileDown};
use self::outbound::WriterEnd;
use self::shared::{Drain, Lifecycle, Shared};
pub use self::stats::PeerStats;
use crate::close::{CloseCode, CloseFrame, CloseReason};
use crate::config::PeerConfig;
use crate::extensions::Extensions;
use crate::router::Router;
use crate::transport::{Outbound, Transport};

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
    config: PeerConfig,
    close_on_drop: bool,
    extensions: Extensions,
}

impl PeerBuilder {
    /// The methods this side exports. Default: none.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The limits and timings. Default: [`PeerConfig::default`].
    pub fn config(mut self, config: PeerConfig) -> Self {
        self.config = config;
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

    /// Attaches every value of `extensions` to the connection.
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Makes the peer for `transport`; run it with [`Peer::run`].
    pub fn build<T: Transport>(self, transport: T) -> (Peer<T>, PeerHandle) {
        self.build_with_ids(transport, Arc::new(AtomicU64::new(1)))
    }

    /// [`build`](Self::build), numbering this side's calls with `ids` (shared by a relay's connections).
    pub(crate) fn build_with_ids<T: Transport>(self, transport: T, ids: Arc<AtomicU64>) -> (Peer<T>, PeerHandle) {
        let shared = Arc::new(Shared::new(self.config, ids, self.extensions));
        let lifecycle = shared.lifecycle.subscribe();
        let peer = Peer {
            transport,
            router: self.router,
            handle: PeerHandle::new(shared.clone(), false),
            shared: shared.clone(),
            lifecycle,
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
    shared: Arc<Shared>,
    /// The handle given to handlers (it does not keep the connection open).
    handle: PeerHandle,
    /// The writer's view of the connection's life.
    lifecycle: watch::Receiver<Lifecycle>,
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
    /// cancelled.
    pub fn run(self) -> impl Future<Output = CloseReason> + Send + 'static {
        let Peer {
            transport,
            router,
            shared,
            handle,
            lifecycle,
        } = self;
        // Split before the future is made: it holds the two halves, not the transport they came from.
        let (sink, stream) = transport.split();
        drive::<T>(sink, stream, router, shared, handle, lifecycle)
    }
}

/// Drives a connection until it ends: the body of [`Peer::run`].
async fn drive<T: Transport>(
    sink: T::Sink,
    mut stream: T::Stream,
    router: Router,
    shared: Arc<Shared>,
    handle: PeerHandle,
    writer_lifecycle: watch::Receiver<Lifecycle>,
) -> CloseReason {
    let config = &shared.config;
    let (notifications, notification_queue) = mpsc::channel(config.max_queued_notifications.max(1));
    let mut lifecycle = shared.lifecycle.subscribe();
    // A close or a drain asked for before the peer ran is seen on the first turn.
    lifecycle.mark_changed();
    let mut heartbeat = Heartbeat::new(config, Instant::now());

    let reason = {
        let reader = Reader::new(shared.clone(), router, handle.clone(), notifications).run(&mut stream);
        let writer = outbound::write(sink, &shared.queue, writer_lifecycle);
        let notifications = inbound::run_notifications(notification_queue, handle);
        tokio::pin!(reader, writer, notifications);
        let mut reader_done = false;
        let mut writer_done = false;
        let mut notifications_done = false;
        let mut close_deadline: Option<Instant> = None;
        let mut drain: Option<Drain> = None;
        let requested = || shared.lifecycle.borrow().close_request.clone();
        loop {
            let closing = close_deadline.is_some();
            let draining = drain.as_ref().filter(|_| !closing);
            // One timer for everything timed: the close deadline, the drain deadline, the earliest call
            // deadline and the heartbeat.
            let timer = [
                close_deadline,
                draining.map(|d| d.deadline),
                shared.pending.earliest(),
                heartbeat.deadline().filter(|_| !closing),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                end = &mut reader, if !reader_done => {
                    reader_done = true;
                    match end {
                        ReaderEnd::Violation(frame) => {
                            tracing::debug!(%frame, "closing a connection whose other side broke a rule");
                            shared.request_close(frame);
                            if writer_done {
                                break CloseReason::Local(requested().unwrap_or_else(CloseFrame::normal));
                            }
                        }
                        end => break ended(end, requested()),
                    }
                }
                end = &mut writer, if !writer_done => {
                    writer_done = true;
                    match end {
                        WriterEnd::SentClose(frame) if reader_done => break CloseReason::Local(frame),
                        // Wait for the other side's close frame.
                        WriterEnd::SentClose(_) => {}
                        WriterEnd::Failed(e) => break match requested() {
                            Some(frame) => CloseReason::Local(frame),
                            None => CloseReason::Transport(e.to_string().into()),
                        },
                    }
                }
                () = &mut notifications, if !notifications_done => notifications_done = true,
                Ok(()) = lifecycle.changed(), if !closing || drain.is_none() => {
                    let (close_requested, started) = {
                        let state = lifecycle.borrow_and_update();
                        (state.close_request.is_some(), state.drain.clone())
                    };
                    if close_requested && !closing {
                        close_deadline = Some(Instant::now() + config.close_timeout);
                    }
                    // A graceful close: once the running handlers are done (or at the deadline), close.
                    if drain.is_none() && let Some(started) = started {
                        if shared.running.len() == 0 {
                            shared.request_close(started.frame.clone());
                        }
                        drain = Some(started);
                    }
                }
                () = shared.running.idle(), if drain.is_some() && !closing => {
                    if shared.running.len() == 0 && let Some(drain) = &drain {
                        shared.request_close(drain.frame.clone());
                    }
                }
                () = shared.pending.deadline_moved() => {}
                () = sleep_until(timer), if timer.is_some() => {
                    let now = Instant::now();
                    let due = |deadline: Option<Instant>| deadline.is_some_and(|d| d <= now);
                    if due(close_deadline) {
                        break CloseReason::Local(requested().unwrap_or_else(CloseFrame::normal));
                    }
                    if let Some(drain) = draining && drain.deadline <= now {
                        shared.request_close(drain.frame.clone());
                    }
                    // Calls of this side past their deadline fail with a timeout; the other side is told.
                    for id in shared.pending.expire(now) {
                        shared.send_cancel(id);
                    }
                    if closing || !due(heartbeat.deadline()) {
                        continue;
                    }
                    let heard = shared.heard.swap(false, Ordering::Relaxed);
                    let paused = shared.reading_paused.load(Ordering::Relaxed);
                    match heartbeat.beat(heard, paused, Instant::now()) {
                        Beat::Quiet => {}
                        // A ping that finds no room is not sent: a side that does not read what it is
                        // sent will not answer either, and is given up all the same.
                        Beat::Ping => drop(shared.queue.try_push(Outbound::Ping(Bytes::new()), false)),
                        Beat::Gone => {
                            let timeout = heartbeat.timeout();
                            break CloseReason::Local(CloseFrame::new(
                                CloseCode::INTERNAL,
                                format!("no sign of life within {timeout:?} of a ping"),
                            ));
                        }
                    }
                }
            }
        }
    };

    tracing::debug!(%reason, "connection ended");
    shared.lifecycle.send_modify(|state| state.ended = Some(reason.clone()));
    shared.pending.close();
    shared.running.abort_all();
    shared.queue.close();
    drop(stream);
    reason
}

/// Sleeps until `deadline`; forever when there is none (the branch is disabled then anyway).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The reason for a connection whose reader stopped, given the close frame this side asked for, if any.
fn ended(end: ReaderEnd, requested: Option<CloseFrame>) -> CloseReason {
    if let Some(frame) = requested {
        // This side was closing; however the reader stopped, that is why.
        return CloseReason::Local(frame);
    }
    match end {
        ReaderEnd::Closed(frame) => CloseReason::Remote(frame),
        ReaderEnd::Eof => CloseReason::Transport("the connection ended without a close frame".into()),
        ReaderEnd::Failed(e) => CloseReason::Transport(e.to_string().into()),
        ReaderEnd::Violation(frame) => CloseReason::Local(frame),
    }
}
