//! The calls of this side awaiting an answer, by id, with their deadlines, and the answers that came until
//! their callers take them.
//!
//! The table also enforces [`PeerConfig::max_pending_calls`](crate::PeerConfig) and keeps the earliest
//! deadline, so that one timer of the connection's driver times every call out (instead of a timer per
//! call).
//!
//! A call's answer is left in its entry, where its caller takes it ([`Pending::poll_answer`]): no channel
//! is made per call. (A oneshot channel per call, allocated and freed for every call, cost the benchmark's
//! clients 8 % of their instructions per call: 7,322 → 6,721 pipelined, 8,067 → 7,527 fan-in, measured
//! with callgrind.) An answered entry no longer counts as pending: its place is free for another call as
//! soon as the answer arrives, whenever its caller takes it.

use std::collections::hash_map;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::sent_batches::{BatchNumber, SentBatches};
use super::signal::{DEADLINE_MOVED, GREW, Signal};
use crate::error_object::ErrorObject;

/// The storage of [`Table::unstamped`] kept between looks, in entries (more is given back).
const KEPT_UNSTAMPED: usize = 64;

/// The room for calls a table may keep at a look at its storage ([`Pending::review_storage`]), as a multiple
/// of the most calls it held since the look before; and the room it may keep whatever that was.
const KEPT_PER_CALL: usize = 4;
const KEPT_CALLS: usize = 64;

/// What the other side answered (or the driver decided, for a call out of time).
#[derive(Debug)]
pub(crate) enum Answer {
    /// The `result` member's JSON text (a slice of the received frame).
    Result(Bytes),
    /// The `error` member (boxed: a pending call's entry is 80 bytes, not 88).
    Error(Box<ErrorObject>),
    /// A malformed response naming this call.
    Invalid(&'static str),
    /// No answer before the call's deadline (its timeout).
    TimedOut(Duration),
}

/// Whom an answer read for a call of this side goes to (see [`Pending::complete_all`]).
#[derive(Debug)]
pub(crate) enum Addressee {
    /// The call the answer named, by id, as read.
    Id(u64),
    /// The call's caller, whose answer is in the table now, to be woken.
    Caller(Option<Waker>),
    /// No pending call has that id.
    Nobody,
}

/// What [`Pending::complete_all`] did with a burst of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Answers that named no pending call (answered already, withdrawn, timed out, or never made).
    pub(crate) unknown: usize,
    /// Calls still pending.
    pub(crate) still_pending: usize,
    /// Whether the table keeps storage to be looked at with [`Pending::review_storage`]: left with no
    /// call pending and storage it keeps once its answers are taken, or in use with room for more than
    /// [`KEPT_CALLS`] calls.
    pub(crate) kept_storage: bool,
}

/// When a call times out: the instant, and the timeout it came from (for the error).
pub(crate) type Deadline = (Instant, Duration);

/// When a call registered with [`Pending::try_insert`] times out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    /// Never.
    Never,
    /// At this deadline (the connection's own calls use [`Due::After`]; the tests set deadlines).
    #[cfg(test)]
    At(Deadline),
    /// This long after the connection's task next looks at the table (see [`Pending::load`] and
    /// [`Pending::poll_deadline_moved`]; the first such call since a look wakes it): its deadline is set
    /// then, with one reading of the clock for all the calls added since the last look, instead of one
    /// reading per call (the clock is slow on some machines: 40 ns a reading on the one the benchmark ran
    /// on, 3 % of a pipelined client's time). A call into a table with no call pending is timed from
    /// when it is made instead: one reading of the clock spares the connection's task a turn per call
    /// on a connection making one call at a time.
    After(Duration),
}

/// Why a call could not be registered.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The table holds `max_pending_calls` calls.
    Full,
    /// The connection has ended.
    Closed,
}

struct Entry {
    /// While the call is pending: its caller's waker (none before its first poll); then its answer.
    slot: Slot,
    deadline: Option<Deadline>,
    /// Whether the request was queued for the other side (a call timed out before is not cancelled there).
    sent: bool,
}

impl Entry {
    fn new(waker: Option<&Waker>, deadline: Option<Deadline>, sent: bool) -> Self {
        Self {
            slot: Slot::Waiting(waker.cloned()),
            deadline,
            sent,
        }
    }

    fn is_pending(&self) -> bool {
        matches!(self.slot, Slot::Waiting(_))
    }
}

/// Where a call is: awaiting its answer (with the waker of the task awaiting it, once polled), or answered.
enum Slot {
    Waiting(Option<Waker>),
    Answered(Answer),
}

#[derive(Default)]
struct Table {
    /// The calls pending and those answered whose callers have not taken the answer yet.
    calls: FxHashMap<u64, Entry>,
    /// How many entries of `calls` hold an answer not taken yet (they count as no longer pending).
    answered: usize,
    /// Whether the storage is kept when the last answer is taken: the last burst of answers was of
    /// several, or came while the connection was in steady use (see [`Pending::complete_all`]).
    keep: bool,
    /// Whether the driver looks at the storage once a second ([`Pending::review_storage`]); an emptied
    /// table keeps its storage only then.
    reviewed: bool,
    closed: bool,
    /// The earliest deadline of the calls in the table (it may belong to a call answered since; the sweep
    /// then finds nothing and moves on).
    earliest: Option<Instant>,
    /// Whether a call found the table full since a place last freed up.
    blocked: bool,
    /// Whether the driver wants to know when calls are added (received requests wait for extra places
    /// while calls await answers).
    watched: bool,
    /// Calls added with [`Due::After`] whose deadline is not set yet, with their timeouts. The first one
    /// wakes the driver, whose next look sets them all and empties this: it holds at most the calls added
    /// in one turn of the driver (entries of calls gone meanwhile are skipped then).
    unstamped: Vec<(u64, Duration)>,
    /// The batches sent that the other side may still reject as a whole (see
    /// [`Pending::reject_batch`]). Made for the first batch (most connections send none); dropped when the
    /// connection ends.
    sent_batches: Option<Box<SentBatches>>,
    /// Calls added since the table was made (wrapping): the driver gives kept storage back once this has
    /// not moved for a while (see [`Pending::added`]).
    added: u64,
    /// The most calls held at once since the last look at the storage ([`Pending::review_storage`]).
    peak: usize,
}

impl Table {
    /// Call `id` left the table without an answer (withdrawn, timed out): its batch, if any, is told.
    fn gone(&mut self, id: u64) {
        if let Some(sent) = self.sent_batches.as_deref_mut() {
            sent.gone(id);
        }
    }

    /// The calls awaiting an answer.
    fn pending(&self) -> usize {
        self.calls.len() - self.answered
    }

    /// Leaves `answer` in the pending call `entry`, and returns its caller's waker, if any.
    fn answer(answered: &mut usize, entry: &mut Entry, answer: Answer) -> Option<Waker> {
        entry.deadline = None;
        *answered += 1;
        match std::mem::replace(&mut entry.slot, Slot::Answered(answer)) {
            Slot::Waiting(waker) => waker,
            Slot::Answered(_) => None,
        }
    }
}

/// The pending table. An entry stays from its call's registration until its caller takes the answer (the
/// other side's, a timeout's, a batch's rejection) or gives up (a dropped call); when the connection ends,
/// the entries still pending leave, and their callers, woken, find the connection gone.
pub(crate) struct Pending {
    table: Mutex<Table>,
    max: usize,
    /// Wakes every call waiting for a place when places free up.
    room: Notify,
    /// Whether the driver times the connection's idleness (`idle_timeout`), which a call ends: then the
    /// first call into an empty table wakes it.
    idle_timed: bool,
}

impl Pending {
    /// A table for `max` pending calls (`max_pending_calls`; at least 1); `idle_timed`: whether the
    /// connection has an `idle_timeout`.
    pub(crate) fn new(max: usize, idle_timed: bool) -> Self {
        Self {
            table: Mutex::default(),
            max: max.max(1),
            room: Notify::new(),
            idle_timed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break half-way.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most calls the table holds: `max_pending_calls`, or twice that for calls of the connection's
    /// own handlers (the reserve).
    pub(crate) fn limit(&self, reserve: bool) -> usize {
        if reserve { self.max.saturating_mul(2) } else { self.max }
    }

    /// Registers call `id` if there is room now, to wake `waker` (if given) when its answer comes; `sent`
    /// tells whether its request is queued already (see [`set_sent`](Self::set_sent)); `reserve`, whether
    /// the call may use the reserve. The driver is woken through `wake` (the connection's signal, see
    /// [`try_admit`](Self::try_admit)).
    pub(crate) fn try_insert(
        &self,
        id: u64,
        waker: Option<&Waker>,
        due: Due,
        sent: bool,
        reserve: bool,
        wake: &Signal,
    ) -> Result<(), Refusal> {
        self.try_admit(1, self.limit(reserve), wake, |table| {
            let deadline = match due {
                #[cfg(test)]
                Due::At(deadline) => Some(deadline),
                Due::Never => None,
                // The only call: its deadline is set now (one reading of the clock), so that a connection
                // making one call at a time does not wake its driver for every call.
                Due::After(limit) if table.pending() == 0 && table.unstamped.is_empty() => {
                    Some((Instant::now() + limit, limit))
                }
                Due::After(limit) => {
                    table.unstamped.push((id, limit));
                    None
                }
            };
            table.calls.insert(id, Entry::new(waker, deadline, sent));
            deadline.map(|(at, _)| at)
        })
    }

    /// Registers the calls `calls` (their requests not sent yet), all at once: waits until the table has
    /// room for every one of them. (Taking places one by one, two batches could each hold some and wait
    /// for ever for the rest.) With `reserve` (a batch of one of the connection's own handlers) the table's
    /// reserve may be used and nothing waits: `Err(Refusal::Full)` when there is no room now.
    /// `Err(Refusal::Closed)` once the connection has ended.
    /// With `batch` (its number of entries), the calls are remembered as one batch (see
    /// [`reject_batch`](Self::reject_batch)), and its number returned, to be forgotten with
    /// [`forget_batch`](Self::forget_batch) if its frame is not sent after all.
    pub(crate) async fn insert_all(
        &self,
        calls: &[u64],
        deadline: Option<Deadline>,
        reserve: bool,
        batch: Option<usize>,
        wake: &Signal,
    ) -> Result<Option<BatchNumber>, Refusal> {
        let limit = self.limit(reserve);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let mut number = None;
            let admitted = self.try_admit(calls.len(), limit, wake, |table| {
                if let Some(entries) = batch {
                    let sent = table.sent_batches.get_or_insert_default();
                    number = Some(sent.remember(entries, calls.to_vec(), self.limit(true)));
                }
                for &id in calls {
                    table.calls.insert(id, Entry::new(None, deadline, false));
                }
                deadline.map(|(at, _)| at)
            });
            match admitted {
                Err(Refusal::Full) if !reserve => room.await,
                done => return done.map(|()| number),
            }
        }
    }

    /// Forgets batch `number`, remembered by [`insert_all`](Self::insert_all): its frame was not sent.
    pub(crate) fn forget_batch(&self, number: BatchNumber) {
        if let Some(sent) = self.lock().sent_batches.as_deref_mut() {
            sent.forget(number);
        }
    }

    /// Adds `count` calls through `add` (which returns the deadline it gave them, if any) if the table has
    /// room for them all, keeping the earliest deadline and waking the driver when it watches the table's
    /// growth ([`GREW`] on `wake`), has a later timer, has deadlines to set, or times idleness and the table
    /// was empty ([`DEADLINE_MOVED`]).
    fn try_admit(
        &self,
        count: usize,
        limit: usize,
        wake: &Signal,
        add: impl FnOnce(&mut Table) -> Option<Instant>,
    ) -> Result<(), Refusal> {
        let mut table = self.lock();
        if table.closed {
            return Err(Refusal::Closed);
        }
        if table.pending() + count > limit {
            table.blocked = true;
            return Err(Refusal::Full);
        }
        let watched = table.watched;
        // The driver looks again when the table stops being empty, if it times idleness (the connection is
        // no longer idle), and when the table holds calls whose deadlines are to be set: once per look, not
        // once per call.
        let (was_empty, had_unstamped) = (table.pending() == 0, !table.unstamped.is_empty());
        let deadline = add(&mut table);
        let earlier = deadline.is_some_and(|at| table.earliest.is_none_or(|earliest| at < earliest));
        if earlier {
            table.earliest = deadline;
        }
        table.added = table.added.wrapping_add(count as u64);
        table.peak = table.peak.max(table.calls.len());
        let to_stamp = !had_unstamped && !table.unstamped.is_empty();
        drop(table);
        if watched {
            wake.raise(GREW);
        }
        if earlier || (was_empty && self.idle_timed) || to_stamp {
            wake.raise(DEADLINE_MOVED);
        }
        Ok(())
    }

    /// Records that the requests of `ids` are queued, and returns those timed out or failed meanwhile, or
    /// gone (their requests went out all the same, and are to be withdrawn); those answered with a result
    /// meanwhile are left as they are.
    pub(crate) fn set_sent(&self, ids: &[u64]) -> Vec<u64> {
        let mut table = self.lock();
        let mut gone = Vec::new();
        for &id in ids {
            match table.calls.get_mut(&id) {
                Some(entry) => match entry.slot {
                    Slot::Waiting(_) => entry.sent = true,
                    // Answered in the meantime by the other side: nothing to withdraw.
                    Slot::Answered(Answer::Result(_) | Answer::Invalid(_)) => {}
                    // Timed out, or failed by an error that may be a batch's rejection matched to this batch
                    // before its frame went out (see `SentBatches`): the other side may run it, so it is
                    // withdrawn (at worst a `$/cancelRequest` for a call it already answered, which it
                    // ignores).
                    Slot::Answered(Answer::TimedOut(_) | Answer::Error(_)) => gone.push(id),
                },
                None => gone.push(id),
            }
        }
        gone
    }

    /// Records that the request of call `id` could not be queued at once after all.
    pub(crate) fn set_unsent(&self, id: u64) {
        if let Some(entry) = self.lock().calls.get_mut(&id) {
            entry.sent = false;
        }
    }

    /// Wakes the calls waiting for a place, if any, after places freed up in `table` (then unlocked). A
    /// table left empty gives its storage back (an idle connection holds none), unless it keeps it while
    /// the driver looks at it (see [`complete_all`](Self::complete_all)).
    fn freed(&self, table: MutexGuard<'_, Table>) {
        let mut table = table;
        Self::give_back_unless_kept(&mut table);
        let blocked = std::mem::take(&mut table.blocked);
        drop(table);
        if blocked {
            self.room.notify_waiters();
        }
    }

    /// Gives the storage of `table` back if it holds no call, unless it keeps it after a burst of several
    /// answers (or of one, `busy`) while the driver looks at it once a second.
    fn give_back_unless_kept(table: &mut Table) {
        if !(table.keep && table.reviewed) {
            Self::give_back(table);
        }
    }

    /// Whether `table` keeps storage to be looked at with [`review_storage`](Self::review_storage): with no
    /// call pending and storage it keeps once emptied, or in use with room for more than [`KEPT_CALLS`]
    /// calls.
    fn keeps_storage(table: &Table) -> bool {
        let capacity = table.calls.capacity();
        // With no call pending, the storage is given back when the last answer is taken unless kept.
        capacity > 0
            && if table.pending() == 0 {
                table.keep
            } else {
                capacity > KEPT_CALLS
            }
    }

    /// Gives the storage of `table` back if it holds no call, pending or answered.
    fn give_back(table: &mut Table) {
        if table.calls.is_empty() {
            table.calls = FxHashMap::default();
            // What is left names calls gone: nothing to set.
            table.unstamped = Vec::new();
        }
    }

    /// Looks at the storage the table kept (see [`complete_all`](Self::complete_all)); `added` is what
    /// [`added`](Self::added) gave when the look was planned. An emptied table gives its storage back when no
    /// call has been added since, or when it holds room for more than [`KEPT_PER_CALL`] times the most
    /// calls it held since the last look (and more than [`KEPT_CALLS`]): a connection that made a wave of
    /// many calls and now makes one from time to time does not keep the wave's storage. A table in use with
    /// that much room is shrunk to its recent peak (a long call made just after a wave, or the last calls
    /// of a wave, do not hold it either: the look after the one that still saw the wave's peak shrinks
    /// it; answers not taken yet count as calls held). Returns whether the table still keeps storage to be
    /// looked at again (see [`keeps_storage`](Self::keeps_storage)); until the next look that says so, an
    /// emptied table keeps its storage, and after, gives it back when emptied.
    pub(crate) fn review_storage(&self, added: u64) -> bool {
        let mut table = self.lock();
        let len = table.calls.len();
        let peak = std::mem::replace(&mut table.peak, len).max(len);
        let oversized = table.calls.capacity() > peak.saturating_mul(KEPT_PER_CALL).max(KEPT_CALLS);
        if len > 0 {
            if oversized {
                table.calls.shrink_to(peak);
            }
        } else if table.added == added || oversized || !table.keep {
            Self::give_back(&mut table);
        }
        table.reviewed = Self::keeps_storage(&table);
        table.reviewed
    }

    /// How many calls have been added so far (wrapping): the driver compares two readings to tell whether
    /// this side still makes calls.
    pub(crate) fn added(&self) -> u64 {
        self.lock().added
    }

    /// Delivers the answer to call `id`; `false` when no such call is pending (answered already, withdrawn,
    /// timed out, or never made).
    #[cfg(test)]
    pub(crate) fn complete(&self, id: u64, answer: Answer) -> bool {
        let mut answers = vec![(Addressee::Id(id), answer)];
        let delivered = self.complete_all(&mut answers, false);
        delivered.unknown == 0
    }

    /// Ready with the answer to call `id` once it came (the entry then leaves the table), or with `None`
    /// when the call is no longer in the table: the connection ended before the answer came. Until then,
    /// `cx`'s waker is woken when it comes.
    ///
    /// Polling here spends none of tokio's cooperative budget: a task awaiting many calls at once
    /// (`FuturesUnordered`, `join_all`) would otherwise spend its budget (128 ready resources per poll) on
    /// the answers of one burst, and the calls after that would return pending and wake their task at once,
    /// which tokio treats as a yield: the task goes to the back of the queue and another worker thread is
    /// woken to steal it, so the caller moves between cores on every burst (measured by the benchmark's
    /// pipelined scenario, with tokio's channels: 0.66 M calls/s with the budget, 0.96 M without). This
    /// cannot keep a task busy for ever: each answer comes from the connection's task, once per call sent.
    pub(crate) fn poll_answer(&self, id: u64, cx: &mut Context<'_>) -> Poll<Option<Answer>> {
        let mut table = self.lock();
        let table = &mut *table;
        let hash_map::Entry::Occupied(mut entry) = table.calls.entry(id) else {
            return Poll::Ready(None);
        };
        if let Slot::Waiting(waker) = &mut entry.get_mut().slot {
            match waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let taken = entry.remove();
        table.answered -= 1;
        Self::give_back_unless_kept(table);
        match taken.slot {
            Slot::Answered(answer) => Poll::Ready(Some(answer)),
            Slot::Waiting(_) => Poll::Ready(None),
        }
    }

    /// Delivers the answers of one burst of reads under one lock, emptying `answers` (each named by its call's
    /// id): each is left in its call's entry, and its caller woken once the lock is released.
    ///
    /// A table emptied by a burst of one answer (the last call of a connection that makes one at a time)
    /// gives its storage back when the answer is taken, unless `busy` (the connection's bursts of reads
    /// come less than a millisecond apart: its next call is likely to follow at once); one emptied by a
    /// burst of several keeps it, whatever its size, since more calls are likely to follow at once. Made
    /// anew for each burst, it cost about 2 % of the CPU time per call, both ends, in the benchmark's
    /// fan-in scenario (1,000 connections with 8 calls each in flight, their tables emptied by many
    /// bursts); grown anew through every size for each wave of 256 calls, about 100 instructions a call in
    /// the pipelined client, with glibc consolidating its free lists for the larger blocks. The connection's task looks at it once a second
    /// ([`review_storage`](Self::review_storage)) and gives it back once no call has been added for that
    /// long, however much it keeps writing, or once the calls made since need much less of it. At most
    /// twice `max_pending_calls` calls' room (the map's own room can be up to about twice its entries) is
    /// kept that way, and only while waves of calls (or calls in quick succession) come.
    pub(crate) fn complete_all(&self, answers: &mut Vec<(Addressee, Answer)>, busy: bool) -> Delivered {
        let mut unknown = 0;
        let still_pending;
        let mut kept_storage = false;
        {
            let mut table = self.lock();
            let mut found = false;
            let Table {
                calls,
                answered,
                sent_batches,
                ..
            } = &mut *table;
            // Each answer is left in its call's entry under the lock; the callers are woken once it is
            // released.
            for (to, answer) in answers.iter_mut() {
                if let Addressee::Id(id) = *to {
                    if let Some(sent) = sent_batches.as_deref_mut() {
                        sent.answered(id);
                    }
                    *to = match calls.get_mut(&id) {
                        Some(entry) if entry.is_pending() => {
                            found = true;
                            let answer = std::mem::replace(answer, Answer::Invalid("delivered"));
                            Addressee::Caller(Table::answer(answered, entry, answer))
                        }
                        _ => {
                            unknown += 1;
                            Addressee::Nobody
                        }
                    };
                }
            }
            still_pending = table.pending();
            if found {
                table.keep = answers.len() > 1 || busy;
                kept_storage = Self::keeps_storage(&table);
                table.reviewed |= kept_storage;
                self.freed(table);
            }
        }
        for (to, _) in answers.drain(..) {
            if let Addressee::Caller(Some(caller)) = to {
                caller.wake();
            }
        }
        Delivered {
            unknown,
            still_pending,
            kept_storage,
        }
    }

    /// Withdraws call `id`: its entry leaves the table. `true` when it was still pending (not answered).
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut table = self.lock();
        let Some(entry) = table.calls.remove(&id) else {
            return false;
        };
        if !entry.is_pending() {
            table.answered -= 1;
            Self::give_back_unless_kept(&mut table);
            return false;
        }
        table.gone(id);
        self.freed(table);
        true
    }

    /// The calls awaiting an answer (answers not taken yet are not counted).
    pub(crate) fn len(&self) -> usize {
        self.lock().pending()
    }

    /// The calls' and the unset deadlines' storage, in entries.
    #[cfg(test)]
    pub(crate) fn storage(&self) -> (usize, usize) {
        let table = self.lock();
        (table.calls.capacity(), table.unstamped.capacity())
    }

    /// Whether [`poll_grew`](Self::poll_grew) is to be woken when calls are added.
    pub(crate) fn watch_growth(&self, watch: bool) {
        self.lock().watched = watch;
    }

    /// Ready when calls may have been added while watched (one waiter only, registered on `wake` in this
    /// poll).
    pub(crate) fn poll_grew(&self, wake: &Signal) -> Poll<()> {
        wake.poll_take(GREW)
    }

    /// The earliest deadline of a pending call, if any.
    #[cfg(test)]
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.lock().earliest
    }

    /// The number of pending calls and the earliest deadline among them, in one look. The calls added with
    /// [`Due::After`] since the last look get their deadlines now, from one reading of `clock` (read only
    /// if there are such calls).
    ///
    /// The look is what the driver's wake-ups ([`GREW`], [`DEADLINE_MOVED`]) ask for: it takes them, so that
    /// a call added before it does not make the driver turn once more for nothing. (A flag raised before it
    /// is taken here belongs to a call added under the lock before this look's, which the look sees; calls
    /// added later raise the flags again.)
    pub(crate) fn load(&self, clock: impl FnOnce() -> Instant, wake: &Signal) -> (usize, Option<Instant>) {
        wake.take(GREW | DEADLINE_MOVED);
        let mut table = self.lock();
        Self::stamp(&mut table, clock);
        (table.pending(), table.earliest)
    }

    /// Ready with the number of pending calls and the earliest deadline when a call brought an earlier
    /// deadline, deadlines to set (those are set then, as by [`load`](Self::load)) or the first call into an
    /// empty table; otherwise pending (one waiter only, registered on `wake` in this poll). The driver looks
    /// here on every poll of the connection, so that a call made while it waits costs it a new turn only
    /// when its timer has to move (or its idleness ends).
    pub(crate) fn poll_deadline_moved(
        &self,
        clock: impl FnOnce() -> Instant,
        wake: &Signal,
    ) -> Poll<(usize, Option<Instant>)> {
        ready!(wake.poll_take(DEADLINE_MOVED));
        let mut table = self.lock();
        Self::stamp(&mut table, clock);
        Poll::Ready((table.pending(), table.earliest))
    }

    /// Sets the deadlines of the calls added with [`Due::After`] since the last look, from one reading of
    /// `clock` (read only if there are such calls).
    fn stamp(table: &mut Table, clock: impl FnOnce() -> Instant) {
        if table.unstamped.is_empty() {
            return;
        }
        let now = clock();
        let Table {
            calls,
            unstamped,
            earliest,
            ..
        } = table;
        for (id, limit) in unstamped.drain(..) {
            if let Some(entry) = calls.get_mut(&id)
                && entry.is_pending()
            {
                let at = now + limit;
                entry.deadline = Some((at, limit));
                *earliest = Some(earliest.map_or(at, |earliest| earliest.min(at)));
            }
        }
        if unstamped.capacity() > KEPT_UNSTAMPED {
            *unstamped = Vec::new();
        }
    }

    /// Times out every call whose deadline has passed (each fails with [`Answer::TimedOut`]) and returns
    /// the ids of those whose requests were sent (the other side is to be told).
    pub(crate) fn expire(&self, now: Instant) -> Vec<u64> {
        let mut sent = Vec::new();
        let mut callers = Vec::new();
        let mut table = self.lock();
        // No pending call's deadline is earlier than the earliest (which may be the deadline of a call
        // answered, withdrawn or failed since): before it, no call is looked at (the driver's timer also
        // fires for other things).
        if table.earliest.is_none_or(|earliest| earliest > now) {
            return sent;
        }
        let Table {
            calls,
            answered,
            earliest,
            ..
        } = &mut *table;
        *earliest = None;
        let mut expired = Vec::new();
        for (&id, entry) in calls.iter_mut().filter(|(_, entry)| entry.is_pending()) {
            match entry.deadline {
                Some((at, limit)) if at <= now => {
                    expired.push(id);
                    if entry.sent {
                        sent.push(id);
                    }
                    callers.extend(Table::answer(answered, entry, Answer::TimedOut(limit)));
                }
                Some((at, _)) => *earliest = Some(earliest.map_or(at, |earliest| earliest.min(at))),
                None => {}
            }
        }
        if !expired.is_empty() {
            for id in expired {
                table.gone(id);
            }
            self.freed(table);
        }
        callers.into_iter().for_each(Waker::wake);
        sent
    }

    /// Fails every call of one batch with `error`, an error the other side answered with id `null`: a
    /// batch rejected as a whole (too long, not parsed). The batch is the oldest one not known to be
    /// accepted (see [`SentBatches`]) and, when the error is -32004 Batch too large with birpc's
    /// `"at most N entries"` as its data, of more than N entries (calls and notifications). Its calls
    /// withdrawn or timed out are not failed again. Returns how many calls it failed, or `None` when no
    /// batch matched.
    pub(crate) fn reject_batch(&self, error: &ErrorObject) -> Option<usize> {
        let longer_than = (error.code() == crate::error_object::code::BATCH_TOO_LARGE)
            .then(|| error.parse_data::<String>()?.ok())
            .flatten()
            .and_then(|detail| {
                detail
                    .strip_prefix("at most ")?
                    .strip_suffix(" entries")?
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        let mut count = 0;
        let mut callers = Vec::new();
        let mut table = self.lock();
        let ids = table.sent_batches.as_deref_mut()?.reject(longer_than)?;
        let Table { calls, answered, .. } = &mut *table;
        for id in ids {
            if let Some(entry) = calls.get_mut(&id)
                && entry.is_pending()
            {
                count += 1;
                callers.extend(Table::answer(answered, entry, Answer::Error(Box::new(error.clone()))));
            }
        }
        self.freed(table);
        callers.into_iter().for_each(Waker::wake);
        Some(count)
    }

    /// Ends every pending call (their callers see the connection gone) and refuses new ones. Answers that
    /// came before are kept for their callers.
    pub(crate) fn close(&self) {
        let mut callers = Vec::new();
        {
            let mut table = self.lock();
            table.closed = true;
            // The driver looks at the storage no more: the answers left give it back when the last is taken.
            table.reviewed = false;
            table.unstamped = Vec::new();
            table.sent_batches = None;
            table.calls.retain(|_, entry| match &mut entry.slot {
                Slot::Waiting(waker) => {
                    callers.extend(waker.take());
                    false
                }
                Slot::Answered(_) => true,
            });
            if table.calls.is_empty() {
                Self::give_back(&mut table);
            }
        }
        callers.into_iter().for_each(Waker::wake);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A caller awaiting one call's answer, counting the times it is woken.
    struct Caller {
        id: u64,
        wakes: Arc<Wakes>,
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl futures::task::ArcWake for Wakes {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Caller {
        fn new(id: u64) -> Self {
            Self {
                id,
                wakes: Arc::default(),
            }
        }

        fn waker(&self) -> Waker {
            futures::task::waker(self.wakes.clone())
        }

        fn woken(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        /// Looks for the answer once, as the call's future does when polled.
        fn poll(&self, pending: &Pending) -> Poll<Option<Answer>> {
            pending.poll_answer(self.id, &mut Context::from_waker(&self.waker()))
        }

        /// Registers the call with this caller's waker.
        fn insert(&self, pending: &Pending, due: Due, sent: bool, reserve: bool) -> Result<(), Refusal> {
            pending.try_insert(self.id, Some(&self.waker()), due, sent, reserve, &Signal::default())
        }

        /// The answer, which is expected to have come.
        fn answer(&self, pending: &Pending) -> Answer {
            match self.poll(pending) {
                Poll::Ready(Some(answer)) => answer,
                other => panic!("call {} has no answer: {other:?}", self.id),
            }
        }
    }

    fn result(text: &'static str) -> Answer {
        Answer::Result(Bytes::from_static(text.as_bytes()))
    }

    /// Registers calls `ids` and answers them all in one burst.
    fn answered_in_one_burst(pending: &Pending, ids: std::ops::Range<u64>) -> Delivered {
        let wake = Signal::default();
        for id in ids.clone() {
            pending.try_insert(id, None, Due::Never, true, false, &wake).unwrap();
        }
        let mut burst: Vec<_> = ids.map(|id| (Addressee::Id(id), result("x"))).collect();
        pending.complete_all(&mut burst, false)
    }

    #[tokio::test]
    async fn an_answer_that_arrived_is_taken_even_when_the_task_spent_its_budget() {
        // Many ready tokio channels in one poll spend the task's cooperative budget: after that, tokio's own
        // receivers say pending (and wake the task) although their value is there.
        let mut spenders: Vec<_> = (0..300)
            .map(|_| {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                tx.send(()).unwrap();
                rx
            })
            .collect();
        let pending = Pending::new(1, false);
        let wake = Signal::default();
        pending.try_insert(1, None, Due::Never, true, false, &wake).unwrap();
        assert!(pending.complete(1, Answer::Invalid("here")));
        let (budget_tx, budget_rx) = tokio::sync::oneshot::channel::<()>();
        budget_tx.send(()).unwrap();
        let mut budget_rx = std::pin::pin!(budget_rx);
        std::future::poll_fn(|cx| {
            for rx in &mut spenders {
                let _ = std::pin::Pin::new(rx).poll(cx);
            }
            // The budget is spent: a tokio receiver with its value there is refused...
            assert!(budget_rx.as_mut().poll(cx).is_pending());
            // ...and an answer is not.
            assert!(matches!(
                pending.poll_answer(1, cx),
                Poll::Ready(Some(Answer::Invalid("here")))
            ));
            Poll::Ready(())
        })
        .await;
    }

    #[test]
    fn answers_reach_their_caller_once_and_wake_it() {
        let pending = Pending::new(2, false);
        let caller = Caller::new(7);
        caller.insert(&pending, Due::Never, true, false).unwrap();
        assert!(caller.poll(&pending).is_pending());
        assert_eq!(pending.len(), 1);
        assert!(pending.complete(7, Answer::Invalid("x")));
        assert_eq!(caller.woken(), 1);
        assert!(!pending.complete(7, Answer::Invalid("y")), "answered already");
        assert_eq!(caller.woken(), 1);
        assert_eq!(pending.len(), 0, "an answered call is no longer pending");
        assert!(matches!(caller.answer(&pending), Answer::Invalid("x")));
        assert_eq!(pending.storage(), (0, 0), "the last answer taken, nothing is kept");
        // The entry left with its answer: the call is not in the table any more.
        assert!(!pending.remove(7));
    }

    #[test]
    fn the_waker_given_at_registration_is_woken_without_a_poll_and_a_new_one_replaces_it() {
        let pending = Pending::new(2, false);
        let first = Caller::new(1);
        first.insert(&pending, Due::Never, true, false).unwrap();
        // Polled from another task (another waker) before the answer: that one is woken instead.
        let moved = Caller {
            id: 1,
            ..Caller::new(0)
        };
        assert!(moved.poll(&pending).is_pending());
        assert!(pending.complete(1, Answer::Invalid("x")));
        assert_eq!((first.woken(), moved.woken()), (0, 1));
        let second = Caller::new(2);
        second.insert(&pending, Due::Never, true, false).unwrap();
        assert!(pending.complete(2, Answer::Invalid("y")));
        assert_eq!(
            second.woken(),
            1,
            "registered with its waker: woken without having been polled"
        );
    }

    #[test]
    fn an_answered_call_frees_its_place_before_its_answer_is_taken() {
        let pending = Pending::new(1, false);
        let first = Caller::new(1);
        first.insert(&pending, Due::Never, true, false).unwrap();
        assert!(matches!(
            Caller::new(2).insert(&pending, Due::Never, true, false),
            Err(Refusal::Full)
        ));
        assert!(pending.complete(1, Answer::Invalid("x")));
        let second = Caller::new(2);
        assert!(
            second.insert(&pending, Due::Never, true, false).is_ok(),
            "the place is free"
        );
        assert_eq!(pending.len(), 1);
        assert!(matches!(first.answer(&pending), Answer::Invalid("x")));
        assert!(second.poll(&pending).is_pending());
    }

    #[test]
    fn a_caller_that_gives_up_after_its_answer_came_leaves_nothing_and_withdraws_nothing() {
        let pending = Pending::new(2, false);
        let wake = Signal::default();
        pending.try_insert(1, None, Due::Never, true, false, &wake).unwrap();
        assert!(pending.complete(1, Answer::Invalid("x")));
        assert!(!pending.remove(1), "answered: not withdrawn at the other side");
        assert_eq!(pending.storage(), (0, 0));
        pending.try_insert(2, None, Due::Never, true, false, &wake).unwrap();
        assert!(pending.remove(2), "still pending: withdrawn");
    }

    #[test]
    fn a_burst_of_answers_reaches_its_callers_and_frees_their_places() {
        let pending = Pending::new(3, false);
        let wake = Signal::default();
        let callers: Vec<Caller> = (1..=3).map(Caller::new).collect();
        for caller in &callers {
            caller.insert(&pending, Due::Never, true, false).unwrap();
        }
        // The caller of call 2 gave up; its answer is dropped without harm.
        assert!(pending.remove(2));
        let mut answers: Vec<_> = [(1, "1"), (2, "2"), (9, "9"), (3, "3")]
            .into_iter()
            .map(|(id, text)| (Addressee::Id(id), result(text)))
            .collect();
        assert_eq!(
            pending.complete_all(&mut answers, false),
            Delivered {
                unknown: 2,
                still_pending: 0,
                kept_storage: true
            },
            "call 2 was withdrawn and call 9 never made; no call is left pending"
        );
        assert!(answers.is_empty());
        assert_eq!(pending.len(), 0);
        for (caller, expected) in [(&callers[0], "1"), (&callers[2], "3")] {
            assert_eq!(caller.woken(), 1);
            match caller.answer(&pending) {
                Answer::Result(result) => assert_eq!(result, expected.as_bytes()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            pending.storage().0 > 0,
            "emptied by a burst of several, the table keeps its storage while the driver looks at it"
        );
        assert!(
            !pending.review_storage(pending.added()),
            "no call added since: given back"
        );
        assert_eq!(pending.storage(), (0, 0));
        assert!(
            pending.try_insert(4, None, Due::Never, true, false, &wake).is_ok(),
            "the places are free again"
        );
    }

    #[test]
    fn storage_is_kept_after_a_wave_while_the_driver_looks_and_given_back_after_a_burst_of_one() {
        // After a peak of many calls the table keeps the peak's storage too (the next wave is likely to be
        // as large), and counts the calls added, by which the driver tells when to give it back.
        let peaked = Pending::new(1_000, false);
        let wake = Signal::default();
        let wave = |ids: std::ops::Range<u64>| {
            let kept = answered_in_one_burst(&peaked, ids.clone()).kept_storage;
            for id in ids {
                assert!(Caller::new(id).poll(&peaked).is_ready());
            }
            kept
        };
        assert!(wave(100..300));
        assert_eq!(peaked.added(), 200);
        assert!(peaked.storage().0 >= 200);
        // Looked at with calls added since of the same size: kept.
        assert!(peaked.review_storage(0));
        assert!(peaked.storage().0 >= 200);
        // Then one call, answered alone: a burst of one gives the storage back once its answer is taken.
        peaked.try_insert(1, None, Due::Never, true, false, &wake).unwrap();
        assert!(
            !peaked
                .complete_all(&mut vec![(Addressee::Id(1), result("x"))], false)
                .kept_storage
        );
        assert!(peaked.storage().0 > 0, "the answer is still there");
        assert!(Caller::new(1).poll(&peaked).is_ready());
        assert_eq!(peaked.storage(), (0, 0), "a burst of one gives it back once taken");
        // A wave again, then a long call made right after it: the table in use is shrunk to its recent peak.
        assert!(wave(400..600));
        peaked.try_insert(7, None, Due::Never, true, false, &wake).unwrap();
        // The first look still sees the wave's peak: kept, and to be looked at again.
        assert!(peaked.review_storage(peaked.added()));
        assert!(peaked.storage().0 >= 200);
        // The next sees only the long call: the table is shrunk around it, and no longer looked at.
        assert!(!peaked.review_storage(peaked.added()));
        assert!(peaked.storage().0 < KEPT_CALLS, "shrunk around the one long call");
        assert_eq!(peaked.len(), 1);
        // No longer looked at, the table gives its storage back when the long call leaves.
        assert!(peaked.remove(7));
        assert_eq!(peaked.storage(), (0, 0));
    }

    #[test]
    fn answers_taken_after_the_driver_stopped_looking_leave_no_storage() {
        let pending = Pending::new(8, false);
        let wake = Signal::default();
        assert!(answered_in_one_burst(&pending, 0..4).kept_storage);
        // The driver looks while the answers are still there and no call is pending: it keeps looking.
        assert!(pending.review_storage(pending.added()));
        // A call made before the answers are taken: the table is in use with little room, and the driver
        // stops looking.
        pending.try_insert(10, None, Due::Never, true, false, &wake).unwrap();
        assert!(!pending.review_storage(pending.added()));
        for id in 0..4 {
            assert!(Caller::new(id).poll(&pending).is_ready());
        }
        // The call is withdrawn: the table is empty, and nothing is kept that nobody looks at.
        assert!(pending.remove(10));
        assert_eq!(pending.storage(), (0, 0));
    }

    #[test]
    fn a_late_answer_alone_does_not_stop_the_looks_at_kept_storage() {
        let pending = Pending::new(8, false);
        let wake = Signal::default();
        assert!(answered_in_one_burst(&pending, 0..4).kept_storage);
        for id in 0..4 {
            assert!(Caller::new(id).poll(&pending).is_ready());
        }
        let planned = pending.added();
        // A call made and given up, whose answer then comes alone: it names no call, and changes nothing.
        pending.try_insert(5, None, Due::Never, true, false, &wake).unwrap();
        assert!(pending.remove(5));
        assert!(!pending.complete(5, result("late")));
        // A call was added since the look was planned: kept, and looked at again...
        assert!(pending.review_storage(planned));
        assert!(pending.storage().0 > 0);
        // ...until a look finds none added: given back.
        assert!(!pending.review_storage(pending.added()));
        assert_eq!(pending.storage(), (0, 0));
    }

    #[test]
    fn a_request_queued_after_its_answer_came_is_not_withdrawn_and_one_timed_out_or_rejected_is() {
        let pending = Pending::new(4, false);
        let wake = Signal::default();
        let now = Instant::now();
        pending.try_insert(1, None, Due::Never, false, false, &wake).unwrap();
        pending
            .try_insert(2, None, Due::At((now, Duration::from_secs(1))), false, false, &wake)
            .unwrap();
        assert!(pending.complete(1, result("1")));
        assert!(pending.expire(now).is_empty(), "not sent: nothing to withdraw yet");
        assert_eq!(pending.set_sent(&[1, 2]), vec![2]);
        // A batch rejected as a whole before its frame went out (the rejection matched to it): its calls
        // are withdrawn once it is queued after all.
        futures::FutureExt::now_or_never(pending.insert_all(&[5, 6], None, false, Some(2), &wake))
            .unwrap()
            .unwrap();
        assert_eq!(pending.reject_batch(&ErrorObject::parse_error()), Some(2));
        assert_eq!(pending.set_sent(&[5, 6]), vec![5, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_made_beside_others_is_timed_from_the_next_look_with_one_clock_reading() {
        let pending = Pending::new(4, false);
        let wake = Signal::default();
        let limit = Duration::from_secs(3);
        // Another call is pending: the next ones' deadlines wait for the driver's look.
        pending.try_insert(0, None, Due::Never, true, false, &wake).unwrap();
        let caller = Caller::new(1);
        caller.insert(&pending, Due::After(limit), true, false).unwrap();
        pending
            .try_insert(2, None, Due::After(limit), true, false, &wake)
            .unwrap();
        // Call 2 is withdrawn before the look: it gets no deadline.
        assert!(pending.remove(2));
        tokio::time::advance(Duration::from_secs(1)).await;
        let looked = Instant::now();
        let mut readings = 0;
        let clock = || {
            readings += 1;
            looked
        };
        assert_eq!(pending.load(clock, &wake), (2, Some(looked + limit)));
        assert_eq!(readings, 1);
        // Nothing new since: the clock is not read again.
        assert_eq!(
            pending.load(|| panic!("the clock was read with nothing to time"), &wake),
            (2, Some(looked + limit))
        );
        assert!(pending.expire(looked + limit - Duration::from_millis(1)).is_empty());
        assert_eq!(pending.expire(looked + limit), vec![1]);
        assert_eq!(caller.woken(), 1);
        assert!(matches!(caller.answer(&pending), Answer::TimedOut(l) if l == limit));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answered_call_is_not_timed_later() {
        let pending = Pending::new(4, false);
        let wake = Signal::default();
        let limit = Duration::from_secs(3);
        pending.try_insert(0, None, Due::Never, true, false, &wake).unwrap();
        pending
            .try_insert(1, None, Due::After(limit), true, false, &wake)
            .unwrap();
        // Answered before the driver's look: no deadline is set for it, nor does it time out.
        assert!(pending.complete(1, Answer::Invalid("x")));
        assert_eq!(pending.load(Instant::now, &wake), (1, None));
        assert!(pending.expire(Instant::now() + limit).is_empty());
        assert!(matches!(Caller::new(1).answer(&pending), Answer::Invalid("x")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_only_call_is_timed_when_made_and_wakes_the_driver_only_for_an_earlier_deadline() {
        for idle_timed in [false, true] {
            let pending = Pending::new(4, idle_timed);
            let wake = Signal::default();
            let limit = Duration::from_secs(3);
            let driver = Caller::new(0);
            // A look of the driver's poll: it registers its waker, then looks.
            let look = |pending: &Pending| {
                wake.register(&Context::from_waker(&driver.waker()));
                pending.poll_deadline_moved(Instant::now, &wake)
            };
            assert!(look(&pending).is_pending());
            let first = Instant::now();
            pending
                .try_insert(1, None, Due::After(limit), true, false, &wake)
                .unwrap();
            // The first deadline the table holds: the driver's timer has to be set.
            assert_eq!(driver.woken(), 1);
            assert_eq!(look(&pending), Poll::Ready((1, Some(first + limit))));
            assert!(pending.complete(1, Answer::Invalid("x")));
            assert!(matches!(Caller::new(1).answer(&pending), Answer::Invalid("x")));
            assert!(look(&pending).is_pending());
            tokio::time::advance(Duration::from_secs(1)).await;
            let second = Instant::now();
            pending
                .try_insert(2, None, Due::After(limit), true, false, &wake)
                .unwrap();
            // Timed from when it was made; its deadline comes after the timer's (the first call's), so the
            // driver is not woken for it, unless it times idleness, which this call ends.
            assert_eq!(driver.woken(), 1 + usize::from(idle_timed), "idle timed: {idle_timed}");
            assert!(pending.expire(first + limit).is_empty());
            assert_eq!(pending.earliest(), Some(second + limit));
            assert_eq!(pending.expire(second + limit), vec![2]);
        }
    }

    #[tokio::test]
    async fn a_full_table_makes_calls_wait_for_a_place() {
        let pending = Pending::new(1, false);
        let wake = Signal::default();
        pending.try_insert(1, None, Due::Never, true, false, &wake).unwrap();
        assert!(matches!(
            pending.try_insert(2, None, Due::Never, true, false, &wake),
            Err(Refusal::Full)
        ));
        let waiting = pending.insert_all(&[3], None, false, None, &wake);
        tokio::pin!(waiting);
        assert!(futures::FutureExt::now_or_never(waiting.as_mut()).is_none());
        assert!(pending.remove(1));
        assert!(waiting.await.is_ok());
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn calls_past_their_deadline_time_out_and_the_earliest_moves_on() {
        let pending = Pending::new(4, false);
        let now = Instant::now();
        let soon = (now + Duration::from_millis(10), Duration::from_millis(10));
        let later = (now + Duration::from_secs(10), Duration::from_secs(10));
        let (first, second) = (Caller::new(1), Caller::new(2));
        first.insert(&pending, Due::At(later), true, false).unwrap();
        second.insert(&pending, Due::At(soon), true, false).unwrap();
        assert_eq!(pending.earliest(), Some(soon.0));
        assert!(pending.expire(now).is_empty());
        let expired = pending.expire(soon.0);
        assert_eq!(expired, vec![2]);
        assert_eq!(pending.earliest(), Some(later.0));
        assert_eq!(pending.len(), 1, "a timed-out call is no longer pending");
        assert!(
            !pending.complete(2, Answer::Invalid("late")),
            "its late answer is dropped"
        );
        assert!(pending.complete(1, Answer::Invalid("done")));
        assert!(matches!(first.answer(&pending), Answer::Invalid("done")));
        assert!(matches!(second.answer(&pending), Answer::TimedOut(d) if d == soon.1));
        assert_eq!(
            pending.earliest(),
            Some(later.0),
            "kept until the next sweep finds nothing"
        );
        assert!(pending.expire(later.0).is_empty());
        assert_eq!(pending.earliest(), None);
    }

    #[test]
    fn a_call_whose_request_was_not_sent_is_not_withdrawn() {
        let pending = Pending::new(4, false);
        let wake = Signal::default();
        let now = Instant::now();
        let due = Due::At((now, Duration::from_secs(1)));
        pending.try_insert(1, None, due, false, false, &wake).unwrap();
        pending.try_insert(2, None, due, false, false, &wake).unwrap();
        assert!(pending.set_sent(&[2]).is_empty());
        assert_eq!(pending.expire(now), vec![2]);
        // Timed out (its answer not taken yet) or never made: to be withdrawn once sent after all.
        assert_eq!(pending.set_sent(&[1, 3]), vec![1, 3]);
    }

    #[test]
    fn handlers_calls_have_a_reserve_as_large_again() {
        let pending = Pending::new(2, false);
        let wake = Signal::default();
        for id in 0..4 {
            let reserve = id >= 2;
            assert!(pending.try_insert(id, None, Due::Never, true, reserve, &wake).is_ok());
        }
        assert!(matches!(
            pending.try_insert(9, None, Due::Never, true, true, &wake),
            Err(Refusal::Full)
        ));
        assert_eq!(pending.limit(true), 4);
    }

    #[tokio::test]
    async fn a_batch_takes_all_its_places_at_once() {
        let pending = Pending::new(4, false);
        let wake = Signal::default();
        for id in 0..3 {
            pending.try_insert(id, None, Due::Never, true, false, &wake).unwrap();
        }
        let a = pending.insert_all(&[10, 11, 12], None, false, Some(3), &wake);
        let b = pending.insert_all(&[20, 21, 22], None, false, Some(3), &wake);
        tokio::pin!(a, b);
        assert!(futures::FutureExt::now_or_never(a.as_mut()).is_none());
        assert!(futures::FutureExt::now_or_never(b.as_mut()).is_none());
        // Two places free: neither batch of three fits, neither takes any.
        assert!(pending.remove(0));
        assert!(futures::FutureExt::now_or_never(a.as_mut()).is_none());
        assert_eq!(pending.len(), 2);
        // A third, freed by an answer not yet taken: one batch goes, whole.
        assert!(pending.complete(1, Answer::Invalid("x")));
        let first = tokio::select! { r = &mut a => r, r = &mut b => r };
        assert!(first.is_ok());
        assert_eq!(pending.len(), 4);
    }

    #[tokio::test]
    async fn a_batch_rejected_as_a_whole_fails_every_call_of_it() {
        let pending = Pending::new(16, false);
        let wake = Signal::default();
        pending.insert_all(&[1, 2], None, false, Some(2), &wake).await.unwrap();
        pending
            .insert_all(&[3, 4, 5, 6], None, false, Some(4), &wake)
            .await
            .unwrap();
        let waiting = Caller::new(3);
        assert!(waiting.poll(&pending).is_pending());
        // "at most 3 entries": the batch of two was not the one.
        let too_long = ErrorObject::batch_too_large(3);
        assert_eq!(pending.reject_batch(&too_long), Some(4));
        assert_eq!(waiting.woken(), 1);
        for id in 3..7 {
            assert!(matches!(Caller::new(id).answer(&pending), Answer::Error(e) if e.code() == -32004));
        }
        // The batch sent before the one rejected was accepted: no rejection is for it.
        assert_eq!(pending.reject_batch(&ErrorObject::parse_error()), None);
        assert!(pending.complete(1, Answer::Invalid("x")));
        assert_eq!(pending.len(), 1);
    }

    #[tokio::test]
    async fn the_memory_of_batches_forgets_no_batch_with_a_pending_call() {
        // Two batches of four calls, three of each withdrawn, then one of three: the memory's bound (10
        // ids, with the reserve) is met by dropping the withdrawn calls' ids, not the oldest batch.
        let pending = Pending::new(5, false);
        let wake = Signal::default();
        pending
            .insert_all(&[1, 2, 3, 4], None, false, Some(4), &wake)
            .await
            .unwrap();
        for id in 1..4 {
            assert!(pending.remove(id));
        }
        pending
            .insert_all(&[5, 6, 7, 8], None, false, Some(4), &wake)
            .await
            .unwrap();
        for id in 5..8 {
            assert!(pending.remove(id));
        }
        pending
            .insert_all(&[9, 10, 11], None, false, Some(3), &wake)
            .await
            .unwrap();
        // The other side rejects the oldest batch as a whole: its pending call fails, the next one's waits.
        assert_eq!(pending.reject_batch(&ErrorObject::parse_error()), Some(1));
        assert!(matches!(Caller::new(4).answer(&pending), Answer::Error(_)));
        assert!(Caller::new(8).poll(&pending).is_pending());
    }

    #[test]
    fn closing_ends_every_pending_call_keeps_the_answers_that_came_and_refuses_new_calls() {
        let pending = Pending::new(2, false);
        let wake = Signal::default();
        let (waiting, answered) = (Caller::new(1), Caller::new(2));
        answered.insert(&pending, Due::Never, true, false).unwrap();
        pending.try_insert(3, None, Due::Never, true, false, &wake).unwrap();
        // A burst of several answers: the table keeps its storage while the driver looks at it...
        let mut burst = vec![
            (Addressee::Id(2), Answer::Invalid("came")),
            (Addressee::Id(3), Answer::Invalid("also")),
        ];
        assert!(pending.complete_all(&mut burst, false).kept_storage);
        assert!(Caller::new(3).poll(&pending).is_ready());
        waiting.insert(&pending, Due::Never, true, false).unwrap();
        // ...which it does no more once the connection ends.
        pending.close();
        assert_eq!(waiting.woken(), 1);
        assert!(
            matches!(waiting.poll(&pending), Poll::Ready(None)),
            "the connection is gone"
        );
        assert!(matches!(answered.answer(&pending), Answer::Invalid("came")));
        assert_eq!(
            pending.storage(),
            (0, 0),
            "the last answer taken, the storage is given back"
        );
        assert!(matches!(
            pending.try_insert(3, None, Due::Never, true, false, &wake),
            Err(Refusal::Closed)
        ));
    }
}
