//! A snapshot of what a connection holds, for monitoring and tests.

/// What a connection holds at one moment; see [`PeerHandle::stats`](crate::PeerHandle::stats). Every
/// figure is bounded by a [`PeerConfig`](crate::PeerConfig) limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PeerStats {
    /// Calls of this side awaiting an answer (at most `max_pending_calls`).
    pub pending_calls: usize,
    /// Handlers of received requests running as tasks (handlers that finished at once are not counted).
    pub running_handlers: usize,
    /// Received requests waiting for a handler place (at most `max_concurrent_requests`).
    pub waiting_requests: usize,
    /// Frames waiting for the writer (at most `max_queued_frames`).
    pub queued_frames: usize,
    /// Bytes of those frames (at most `max_queued_bytes`, or one frame when a single frame is larger).
    pub queued_bytes: usize,
    /// Whether the peer has stopped reading the connection because every handler place is taken.
    pub reading_paused: bool,
}
