//! When reading the connection may find something: the transport's wake-ups for reading, told apart from
//! the task's other wake-ups.
//!
//! The driver reads the transport with a waker of its own: the connection's [`Shared`] state, whose wake-up
//! raises [`Shared::reads`] and wakes the task waiting for it. Once a read has returned `Pending`, the
//! transport has nothing more until it wakes the waker it was read with (the contract of
//! `Stream::poll_next`), so a poll of the task woken for something else (a frame queued by a caller, a
//! call added) writes, and does not read again for nothing. Such a read costs tokio-tungstenite about 400
//! instructions (two waker registrations, tungstenite's zeroing of its 2 KiB read chunk, tokio's
//! readiness), and a connection making one call at a time made one a call: its task is woken once for the
//! answer and once for the next request. A read the transport woke for is made at once, in the poll that
//! finds the wake-up, as before. Measured with callgrind on the benchmark (`bench/README.md`), instructions
//! a call: one call at a time, calling side 13,083 → 12,399, answering side 10,782 → 10,897 (the signal's
//! wake-up costs a little on every read); server → client calls 7,157 → 6,994 and 5,991 → 5,952; fan-in
//! 7,011 → 6,921 and 5,899 → 5,878; pipelined unchanged.
//!
//! The waker is the connection's state itself, already shared: no allocation, and 32 bytes a connection
//! for the signal.

use std::sync::Arc;
use std::task::Context;

use futures::task::{ArcWake, WakerRef, waker_ref};

use super::shared::Shared;
use super::signal::ONLY;

/// The driver's side: whether its next read may find something.
#[derive(Debug)]
pub(super) struct Reads {
    /// False once a read returned `Pending`, until the transport wakes the reads' waker.
    ready: bool,
}

impl Reads {
    /// Reads that may find something: nothing has been read yet.
    pub(super) fn new() -> Self {
        Self { ready: true }
    }

    /// Whether a read may find something: no read has returned `Pending` since the last that found
    /// something, or the transport woke the reads' waker since one did (taken now). Otherwise `cx`'s waker
    /// is registered to be woken when it does.
    pub(super) fn may_read(&mut self, shared: &Shared, cx: &mut Context<'_>) -> bool {
        if !self.ready && shared.reads.poll_wait(ONLY, cx).is_ready() {
            self.ready = true;
        }
        self.ready
    }

    /// A read returned `Pending`: `cx`'s waker is registered to be woken with the reads' waker, and the next
    /// read waits for that. If the transport woke the reads' waker already (what came after the read, or
    /// at once, as tokio does when the task has spent its budget), that wake-up may have found no task
    /// to wake: the task wakes itself, and its next poll reads.
    pub(super) fn pending(&mut self, shared: &Shared, cx: &mut Context<'_>) {
        self.ready = shared.reads.poll_wait(ONLY, cx).is_ready();
        if self.ready {
            cx.waker().wake_by_ref();
        }
    }

    /// The waker to read with: waking it raises [`Shared::reads`] and wakes the task that waits for it.
    pub(super) fn waker(shared: &Arc<Shared>) -> WakerRef<'_> {
        waker_ref(shared)
    }
}

/// The reads' waker (see [`Reads::waker`]).
impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.reads.raise(ONLY);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use std::task::Waker;

    use super::*;
    use crate::PeerConfig;
    use crate::peer::shared::Ids;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(
            Arc::new(PeerConfig::default()),
            Ids::Own(Default::default()),
            Default::default(),
        ))
    }

    /// A task's waker that counts its wake-ups.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl ArcWake for Task {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn woken(task: &Task) -> usize {
        task.0.load(Ordering::SeqCst)
    }

    #[test]
    fn after_a_pending_read_the_transports_wake_up_wakes_the_task_and_lets_it_read_again() {
        let shared = shared();
        let task = Arc::new(Task::default());
        let task_waker = futures::task::waker(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let mut reads = Reads::new();
        assert!(
            reads.may_read(&shared, &mut cx),
            "nothing read yet: a read may find something"
        );
        assert!(reads.may_read(&shared, &mut cx), "reads that find something go on");
        reads.pending(&shared, &mut cx);
        // What the transport does when data arrives after its `Pending`: wakes the waker it was read with.
        // The task polled nothing else since its read.
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 1, "the task is woken");
        assert!(reads.may_read(&shared, &mut cx));
        assert!(reads.may_read(&shared, &mut cx), "until a read returns Pending again");
        reads.pending(&shared, &mut cx);
        assert!(!reads.may_read(&shared, &mut cx), "not woken by the transport since");
        assert!(
            !reads.may_read(&shared, &mut cx),
            "the task's other wake-ups do not count"
        );
        assert_eq!(woken(&task), 1);
    }

    #[test]
    fn a_wake_up_before_the_pending_read_returned_makes_the_task_poll_and_read_again() {
        let shared = shared();
        let task = Arc::new(Task::default());
        let task_waker = futures::task::waker(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let mut reads = Reads::new();
        // Woken before the read returned `Pending` (what came meanwhile; tokio's wake-up when the task's
        // budget is spent): nobody was registered to be woken then.
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 0);
        reads.pending(&shared, &mut cx);
        assert_eq!(woken(&task), 1, "the task wakes itself");
        assert!(reads.may_read(&shared, &mut cx), "and reads at its next poll");
        reads.pending(&shared, &mut cx);
        assert_eq!(woken(&task), 1, "the wake-up counted once");
        assert!(!reads.may_read(&shared, &mut cx));
    }

    #[test]
    fn the_reads_waker_is_the_connections_and_takes_no_allocation() {
        let shared = shared();
        let before = Arc::strong_count(&shared);
        let waker: &Waker = &Reads::waker(&shared);
        assert_eq!(Arc::strong_count(&shared), before, "borrowed, not counted");
        assert!(waker.will_wake(&Reads::waker(&shared)), "the same waker every time");
    }
}
