//! The limits and timings of one peer, with their defaults.

use std::time::Duration;

/// The limits and timings of a [`Peer`](crate::Peer). Every limit is on by default.
///
/// Build one from [`PeerConfig::default`] and the setters, which take and return the config:
///
/// ```
/// use std::time::Duration;
/// use rpc_core::PeerConfig;
///
/// let config = PeerConfig::default()
///     .max_concurrent_requests(64)
///     .call_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(config.max_concurrent_requests, 64);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The largest message, in bytes, received or sent. Default: 4 MiB.
    ///
    /// A larger received message closes the connection with 1009; a larger outgoing call fails with
    /// [`CallError::TooLarge`](crate::CallError::TooLarge), and a larger result is answered with -32003
    /// Response too large instead. The connection lives on in both cases.
    pub max_message_size: usize,
    /// The most entries a received batch may hold. Default: 256.
    ///
    /// A longer batch is answered with one -32004 Batch too large error; none of it runs.
    pub max_batch_len: usize,
    /// The most received requests whose handlers run at once on this connection. Default: 256.
    ///
    /// The peer never stops reading for lack of places (the answers to its own calls, pings, close frames
    /// and `$/cancelRequest` arrive on the same connection): a request past this limit waits in a queue
    /// ([`max_queued_requests`](Self::max_queued_requests)), and starts, in arrival order, when a place
    /// frees up. While calls of this side await answers, a waiting request may also start on an extra
    /// place (at most twice [`max_pending_calls`](Self::max_pending_calls) extra, as many as this side can
    /// have calls pending, the handlers' reserve included): it may
    /// be the nested call an awaiting handler needs (a handler calling back its caller, who calls back
    /// again), which must not wait for that handler's place. A batch takes a place per request (at most
    /// all of them).
    pub max_concurrent_requests: usize,
    /// The most received requests waiting for a handler place. Default: 768.
    ///
    /// A request (or batch) that finds this queue full, or
    /// [`max_queued_received_bytes`](Self::max_queued_received_bytes) used up, is refused at once with
    /// -32005 Busy and a retry hint, and never runs (HTTP/2's `REFUSED_STREAM`, RFC 9113 section 8.7).
    /// The default makes the two sides of birpc fit together: running plus waiting (256 + 768) is the
    /// 1024 calls a birpc peer with default limits keeps pending for its application at most
    /// ([`max_pending_calls`](Self::max_pending_calls)), so those are never refused as busy. (Its
    /// handlers' nested calls, which may use a reserve beyond that, come back to a side that awaits an
    /// answer, and find extra places there.)
    pub max_queued_requests: usize,
    /// The most received notifications waiting for their turn (they are handled one after another, in
    /// the order they arrived, and a request that arrived after one starts after it). Default: 1024.
    ///
    /// Arrival order has one consequence to know: a request that arrives while notifications wait starts
    /// after them. A notification handler may call its sender back and await the answer; if the sender,
    /// before answering, calls this side back again while further notifications wait, that request waits
    /// behind them and the exchange ends at the call's timeout.
    ///
    /// A notification that finds this queue full (or
    /// [`max_queued_received_bytes`](Self::max_queued_received_bytes) used up) cannot be refused, since
    /// notifications have no answer, and is never dropped in silence: the connection closes with 1008
    /// (policy violation) and a reason saying so.
    pub max_queued_notifications: usize,
    /// The most bytes of received messages waiting for their turn (requests and notifications counted
    /// together, each by the size of the frame that carried it). Default: 16 MiB.
    ///
    /// Past it, a request is refused with -32005 Busy and a notification closes the connection with
    /// 1008, as above. A single message is always accepted when nothing waits.
    pub max_queued_received_bytes: usize,
    /// The retry hint a -32005 Busy refusal carries (`data.retry_after_ms`). Default: 100 ms.
    pub busy_retry_after: Duration,
    /// The most calls of this side awaiting an answer at once. Default: 1024.
    ///
    /// A further call waits for one to end (within its timeout). A call's place frees up when its answer
    /// (or its timeout) arrives, before its caller reads it: the answer waits for its caller in the
    /// connection's table, until the call is awaited again or dropped. Calls that this connection's own
    /// handlers make to it while they run (in the handler's task, through any handle of the connection;
    /// not from tasks they spawn) may use as many places again (a reserve, so that nested calls find room
    /// while the application's calls fill the table), and never wait: past the reserve they fail at once
    /// with [`CallError::TooManyPending`](crate::CallError::TooManyPending), since the calls holding the
    /// places may be waiting on those very handlers.
    pub max_pending_calls: usize,
    /// The most frames waiting to be written. Default: 256.
    ///
    /// A call or notification waits for room (within its timeout); handlers wait before sending their
    /// result; [`PeerHandle::try_notify`](crate::PeerHandle::try_notify) fails at once.
    pub max_queued_frames: usize,
    /// The most bytes of frames waiting to be written. Default: 16 MiB.
    ///
    /// Together with [`max_queued_frames`](Self::max_queued_frames) this bounds the memory a connection
    /// whose other side reads slowly (or not at all) can hold: senders wait as above. A frame larger than
    /// the whole budget is sent when the queue is empty.
    ///
    /// Handlers' answers that find no room wait for it, holding their places; once their bytes reach
    /// this budget too, no further request starts (they wait in the queue, then are refused with -32005
    /// Busy) until the other side reads: at most this many bytes again, plus the answers of handlers
    /// already running then. Errors and refusals the peer makes itself may wait this many bytes more;
    /// past that the other side sends faster than it reads, and the connection closes with 1008.
    pub max_queued_bytes: usize,
    /// How long a write to the connection may make no progress. Default: 30 s; `None` waits forever.
    ///
    /// When the transport has taken nothing (no frame, no flush, no close frame) for this long, the other
    /// side is taken to have stopped reading (progress is checked each `write_timeout`, so the end comes
    /// between one and two of them after the last progress): the connection ends at once, without a closing
    /// handshake, with [`CloseReason::Local`](crate::CloseReason::Local) 1008 saying so. Pending calls fail
    /// with [`CallError::Disconnected`](crate::CallError::Disconnected) and running handlers are
    /// cancelled.
    pub write_timeout: Option<Duration>,
    /// How long a call waits for room and for its answer, unless the call sets its own. Default: 60 s;
    /// `None` waits forever.
    ///
    /// A call that times out is removed from the pending table and the other side is sent
    /// `$/cancelRequest` for it. A call that goes out at once (the connection has a place and room for it)
    /// is timed from when it is made if no other call of the connection is pending or waiting to be taken
    /// up, else from when the connection's task takes it up: that task is woken by the first such call
    /// and reads the clock once for all the calls it takes up together, microseconds later unless it is
    /// busy.
    pub call_timeout: Option<Duration>,
    /// How long a closing connection waits for the other side's close frame. Default: 5 s.
    pub close_timeout: Duration,
    /// How long the connection may stay silent before a ping is sent. Default: 30 s; `None` sends no
    /// pings.
    ///
    /// Anything received counts as a sign of life; a ping is only sent after this long without one.
    pub heartbeat_interval: Option<Duration>,
    /// How long the answer to a ping may take. Default: 10 s.
    ///
    /// When nothing at all arrives within it, the other side is taken for gone: the connection ends with
    /// [`CloseReason::Local`](crate::CloseReason::Local) 1011 ("no sign of life"), without waiting for a
    /// close handshake, and the handlers still running for it are cancelled. The peer is judged only by
    /// what it sends: this side never stops reading, so busy handlers do not hide a vanished peer. A ping
    /// that finds the outgoing queue full is not sent, and silence is judged all the same.
    pub heartbeat_timeout: Duration,
    /// How long the connection may be idle before this side closes it. Default: `None`, never.
    ///
    /// Idle means both: nothing arrived from the other side, and nothing was in progress on the
    /// connection (no handler running or waiting, no call of this side awaiting its answer, no stream
    /// open). After this long the connection is closed with 1001 Going Away ("idle"), with the usual
    /// closing handshake. Meant for servers of transports without a heartbeat (byte streams, where the
    /// heartbeat is off): a peer that connects and says nothing, or half a message, would otherwise hold
    /// its place among the server's connections until it leaves.
    pub idle_timeout: Option<Duration>,
    /// The credit, in items, this side grants each stream it consumes (a subscription of this side, an
    /// upload to one of its handlers): the most items of one stream held here at once. Default: 256.
    ///
    /// The producer sends at most this many items ahead of what the consumer has taken; this side grants
    /// more as it takes them (the items taken since its last grant, once they reach a quarter of the window). A
    /// slow consumer therefore holds at most a window of items per stream, and holds up nothing else on
    /// the connection. A producer that sends beyond it (one that ignores credit) ends that stream with
    /// [`CallError::Overrun`](crate::CallError::Overrun). The protocol: `docs/streams.md`.
    pub stream_window: u32,
    /// The most streams this side produces on one connection, and, separately, the most it consumes.
    /// Default: 1024 each way.
    ///
    /// A download request past it is answered -32006 Too many streams (and opens none); an upload or a
    /// subscription of this side past it fails at once with
    /// [`CallError::TooManyStreams`](crate::CallError::TooManyStreams); a request binding an upload to a
    /// handler past it is answered -32006.
    pub max_streams: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_message_size: 4 << 20,
            max_batch_len: 256,
            max_concurrent_requests: 256,
            max_queued_requests: 768,
            max_queued_notifications: 1024,
            max_queued_received_bytes: 16 << 20,
            busy_retry_after: Duration::from_millis(100),
            max_pending_calls: 1024,
            max_queued_frames: 256,
            max_queued_bytes: 16 << 20,
            write_timeout: Some(Duration::from_secs(30)),
            call_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            heartbeat_interval: Some(Duration::from_secs(30)),
            heartbeat_timeout: Duration::from_secs(10),
            idle_timeout: None,
            stream_window: 256,
            max_streams: 1024,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl PeerConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`max_message_size`](PeerConfig::max_message_size).
    max_message_size: usize,
    /// Sets [`max_batch_len`](PeerConfig::max_batch_len) (at least 1 is used).
    max_batch_len: usize,
    /// Sets [`max_concurrent_requests`](PeerConfig::max_concurrent_requests) (at least 1 is used).
    max_concurrent_requests: usize,
    /// Sets [`max_queued_requests`](PeerConfig::max_queued_requests) (0 refuses every request that
    /// finds no place).
    max_queued_requests: usize,
    /// Sets [`max_queued_notifications`](PeerConfig::max_queued_notifications) (at least 1 is used).
    max_queued_notifications: usize,
    /// Sets [`max_queued_received_bytes`](PeerConfig::max_queued_received_bytes).
    max_queued_received_bytes: usize,
    /// Sets [`busy_retry_after`](PeerConfig::busy_retry_after).
    busy_retry_after: Duration,
    /// Sets [`max_pending_calls`](PeerConfig::max_pending_calls) (at least 1 is used).
    max_pending_calls: usize,
    /// Sets [`max_queued_frames`](PeerConfig::max_queued_frames) (at least 1 is used).
    max_queued_frames: usize,
    /// Sets [`max_queued_bytes`](PeerConfig::max_queued_bytes) (at least 1 is used).
    max_queued_bytes: usize,
    /// Sets [`write_timeout`](PeerConfig::write_timeout).
    write_timeout: Option<Duration>,
    /// Sets [`call_timeout`](PeerConfig::call_timeout).
    call_timeout: Option<Duration>,
    /// Sets [`close_timeout`](PeerConfig::close_timeout).
    close_timeout: Duration,
    /// Sets [`heartbeat_interval`](PeerConfig::heartbeat_interval).
    heartbeat_interval: Option<Duration>,
    /// Sets [`heartbeat_timeout`](PeerConfig::heartbeat_timeout).
    heartbeat_timeout: Duration,
    /// Sets [`idle_timeout`](PeerConfig::idle_timeout).
    idle_timeout: Option<Duration>,
    /// Sets [`stream_window`](PeerConfig::stream_window) (at least 1 is used).
    stream_window: u32,
    /// Sets [`max_streams`](PeerConfig::max_streams) (at least 1 is used).
    max_streams: usize,
}
