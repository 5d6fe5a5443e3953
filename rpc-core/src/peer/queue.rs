//! The writer's queue: frames waiting to be sent, bounded both in number and in bytes.
//!
//! One lock guards both bounds. The writer takes everything queued at once (one lock per burst, not per
//! frame); the bytes of a burst count against the bound until the writer reports them written. A busy
//! connection's queue keeps its blocks of slots between bursts; an idle one's holds none (see
//! [`FrameQueue::written`]).

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, ready};

use tokio::sync::Notify;

use super::signal::{FILLED, Signal};
use crate::transport::Outbound;

/// Why a frame could not be queued at once.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// No room now; here is the frame back.
    Full(T),
    /// The connection has ended.
    Closed,
}

/// The connection has ended: nothing more is queued.
#[derive(Debug)]
pub(crate) struct Closed;

pub(crate) struct FrameQueue {
    state: Mutex<State>,
    /// Wakes the senders waiting for room once the writer has made some.
    room: Notify,
    max_frames: usize,
    max_bytes: usize,
    /// The writer's storage after its last burst, in slots, for the tests.
    #[cfg(test)]
    writer_kept: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outbound>,
    /// Bytes queued, and taken by the writer but not yet written.
    bytes: usize,
    /// Whether a sender found no room since the writer last made some; until it does, others wait too.
    blocked: bool,
    closed: bool,
    /// The frames of the last burst taken (at most [`HINT_LIMIT`]): the room made at once when a frame
    /// finds the queue without storage, so that a burst grows its storage once, not step by step.
    hint: u32,
}

/// The most frames a burst's storage is made for at once.
const HINT_LIMIT: u32 = 256;

/// The most frames the writer's storage keeps room for between bursts (see [`FrameQueue::written`]); a
/// larger block is given back once its burst is written.
const KEPT_FRAMES: usize = HINT_LIMIT as usize;

impl FrameQueue {
    /// A queue of at most `max_frames` frames (at least 1) and `max_bytes` bytes; a single frame larger than
    /// `max_bytes` is taken when nothing else is queued.
    pub(crate) fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            room: Notify::new(),
            max_frames: max_frames.max(1),
            max_bytes,
            #[cfg(test)]
            writer_kept: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a frame of `bytes` fits in `state` now.
    fn fits(&self, state: &State, bytes: usize) -> bool {
        state.frames.len() < self.max_frames
            && (state.bytes == 0 || state.bytes.saturating_add(bytes) <= self.max_bytes)
    }

    /// Queues `frame` if there is room now, raising [`FILLED`] on `wake` (the writer's task's signal) when
    /// the queue was empty. A sender that will wait for room when refused says so (`will_wait`): from then
    /// on, others wait behind it.
    pub(crate) fn try_push(&self, frame: Outbound, will_wait: bool, wake: &Signal) -> Result<(), Refused<Outbound>> {
        self.push_now(frame, will_wait, true, wake)
    }

    /// [`try_push`](Self::try_push) from the writer's own task (the connection's driver, which polls the
    /// writer again before it waits): the writer is not woken, since waking the running task would only
    /// make it run once more for nothing.
    pub(crate) fn try_push_here(
        &self,
        frame: Outbound,
        will_wait: bool,
        wake: &Signal,
    ) -> Result<(), Refused<Outbound>> {
        self.push_now(frame, will_wait, false, wake)
    }

    fn push_now(&self, frame: Outbound, will_wait: bool, notify: bool, wake: &Signal) -> Result<(), Refused<Outbound>> {
        let bytes = Self::cost(&frame);
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        // While others wait for room, a newcomer does not slip past them: small frames cannot keep a large
        // one waiting for ever.
        if state.blocked || !self.fits(&state, bytes) {
            state.blocked |= will_wait;
            return Err(Refused::Full(frame));
        }
        let was_empty = state.frames.is_empty();
        if state.frames.capacity() == 0 {
            let hint = state.hint as usize;
            state.frames.reserve(hint);
        }
        state.frames.push_back(frame);
        state.bytes += bytes;
        drop(state);
        // The writer empties the queue whenever it takes from it: a queue that was not empty already has a
        // wake-up on its way.
        if was_empty && notify {
            wake.raise(FILLED);
        } else if was_empty {
            wake.set(FILLED);
        }
        Ok(())
    }

    /// Queues `frame`, waiting for room; `Err` once the connection has ended.
    pub(crate) async fn push(&self, mut frame: Outbound, wake: &Signal) -> Result<(), Closed> {
        loop {
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            match self.try_push(frame, true, wake) {
                Ok(()) => return Ok(()),
                Err(Refused::Full(back)) => frame = back,
                Err(Refused::Closed) => return Err(Closed),
            }
            room.await;
        }
    }

    /// Waits until a frame of `bytes` may fit (it may be taken by another sender first: try again).
    pub(crate) async fn room_for(&self, bytes: usize) {
        let mut room = pin!(self.room.notified());
        room.as_mut().enable();
        {
            let state = self.lock();
            if state.closed || (!state.blocked && self.fits(&state, bytes)) {
                return;
            }
        }
        room.await;
    }

    /// Moves everything queued into `batch` (empty) when there is something, else pending, the writer to be
    /// woken (through `wake`, [`FILLED`], on which it registered in this poll) when there is; ready with
    /// `false` once the queue is closed and empty. One writer only.
    pub(crate) fn poll_take(&self, batch: &mut VecDeque<Outbound>, wake: &Signal) -> Poll<bool> {
        loop {
            // A frame queued into an empty queue raises `FILLED`, and so does closing it: not raised since
            // the last take, the queue is empty and open, and the lock is not taken.
            ready!(wake.poll_take(FILLED));
            let mut state = self.lock();
            if !state.frames.is_empty() {
                // The frames' places and bytes are freed once written (see `written`).
                std::mem::swap(&mut state.frames, batch);
                state.hint = u32::try_from(batch.len()).unwrap_or(u32::MAX).min(HINT_LIMIT);
                return Poll::Ready(true);
            }
            if state.closed {
                return Poll::Ready(false);
            }
        }
    }

    /// Whether a frame may have been queued (or the queue closed) since the writer last waited: a
    /// [`poll_take`](Self::poll_take) would look. One load, nothing taken or registered.
    pub(crate) fn may_have_frames(&self, wake: &Signal) -> bool {
        wake.is_raised(FILLED)
    }

    /// [`poll_take`](Self::poll_take) as a future.
    #[cfg(test)]
    pub(crate) async fn take(&self, batch: &mut VecDeque<Outbound>, wake: &Signal) -> bool {
        std::future::poll_fn(|cx| {
            wake.register(cx);
            self.poll_take(batch, wake)
        })
        .await
    }

    /// Takes what is queued now, without waiting.
    pub(crate) fn take_now(&self) -> VecDeque<Outbound> {
        std::mem::take(&mut self.lock().frames)
    }

    /// The writer wrote `bytes` of what it took (and is done with `batch`, now empty).
    ///
    /// The queue and the writer swap storage on every take. While bursts come several frames at a time,
    /// both blocks are kept (at most [`KEPT_FRAMES`] slots of 40 bytes each): made anew for every burst,
    /// they cost about 2.5 % of the CPU time of a pipelined call (the benchmark's pipelined scenario), the
    /// allocator merging its free lists on each block of a kilobyte or more. A burst of one frame (an idle
    /// connection's last answer, a heartbeat's ping) gives both blocks back when nothing more is queued,
    /// unless `busy` (the connection is in steady use: its bursts of reads come less than a millisecond
    /// apart, as with calls made one at a time on a fast link). After a burst of several frames, or of one
    /// when busy, the connection's task gives them back once it has written nothing for a while (see
    /// [`give_back_storage`](Self::give_back_storage)).
    pub(crate) fn written(&self, bytes: usize, batch: &mut VecDeque<Outbound>, busy: bool) {
        let mut state = self.lock();
        if state.hint <= 1 && !busy {
            *batch = VecDeque::new();
            if state.frames.is_empty() {
                state.frames = VecDeque::new();
            }
        } else if batch.capacity() > KEPT_FRAMES {
            *batch = VecDeque::new();
        }
        #[cfg(test)]
        self.writer_kept
            .store(batch.capacity(), std::sync::atomic::Ordering::Relaxed);
        state.bytes = state.bytes.saturating_sub(bytes);
        let blocked = std::mem::take(&mut state.blocked);
        drop(state);
        if blocked {
            self.room.notify_waiters();
        }
    }

    /// Gives back the storage kept between bursts, the writer's `batch` and the queue's, each unless
    /// frames are in it.
    pub(crate) fn give_back_storage(&self, batch: &mut VecDeque<Outbound>) {
        if batch.is_empty() {
            *batch = VecDeque::new();
        }
        let mut state = self.lock();
        if state.frames.is_empty() {
            state.frames = VecDeque::new();
        }
        #[cfg(test)]
        self.writer_kept
            .store(batch.capacity(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The storage kept for frames, in slots: the queue's, and the writer's as it last reported it.
    #[cfg(test)]
    pub(crate) fn storage(&self) -> (usize, usize) {
        let writer = self.writer_kept.load(std::sync::atomic::Ordering::Relaxed);
        (self.lock().frames.capacity(), writer)
    }

    /// Refuses every further frame, drops those queued (the connection has ended: nobody will send them,
    /// and handles may keep the queue alive) and wakes everyone waiting (the writer through `wake`).
    pub(crate) fn close(&self, wake: &Signal) {
        let dropped = {
            let mut state = self.lock();
            state.closed = true;
            state.bytes = 0;
            state.blocked = false;
            std::mem::take(&mut state.frames)
        };
        drop(dropped);
        self.room.notify_waiters();
        wake.raise(FILLED);
    }

    /// Frames queued and bytes queued or being written.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.frames.len(), state.bytes)
    }

    /// The bytes a frame counts for.
    pub(crate) fn cost(frame: &Outbound) -> usize {
        match frame {
            Outbound::Frame(text) => text.len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Outbound {
        Outbound::Frame(text.to_owned())
    }

    #[test]
    fn both_bounds_hold() {
        let queue = FrameQueue::new(2, 10);
        let wake = Signal::default();
        assert!(queue.try_push(frame("12345"), true, &wake).is_ok());
        assert!(queue.try_push(frame("12345"), true, &wake).is_ok());
        assert!(matches!(queue.try_push(frame(""), true, &wake), Err(Refused::Full(_))));
        assert_eq!(queue.usage(), (2, 10));
        let queue = FrameQueue::new(8, 10);
        let wake = Signal::default();
        assert!(queue.try_push(frame("12345"), true, &wake).is_ok());
        assert!(matches!(
            queue.try_push(frame("123456"), true, &wake),
            Err(Refused::Full(_))
        ));
    }

    #[tokio::test]
    async fn a_frame_that_fits_does_not_pass_one_that_waits() {
        let queue = FrameQueue::new(8, 10);
        let wake = Signal::default();
        queue.try_push(frame("12345"), true, &wake).unwrap();
        assert!(matches!(
            queue.try_push(frame("123456"), true, &wake),
            Err(Refused::Full(_))
        ));
        // Room for one byte, but a larger frame was refused first.
        assert!(matches!(queue.try_push(frame("1"), true, &wake), Err(Refused::Full(_))));
        let mut batch = VecDeque::new();
        assert!(queue.take(&mut batch, &wake).await);
        batch.clear();
        queue.written(5, &mut batch, false);
        assert!(queue.try_push(frame("123456"), true, &wake).is_ok());
    }

    #[test]
    fn a_sender_that_does_not_wait_holds_nobody_back() {
        let queue = FrameQueue::new(8, 10);
        let wake = Signal::default();
        queue.try_push(frame("12345"), true, &wake).unwrap();
        assert!(matches!(
            queue.try_push(frame("123456"), false, &wake),
            Err(Refused::Full(_))
        ));
        assert!(queue.try_push(frame("1"), true, &wake).is_ok());
    }

    #[test]
    fn a_frame_larger_than_the_byte_bound_goes_alone() {
        let queue = FrameQueue::new(8, 4);
        let wake = Signal::default();
        assert!(queue.try_push(frame("much too long"), true, &wake).is_ok());
        assert!(matches!(queue.try_push(frame("a"), true, &wake), Err(Refused::Full(_))));
    }

    #[tokio::test]
    async fn bytes_come_back_when_written_and_wake_a_waiting_sender() {
        let queue = FrameQueue::new(8, 10);
        let wake = Signal::default();
        queue.try_push(frame("1234567890"), true, &wake).unwrap();
        let mut batch = VecDeque::new();
        let waiting = queue.push(frame("abc"), &wake);
        let writer = async {
            assert!(queue.take(&mut batch, &wake).await);
            // Taken but not written: the bytes still count.
            assert_eq!(queue.usage(), (0, 10));
            let written: usize = batch.drain(..).map(|f| FrameQueue::cost(&f)).sum();
            queue.written(written, &mut batch, false);
        };
        let (sent, ()) = tokio::join!(waiting, writer);
        assert!(sent.is_ok());
        assert_eq!(queue.usage(), (1, 3));
    }

    /// Writes what `queue` holds as one burst, as the writer does, and returns the storage left: the
    /// writer's and the queue's, in frames.
    async fn write_burst(queue: &FrameQueue, batch: &mut VecDeque<Outbound>, wake: &Signal) -> (usize, usize) {
        assert!(queue.take(batch, wake).await);
        let written: usize = batch.drain(..).map(|f| FrameQueue::cost(&f)).sum();
        queue.written(written, batch, false);
        (batch.capacity(), queue.lock().frames.capacity())
    }

    #[tokio::test]
    async fn storage_is_kept_between_bursts_and_given_back_after_a_burst_of_one() {
        let queue = FrameQueue::new(1_024, 1 << 20);
        let wake = Signal::default();
        let mut batch = VecDeque::new();
        // Bursts of several frames: both blocks are kept (the queue's, with the next burst's frames in it).
        for _ in 0..3 {
            for _ in 0..10 {
                queue.try_push(frame("a"), true, &wake).unwrap();
            }
            let (writer, _) = write_burst(&queue, &mut batch, &wake).await;
            assert!(writer >= 10, "the writer kept room for {writer} frames");
        }
        queue.try_push(frame("a"), true, &wake).unwrap();
        assert!(queue.lock().frames.capacity() >= 10, "the queue's block was made anew");
        // A burst of one, nothing queued after it: nothing is kept.
        assert_eq!(write_burst(&queue, &mut batch, &wake).await, (0, 0));
        // A burst larger than what is kept gives the writer's block back.
        for _ in 0..KEPT_FRAMES + 1 {
            queue.try_push(frame("a"), true, &wake).unwrap();
        }
        assert_eq!(write_burst(&queue, &mut batch, &wake).await.0, 0);
        // The size `written`'s documentation gives for a slot.
        assert_eq!(std::mem::size_of::<Outbound>(), 40);
    }

    #[tokio::test]
    async fn closing_wakes_the_writer_and_refuses_frames() {
        let queue = FrameQueue::new(8, 10);
        let wake = Signal::default();
        let mut batch = VecDeque::new();
        let (taken, ()) = tokio::join!(queue.take(&mut batch, &wake), async { queue.close(&wake) });
        assert!(!taken);
        assert!(matches!(queue.try_push(frame("a"), true, &wake), Err(Refused::Closed)));
        assert!(queue.push(frame("a"), &wake).await.is_err());
    }
}
