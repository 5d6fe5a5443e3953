//! The calls of this side awaiting an answer, by id, with their deadlines.
//!
//! The table also enforces [`PeerConfig::max_pending_calls`](crate::PeerConfig) and keeps the earliest
//! deadline, so that one timer of the connection's driver times every call out (instead of a timer per
//! call).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::error_object::ErrorObject;

/// What the other side answered (or the driver decided, for a call out of time).
#[derive(Debug)]
pub(crate) enum Answer {
    /// The `result` member's JSON text (a slice of the received frame).
    Result(Bytes),
    /// The `error` member.
    Error(ErrorObject),
    /// A malformed response naming this call.
    Invalid(&'static str),
    /// No answer before the call's deadline (its timeout).
    TimedOut(Duration),
}

/// When a call times out: the instant, and the timeout it came from (for the error).
pub(crate) type Deadline = (Instant, Duration);

/// Why a call could not be registered.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The table holds `max_pending_calls` calls; the sender is given back.
    Full(oneshot::Sender<Answer>),
    /// The connection has ended.
    Closed,
}

struct Entry {
    answer: oneshot::Sender<Answer>,
    deadline: Option<Deadline>,
}

#[derive(Default)]
struct Table {
    calls: FxHashMap<u64, Entry>,
    closed: bool,
    /// The earliest deadline of the calls in the table (it may belong to a call answered since; the sweep
    /// then finds nothing and moves on).
    earliest: Option<Instant>,
}

/// The pending table. Entries leave it when answered, withdrawn (a dropped call), timed out, or when the
/// connection ends; dropping an entry's sender tells its caller the connection is gone.
pub(crate) struct Pending {
    table: Mutex<Table>,
    max: usize,
    /// Woken when a place frees up in a full table.
    room: Notify,
    /// Woken when the table goes from empty to not empty: the reader keeps reading while calls await
    /// answers.
    became_busy: Notify,
    /// Woken when a call brings an earlier deadline than the driver's timer knows.
    deadline_moved: Notify,
}

impl Pending {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            table: Mutex::default(),
            max: max.max(1),
            room: Notify::new(),
            became_busy: Notify::new(),
            deadline_moved: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break half-way.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers call `id` if there is room now.
    pub(crate) fn try_insert(
        &self,
        id: u64,
        answer: oneshot::Sender<Answer>,
        deadline: Option<Deadline>,
    ) -> Result<(), Refusal> {
        let mut table = self.lock();
        if table.closed {
            return Err(Refusal::Closed);
        }
        if table.calls.len() >= self.max {
            return Err(Refusal::Full(answer));
        }
        let was_empty = table.calls.is_empty();
        let earlier = deadline.is_some_and(|(at, _)| table.earliest.is_none_or(|earliest| at < earliest));
        if earlier {
            table.earliest = deadline.map(|(at, _)| at);
        }
        table.calls.insert(id, Entry { answer, deadline });
        drop(table);
        if was_empty {
            self.became_busy.notify_one();
        }
        if earlier {
            self.deadline_moved.notify_one();
        }
        Ok(())
    }

    /// Registers call `id`, waiting for room.
    pub(crate) async fn insert(
        &self,
        id: u64,
        mut answer: oneshot::Sender<Answer>,
        deadline: Option<Deadline>,
    ) -> Result<(), ()> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_insert(id, answer, deadline) {
                Ok(()) => return Ok(()),
                Err(Refusal::Closed) => return Err(()),
                Err(Refusal::Full(back)) => answer = back,
            }
            room.await;
        }
    }

    /// Takes call `id` out of the table, giving its place to a waiting call.
    fn take(&self, id: u64) -> Option<Entry> {
        let entry = self.lock().calls.remove(&id);
        if entry.is_some() {
            self.room.notify_one();
        }
        entry
    }

    /// Delivers the answer to call `id`; `false` when no such call is pending (answered already, withdrawn,
    /// timed out, or never made).
    pub(crate) fn complete(&self, id: u64, answer: Answer) -> bool {
        match self.take(id) {
            // The caller may have given up in the meantime; then nobody wants the answer.
            Some(entry) => {
                let _ = entry.answer.send(answer);
                true
            }
            None => false,
        }
    }

    /// Withdraws call `id`; `true` when it was still pending.
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.take(id).is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().calls.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().calls.len()
    }

    /// Resolves when the table may have become non-empty.
    pub(crate) async fn became_busy(&self) {
        self.became_busy.notified().await;
    }

    /// The earliest deadline of a pending call, if any.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.lock().earliest
    }

    /// Resolves when a call brings an earlier deadline.
    pub(crate) async fn deadline_moved(&self) {
        self.deadline_moved.notified().await;
    }

    /// Times out every call whose deadline has passed (each fails with [`Answer::TimedOut`]) and returns
    /// their ids.
    pub(crate) fn expire(&self, now: Instant) -> Vec<u64> {
        let expired: Vec<(u64, Entry)> = {
            let mut table = self.lock();
            let expired = table
                .calls
                .extract_if(|_, entry| entry.deadline.is_some_and(|(at, _)| at <= now))
                .collect();
            table.earliest = table
                .calls
                .values()
                .filter_map(|entry| entry.deadline.map(|(at, _)| at))
                .min();
            expired
        };
        expired
            .into_iter()
            .map(|(id, entry)| {
                self.room.notify_one();
                if let Some((_, limit)) = entry.deadline {
                    // The caller may have given up already.
                    let _ = entry.answer.send(Answer::TimedOut(limit));
                }
                id
            })
            .collect()
    }

    /// Ends every pending call (their callers see the connection gone) and refuses new ones.
    pub(crate) fn close(&self) {
        let calls = {
            let mut table = self.lock();
            table.closed = true;
            std::mem::take(&mut table.calls)
        };
        drop(calls);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_caller_once() {
        let pending = Pending::new(2);
        let (tx, rx) = oneshot::channel();
        pending.try_insert(7, tx, None).unwrap();
        assert!(!pending.is_empty());
        assert!(pending.complete(7, Answer::Invalid("x")));
        assert!(!pending.complete(7, Answer::Invalid("y")));
        assert!(matches!(rx.await.unwrap(), Answer::Invalid("x")));
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_full_table_makes_calls_wait_for_a_place() {
        let pending = Pending::new(1);
        let (tx, _rx) = oneshot::channel();
        pending.try_insert(1, tx, None).unwrap();
        let (tx, _rx2) = oneshot::channel();
        assert!(matches!(pending.try_insert(2, tx, None), Err(Refusal::Full(_))));
        let (tx, _rx3) = oneshot::channel();
        let waiting = pending.insert(3, tx, None);
        tokio::pin!(waiting);
        assert!(futures::FutureExt::now_or_never(waiting.as_mut()).is_none());
        assert!(pending.remove(1));
        assert!(waiting.await.is_ok());
        assert_eq!(pending.len(), 1);
    }

    #[tokio::test]
    async fn calls_past_their_deadline_time_out_and_the_earliest_moves_on() {
        let pending = Pending::new(4);
        let now = Instant::now();
        let soon = (now + Duration::from_millis(10), Duration::from_millis(10));
        let later = (now + Duration::from_secs(10), Duration::from_secs(10));
        let (tx1, rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        pending.try_insert(1, tx1, Some(later)).unwrap();
        pending.try_insert(2, tx2, Some(soon)).unwrap();
        assert_eq!(pending.earliest(), Some(soon.0));
        assert!(pending.expire(now).is_empty());
        let expired = pending.expire(soon.0);
        assert_eq!(expired, vec![2]);
        assert_eq!(pending.earliest(), Some(later.0));
        assert!(pending.complete(1, Answer::Invalid("done")));
        assert!(matches!(rx1.await.unwrap(), Answer::Invalid(_)));
    }

    #[tokio::test]
    async fn a_timed_out_call_is_told_so() {
        let pending = Pending::new(4);
        let now = Instant::now();
        let (tx, rx) = oneshot::channel();
        pending.try_insert(1, tx, Some((now, Duration::from_secs(3)))).unwrap();
        pending.expire(now);
        assert!(matches!(rx.await.unwrap(), Answer::TimedOut(d) if d == Duration::from_secs(3)));
    }

    #[tokio::test]
    async fn closing_ends_every_call_and_refuses_new_ones() {
        let pending = Pending::new(2);
        let (tx, rx) = oneshot::channel();
        pending.try_insert(1, tx, None).unwrap();
        pending.close();
        assert!(rx.await.is_err());
        let (tx, _rx) = oneshot::channel();
        assert!(matches!(pending.try_insert(2, tx, None), Err(Refusal::Closed)));
    }
}
