//! When reading the connection may find something: the transport's wake-ups, told apart from the task's
//! other wake-ups.
//!
//! The driver polls the transport (both its reads and its writes) with a waker of its own: the connection's
//! [`Shared`] state, whose wake-up raises [`READABLE`] on [`Shared::wake`] and wakes the task, which
//! registers itself there on every poll before it touches the transport. Once a read has returned
//! `Pending`, the transport has nothing more to read until it wakes a waker it was polled with, so a poll
//! of the task woken for something else (a frame queued by a caller, a call added) writes, and does not
//! read again for nothing.
//! (Writes are polled with the same waker so that a transport keeping one waker for both directions, or
//! whose writes wait on its reads, as TLS may, wakes it too; a write's wake-up then costs a read that may
//! find nothing.) Such a read costs tokio-tungstenite about 400 instructions (two waker registrations,
//! tungstenite's zeroing of its 2 KiB read chunk, tokio's readiness), and a connection making one call at a
//! time made one needless read a call: its task is polled once for the answer and once to write the next
//! request. A read the transport woke for is made at once, in the poll that finds the wake-up, as before.
//! Measured with callgrind on the benchmark (`bench/README.md`), instructions a call: one call at a time,
//! calling side 13,016 → 12,351, answering side 10,753 → 10,883 (the signal's registration and wake-up
//! cost a little on every poll); server → client calls 7,157 → 7,019 and 5,991 → 5,962; fan-in 7,044 →
//! 6,962 and 5,855 → 5,881; pipelined unchanged.
//!
//! The waker is the connection's state itself, already shared: no allocation, and one flag of the
//! connection's signal.

use std::sync::Arc;
use std::task::Context;

use futures::task::{ArcWake, WakerRef, waker_ref};

use super::shared::Shared;
use super::signal::READABLE;

/// The driver's side: whether its next read may find something.
#[derive(Debug)]
pub(super) struct Reads {
    /// False once a read returned `Pending`, until the transport wakes the connection's waker.
    ready: bool,
}

impl Reads {
    /// Reads that may find something: nothing has been read yet.
    pub(super) fn new() -> Self {
        Self { ready: true }
    }

    /// Whether a read may find something: no read has returned `Pending` since the last that found
    /// something, or the transport woke the connection's waker since one did (taken now).
    pub(super) fn may_read(&mut self, shared: &Shared) -> bool {
        if !self.ready {
            self.ready = shared.wake.take(READABLE);
        }
        self.ready
    }

    /// A read returned `Pending`: the next read waits for the transport's wake-up, unless one came already
    /// in this poll (what came meanwhile, a write's wake-up, a stream that yields by waking itself); then
    /// the task is woken again to read at its next poll.
    pub(super) fn pending(&mut self, shared: &Shared, cx: &Context<'_>) {
        self.ready = shared.wake.take(READABLE);
        if self.ready {
            cx.waker().wake_by_ref();
        }
    }

    /// The waker to poll the transport with: waking it raises [`READABLE`] on [`Shared::wake`] and wakes the
    /// task registered on that signal (see [`Signal::register`](super::signal::Signal::register)).
    pub(super) fn waker(shared: &Arc<Shared>) -> WakerRef<'_> {
        waker_ref(shared)
    }
}

/// The transport's waker (see [`Reads::waker`]).
impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.wake.raise_and_wake(READABLE);
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

    /// A task's counting waker, and the waker.
    fn task() -> (Arc<Task>, Waker) {
        let task = Arc::new(Task::default());
        let waker = futures::task::waker(task.clone());
        (task, waker)
    }

    fn woken(task: &Task) -> usize {
        task.0.load(Ordering::SeqCst)
    }

    #[test]
    fn after_a_pending_read_the_transports_wake_up_wakes_the_task_and_lets_it_read_again() {
        let shared = shared();
        let (task, task_waker) = task();
        let cx = Context::from_waker(&task_waker);
        let mut reads = Reads::new();
        shared.wake.register(&cx);
        assert!(reads.may_read(&shared), "nothing read yet: a read may find something");
        assert!(reads.may_read(&shared), "reads that find something go on");
        reads.pending(&shared, &cx);
        assert_eq!(woken(&task), 0);
        // What the transport does when data arrives after its `Pending`: wakes the waker it was polled with.
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 1, "the task is woken");
        shared.wake.register(&cx);
        assert!(reads.may_read(&shared));
        assert!(reads.may_read(&shared), "until a read returns Pending again");
        reads.pending(&shared, &cx);
        assert!(!reads.may_read(&shared), "not woken by the transport since");
        shared.wake.register(&cx);
        assert!(!reads.may_read(&shared), "the task's other wake-ups do not count");
        assert_eq!(woken(&task), 1);
    }

    #[test]
    fn every_wake_up_of_the_transport_wakes_the_task_even_with_the_flag_still_raised() {
        // A transport keeping one waker for both directions wakes it for a write as well, maybe while a
        // read's wake-up is still untaken (reads that found something leave it so).
        let shared = shared();
        let (task, task_waker) = task();
        let cx = Context::from_waker(&task_waker);
        shared.wake.register(&cx);
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 1);
        shared.wake.register(&cx);
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 2, "woken again although the flag was raised already");
    }

    #[test]
    fn a_wake_up_before_the_pending_read_returned_makes_the_task_poll_and_read_again() {
        let shared = shared();
        let (task, task_waker) = task();
        let cx = Context::from_waker(&task_waker);
        let mut reads = Reads::new();
        // Woken before the read returned `Pending` (what came meanwhile, a stream that yields by waking
        // itself), with the task's waker taken by an earlier wake-up of this poll.
        shared.wake.register(&cx);
        Reads::waker(&shared).wake_by_ref();
        Reads::waker(&shared).wake_by_ref();
        assert_eq!(woken(&task), 1);
        reads.pending(&shared, &cx);
        assert_eq!(woken(&task), 2, "the task wakes itself");
        assert!(reads.may_read(&shared), "and reads at its next poll");
        reads.pending(&shared, &cx);
        assert_eq!(woken(&task), 2, "the wake-up counted once");
        assert!(!reads.may_read(&shared));
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
