//! A snapshot of what a connection holds, for monitoring and tests.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a connection holds at one moment; see [`PeerHandle::stats`](crate::PeerHandle::stats). Every
/// figure is bounded by a [`PeerConfig`](crate::PeerConfig) limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PeerStats {
    /// Calls of this side awaiting an answer (at most `max_pending_calls`, twice that with the handlers'
    /// reserve).
    pub pending_calls: usize,
    /// Handlers of received requests and notifications running as tasks (handlers that finished at once
    /// are not counted).
    pub running_handlers: usize,
    /// Received requests waiting for a handler place (at most `max_queued_requests`).
    pub waiting_requests: usize,
    /// Received notifications waiting for their turn (at most `max_queued_notifications`).
    pub waiting_notifications: usize,
    /// Frames waiting for the writer (at most `max_queued_frames`).
    pub queued_frames: usize,
    /// Bytes of those frames (at most `max_queued_bytes`, or one frame when a single frame is larger).
    pub queued_bytes: usize,
    /// Streams this side produces on the connection (at most `max_streams`).
    pub streams_produced: usize,
    /// Streams this side consumes, subscriptions still awaiting their answer included (at most
    /// `max_streams`).
    pub streams_consumed: usize,
}

/// The figures only the connection's driver knows, published by it after each turn.
#[derive(Default)]
pub(crate) struct StatsCell {
    running_handlers: AtomicUsize,
    waiting_requests: AtomicUsize,
    waiting_notifications: AtomicUsize,
}

impl StatsCell {
    pub(crate) fn publish(&self, running_handlers: usize, waiting_requests: usize, waiting_notifications: usize) {
        self.running_handlers.store(running_handlers, Ordering::Relaxed);
        self.waiting_requests.store(waiting_requests, Ordering::Relaxed);
        self.waiting_notifications
            .store(waiting_notifications, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, pending_calls: usize, queued_frames: usize, queued_bytes: usize) -> PeerStats {
        PeerStats {
            pending_calls,
            running_handlers: self.running_handlers.load(Ordering::Relaxed),
            waiting_requests: self.waiting_requests.load(Ordering::Relaxed),
            waiting_notifications: self.waiting_notifications.load(Ordering::Relaxed),
            queued_frames,
            queued_bytes,
            streams_produced: 0,
            streams_consumed: 0,
        }
    }
}
