//! The state of one connection shared by its handles, its driver and its handler tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use super::handlers::Finished;
use super::lifecycle::Lifecycle;
use super::pending::Pending;
use super::queue::FrameQueue;
pub(crate) use super::queue::Refused;
use super::signal::Signal;
use super::stats::{PeerStats, StatsCell};
use crate::call_error::CallError;
use crate::close::{CloseFrame, CloseReason};
use crate::config::PeerConfig;
use crate::extensions::Extensions;
use crate::message;
use crate::stream::table::Streams;
use crate::transport::Outbound;

/// The method a peer sends to withdraw one of its calls: `{"id": …}`.
pub(crate) const CANCEL_METHOD: &str = "$/cancelRequest";

/// Numbers connections (and relays) uniquely within the process.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// A fresh connection number.
pub(crate) fn next_connection_id() -> u64 {
    CONNECTIONS.fetch_add(1, Ordering::Relaxed)
}

/// Where the ids of a connection's calls come from.
pub(crate) enum Ids {
    /// The connection's own count, from 1 (kept in the connection's state: no allocation of its own).
    Own(AtomicU64),
    /// A count shared by every connection of a relay, so that a call's id is never reused across them.
    Shared(Arc<AtomicU64>),
}

pub(crate) struct Shared {
    /// Shared by the connections built from the same `Arc` (see [`PeerBuilder::config`](crate::PeerBuilder::config)).
    pub(crate) config: Arc<PeerConfig>,
    /// Unique within the process: see [`PeerHandle::id`](crate::PeerHandle::id).
    pub(crate) connection_id: u64,
    /// The ids of this side's calls.
    ids: Ids,
    /// Typed values attached to the connection.
    pub(crate) extensions: Extensions,
    pub(crate) pending: Pending,
    /// The writer's queue, bounded by [`PeerConfig::max_queued_frames`] and
    /// [`PeerConfig::max_queued_bytes`].
    pub(crate) queue: FrameQueue,
    /// The streams this side produces and consumes on the connection.
    pub(crate) streams: Streams,
    /// Where handler tasks report their end to the driver.
    pub(crate) finished: Finished,
    /// What the driver holds, published for [`PeerHandle::stats`](crate::PeerHandle::stats).
    pub(crate) stats: StatsCell,
    /// Bytes of handlers' answers waiting for room in the outgoing queue. While they reach
    /// [`PeerConfig::max_queued_bytes`], no further request starts (see [`Shared::answers_congested`]).
    answers_waiting: AtomicUsize,
    /// Where the connection is in its life.
    pub(crate) lifecycle: Lifecycle,
    /// The driver's wake-ups, one flag each (listed in `signal.rs`): the transport's (see
    /// [`Reads`](super::reads::Reads)), a frame queued, calls added, a deadline moved, a handler task
    /// ended, a close or a drain asked for. Given to the parts above when they raise or wait for them.
    pub(crate) wake: Signal,
}

impl Shared {
    pub(crate) fn new(config: Arc<PeerConfig>, ids: Ids, extensions: Extensions) -> Self {
        Self {
            connection_id: next_connection_id(),
            ids,
            extensions,
            pending: Pending::new(config.max_pending_calls, config.idle_timeout.is_some()),
            queue: FrameQueue::new(config.max_queued_frames, config.max_queued_bytes.max(1)),
            streams: Streams::new(config.max_streams),
            config,
            finished: Finished::default(),
            stats: StatsCell::default(),
            answers_waiting: AtomicUsize::new(0),
            lifecycle: Lifecycle::default(),
            wake: Signal::default(),
        }
    }

    /// A snapshot of what the connection holds.
    pub(crate) fn stats(&self) -> PeerStats {
        let (queued_frames, queued_bytes) = self.queue.usage();
        let mut stats = self.stats.read(self.pending.len(), queued_frames, queued_bytes);
        (stats.streams_produced, stats.streams_consumed) = self.streams.counts();
        stats
    }

    /// A fresh id for a call of this side.
    pub(crate) fn next_id(&self) -> u64 {
        match &self.ids {
            Ids::Own(next) => next.fetch_add(1, Ordering::Relaxed),
            Ids::Shared(next) => next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether this side has numbered a call on the connection (a relay's connections: on any of them).
    pub(crate) fn has_called(&self) -> bool {
        match &self.ids {
            Ids::Own(next) => next.load(Ordering::Relaxed) > 1,
            Ids::Shared(_) => true,
        }
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lifecycle.has_ended()
    }

    /// Why the connection ended, once it has.
    pub(crate) fn closed_reason(&self) -> Option<CloseReason> {
        self.lifecycle.ended()
    }

    /// Waits until the connection has ended and tells why.
    pub(crate) async fn closed(&self) -> CloseReason {
        self.lifecycle.wait_ended().await
    }

    /// Why the connection ended; a placeholder while it is still ending.
    pub(crate) fn close_reason(&self) -> CloseReason {
        self.lifecycle
            .ended()
            .unwrap_or_else(|| CloseReason::Transport("the connection is closing".into()))
    }

    pub(crate) fn disconnected<E>(&self) -> CallError<E> {
        CallError::Disconnected(self.close_reason())
    }

    /// Asks the driver to close the connection with `frame` (the first request wins).
    pub(crate) fn request_close(&self, frame: CloseFrame) {
        self.lifecycle.request_close(frame, &self.wake);
    }

    /// Queues a frame, waiting for room (bytes and a place in the queue).
    pub(crate) async fn send(&self, frame: String) -> Result<(), CallError> {
        self.queue
            .push(Outbound::Frame(frame), &self.wake)
            .await
            .map_err(|_| self.disconnected())
    }

    /// Queues a handler's answer, waiting for room; while it waits its bytes count as waiting answers.
    /// Nothing is reported when the connection has ended: the answer has nowhere to go then.
    pub(crate) async fn send_answer(&self, answer: String) {
        let answer = match self.try_send(answer, true) {
            Ok(()) | Err(Refused::Closed) => return,
            Err(Refused::Full(answer)) => answer,
        };
        /// Takes the bytes back however the wait ends (queued, or the task dropped).
        struct Waiting<'a>(&'a AtomicUsize, usize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(self.1, Ordering::Relaxed);
            }
        }
        self.answers_waiting.fetch_add(answer.len(), Ordering::Relaxed);
        let _waiting = Waiting(&self.answers_waiting, answer.len());
        let _ = self.send(answer).await;
    }

    /// Whether handlers' answers waiting for room reach [`PeerConfig::max_queued_bytes`]: the other side
    /// reads more slowly than answers are made, and no further request should start until it catches up.
    pub(crate) fn answers_congested(&self) -> bool {
        self.answers_waiting.load(Ordering::Relaxed) >= self.config.max_queued_bytes.max(1)
    }

    /// Queues a frame if there is room now; gives it back otherwise. `will_wait`: when refused, the
    /// caller waits for room (and others queue behind it).
    pub(crate) fn try_send(&self, frame: String, will_wait: bool) -> Result<(), Refused<String>> {
        text_back(self.queue.try_push(Outbound::Frame(frame), will_wait, &self.wake))
    }

    /// [`try_send`](Self::try_send) from the connection's own task, while it runs (see
    /// [`FrameQueue::try_push_here`]).
    pub(crate) fn try_send_here(&self, frame: String, will_wait: bool) -> Result<(), Refused<String>> {
        text_back(self.queue.try_push_here(Outbound::Frame(frame), will_wait, &self.wake))
    }

    /// Marks the requests of `ids` as queued, and withdraws those whose calls timed out meanwhile.
    pub(crate) fn withdraw_if_gone(&self, ids: &[u64]) {
        for id in self.pending.set_sent(ids) {
            self.send_cancel(id);
        }
    }

    /// Tells the other side this side no longer wants the answer to call `id`. Best effort: when the queue
    /// is full the notice is skipped, and the late answer is discarded on arrival all the same.
    pub(crate) fn send_cancel(&self, id: u64) {
        #[derive(Serialize)]
        struct CancelParams {
            id: u64,
        }
        if let Ok(frame) = message::encode_call(None, CANCEL_METHOD, Some(&CancelParams { id })) {
            let _ = self.try_send(frame, false);
        }
    }
}

/// A text frame refused by the queue, given back as text.
fn text_back(pushed: Result<(), Refused<Outbound>>) -> Result<(), Refused<String>> {
    match pushed {
        Ok(()) => Ok(()),
        Err(Refused::Full(Outbound::Frame(frame))) => Err(Refused::Full(frame)),
        Err(_) => Err(Refused::Closed),
    }
}
