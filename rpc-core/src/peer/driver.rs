//! The driver: the one task that owns a connection's IO and state.
//!
//! It always reads. What arrives goes to the [`Dispatcher`] (sans-IO), whose actions it carries out:
//! answers to this side's calls are delivered, handlers started, cancels applied, replies queued. It writes
//! through the writer, keeps one timer for everything timed (call deadlines, heartbeat, close and drain
//! deadlines), and when the connection ends, however it ends (even by a panic of this task or its future
//! being dropped), every pending call and waiting caller resolves with `Disconnected` and every handler
//! still running is cancelled.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::dispatch::{Act, Action, Dispatcher, Ticket};
use super::handle::PeerHandle;
use super::handlers::{Handlers, Started};
use super::heartbeat::{Beat, Heartbeat};
use super::lifecycle::Drain;
use super::outbound::{Source, Writer, WriterEnd};
use super::pending::{Addressee, Answer};
use super::queue::Refused;
use super::reads::Reads;
use super::shared::Shared;
use super::timer::TimerWait;
use crate::close::{CloseCode, CloseFrame, CloseReason};
use crate::router::Router;
use crate::stream::table::Delivery;
use crate::stream::wire::{self, Control};
use crate::transport::{Duplex, Inbound, Outbound, Transport, TransportError};

/// The most frames read in one go before the rest of the connection (writer, timers, handlers' ends)
/// gets a turn.
const BURST: usize = 64;

/// The most answers to this side's calls held for delivery at the end of a burst; more are delivered at
/// once. (Storage for more than [`BURST`] is given back after a delivery.)
const KEPT_ANSWERS: usize = 256;

/// The most bytes of results held for delivery at the end of a burst (they keep their frames alive); more
/// are delivered at once.
const HELD_ANSWER_BYTES: usize = 64 << 10;

/// What a held answer counts for beyond its text, in bytes: its place in the queue and its allocation.
const STASH_OVERHEAD: usize = 64;

/// How long a connection keeps the storage it keeps between bursts once it has gone quiet: the writer's and
/// its queue's (see [`FrameQueue::written`](super::queue::FrameQueue::written)) and the burst's answers',
/// once it has written nothing for this long; the pending table's (see
/// [`Pending::complete_all`](super::pending::Pending::complete_all)), once it has made no call for this long.
/// Looked at once this long after storage was kept, then again as long after: what has gone quiet is given
/// back between one and two of these after it went quiet, so that a connection gone quiet holds none.
const KEEP_STORAGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Bursts of reads that end closer together than this mark a connection in steady use (whatever they
/// carry; calls made one at a time whose whole cycle, answer and the caller's own work, takes less than a
/// millisecond): then a burst of one frame keeps the storage it used, as one of several does, to be given
/// back once the connection goes quiet (see [`KEEP_STORAGE`]; the mark goes with it), instead of giving it
/// back at once to take it again for the next call (three allocations a call on the calling side, one on
/// the answering side). A connection whose bursts of reads come further apart holds none between them.
const BUSY_GAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Ends the connection's shared state when dropped: on the normal path after the reason is set, and
/// also when the driver's future is dropped before the end (its task panicked, or was dropped with its
/// runtime, or the [`Peer`](super::Peer) was never run). Nothing waits forever then.
pub(super) struct Ending(pub(super) Arc<Shared>);

impl Drop for Ending {
    fn drop(&mut self) {
        let shared = &self.0;
        shared.lifecycle.end(CloseReason::Transport(
            "the connection's task stopped before the connection ended (it panicked or was dropped)".into(),
        ));
        shared.pending.close();
        shared.queue.close(&shared.wake);
        shared.streams.close(&shared.close_reason());
    }
}

/// How the reading side stands.
enum Reading {
    Open,
    /// The other side's close frame came: reading on until the stream ends finishes the handshake.
    Closing(CloseFrame),
    Done,
}

/// Drives a connection until it ends: the body of [`Peer::run`](super::Peer::run).
///
/// The driver's state and the writer are made here, before the future: captured by it, each is stored
/// once, where arguments of an `async fn` (and of the loop it awaits) would keep their own slots beside
/// what was made of them for the connection's whole life.
pub(super) fn drive<T: Transport>(
    mut io: T::Io,
    router: Router,
    ending: Ending,
    handle: PeerHandle,
) -> impl Future<Output = CloseReason> + Send + 'static {
    let shared = ending.0.clone();
    let mut writer = Writer::new(shared.config.write_timeout);
    let now = Instant::now();
    let mut driver = Driver {
        dispatcher: Dispatcher::new(router, shared.config.clone()),
        exec: Executor {
            handlers: Handlers::new(shared.clone(), handle),
            stash: None,
            finished: Vec::new(),
            answers: Vec::new(),
            answers_bytes: 0,
            table_kept: false,
            busy: false,
            shared: shared.clone(),
        },
        last_heard: now,
        heard: false,
        idle_since: Some(now),
        published: (0, 0, 0),
        reading: Reading::Open,
        writer_done: false,
        burst_held: false,
        storage_check: None,
        armed: None,
        timer_wait: TimerWait::default(),
        reads: Reads::new(),
        shared,
    };
    async move {
        crate::metrics::connection_opened();
        // The connection's times start when it is first driven.
        let now = Instant::now();
        (driver.last_heard, driver.idle_since) = (now, Some(now));
        let reason = driver.run(&mut writer, &mut io).await;
        // The output ends before the end is made known: for a byte stream, the other side then sees the
        // end of its input before this side's waiters learn of the end.
        io.end_output();
        drop(writer);
        let shared = &driver.shared;
        tracing::debug!(target: "birpc::peer", %reason, "connection ended");
        crate::metrics::load(load(driver.published), crate::metrics::Load::default());
        crate::metrics::connection_closed(&reason);
        shared.lifecycle.end(reason.clone());
        // The handlers are aborted, the pending calls and the queue closed, before the transport goes.
        drop(driver);
        drop(ending);
        drop(io);
        reason
    }
}

/// What the connection had for the driver: a burst of frames read and handled (`Err` with the reason when
/// reading is over for good), the writer's end, or a call of this side due before the timer.
enum IoEvent {
    Read(Result<(), CloseReason>),
    Written(WriterEnd),
    Retime,
}

/// What woke the connection's loop, of the things it waits for at once (looked at in this order, the
/// connection last: a connection that always has frames to read does not keep the timer, a close asked for
/// or handlers' ends from being seen).
enum Wake {
    /// A close or a drain was asked for, or the connection's state moved.
    Lifecycle,
    /// The timer fired: a deadline is due.
    Timer,
    /// Handlers of the other side's requests are done.
    HandlersDone,
    /// The queue has room for the first answer waiting for it.
    Room,
    /// Something to look at again on a turn (calls added, an earlier deadline).
    Nothing,
    Io(IoEvent),
}

/// Which of the things the connection's loop may wait for it waits for this turn (the wait for room for
/// answers is known by its `Option`).
#[derive(Clone, Copy)]
struct Waits {
    /// Reading is open or the writer still writes.
    io: bool,
    /// Handlers are running.
    handlers: bool,
    /// Calls of this side added (while extra places wait for them).
    calls: bool,
    lifecycle: bool,
    /// An earlier deadline of this side's calls (looked at with the connection while it is polled).
    deadlines: bool,
    /// The timer is set.
    timer: bool,
}

/// The published figures as the metrics' load gauges.
fn load((running, waiting_requests, waiting_notifications): (usize, usize, usize)) -> crate::metrics::Load {
    crate::metrics::Load {
        running,
        waiting_requests,
        waiting_notifications,
    }
}

struct Driver {
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
    exec: Executor,
    /// When anything last arrived (set at the end of each burst of reads), for the heartbeat.
    last_heard: Instant,
    /// Whether a burst of reads has ended yet (`last_heard` is the connection's start until then).
    heard: bool,
    /// Since when nothing has been in progress on the connection (`None` while something is), for
    /// [`PeerConfig::idle_timeout`](crate::PeerConfig::idle_timeout).
    idle_since: Option<Instant>,
    /// The figures last published for [`PeerHandle::stats`](crate::PeerHandle::stats).
    published: (usize, usize, usize),
    /// How the reading side stands.
    reading: Reading,
    /// Whether the writer is done (it sent the close frame, or failed).
    writer_done: bool,
    /// Whether a burst of reads awaits its turn: held so that the writer's end, met when the burst ended,
    /// is told first.
    burst_held: bool,
    /// While storage is kept between bursts: when to look again whether the connection still writes and
    /// still makes calls, how far the writer had got and how many calls had been added (see
    /// [`KEEP_STORAGE`]). Set by a turn, from one reading of the clock a second at most.
    storage_check: Option<(Instant, u64, u64)>,
    /// When the connection's one timer is set for, if it is (`None` while nothing is timed: the timer is
    /// not polled then).
    armed: Option<Instant>,
    /// Whether the timer needs polling.
    timer_wait: TimerWait,
    /// Whether reading the transport may find something.
    reads: Reads,
}

impl Driver {
    async fn run(&mut self, writer: &mut Writer, io: &mut impl Duplex) -> CloseReason {
        let shared = self.shared.clone();
        let config = &shared.config;
        // A close or a drain asked for before the peer ran is seen on the first turn (the signal keeps
        // what was raised before anyone waited).
        let mut heartbeat = Heartbeat::new(config, Instant::now());
        let mut close_deadline: Option<Instant> = None;
        let mut drain: Option<Drain> = None;
        let requested = || shared.lifecycle.close_request();
        let mut watching_calls = false;
        // One timer, moved only when the earliest deadline changes (not made anew each turn).
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        loop {
            if self.storage_unwatched(writer) {
                let at = Instant::now() + KEEP_STORAGE;
                self.storage_check = Some((at, writer.progress(), shared.pending.added()));
            }
            let closing = close_deadline.is_some();
            let draining = drain.as_ref().filter(|_| !closing);
            // The pending table is looked at once a turn: its size lends extra places, its earliest
            // deadline sets the timer. The count is told before the dispatcher is asked whether a waiting
            // request waits for calls (the count it last had may be one that calls withdrawn since made
            // too high); once the table is watched, a call added wakes this loop, and one added between
            // the look and the watch is counted by a second look.
            let (calls_pending, earliest_call) = shared.pending.load(Instant::now, &shared.wake);
            self.dispatcher.calls_pending(calls_pending, &mut self.exec);
            let watch_calls = self.dispatcher.waits_for_calls();
            if watch_calls != watching_calls {
                shared.pending.watch_growth(watch_calls);
                watching_calls = watch_calls;
                if watch_calls {
                    self.dispatcher.calls_pending(shared.pending.len(), &mut self.exec);
                }
            }
            self.settle();
            self.exec.deliver();
            self.publish_stats();
            let idle_deadline = config
                .idle_timeout
                .filter(|_| !closing)
                .and_then(|limit| self.idle_deadline(calls_pending, limit));
            // One timer for everything timed.
            let timer = [
                close_deadline,
                draining.map(|d| d.deadline),
                earliest_call,
                heartbeat.deadline().filter(|_| !closing),
                idle_deadline,
                self.storage_check.map(|(at, ..)| at),
            ]
            .into_iter()
            .flatten()
            .min();
            match timer {
                Some(at) if self.armed != Some(at) => {
                    sleep.as_mut().reset(at);
                    self.timer_wait.reset();
                    self.armed = Some(at);
                }
                Some(_) => {}
                // The sleep is not polled then: a deadline found later needs a turn to be timed.
                None => self.armed = None,
            }
            // Answers waiting for room in the queue (rare: the other side reads slowly) wait for it through
            // a boxed future, made only then: kept in the loop's state beside the connection's, it would
            // take its place there for the connection's whole life, used or not.
            let mut room = self
                .exec
                .stash
                .as_ref()
                .and_then(|stash| stash.answers.front())
                .map(|answer| Box::pin(shared.queue.room_for(answer.len())));
            let (read, write) = (self.reads(), !self.writer_done);
            let waits = Waits {
                io: read || write,
                handlers: self.exec.handlers.len() > 0,
                calls: watch_calls,
                lifecycle: !closing || drain.is_none(),
                // Looked at with the connection while it is polled.
                deadlines: !(read || write),
                timer: timer.is_some(),
            };
            let wake = poll_fn(|cx| self.poll_wake(cx, waits, sleep.as_mut(), room.as_mut(), &mut *io, writer)).await;
            match wake {
                Wake::Io(event) => match event {
                    IoEvent::Read(burst) => {
                        // Answers to this side's calls are delivered together when the burst ends.
                        self.exec.deliver();
                        if let Err(end) = burst {
                            return match requested() {
                                // This side was closing; however reading stopped, that is why.
                                Some(frame) => CloseReason::Local(frame),
                                None => end,
                            };
                        }
                        if let Reading::Closing(_) = self.reading
                            && close_deadline.is_none()
                        {
                            close_deadline = Some(Instant::now() + config.close_timeout);
                        }
                        // Reading is over (the other side broke a rule) and this side's close frame is
                        // already sent: nothing is left to wait for.
                        if self.writer_done
                            && matches!(self.reading, Reading::Done)
                            && let Some(frame) = requested()
                        {
                            return CloseReason::Local(frame);
                        }
                    }
                    // The timer is set again on the next turn.
                    IoEvent::Retime => {}
                    IoEvent::Written(end) => {
                        self.writer_done = true;
                        match end {
                            WriterEnd::SentClose(frame) => {
                                if matches!(self.reading, Reading::Done) {
                                    return CloseReason::Local(frame);
                                }
                                // Wait for the other side's close frame.
                            }
                            WriterEnd::Failed(e) => {
                                return match (requested(), std::mem::replace(&mut self.reading, Reading::Done)) {
                                    (Some(frame), _) => CloseReason::Local(frame),
                                    // The other side closed first; writing after its close frame fails.
                                    (None, Reading::Closing(frame)) => CloseReason::Remote(frame),
                                    (None, _) => CloseReason::Transport(e.to_string().into()),
                                };
                            }
                            WriterEnd::Stalled(limit) => {
                                let frame = CloseFrame::new(
                                    CloseCode::POLICY,
                                    format!("no write progress within {limit:?}: the other side does not read"),
                                );
                                tracing::debug!(target: "birpc::peer", %frame, "giving up a connection whose other side does not read");
                                return CloseReason::Local(frame);
                            }
                        }
                    }
                },
                Wake::HandlersDone => {
                    self.exec.finished.extend(self.exec.handlers.finished());
                    self.settle();
                    self.check_drained(drain.as_ref());
                }
                Wake::Room => self.exec.flush_stash(),
                Wake::Nothing => {}
                Wake::Lifecycle => {
                    let (close_requested, started) = shared.lifecycle.requests();
                    if close_requested && !closing {
                        close_deadline = Some(Instant::now() + config.close_timeout);
                    }
                    // A graceful close: once the running requests are done (or at the deadline), close.
                    if drain.is_none()
                        && let Some(started) = started
                    {
                        self.dispatcher.drain(&mut self.exec);
                        self.settle();
                        drain = Some(started);
                        self.check_drained(drain.as_ref());
                    }
                }
                Wake::Timer => {
                    self.armed = None;
                    let now = Instant::now();
                    let due = |deadline: Option<Instant>| deadline.is_some_and(|d| d <= now);
                    if let Some((at, progress, added)) = self.storage_check
                        && at <= now
                    {
                        // What has gone quiet since gives its storage back; the rest is looked at again a
                        // second later. The writer's and the answers' storage go with the writes, the
                        // pending table's with the calls (or with their size, see
                        // `Pending::review_storage`): a connection that keeps writing (notifications,
                        // answers) but makes no more calls does not hold its calls' peak.
                        if writer.progress() == progress {
                            writer.give_back_storage(&shared.queue);
                            self.exec.answers = Vec::new();
                            // Quiet: no longer in steady use (a write before the next read does not
                            // keep storage on the strength of old reads).
                            self.exec.busy = false;
                        }
                        if std::mem::take(&mut self.exec.table_kept) {
                            self.exec.table_kept = shared.pending.review_storage(added);
                        }
                        self.storage_check = None;
                    }
                    if due(close_deadline) {
                        return match (requested(), std::mem::replace(&mut self.reading, Reading::Done)) {
                            (Some(frame), _) => CloseReason::Local(frame),
                            (None, Reading::Closing(frame)) => CloseReason::Remote(frame),
                            (None, _) => CloseReason::Local(CloseFrame::normal()),
                        };
                    }
                    if let Some(drain) = draining
                        && drain.deadline <= now
                    {
                        shared.request_close(drain.frame.clone());
                    }
                    // Calls of this side past their deadline fail with a timeout; the other side is told.
                    for id in shared.pending.expire(now) {
                        shared.send_cancel(id);
                    }
                    // Looked at again: a call may have been made since the turn began.
                    let still_idle = idle_deadline.and_then(|_| {
                        let limit = config.idle_timeout?;
                        self.idle_deadline(shared.pending.len(), limit)
                    });
                    if due(idle_deadline) && due(still_idle) {
                        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "idle");
                        tracing::debug!(target: "birpc::peer", idle_timeout = ?config.idle_timeout, "closing an idle connection");
                        shared.request_close(frame);
                        close_deadline = Some(now + config.close_timeout);
                        continue;
                    }
                    if closing || !due(heartbeat.deadline()) {
                        continue;
                    }
                    match heartbeat.beat(self.last_heard, now) {
                        Beat::Quiet => {}
                        // A ping that finds no room is not sent: a side that does not read what it is
                        // sent will not answer either, and is given up all the same.
                        Beat::Ping => drop(shared.queue.try_push(Outbound::Ping(Bytes::new()), false, &shared.wake)),
                        Beat::Gone => {
                            let timeout = heartbeat.timeout();
                            return CloseReason::Local(CloseFrame::new(
                                CloseCode::INTERNAL,
                                format!("no sign of life within {timeout:?} of a ping"),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Polls what the connection's loop waits for this turn, in the order of [`Wake`]; ready with the first
    /// that is.
    fn poll_wake<R: Future<Output = ()>>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        waits: Waits,
        sleep: std::pin::Pin<&mut tokio::time::Sleep>,
        room: Option<&mut std::pin::Pin<Box<R>>>,
        io: &mut impl Duplex,
        writer: &mut Writer,
    ) -> Poll<Wake> {
        let shared = &*self.shared;
        // The task's waker is registered once, on the connection's signal, before any of its flags is
        // looked at: every wait below takes its flag without registering again. The transport is polled
        // with the connection's waker, which raises a flag of that signal too (see `Reads`).
        shared.wake.register(cx);
        if waits.lifecycle && shared.lifecycle.poll_moved(&shared.wake).is_ready() {
            return Poll::Ready(Wake::Lifecycle);
        }
        if waits.timer && self.timer_wait.poll(sleep, cx).is_ready() {
            return Poll::Ready(Wake::Timer);
        }
        if waits.handlers && shared.finished.poll_wait(&shared.wake).is_ready() {
            return Poll::Ready(Wake::HandlersDone);
        }
        if let Some(room) = room
            && room.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Wake::Room);
        }
        if waits.calls && shared.pending.poll_grew(&shared.wake).is_ready() {
            return Poll::Ready(Wake::Nothing);
        }
        if waits.deadlines
            && shared
                .pending
                .poll_deadline_moved(Instant::now, &shared.wake)
                .is_ready()
        {
            return Poll::Ready(Wake::Nothing);
        }
        if waits.io {
            return self.poll_io(cx, io, writer).map(Wake::Io);
        }
        Poll::Pending
    }

    /// Polls the writer, while it writes, then the connection for frames, while reading is open: the one
    /// connection lent to both in turn.
    ///
    /// Frames that are already here are read one after another and handled, [`BURST`] at most, with the
    /// reads' own waker ([`Reads`]): once a read has returned `Pending`, a poll reads again only if the
    /// transport woke that waker since, in the same poll then (frames that came meanwhile are read at once:
    /// waiting for the task's next poll made the benchmark's pipelined calls 2 to 4 times slower), and a
    /// poll woken for something else (a caller's frame) does not read for nothing. When a burst ends for want of
    /// frames, the writer, if it has work (a frame was queued or a close asked for since this poll began,
    /// or it is sending), is polled at once, so that the answers it queued go out before the turn's other
    /// work; and a burst that left nothing for a turn to do (see the conditions there) ends with `Pending`
    /// and takes no turn of its own: the callers it answered run first, and the next poll writes their
    /// next requests and reads on. (A turn of the loop per burst cost, one call at a time, about 900
    /// instructions a call on the client and 1,700 on the server, 6 % and 13 % of each; with 100
    /// connections × 8 calls in flight about 200 a call on each side, 3 %.) When answers came, the
    /// dispatcher is told the calls still pending, as a turn would tell it. A turn comes all the same when
    /// the storage kept has no look set to give it back (a turn sets one), or when the deadlines of the
    /// calls made next move the timer (see below).
    ///
    /// Calls made since the turn began get their deadlines before the read (see
    /// [`Pending::poll_deadline_moved`]): the turn ends for them only when one is due before the timer (or
    /// the first call ends a connection's idleness, with an idle timeout set), not for every call made while the
    /// driver waits (a connection making one call at a time would take two turns per call, not one).
    ///
    /// [`Pending::poll_deadline_moved`]: super::pending::Pending::poll_deadline_moved
    fn poll_io(&mut self, cx: &mut std::task::Context<'_>, io: &mut impl Duplex, writer: &mut Writer) -> Poll<IoEvent> {
        let shared = &*self.shared;
        if !self.writer_done
            && let Poll::Ready(end) = self.poll_writer(cx, io, writer)
        {
            return Poll::Ready(IoEvent::Written(end));
        }
        // A burst held (below) so that the writer's end, met when the burst ended, was told first: its turn
        // comes now.
        if std::mem::take(&mut self.burst_held) {
            return Poll::Ready(IoEvent::Read(Ok(())));
        }
        // Storage the writer kept for what it took, with no look set to give it back: a turn sets one (bursts
        // that take no turn leave it to this).
        if self.storage_unwatched(writer) {
            return Poll::Ready(IoEvent::Retime);
        }
        // After the writer, so that a call's request goes out before its deadline is set; looked at again
        // so that the next call wakes this task (once: calls made faster than they are looked at would
        // keep it here, so then the task wakes itself).
        for look in 0..2 {
            let Poll::Ready((calls, earliest)) = shared.pending.poll_deadline_moved(Instant::now, &shared.wake) else {
                break;
            };
            // A turn when the timer has to move for the call, or when the connection counted as idle (for
            // an idle timeout) no longer is.
            let due_first = earliest.is_some_and(|at| self.armed.is_none_or(|armed| at < armed));
            let busy_now = calls > 0 && self.idle_since.is_some() && shared.config.idle_timeout.is_some();
            if due_first || busy_now {
                return Poll::Ready(IoEvent::Retime);
            }
            if look == 1 {
                cx.waker().wake_by_ref();
            }
        }
        if !self.reads() || !self.reads.may_read(shared) {
            return Poll::Pending;
        }
        let mut frames = 0;
        loop {
            // With the reads' own waker: see `Reads`.
            let read = io.poll_next_unpin(&mut std::task::Context::from_waker(&Reads::waker(&self.shared)));
            let Poll::Ready(next) = read else {
                self.reads.pending(&self.shared, cx);
                if frames == 0 {
                    return Poll::Pending;
                }
                self.burst_ended();
                // The burst is over: what it queued (answers, a pong) goes out now, before the turn's other
                // work, so that an answer does not wait for it. If the writer ends, that is told first.
                // (The writer was polled when this poll began, with the same waker: unless it has work now,
                // its wake-ups stand.)
                let shared = &*self.shared;
                if !self.writer_done
                    && writer.has_work(Source::of(shared))
                    && let Poll::Ready(end) = self.poll_writer(cx, io, writer)
                {
                    // The burst's answers reach their calls before the writer's end may end the
                    // connection.
                    self.exec.deliver();
                    self.burst_held = true;
                    return Poll::Ready(IoEvent::Written(end));
                }
                // A burst that left nothing for a turn to look after (no request of the other side running
                // or waiting, no answer of this side waiting for room, no storage kept without a look set
                // to give it back later, no idleness to time) takes no turn: the answers it read are
                // delivered now, the callers, woken, run first and the calls they make next are written at
                // the next poll (their requests wake this task). Whatever else comes wakes it too; a timer
                // set before this burst fires no later than the one a turn would set, and the deadlines of
                // the calls made next are looked at before the next read.
                if matches!(self.reading, Reading::Open)
                    && shared.config.idle_timeout.is_none()
                    && self.exec.handlers.len() == 0
                    && self.dispatcher.queued() == (0, 0)
                    && self.exec.stash.is_none()
                {
                    let still_pending = self.exec.deliver();
                    if !self.storage_unwatched(writer) {
                        // What a turn would tell the dispatcher first: extra places for requests of the
                        // other side are usable only while calls of this side are pending. Told when
                        // answers came (the count is known then); otherwise a request that finds no
                        // regular place counts the calls then, and one that waits gets a turn, which
                        // tells the count before the calls are watched for.
                        if let Some(still_pending) = still_pending {
                            self.dispatcher.calls_pending(still_pending, &mut self.exec);
                        }
                        return Poll::Pending;
                    }
                }
                return Poll::Ready(IoEvent::Read(Ok(())));
            };
            frames += 1;
            // What a frame asks for is done before anything else is read.
            let inbound = self.on_inbound(next);
            self.settle();
            if inbound.is_err() || frames == BURST || matches!(self.reading, Reading::Done) {
                self.burst_ended();
                return Poll::Ready(IoEvent::Read(inbound));
            }
        }
    }

    /// Polls the writer: the transport with the connection's waker (see [`Reads`]); the queue and the close
    /// request through the connection's signal, on which [`poll_wake`](Self::poll_wake) registered the
    /// task's waker at the start of this poll (only called from there).
    fn poll_writer(
        &self,
        cx: &mut std::task::Context<'_>,
        io: &mut impl Duplex,
        writer: &mut Writer,
    ) -> Poll<WriterEnd> {
        writer.poll_write(
            cx,
            &Reads::waker(&self.shared),
            io,
            Source::of(&self.shared),
            self.exec.busy,
        )
    }

    /// A burst of reads ended: when, for the heartbeat, and whether it came within [`BUSY_GAP`] of the last
    /// one, for the storage the writer and the answers keep.
    fn burst_ended(&mut self) {
        let now = Instant::now();
        self.exec.busy =
            std::mem::replace(&mut self.heard, true) && now.saturating_duration_since(self.last_heard) < BUSY_GAP;
        self.last_heard = now;
    }

    /// Whether the connection keeps storage between bursts (given back once it has gone quiet, see
    /// [`KEEP_STORAGE`]) and no look at it is set yet (a turn sets one).
    fn storage_unwatched(&self, writer: &Writer) -> bool {
        self.storage_check.is_none()
            && (writer.keeps_storage() || self.exec.answers.capacity() > 0 || self.exec.table_kept)
    }

    /// Whether reading is open (until the stream ends or the other side broke a rule).
    fn reads(&self) -> bool {
        !matches!(self.reading, Reading::Done)
    }

    /// Handles one thing the transport delivered; `Err` with the reason when reading is over for good.
    fn on_inbound(&mut self, next: Option<Result<Inbound, TransportError>>) -> Result<(), CloseReason> {
        if let Reading::Closing(frame) = &self.reading {
            // After the close frame, only the end of the stream matters.
            return match next {
                None | Some(Err(_)) => Err(CloseReason::Remote(frame.clone())),
                Some(Ok(_)) => Ok(()),
            };
        }
        match next {
            Some(Ok(Inbound::Frame(frame))) => {
                self.dispatcher.on_frame(frame, &mut self.exec);
                Ok(())
            }
            Some(Ok(Inbound::Close(frame))) => {
                self.reading = Reading::Closing(frame);
                Ok(())
            }
            // A pong, or what a newer transport may add: a sign of life, nothing more.
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => match e.close_code() {
                Some(code) => {
                    // The other side broke a rule: close with the code that says which.
                    self.exec.violation(CloseFrame::new(code, e.to_string()));
                    self.reading = Reading::Done;
                    Ok(())
                }
                None => Err(CloseReason::Transport(e.to_string().into())),
            },
            None => Err(CloseReason::Transport(
                "the connection ended without a close frame".into(),
            )),
        }
    }

    /// Gives the dispatcher back the places of handlers that are done, until no more are.
    fn settle(&mut self) {
        while let Some(ticket) = self.exec.finished.pop() {
            self.dispatcher.on_finished(ticket, &mut self.exec);
        }
    }

    /// During a graceful close: once no request runs and no notification runs or waits, close.
    fn check_drained(&self, drain: Option<&Drain>) {
        if let Some(drain) = drain
            && self.dispatcher.is_idle()
        {
            self.shared.request_close(drain.frame.clone());
        }
    }

    /// When the connection will have been idle for `limit` (nothing heard, nothing in progress), or `None`
    /// while something is in progress.
    fn idle_deadline(&mut self, calls_pending: usize, limit: std::time::Duration) -> Option<Instant> {
        let streams = self.shared.streams.counts();
        let busy = self.exec.handlers.len() > 0
            || self.dispatcher.queued() != (0, 0)
            || calls_pending > 0
            || streams != (0, 0)
            || self.exec.stash.is_some();
        if busy {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
        self.idle_since.map(|since| since.max(self.last_heard) + limit)
    }

    /// Publishes what only the driver knows, when it changed.
    fn publish_stats(&mut self) {
        let (requests, notifications) = self.dispatcher.queued();
        let now = (self.exec.handlers.len(), requests, notifications);
        if now != self.published {
            crate::metrics::load(load(self.published), load(now));
            self.published = now;
            self.shared.stats.publish(now.0, now.1, now.2);
        }
    }
}

/// Carries out the dispatcher's actions as they are decided: starts handlers, delivers answers, applies
/// cancels, queues replies. The places of handlers done at once are collected in `finished` and given
/// back to the dispatcher by [`Driver::settle`].
struct Executor {
    shared: Arc<Shared>,
    handlers: Handlers,
    /// Answers the dispatcher made waiting for room in the outgoing queue (see [`Executor::reply`]); made
    /// when the first one has to wait, dropped when the last one is queued.
    stash: Option<Box<Stash>>,
    /// Tickets of handlers done, not yet given back.
    finished: Vec<Ticket>,
    /// Answers to this side's calls read in the current burst, delivered when the burst ends, or before
    /// when they number [`KEPT_ANSWERS`] or hold [`HELD_ANSWER_BYTES`].
    answers: Vec<(Addressee, Answer)>,
    /// The bytes of the results in `answers`.
    answers_bytes: usize,
    /// Whether the pending table kept its storage when a burst of answers emptied it.
    table_kept: bool,
    /// Whether the last burst of reads ended within [`BUSY_GAP`] of the one before (until a look finds
    /// the connection quiet): the connection is in steady use, and the storage of a burst of one (the
    /// answers', the table's, the writer's) is kept.
    busy: bool,
}

/// Answers waiting for room in the outgoing queue, and their bytes (each counted with
/// [`STASH_OVERHEAD`]).
#[derive(Default)]
struct Stash {
    answers: VecDeque<String>,
    bytes: usize,
}

impl Act for Executor {
    fn act(&mut self, action: Action) {
        match action {
            Action::Reply(answer) => self.reply(answer),
            Action::Start(job, ticket) => match self.handlers.start(job, ticket) {
                Started::Done(None) => self.finished.push(ticket),
                // A handler done at once whose answer finds no room keeps its places while it waits
                // for room, as a handler running as a task does: answers never pile up here.
                Started::Done(Some(answer)) => match self.shared.try_send_here(answer, true) {
                    Ok(()) | Err(Refused::Closed) => self.finished.push(ticket),
                    Err(Refused::Full(answer)) => self.handlers.hold(answer, ticket),
                },
                Started::Running => {}
            },
            Action::Answer(id, answer) => {
                if self.shared.streams.any_opening() {
                    // A download's answer binds its stream before any of its items can arrive.
                    let subscription = match &answer {
                        Answer::Result(result) => std::str::from_utf8(result).ok(),
                        _ => None,
                    };
                    if let Some(stream) = self.shared.streams.opened(id, subscription)
                        && let Ok(stream) = RawValue::from_string(stream.into())
                    {
                        // A download given up (timed out) opened it after all.
                        self.reply(wire::encode_cancel(&stream));
                    }
                }
                // Delivered with the rest of the burst's answers (see `Executor::deliver`), or at once when
                // those hold much: each keeps its frame's bytes.
                if let Answer::Result(result) = &answer {
                    self.answers_bytes += result.len();
                }
                self.answers.push((Addressee::Id(id), answer));
                if self.answers.len() >= KEPT_ANSWERS || self.answers_bytes >= HELD_ANSWER_BYTES {
                    self.deliver();
                }
            }
            Action::BatchRejected(error) => {
                // Which batch is rejected depends on which calls are answered: the answers read before
                // count.
                self.deliver();
                if self.shared.pending.reject_batch(&error).is_none() {
                    tracing::debug!(target: "birpc::peer", %error, "dropped an error answered with id null to no batch of this side");
                }
            }
            Action::Cancel(id) => {
                if !self.handlers.cancel(&id) {
                    tracing::debug!(target: "birpc::peer", %id, "ignored a $/cancelRequest for no running request");
                }
            }
            Action::Close(frame) => self.violation(frame),
        }
    }

    fn congested(&self) -> bool {
        self.shared.answers_congested()
    }

    fn consumes_streams(&self) -> bool {
        self.shared.streams.any_consumed()
    }

    fn has_called(&self) -> bool {
        self.shared.has_called()
    }

    fn calls_pending(&self) -> Option<usize> {
        Some(self.shared.pending.len())
    }

    fn stream(&mut self, control: Control) -> bool {
        let streams = &self.shared.streams;
        match control {
            // The dispatcher keeps announcements itself.
            Control::Open { .. } => false,
            Control::Credit { subscription, credit } => {
                if !streams.credit(subscription, credit) {
                    tracing::debug!(target: "birpc::peer", subscription, "ignored credit for no stream of this side");
                }
                true
            }
            Control::Cancel { subscription } => streams.cancel(subscription),
            Control::Payload { subscription, payload } => match streams.deliver(&subscription, payload) {
                Delivery::Done => true,
                Delivery::Unknown => false,
                Delivery::Overrun => {
                    tracing::debug!(target: "birpc::peer", %subscription, "a producer sent beyond its credit: its stream ends");
                    if let Ok(id) = RawValue::from_string(subscription.into()) {
                        self.reply(wire::encode_cancel(&id));
                    }
                    true
                }
            },
        }
    }
}

impl Executor {
    /// Delivers the answers collected from a burst of reads to their calls, all under one lock of the
    /// pending table. Returns, when an answer reached its call (not only answers to no pending call), how
    /// many calls of this side are still pending then (under the same lock, so exact at that moment).
    fn deliver(&mut self) -> Option<usize> {
        if self.answers.is_empty() {
            return None;
        }
        let burst = self.answers.len();
        let delivered = self.shared.pending.complete_all(&mut self.answers, self.busy);
        self.answers_bytes = 0;
        // A burst of one answer that left no call waiting (a connection making one call at a time, unless
        // busy: see `BUSY_GAP`) gives the storage back at once (an idle connection holds none), as one
        // larger than usual does. After a burst of several, it is kept, and the pending table keeps its own
        // (see `Pending::complete_all`): more calls are likely to follow at once. The driver gives the list
        // back once nothing has been written for `KEEP_STORAGE`, the table once no call has been added for
        // as long (or the calls made since need much less of it).
        if (delivered.still_pending == 0 && burst <= 1 && !self.busy) || self.answers.capacity() > BURST {
            self.answers = Vec::new();
        }
        self.table_kept |= delivered.kept_storage;
        let unknown = delivered.unknown;
        if unknown > 0 {
            tracing::debug!(target: "birpc::peer", unknown, "dropped answers to no pending call (late, withdrawn or unknown)");
        }
        (burst > unknown).then_some(delivered.still_pending)
    }

    /// The other side broke a rule: the connection closes with `frame`.
    fn violation(&mut self, frame: CloseFrame) {
        tracing::debug!(target: "birpc::peer", %frame, "closing a connection whose other side broke a rule");
        self.shared.request_close(frame);
    }

    /// Queues an answer the dispatcher made (an error, a refusal), or holds it until the writer's queue has
    /// room. What is held is bounded by [`PeerConfig::max_queued_bytes`](crate::PeerConfig) more bytes
    /// (counting 64 bytes of overhead each); past that the other side sends faster than it reads, and the
    /// connection closes with 1008.
    fn reply(&mut self, answer: String) {
        let answer = match self.stash {
            Some(_) => answer,
            None => match self.shared.try_send_here(answer, true) {
                Ok(()) | Err(Refused::Closed) => return,
                Err(Refused::Full(answer)) => answer,
            },
        };
        let stash = self.stash.get_or_insert_with(Box::default);
        stash.bytes += answer.len() + STASH_OVERHEAD;
        stash.answers.push_back(answer);
        if stash.bytes > self.shared.config.max_queued_bytes.max(1) {
            self.stash = None;
            let limit = self.shared.config.max_queued_bytes;
            self.violation(CloseFrame::new(
                CloseCode::POLICY,
                format!("more than {limit} bytes of answers waiting to be written: the other side sends faster than it reads"),
            ));
        }
    }

    /// Queues the held answers that fit now, in order.
    fn flush_stash(&mut self) {
        let Some(stash) = self.stash.as_mut() else { return };
        while let Some(answer) = stash.answers.pop_front() {
            let bytes = answer.len() + STASH_OVERHEAD;
            match self.shared.try_send_here(answer, true) {
                Ok(()) => stash.bytes -= bytes,
                Err(Refused::Full(answer)) => {
                    stash.answers.push_front(answer);
                    return;
                }
                // The connection is ending: nothing more will be sent.
                Err(Refused::Closed) => break,
            }
        }
        self.stash = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::{Context, ErrorObject, Peer, PeerConfig, memory};

    /// The storage `handle`'s connection keeps for frames between bursts, in slots: the queue's and the
    /// writer's.
    fn storage(handle: &PeerHandle) -> usize {
        let (queue, writer) = handle.link().now().expect("connected").queue.storage();
        queue + writer
    }

    /// A server exporting `echo` and a client, over memory, both with `config`.
    fn pair(config: PeerConfig) -> (PeerHandle, PeerHandle) {
        let (a, b) = memory::pair(4_096);
        let router = Router::new().method(
            "echo",
            |_: Context, (n,): (u32,)| async move { Ok::<_, ErrorObject>(n) },
        );
        let server = Peer::builder().router(router).config(config.clone()).spawn(a);
        (server, Peer::builder().config(config).spawn(b))
    }

    /// 40 calls made at once: the requests go out as one burst, and the answers in bursts.
    async fn call_many(client: &PeerHandle) {
        let calls = (0..40u32).map(|n| client.call::<u32>("echo", (n,)));
        for (n, answer) in futures::future::join_all(calls).await.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), u32::try_from(n).unwrap());
        }
    }

    /// A client with `config` whose other side is played by hand over memory, and its call of `echo(7)`,
    /// whose request the other side has read: the client, the call's task, the request's id, and the
    /// other side's halves.
    async fn one_call_played_by_hand(
        config: PeerConfig,
    ) -> (
        PeerHandle,
        tokio::task::JoinHandle<Result<u32, crate::CallError>>,
        serde_json::Value,
        memory::MemorySink,
        memory::MemoryStream,
    ) {
        let (ours, theirs) = memory::pair(16);
        let client = Peer::builder().config(config).spawn(ours);
        let (sink, mut stream) = theirs.split();
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.call::<u32>("echo", (7,)).await }
        });
        let Some(Ok(Inbound::Frame(request))) = stream.next().await else {
            panic!("no request")
        };
        let id = serde_json::from_slice::<serde_json::Value>(&request).unwrap()["id"].clone();
        (client, call, id, sink, stream)
    }

    /// A transport that keeps one waker for both directions: whichever of its reads and writes was polled
    /// last gets every wake-up (the memory pair underneath is polled with a waker that wakes it).
    struct OneWaker {
        inner: crate::transport::Joined<memory::MemorySink, memory::MemoryStream>,
        slot: Arc<OneSlot>,
    }

    #[derive(Default)]
    struct OneSlot(std::sync::Mutex<Option<std::task::Waker>>);

    impl futures::task::ArcWake for OneSlot {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            if let Some(waker) = arc_self.0.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    impl OneWaker {
        /// Keeps `cx`'s waker as the one to wake, and polls `poll` with the slot's.
        fn with<T>(
            &mut self,
            cx: &std::task::Context<'_>,
            poll: impl FnOnce(
                std::pin::Pin<&mut crate::transport::Joined<memory::MemorySink, memory::MemoryStream>>,
                &mut std::task::Context<'_>,
            ) -> Poll<T>,
        ) -> Poll<T> {
            *self.slot.0.lock().unwrap() = Some(cx.waker().clone());
            let waker = futures::task::waker(self.slot.clone());
            poll(
                std::pin::Pin::new(&mut self.inner),
                &mut std::task::Context::from_waker(&waker),
            )
        }
    }

    impl futures::Stream for OneWaker {
        type Item = Result<Inbound, TransportError>;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
            self.with(cx, |inner, cx| inner.poll_next(cx))
        }
    }

    impl futures::Sink<Outbound> for OneWaker {
        type Error = TransportError;
        fn poll_ready(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), TransportError>> {
            self.with(cx, |inner, cx| inner.poll_ready(cx))
        }
        fn start_send(mut self: std::pin::Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
            std::pin::Pin::new(&mut self.inner).start_send(item)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), TransportError>> {
            self.with(cx, |inner, cx| inner.poll_flush(cx))
        }
        fn poll_close(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), TransportError>> {
            self.with(cx, |inner, cx| inner.poll_close(cx))
        }
    }

    impl Duplex for OneWaker {}

    impl Transport for OneWaker {
        type Io = Self;
        fn into_io(self) -> Self {
            self
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_transport_with_one_waker_for_reads_and_writes_is_read_when_its_answers_come() {
        // Each call is written after a read that found nothing, and its answer comes after the write: a
        // driver that polled its writes with another waker than its reads would be woken for the answer
        // without knowing that it may read, and wait for ever.
        let (ours, theirs) = memory::pair(16);
        let (sink, stream) = ours.split();
        let transport = OneWaker {
            inner: crate::transport::Joined::new(sink, stream),
            slot: Arc::default(),
        };
        let client = Peer::builder().spawn(transport);
        let (mut their_sink, mut their_stream) = theirs.split();
        for n in 0..3_u32 {
            let call = tokio::spawn({
                let client = client.clone();
                async move { client.call::<u32>("echo", (n,)).await }
            });
            let Some(Ok(Inbound::Frame(request))) = their_stream.next().await else {
                panic!("no request")
            };
            let id = serde_json::from_slice::<serde_json::Value>(&request).unwrap()["id"].clone();
            let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": n}).to_string();
            futures::SinkExt::send(&mut their_sink, Outbound::Frame(answer))
                .await
                .unwrap();
            let answered = tokio::time::timeout(Duration::from_secs(5), call).await;
            assert_eq!(answered.expect("the answer was read").unwrap().unwrap(), n);
        }
    }

    /// Sends `frames` from the side played by hand, all before the other side reads any: it reads them in
    /// one burst.
    async fn send_in_one_burst(sink: &mut memory::MemorySink, frames: impl IntoIterator<Item = serde_json::Value>) {
        for frame in frames {
            futures::SinkExt::feed(sink, Outbound::Frame(frame.to_string()))
                .await
                .unwrap();
        }
        futures::SinkExt::flush(sink).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_answer_is_a_sign_of_life_from_when_it_came() {
        let (interval, timeout) = (Duration::from_secs(10), Duration::from_secs(3));
        let config = PeerConfig::default()
            .heartbeat_interval(Some(interval))
            .heartbeat_timeout(timeout);
        let (client, call, id, mut sink, stream) = one_call_played_by_hand(config).await;
        // Answered 5 s in, half-way to the first ping; the answer takes no turn of the loop (its caller
        // makes no other call), so the timer stays where it was set before it, at the heartbeat's first
        // look (10 s after the start), which finds the answer 5 s old and pings 10 s after it.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": 7}).to_string();
        futures::SinkExt::send(&mut sink, Outbound::Frame(answer))
            .await
            .unwrap();
        assert_eq!(call.await.unwrap().unwrap(), 7);
        let answered = Instant::now();
        // Nothing more is read on this side, so the ping goes unanswered: the client gives up one
        // interval after the answer (then the ping) and one timeout after the ping.
        let reason = client.closed().await;
        let CloseReason::Local(frame) = reason else {
            panic!("{reason:?}")
        };
        assert!(frame.reason.contains("no sign of life"), "{frame}");
        assert_eq!(answered.elapsed(), interval + timeout);
        drop(stream);
    }

    /// A peer with `config` exporting `slow(n)` (answers `n` after a second), whose other side is played
    /// by hand over memory: the peer, the most `slow` handlers seen running at once, and the other side's
    /// halves.
    fn slow_side(config: PeerConfig) -> (PeerHandle, Arc<AtomicUsize>, memory::MemorySink, memory::MemoryStream) {
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let router = Router::new().method("slow", {
            let most = most.clone();
            move |_: Context, (n,): (u32,)| {
                let (running, most) = (running.clone(), most.clone());
                async move {
                    most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, ErrorObject>(n)
                }
            }
        });
        let (ours, theirs) = memory::pair(16);
        let peer = Peer::builder().router(router).config(config).spawn(ours);
        let (sink, stream) = theirs.split();
        (peer, most, sink, stream)
    }

    /// A call of `peer` to `echo(7)`, answered by the other side alone (a burst that takes no turn of the
    /// driver's loop).
    async fn a_call_answered_alone(
        peer: &PeerHandle,
        sink: &mut memory::MemorySink,
        stream: &mut memory::MemoryStream,
    ) {
        let call = tokio::spawn({
            let peer = peer.clone();
            async move { peer.call::<u32>("echo", (7,)).await }
        });
        let id = next_request_id(stream).await;
        send_in_one_burst(sink, [serde_json::json!({"jsonrpc": "2.0", "id": id, "result": 7})]).await;
        assert_eq!(call.await.unwrap().unwrap(), 7);
    }

    /// The id of the next request the other side reads.
    async fn next_request_id(stream: &mut memory::MemoryStream) -> serde_json::Value {
        let Some(Ok(Inbound::Frame(request))) = stream.next().await else {
            panic!("no request")
        };
        serde_json::from_slice::<serde_json::Value>(&request).unwrap()["id"].clone()
    }

    /// Sends `slow(1)` and `slow(2)` in one burst and reads their two answers, in order (`Err` with the
    /// error object of the first one that failed).
    async fn two_slow_requests(
        sink: &mut memory::MemorySink,
        stream: &mut memory::MemoryStream,
    ) -> Result<(), serde_json::Value> {
        send_in_one_burst(
            sink,
            (1..=2).map(|n| serde_json::json!({"jsonrpc": "2.0", "id": n, "method": "slow", "params": [n]})),
        )
        .await;
        let mut answers = Vec::new();
        for _ in 1..=2 {
            let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
            let Ok(Some(Ok(Inbound::Frame(answer)))) = next else {
                panic!("an answer is missing: {next:?}")
            };
            answers.push(serde_json::from_slice::<serde_json::Value>(&answer).unwrap());
        }
        answers.sort_by_key(|answer| answer["id"].as_u64());
        for (n, answer) in (1..=2).zip(answers) {
            if answer["result"] != n {
                return Err(answer);
            }
        }
        Ok(())
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn extra_places_end_with_the_last_call_answered_even_without_a_turn() {
        // One request at a time: a second may run beside the first only while a call of this side is
        // pending (an extra place).
        let config = PeerConfig::default()
            .heartbeat_interval(None)
            .max_concurrent_requests(1);
        let (peer, most, mut sink, mut stream) = slow_side(config);
        a_call_answered_alone(&peer, &mut sink, &mut stream).await;
        // With no call of this side pending, the second request waits for the first.
        two_slow_requests(&mut sink, &mut stream).await.unwrap();
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "the two requests ran one after the other"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn extra_places_open_with_a_call_made_after_a_burst_that_took_no_turn() {
        // One request at a time and none waiting: a second request runs only in an extra place.
        let config = PeerConfig::default()
            .heartbeat_interval(None)
            .max_concurrent_requests(1)
            .max_queued_requests(0);
        let (peer, most, mut sink, mut stream) = slow_side(config);
        a_call_answered_alone(&peer, &mut sink, &mut stream).await;
        // The caller makes its next call, which stays pending: two requests then both run.
        let call = tokio::spawn({
            let peer = peer.clone();
            async move { peer.call::<u32>("echo", (8,)).await }
        });
        next_request_id(&mut stream).await;
        two_slow_requests(&mut sink, &mut stream).await.unwrap();
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "the second request ran in an extra place"
        );
        call.abort();
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_request_waiting_when_the_last_call_was_withdrawn_starts_with_the_next_call() {
        // One request at a time, no call deadlines and no heartbeat: no timer turns the loop.
        let config = PeerConfig::default()
            .heartbeat_interval(None)
            .call_timeout(None)
            .max_concurrent_requests(1);
        let router = Router::new()
            .method("slow", |_: Context, (n,): (u32,)| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, ErrorObject>(n)
            })
            // Calls the other side back a moment later (once the request after it waits), and answers
            // with what it said.
            .method("nested", |ctx: Context, (n,): (u32,)| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ctx.peer()
                    .call::<u32>("echo", (n,))
                    .await
                    .map_err(|e| ErrorObject::internal_error().with_detail(e))
            });
        let (ours, theirs) = memory::pair(16);
        let peer = Peer::builder().router(router).config(config).spawn(ours);
        let (mut sink, mut stream) = theirs.split();
        let answer = async |stream: &mut memory::MemoryStream| {
            let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
            let Ok(Some(Ok(Inbound::Frame(frame)))) = next else {
                panic!("nothing came: {next:?}")
            };
            serde_json::from_slice::<serde_json::Value>(&frame).unwrap()
        };
        // A call of this side, pending while a request runs (its turns count one call pending)...
        let call = tokio::spawn({
            let peer = peer.clone();
            async move { peer.call::<u32>("echo", (7,)).await }
        });
        next_request_id(&mut stream).await;
        send_in_one_burst(
            &mut sink,
            [serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "slow", "params": [0]})],
        )
        .await;
        assert_eq!(answer(&mut stream).await["id"], 0);
        // ...then withdrawn: no call of this side is pending.
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        // `nested` takes the one place and calls back; `slow(2)` waits for a place, which the call opens
        // (an extra place while a call of this side is pending). The call is answered only once `slow(2)`
        // is: if it waited for `nested`, nothing would move.
        send_in_one_burst(
            &mut sink,
            [
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "nested", "params": [9]}),
                serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "slow", "params": [2]}),
            ],
        )
        .await;
        let mut nested_call = None;
        let slow = loop {
            let message = answer(&mut stream).await;
            assert_ne!(message["id"], 1, "`nested` answered before its call was: {message}");
            if message["method"] == "echo" {
                nested_call = Some(message["id"].clone());
            } else if message["id"] == 2 {
                break message;
            }
        };
        assert_eq!(slow["result"], 2, "{slow}");
        let id = nested_call.expect("the nested call was made first");
        send_in_one_burst(
            &mut sink,
            [serde_json::json!({"jsonrpc": "2.0", "id": id, "result": 9})],
        )
        .await;
        assert_eq!(
            answer(&mut stream).await,
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": 9})
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn answers_waiting_for_room_go_out_after_a_burst_that_also_answered_a_call() {
        // Room for one frame, and no timer at all: only the connection's own wake-ups move it.
        let config = PeerConfig::default()
            .heartbeat_interval(None)
            .call_timeout(None)
            .max_queued_frames(1);
        let (_client, call, id, mut sink, mut stream) = one_call_played_by_hand(config).await;
        // One burst: two requests for a method this side does not have, then the call's answer. The first
        // error fills the queue; the second waits for room, which the writer makes when the burst ends.
        send_in_one_burst(
            &mut sink,
            [
                serde_json::json!({"jsonrpc": "2.0", "id": "a", "method": "nope"}),
                serde_json::json!({"jsonrpc": "2.0", "id": "b", "method": "nope"}),
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": 7}),
            ],
        )
        .await;
        assert_eq!(call.await.unwrap().unwrap(), 7);
        let start = Instant::now();
        let mut answered = Vec::new();
        for _ in 0..2 {
            let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
            let Ok(Some(Ok(Inbound::Frame(error)))) = next else {
                panic!("an error answer is missing: {next:?}")
            };
            let error = serde_json::from_slice::<serde_json::Value>(&error).unwrap();
            assert_eq!(error["error"]["code"], -32601, "{error}");
            answered.push(error["id"].clone());
        }
        assert_eq!(answered, ["a", "b"]);
        assert_eq!(start.elapsed(), Duration::ZERO, "no timer was needed");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn answers_read_in_a_burst_reach_their_calls_when_the_writer_fails_at_its_end() {
        let config = PeerConfig::default().heartbeat_interval(None);
        let (_client, call, id, mut sink, stream) = one_call_played_by_hand(config).await;
        // The other side stops reading: the error answer the burst queues fails to go out when it ends,
        // which ends the connection.
        drop(stream);
        send_in_one_burst(
            &mut sink,
            [
                serde_json::json!({"jsonrpc": "2.0", "id": "a", "method": "nope"}),
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": 7}),
            ],
        )
        .await;
        assert_eq!(call.await.unwrap().unwrap(), 7);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_connection_that_stops_writing_gives_its_storage_back() {
        // No heartbeat: nothing is written once the calls are done.
        let (server, client) = pair(PeerConfig::default().heartbeat_interval(None));
        call_many(&client).await;
        assert!(storage(&client) >= 40, "the burst's storage is kept for the next one");
        // Calls keep coming: the storage stays.
        for _ in 0..3 {
            tokio::time::sleep(KEEP_STORAGE / 2).await;
            call_many(&client).await;
            assert!(storage(&client) >= 40);
        }
        let table = |handle: &PeerHandle| handle.link().now().expect("connected").pending.storage().0;
        assert!(
            table(&client) > 0,
            "emptied by bursts of several answers, the pending table keeps its storage"
        );
        tokio::time::sleep(KEEP_STORAGE * 3).await;
        assert_eq!((storage(&server), storage(&client)), (0, 0));
        assert_eq!(table(&client), 0);
        assert!(server.is_connected() && client.is_connected());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn storage_kept_for_what_is_written_between_turns_is_given_back_once_the_connection_goes_quiet() {
        let (server, client) = pair(PeerConfig::default().heartbeat_interval(None));
        // One call, answered alone: a burst that leaves nothing for a turn. Its caller, woken by it, then
        // sends a notification (written alone, no storage kept), then many at once, which the writer takes
        // in one go and keeps storage for; no answer comes back to make a turn.
        assert_eq!(client.call::<u32>("echo", (1,)).await.unwrap(), 1);
        client.try_notify("echo", (0u32,)).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(storage(&client), 0);
        for n in 0..40u32 {
            client.try_notify("echo", (n,)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(
            storage(&client) >= 40,
            "the writer keeps its storage for the next burst"
        );
        tokio::time::sleep(KEEP_STORAGE * 3).await;
        assert_eq!((storage(&server), storage(&client)), (0, 0));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_side_that_keeps_writing_but_calls_no_more_gives_its_table_back() {
        let (_server, client) = pair(PeerConfig::default().heartbeat_interval(None));
        // Calls at once, answered in bursts of several; few enough (the room kept is at most 64 calls) that
        // only the absence of calls gives the storage back, not its size.
        let calls = (0..40u32).map(|n| client.call::<u32>("echo", (n,)));
        futures::future::join_all(calls).await;
        let table = |handle: &PeerHandle| handle.link().now().expect("connected").pending.storage().0;
        assert!(table(&client) >= 40, "the storage is kept for the next calls");
        // The client keeps writing (a notification every half second) but makes no call.
        for _ in 0..4 {
            tokio::time::sleep(KEEP_STORAGE / 2).await;
            client.try_notify("echo", (0u32,)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            table(&client),
            0,
            "no call for two seconds: the table's storage is given back"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn waves_of_calls_keep_the_table_and_a_trickle_does_not() {
        let (_server, client) = pair(PeerConfig::default().heartbeat_interval(None));
        let table = |handle: &PeerHandle| handle.link().now().expect("connected").pending.storage().0;
        let wave = |count: u32| futures::future::join_all((0..count).map(|n| client.call::<u32>("echo", (n,))));
        wave(300).await;
        // Waves of the same size keep coming: the emptied table keeps its storage across the looks.
        for _ in 0..5 {
            tokio::time::sleep(KEEP_STORAGE / 2).await;
            wave(300).await;
        }
        // A quarter second after the third look at it (looks at 1, 2 and 3 s).
        tokio::time::sleep(KEEP_STORAGE * 3 / 4).await;
        assert_eq!(client.stats().pending_calls, 0);
        assert!(table(&client) >= 300, "kept, though empty, over three looks at it");
        // Now a few calls every 0.4 s: the storage of a wave is not kept for them.
        for _ in 0..6 {
            tokio::time::sleep(KEEP_STORAGE * 2 / 5).await;
            wave(8).await;
        }
        assert!(table(&client) < 64, "a trickle of calls does not keep a wave's storage");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn calls_one_at_a_time_keep_their_storage_while_they_come_quickly_and_hold_none_when_further_apart() {
        let (server, client) = pair(PeerConfig::default().heartbeat_interval(None));
        let table = |handle: &PeerHandle| handle.link().now().expect("connected").pending.storage().0;
        // One call at a time, each made as soon as the last is answered (no time passes on this clock).
        for n in 0..20u32 {
            assert_eq!(client.call::<u32>("echo", (n,)).await.unwrap(), n);
        }
        assert_eq!(client.stats().pending_calls, 0);
        assert!(table(&client) > 0, "the calling side keeps its table between calls");
        assert!(storage(&client) > 0, "the calling side keeps its queue's storage");
        assert!(storage(&server) > 0, "the answering side keeps its queue's storage");
        // Quiet: given back at a look at it, one to two seconds later.
        tokio::time::sleep(KEEP_STORAGE * 3).await;
        assert_eq!((table(&client), storage(&client), storage(&server)), (0, 0, 0));
        // Calls further apart than BUSY_GAP: nothing is held between them.
        // (From the first: the connection was found quiet, so that the reads before do not count.)
        for n in 0..5u32 {
            tokio::time::sleep(BUSY_GAP * 2).await;
            assert_eq!(client.call::<u32>("echo", (n,)).await.unwrap(), n);
            tokio::task::yield_now().await;
            assert_eq!(table(&client), 0, "the table is given back with each answer");
            assert_eq!(storage(&server), 0, "the answering side gives its queue's storage back");
            assert_eq!(
                storage(&client),
                0,
                "the calling side gives its queue's storage back, call {n}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_side_that_only_reads_gives_its_queue_storage_back() {
        let (server, client) = pair(PeerConfig::default());
        call_many(&client).await;
        // The server keeps talking; the client, which answers no notification, writes nothing.
        for _ in 0..5 {
            tokio::time::sleep(KEEP_STORAGE / 2).await;
            server.try_notify("tick", ()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(storage(&client), 0);
    }
}
