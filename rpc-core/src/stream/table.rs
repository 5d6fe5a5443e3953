//! The streams of one connection: those this side produces, by id, and those it consumes, by the other
//! side's id. Held by the connection's shared state; when the connection ends, every stream ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::AbortHandle;
use rustc_hash::FxHashMap;

use super::credit::Credit;
use super::inbox::{End, Inbox, Refused};
use super::wire::Payload;
use crate::close::CloseReason;

/// Why a stream could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The side's limit of streams (`max_streams`) is reached.
    Full,
    /// The other side already has a stream of this id bound here.
    Taken,
    /// The connection has ended.
    Closed,
}

/// How many ended streams, and given-up downloads, are remembered (see [`Table::ended`] and
/// [`Table::abandoned`]).
const REMEMBERED: usize = 256;

/// What became of a received payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Put in its stream's inbox, or the stream ended.
    Done,
    /// No stream of that id is consumed here, nor was lately: not a stream's (an ordinary notification).
    Unknown,
    /// The item was beyond the credit granted; the stream ended, and the producer must be told.
    Overrun,
}

struct Producing {
    credit: Arc<Credit>,
    /// Stops the producing task; absent while it is being set up.
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    producing: FxHashMap<u64, Producing>,
    /// Consumed streams, by the JSON text of the producer's id.
    consuming: FxHashMap<Box<str>, Arc<Inbox>>,
    /// Downloads of this side whose answer (the stream id) has not come yet, by call id.
    opening: FxHashMap<u64, Arc<Inbox>>,
    /// The ids of the consumed streams that ended or were cancelled last: their late items are dropped,
    /// not taken for notifications.
    ended: VecDeque<Box<str>>,
    /// Downloads given up before their answer came: a late answer's stream is cancelled.
    abandoned: VecDeque<u64>,
    closed: Option<CloseReason>,
}

impl Table {
    fn ended(&mut self, subscription: &str) {
        if self.ended.len() >= REMEMBERED {
            self.ended.pop_front();
        }
        self.ended.push_back(subscription.into());
    }
}

/// The streams of a connection; see the [module](self).
pub(crate) struct Streams {
    /// Made when the connection first produces or consumes a stream (most never do: the table's maps
    /// would cost each connection about 200 bytes).
    table: Mutex<Option<Box<Table>>>,
    max: usize,
    /// How many downloads of this side are opening, and how many streams it consumes, kept beside the
    /// table so that every answer and notification of a connection without streams is checked without
    /// taking the lock (updated under it).
    opening: AtomicUsize,
    consuming: AtomicUsize,
}

impl Streams {
    /// A table allowing `max` streams each way.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            table: Mutex::new(None),
            max: max.max(1),
            opening: AtomicUsize::new(0),
            consuming: AtomicUsize::new(0),
        }
    }

    /// Publishes the sizes of the opening and consuming maps (called with the lock held, after a change).
    fn publish(&self, table: &Table) {
        // Given-up downloads count as opening (their late answer is looked for), ended streams as
        // consumed (their late items are looked for).
        self.opening
            .store(table.opening.len() + table.abandoned.len(), Ordering::Relaxed);
        self.consuming
            .store(table.consuming.len() + table.ended.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Option<Box<Table>>> {
        // Every change below is complete before the lock is released.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The table under `guard`, made if it was not yet.
    fn made<'a>(guard: &'a mut MutexGuard<'_, Option<Box<Table>>>) -> &'a mut Table {
        guard.get_or_insert_with(|| {
            Box::new(Table {
                next_id: 1,
                ..Table::default()
            })
        })
    }

    /// The limit of streams each way.
    pub(crate) fn limit(&self) -> usize {
        self.max
    }

    /// Streams this side produces and consumes now (opening downloads counted as consumed).
    pub(crate) fn counts(&self) -> (usize, usize) {
        // (From the table itself: the published figures count what is remembered too.)
        match self.lock().as_deref() {
            Some(table) => (table.producing.len(), table.consuming.len() + table.opening.len()),
            None => (0, 0),
        }
    }

    /// Registers a stream this side produces, with its credit; its id.
    pub(crate) fn produce(&self, credit: Arc<Credit>) -> Result<u64, Refusal> {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        if table.closed.is_some() {
            return Err(Refusal::Closed);
        }
        if table.producing.len() >= self.max {
            return Err(Refusal::Full);
        }
        let id = table.next_id;
        table.next_id += 1;
        table.producing.insert(id, Producing { credit, abort: None });
        Ok(id)
    }

    /// Gives produced stream `id` the handle that stops its task; stops it at once if the stream was
    /// cancelled (or the connection ended) meanwhile.
    pub(crate) fn set_abort(&self, id: u64, abort: AbortHandle) {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        match table.producing.get_mut(&id) {
            Some(producing) => producing.abort = Some(abort),
            None => abort.abort(),
        }
    }

    /// Adds the consumer's grant to produced stream `id`.
    pub(crate) fn credit(&self, id: u64, credit: u64) -> bool {
        match self.lock().as_ref().and_then(|table| table.producing.get(&id)) {
            Some(producing) => {
                producing.credit.grant(credit);
                true
            }
            None => false,
        }
    }

    /// Stops produced stream `id` (its consumer cancelled it); whether it was live.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let removed = self.lock().as_mut().and_then(|table| table.producing.remove(&id));
        match removed {
            Some(producing) => {
                if let Some(abort) = producing.abort {
                    abort.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Produced stream `id` is over (its task ends).
    pub(crate) fn produced(&self, id: u64) {
        if let Some(table) = self.lock().as_mut() {
            table.producing.remove(&id);
        }
    }

    /// Registers a download of this side, call `call`, whose answer will name the stream.
    pub(crate) fn open(&self, call: u64, inbox: Arc<Inbox>) -> Result<(), Refusal> {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        if table.closed.is_some() {
            return Err(Refusal::Closed);
        }
        if table.consuming.len() + table.opening.len() >= self.max {
            return Err(Refusal::Full);
        }
        table.opening.insert(call, inbox);
        self.publish(table);
        Ok(())
    }

    /// Whether any download of this side awaits its answer.
    pub(crate) fn any_opening(&self) -> bool {
        self.opening.load(Ordering::Relaxed) > 0
    }

    /// The answer to download `call` came: a result (the stream's id, as JSON text) binds the stream
    /// before any of its items can arrive; an error drops it. Returns the id of a stream to cancel: one
    /// a download given up (timed out) opened after all.
    pub(crate) fn opened(&self, call: u64, subscription: Option<&str>) -> Option<Box<str>> {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        let Some(inbox) = table.opening.remove(&call) else {
            let index = table.abandoned.iter().position(|&abandoned| abandoned == call)?;
            table.abandoned.remove(index);
            return subscription.map(Box::from);
        };
        if let Some(subscription) = subscription {
            if table.consuming.contains_key(subscription) {
                // Items of the two could not be told apart: this one ends at once.
                inbox.end(End::Failed(
                    crate::error_object::ErrorObject::invalid_request().with_detail(format_args!(
                        "the producer named a stream {subscription} that is already live"
                    )),
                ));
            } else {
                table.consuming.insert(subscription.into(), inbox);
            }
        }
        self.publish(table);
        None
    }

    /// Download `call`, consumed by `inbox`, was given up before it was handed to its caller: forgets
    /// it, remembers the call (so that a late answer's stream is cancelled), and returns the id of the
    /// stream it had opened already, to cancel.
    pub(crate) fn abandon(&self, call: u64, inbox: &Arc<Inbox>) -> Option<Box<str>> {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        let opened = if table.opening.remove(&call).is_some() {
            if table.abandoned.len() >= REMEMBERED {
                table.abandoned.pop_front();
            }
            table.abandoned.push_back(call);
            None
        } else {
            let key = table
                .consuming
                .iter()
                .find(|(_, consumer)| Arc::ptr_eq(consumer, inbox))
                .map(|(key, _)| key.clone());
            if let Some(key) = &key {
                table.consuming.remove(key);
                table.ended(key);
            }
            key
        };
        self.publish(table);
        opened
    }

    /// Binds an upload of the other side, whose id is the JSON text `subscription`.
    pub(crate) fn bind(&self, subscription: &str, inbox: Arc<Inbox>) -> Result<(), Refusal> {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        if table.closed.is_some() {
            return Err(Refusal::Closed);
        }
        if table.consuming.contains_key(subscription) {
            return Err(Refusal::Taken);
        }
        if table.consuming.len() + table.opening.len() >= self.max {
            return Err(Refusal::Full);
        }
        table.consuming.insert(subscription.into(), inbox);
        self.publish(table);
        Ok(())
    }

    /// Whether this side consumes any stream (so that notifications may be items).
    pub(crate) fn any_consumed(&self) -> bool {
        self.consuming.load(Ordering::Relaxed) > 0
    }

    /// Hands what the producer sent to its stream's inbox.
    pub(crate) fn deliver(&self, subscription: &str, payload: Payload) -> Delivery {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        let Some(inbox) = table.consuming.get(subscription) else {
            // A late item (or end) of a stream that ended here is dropped.
            let late = table.ended.iter().any(|ended| &**ended == subscription);
            return if late { Delivery::Done } else { Delivery::Unknown };
        };
        match payload {
            Payload::Item(item) => match inbox.push(item) {
                Ok(()) => Delivery::Done,
                Err(Refused::Ended) => Delivery::Unknown,
                Err(Refused::Overrun) => {
                    table.consuming.remove(subscription);
                    table.ended(subscription);
                    self.publish(table);
                    Delivery::Overrun
                }
            },
            Payload::End(error) => {
                inbox.end(error.map_or(End::Finished, End::Failed));
                table.consuming.remove(subscription);
                table.ended(subscription);
                self.publish(table);
                Delivery::Done
            }
        }
    }

    /// The consumer of stream `subscription`, reading `inbox`, is gone; whether its stream was still
    /// live (then the producer should be told). Another stream of the same id (a producer may reuse an
    /// id once a stream ended) is left alone.
    pub(crate) fn forget(&self, subscription: &str, inbox: &Arc<Inbox>) -> bool {
        let mut guard = self.lock();
        let table = Self::made(&mut guard);
        let live = table
            .consuming
            .get(subscription)
            .is_some_and(|consumer| Arc::ptr_eq(consumer, inbox));
        if live {
            table.consuming.remove(subscription);
            table.ended(subscription);
            self.publish(table);
        }
        live
    }

    /// The connection ended: every stream ends, producers are stopped, consumers get `reason`.
    pub(crate) fn close(&self, reason: &CloseReason) {
        let (producing, consuming, opening) = {
            let mut guard = self.lock();
            let table = Self::made(&mut guard);
            if table.closed.is_some() {
                return;
            }
            table.closed = Some(reason.clone());
            let taken = (
                std::mem::take(&mut table.producing),
                std::mem::take(&mut table.consuming),
                std::mem::take(&mut table.opening),
            );
            self.publish(table);
            taken
        };
        for producing in producing.into_values() {
            if let Some(abort) = producing.abort {
                abort.abort();
            }
        }
        for inbox in consuming.into_values().chain(opening.into_values()) {
            inbox.end(End::Disconnected(reason.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn ids_are_unique_and_limits_hold() {
        let streams = Streams::new(2);
        let a = streams.produce(Arc::new(Credit::new(Some(1)))).unwrap();
        let b = streams.produce(Arc::new(Credit::new(Some(1)))).unwrap();
        assert_ne!(a, b);
        assert_eq!(streams.produce(Arc::new(Credit::new(None))), Err(Refusal::Full));
        assert!(streams.cancel(a));
        assert!(!streams.cancel(a));
        streams.bind("5", Arc::new(Inbox::new(4))).unwrap();
        assert_eq!(streams.bind("5", Arc::new(Inbox::new(4))), Err(Refusal::Taken));
        streams.open(9, Arc::new(Inbox::new(4))).unwrap();
        assert_eq!(streams.bind("6", Arc::new(Inbox::new(4))), Err(Refusal::Full));
    }

    #[test]
    fn a_connection_without_streams_has_no_table_and_a_closed_one_refuses_streams() {
        let streams = Streams::new(2);
        assert_eq!(streams.counts(), (0, 0));
        assert!(!streams.credit(1, 5), "no stream 1");
        assert!(!streams.cancel(1));
        streams.produced(1);
        assert!(streams.lock().is_none(), "looking made no table");
        streams.close(&CloseReason::Transport("gone".into()));
        assert_eq!(streams.produce(Arc::new(Credit::new(None))), Err(Refusal::Closed));
        assert_eq!(streams.open(1, Arc::new(Inbox::new(4))), Err(Refusal::Closed));
    }

    #[test]
    fn a_download_is_bound_by_its_answer_and_ends_with_the_connection() {
        let streams = Streams::new(8);
        let inbox = Arc::new(Inbox::new(4));
        streams.open(3, inbox.clone()).unwrap();
        assert_eq!(
            streams.deliver("1", Payload::Item(Bytes::from_static(b"0"))),
            Delivery::Unknown
        );
        assert_eq!(streams.opened(3, Some("1")), None);
        assert_eq!(
            streams.deliver("1", Payload::Item(Bytes::from_static(b"0"))),
            Delivery::Done
        );
        streams.close(&CloseReason::Transport("cut".into()));
        assert!(inbox.has_ended());
        assert_eq!(streams.open(4, Arc::new(Inbox::new(4))), Err(Refusal::Closed));
    }
}
