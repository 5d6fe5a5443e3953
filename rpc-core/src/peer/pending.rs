//! The calls of this side awaiting an answer, by id.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error_object::ErrorObject;

/// What the other side answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The `result` member's JSON text (a slice of the received frame).
    Result(Bytes),
    /// The `error` member.
    Error(ErrorObject),
    /// A malformed response naming this call.
    Invalid(&'static str),
}

/// Why a call could not be registered.
#[derive(Debug)]
pub(crate) struct Closed;

struct Entry {
    answer: oneshot::Sender<Answer>,
    /// The call's place under [`PeerConfig::max_pending_calls`](crate::PeerConfig); freed with the entry.
    _slot: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Table {
    calls: FxHashMap<u64, Entry>,
    closed: bool,
}

/// The pending table. Entries leave it when answered, withdrawn (timeout, dropped call) or when the
/// connection ends; dropping an entry's sender tells its caller the connection is gone.
pub(crate) struct Pending {
    table: Mutex<Table>,
    slots: Arc<Semaphore>,
    /// Woken when the table goes from empty to not empty: the reader keeps reading while calls await
    /// answers.
    became_busy: Notify,
}

impl Pending {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            table: Mutex::default(),
            slots: Arc::new(Semaphore::new(max.max(1))),
            became_busy: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break half-way.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for room for `n` more calls.
    pub(crate) async fn reserve(&self, n: u32) -> Result<OwnedSemaphorePermit, Closed> {
        self.slots.clone().acquire_many_owned(n).await.map_err(|_| Closed)
    }

    /// Registers call `id`, holding one slot.
    pub(crate) fn insert(
        &self,
        id: u64,
        answer: oneshot::Sender<Answer>,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), Closed> {
        let mut table = self.lock();
        if table.closed {
            return Err(Closed);
        }
        let was_empty = table.calls.is_empty();
        table.calls.insert(id, Entry { answer, _slot: slot });
        drop(table);
        if was_empty {
            self.became_busy.notify_one();
        }
        Ok(())
    }

    /// Delivers the answer to call `id`; `false` when no such call is pending (answered already, withdrawn,
    /// or never made).
    pub(crate) fn complete(&self, id: u64, answer: Answer) -> bool {
        let entry = self.lock().calls.remove(&id);
        match entry {
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
        self.lock().calls.remove(&id).is_some()
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

    /// Ends every pending call (their callers see the connection gone) and refuses new ones.
    pub(crate) fn close(&self) {
        let calls = {
            let mut table = self.lock();
            table.closed = true;
            std::mem::take(&mut table.calls)
        };
        self.slots.close();
        drop(calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_caller_once() {
        let pending = Pending::new(2);
        let (tx, rx) = oneshot::channel();
        pending.insert(7, tx, pending.reserve(1).await.unwrap()).unwrap();
        assert!(!pending.is_empty());
        assert!(pending.complete(7, Answer::Invalid("x")));
        assert!(!pending.complete(7, Answer::Invalid("y")));
        assert!(matches!(rx.await.unwrap(), Answer::Invalid("x")));
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn closing_ends_every_call_and_refuses_new_ones() {
        let pending = Pending::new(2);
        let (tx, rx) = oneshot::channel();
        pending.insert(1, tx, pending.reserve(1).await.unwrap()).unwrap();
        pending.close();
        assert!(rx.await.is_err());
        assert!(pending.reserve(1).await.is_err());
    }

    #[tokio::test]
    async fn slots_are_freed_with_their_entry() {
        let pending = Pending::new(1);
        let (tx, _rx) = oneshot::channel();
        pending.insert(1, tx, pending.reserve(1).await.unwrap()).unwrap();
        assert!(pending.slots.try_acquire().is_err());
        assert!(pending.remove(1));
        assert!(pending.slots.try_acquire().is_ok());
    }
}
