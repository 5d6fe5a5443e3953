//! The batches this side sent that the other side may still reject as a whole.
//!
//! JSON-RPC 2.0 (section 6) answers a batch that cannot be taken as a whole (not parsed, not an array of
//! requests, or, with birpc, longer than the other side's `max_batch_len`: -32004 with data
//! `"at most N entries"`) with one error object whose id is `null`, alone in its frame. Nothing in it names
//! the batch. The other side reads batches in the order they were sent and rejects a whole batch as it
//! reads it, before it answers anything sent after; so an answer to a call of a batch, or of a later
//! batch, shows the batch was accepted, and is forgotten. A rejection is taken for the oldest batch not
//! known to be accepted. That is a guess when the error says nothing of length: an earlier batch may have
//! been accepted and still be running (its answers come later), and then the wrong batch fails. With
//! birpc's -32004 and its `"at most N entries"` it is exact: the oldest remembered batch longer than N,
//! since every batch accepted had at most N entries. Calls withdrawn or timed out here say nothing either
//! way: their batch stays.
//!
//! Batches are ordered as they were registered, which is the order on the wire except when two batches
//! sent from different tasks wait for room in a full outgoing queue at once. A batch forgotten at the
//! bound (see [`SentBatches::remember`]) is no longer a candidate: a rejection meant for it falls on the
//! next.
//!
//! Sans-IO: this only keeps ids; the [pending table](super::pending) fails the calls.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// The batches whose storage is kept once none is remembered (more is given back).
const KEPT_BATCHES: usize = 8;

/// A remembered batch's number, in the order batches were remembered.
pub(crate) type BatchNumber = u64;

/// The batches sent whose acceptance is not known yet, oldest first.
///
/// Bounded: at most `limit` batches and `limit` call ids (see [`remember`](Self::remember)); storage past
/// [`KEPT_BATCHES`] batches is given back once none is remembered. An answer, a withdrawal or a timeout
/// costs one lookup; remembering a batch at the bound, forgetting one and a rejection cost a pass over the
/// batches.
#[derive(Default)]
pub(crate) struct SentBatches {
    /// Oldest first; their numbers increase.
    batches: VecDeque<SentBatch>,
    /// The calls of the remembered batches, by id.
    calls: FxHashMap<u64, SentCall>,
    /// The number the next batch gets.
    next: BatchNumber,
}

/// A batch sent, as remembered for an error answered to it as a whole.
struct SentBatch {
    number: BatchNumber,
    /// How many entries its frame had, calls and notifications (what "at most N entries" counts).
    entries: usize,
    /// Its calls still remembered (those given up may be dropped at the bound).
    ids: Vec<u64>,
    /// How many of them are still pending (neither withdrawn nor timed out).
    pending: usize,
}

/// A call of a remembered batch.
struct SentCall {
    batch: BatchNumber,
    /// Withdrawn or timed out: only an answer to it, come late, would still say something.
    gone: bool,
}

impl SentBatches {
    /// Remembers a batch of `entries` entries with the calls `ids` (all pending), and returns its number.
    ///
    /// At the bound, `limit` call ids or `limit` batches remembered, the ids of calls given up go first
    /// (a late answer to one then says nothing), then whole batches: the oldest of which no call is
    /// pending, else the oldest (whose calls can then no longer be failed by an error answered to their
    /// batch as a whole; they still time out). With `limit` at least the pending table's, no batch with
    /// a pending call is forgotten: the calls pending, the new batch's included, are at most `limit`.
    pub(crate) fn remember(&mut self, entries: usize, ids: Vec<u64>, limit: usize) -> BatchNumber {
        let limit = limit.max(1);
        let Self { batches, calls, .. } = self;
        for batch in batches.iter_mut() {
            if calls.len() + ids.len() <= limit {
                break;
            }
            if batch.pending < batch.ids.len() {
                batch.ids.retain(|id| {
                    let gone = calls.get(id).is_none_or(|call| call.gone);
                    if gone {
                        calls.remove(id);
                    }
                    !gone
                });
            }
        }
        while !self.batches.is_empty() && (self.batches.len() >= limit || self.calls.len() + ids.len() > limit) {
            let idle = self.batches.iter().position(|batch| batch.pending == 0);
            self.forget_at(idle.unwrap_or(0));
        }
        let number = self.next;
        self.next += 1;
        for &id in &ids {
            self.calls.insert(
                id,
                SentCall {
                    batch: number,
                    gone: false,
                },
            );
        }
        self.batches.push_back(SentBatch {
            number,
            entries,
            pending: ids.len(),
            ids,
        });
        number
    }

    /// Forgets batch `number`, if remembered (its frame was never sent).
    pub(crate) fn forget(&mut self, number: BatchNumber) {
        if let Some(index) = self.index_of(number) {
            self.forget_at(index);
        }
    }

    /// Call `id` is no longer pending (withdrawn or timed out): its batch, if remembered, still is.
    pub(crate) fn gone(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id).filter(|call| !call.gone) else {
            return;
        };
        call.gone = true;
        let number = call.batch;
        if let Some(index) = self.index_of(number) {
            let batch = &mut self.batches[index];
            batch.pending = batch.pending.saturating_sub(1);
        }
    }

    /// An answer came for call `id`: its batch, if remembered, and every batch before it were accepted,
    /// and are forgotten.
    pub(crate) fn answered(&mut self, id: u64) {
        let Some(number) = self.calls.get(&id).map(|call| call.batch) else {
            return;
        };
        while self.batches.front().is_some_and(|batch| batch.number <= number) {
            self.forget_at(0);
        }
        self.give_back_if_empty();
    }

    /// Takes the batch an error with id `null` rejects: the oldest remembered of more than `longer_than`
    /// entries (0 when the error says nothing of length). It and the batches before it are forgotten (the
    /// ones before were accepted). Returns its call ids, pending or not; `None` when none matches.
    pub(crate) fn reject(&mut self, longer_than: usize) -> Option<Vec<u64>> {
        let index = self.batches.iter().position(|batch| batch.entries > longer_than)?;
        for _ in 0..index {
            self.forget_at(0);
        }
        let batch = self.batches.pop_front()?;
        for id in &batch.ids {
            self.calls.remove(id);
        }
        self.give_back_if_empty();
        Some(batch.ids)
    }

    /// Gives the storage back when no batch is remembered and it holds more than [`KEPT_BATCHES`].
    fn give_back_if_empty(&mut self) {
        if self.batches.is_empty() && self.batches.capacity() > KEPT_BATCHES {
            self.batches = VecDeque::new();
            self.calls = FxHashMap::default();
        }
    }

    /// How many batches are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    fn index_of(&self, number: BatchNumber) -> Option<usize> {
        self.batches.binary_search_by_key(&number, |batch| batch.number).ok()
    }

    fn forget_at(&mut self, index: usize) {
        if let Some(batch) = self.batches.remove(index) {
            for id in &batch.ids {
                self.calls.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_takes_the_oldest_batch_not_known_accepted() {
        let mut sent = SentBatches::default();
        sent.remember(1, vec![1], 16);
        sent.remember(1, vec![2], 16);
        sent.remember(1, vec![3], 16);
        // An answer to the second: the first two were accepted.
        sent.answered(2);
        assert_eq!(sent.reject(0), Some(vec![3]));
        assert_eq!(sent.reject(0), None);
    }

    #[test]
    fn withdrawn_and_timed_out_calls_keep_their_batch() {
        let mut sent = SentBatches::default();
        sent.remember(2, vec![1, 2], 16);
        sent.remember(1, vec![3], 16);
        sent.gone(1);
        sent.gone(2);
        sent.gone(3);
        assert_eq!(sent.reject(0), Some(vec![1, 2]));
        // A late answer to a withdrawn call still tells its batch was accepted.
        sent.remember(1, vec![4], 16);
        sent.answered(3);
        assert_eq!(sent.reject(0), Some(vec![4]));
    }

    #[test]
    fn a_length_rejection_skips_the_shorter_batches_and_forgets_them() {
        let mut sent = SentBatches::default();
        sent.remember(2, vec![1, 2], 16);
        // Notifications count.
        sent.remember(4, vec![3], 16);
        sent.remember(5, vec![4], 16);
        assert_eq!(sent.reject(3), Some(vec![3]));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent.reject(3), Some(vec![4]));
    }

    #[test]
    fn a_batch_never_sent_is_forgotten() {
        let mut sent = SentBatches::default();
        let never = sent.remember(1, vec![1], 16);
        sent.remember(1, vec![2], 16);
        sent.forget(never);
        assert_eq!(sent.reject(0), Some(vec![2]));
    }

    #[test]
    fn the_bound_forgets_a_batch_with_no_pending_call_first() {
        let mut sent = SentBatches::default();
        sent.remember(1, vec![1], 3);
        sent.remember(1, vec![2], 3);
        sent.remember(1, vec![3], 3);
        sent.gone(2);
        sent.remember(1, vec![4], 3);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent.reject(0), Some(vec![1]));
        assert_eq!(sent.reject(0), Some(vec![3]));
        // No batch idle: the oldest goes.
        sent.remember(1, vec![5], 2);
        sent.remember(1, vec![6], 2);
        assert_eq!(sent.reject(0), Some(vec![5]));
    }

    #[test]
    fn at_the_bound_the_ids_of_calls_given_up_go_before_any_batch() {
        // Two batches of four calls, three of each given up: two pending. Room for two more calls.
        let mut sent = SentBatches::default();
        sent.remember(4, vec![1, 2, 3, 4], 8);
        sent.remember(4, vec![5, 6, 7, 8], 8);
        for id in [1, 2, 3, 5, 6, 7] {
            sent.gone(id);
        }
        sent.remember(2, vec![9, 10], 8);
        assert_eq!(sent.len(), 3);
        assert!(sent.calls.len() <= 8);
        // The oldest batch gave up the ids of its calls given up (a late answer to one now tells
        // nothing), and is still the one a rejection fails, with its pending call.
        sent.answered(1);
        assert_eq!(sent.reject(0), Some(vec![4]));
        // The second needed not give up any: a late answer to one still tells it was accepted.
        sent.answered(5);
        assert_eq!(sent.reject(0), Some(vec![9, 10]));
    }

    #[test]
    fn the_bound_counts_call_ids_too() {
        let mut sent = SentBatches::default();
        for batch in 0..100 {
            sent.remember(10, (batch * 10..batch * 10 + 10).collect(), 32);
            assert!(sent.calls.len() <= 32);
        }
        assert_eq!(sent.len(), 3);
        // Batches of notifications only are bounded by their count.
        for _ in 0..100 {
            sent.remember(3, Vec::new(), 32);
        }
        assert!(sent.len() <= 32);
    }

    #[test]
    fn storage_past_a_few_batches_is_given_back_once_none_is_remembered() {
        let mut sent = SentBatches::default();
        for id in 0..100 {
            sent.remember(1, vec![id], 1024);
        }
        sent.answered(99);
        assert_eq!(sent.len(), 0);
        assert_eq!((sent.batches.capacity(), sent.calls.capacity()), (0, 0));
    }

    #[test]
    fn answers_naming_no_remembered_call_change_nothing() {
        // Each is one lookup (a peer may send any number of answers with ids of its choosing).
        let mut sent = SentBatches::default();
        for batch in 0..1024u64 {
            sent.remember(1, vec![batch], 1024);
        }
        for id in 0..1024u64 {
            sent.gone(id);
        }
        for bogus in 0..100_000u64 {
            sent.answered(u64::MAX - bogus);
        }
        assert_eq!(sent.len(), 1024);
        sent.answered(511);
        assert_eq!(sent.len(), 512);
        assert_eq!(sent.reject(0), Some(vec![512]));
    }
}
