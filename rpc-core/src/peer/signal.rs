//! A wake-up for the connection's own task: raised by anyone, awaited by one waiter.
//!
//! The connection's task waits for several things at once on every turn (frames queued, calls added, an
//! earlier deadline, handlers done, a close asked for). With a `tokio::sync::Notify` each of those waits
//! registers in a locked list and unregisters when the turn ends, a few times per turn; a [`Signal`] is a
//! set of flags and one registered waker, so waiting costs an atomic operation and a waker comparison. The
//! connection has one signal for all of its task's wake-ups (the flags below), owned by its shared state
//! and given to each part that raises or waits for one of them.

use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// One flag of a [`Signal`]: a bit.
pub(crate) type Flag = u8;

/// The flag of a signal that has one.
#[cfg(test)]
pub(crate) const ONLY: Flag = 1;

// The driver's wake-ups: the flags of the connection's one signal, `Shared::wake`. One signal for all of
// them, not one each: one waker (and one cache line) for all of them, and 32 bytes a connection side
// instead of 160 (an idle connection, both ends: 13,447 → 13,242 bytes in the benchmark's memory scenario
// with 3,000 connections; `bench/README.md`).

/// The transport woke the connection's waker: a read may find something (see `reads.rs`).
pub(crate) const READABLE: Flag = 1;
/// A frame was queued into the writer's empty queue, or the queue was closed (see `queue.rs`).
pub(crate) const FILLED: Flag = 1 << 1;
/// Calls were added to the pending table while the driver watches it (see `Pending::watch_growth`).
pub(crate) const GREW: Flag = 1 << 2;
/// A call brought an earlier deadline than the table's, deadlines to set, or the first call into an empty
/// table of a connection timed for idleness (see `Pending::poll_deadline_moved`).
pub(crate) const DEADLINE_MOVED: Flag = 1 << 3;
/// A handler task ended (see `handlers.rs`).
pub(crate) const FINISHED: Flag = 1 << 4;
/// A close or a graceful close was asked for (see `lifecycle.rs`).
pub(crate) const MOVED: Flag = 1 << 5;
/// A close was asked for: the writer's wake-up (see `lifecycle.rs`).
pub(crate) const CLOSE_ASKED: Flag = 1 << 6;

/// Flags with one waiter: [`raise`](Self::raise) sets a flag and wakes the waiter; the waiter registers its
/// waker once per poll ([`register`](Self::register)), before it looks at any flag, and then
/// [`poll_take`](Self::poll_take) is ready for each flag that is set, clearing it. A raise while nobody
/// waits is kept until the next wait, and raises of one flag before a wait count as one.
///
/// A signal holds up to eight flags, all awaited by the same task (the connection's driver): they share
/// its one registered waker, 32 bytes for all of them instead of 32 bytes each. Only one task may wait on
/// a signal (the last one to register is the one woken). A raise of one flag wakes the waiter even while
/// another is set.
#[derive(Default)]
pub(crate) struct Signal {
    raised: AtomicU8,
    waiter: AtomicWaker,
}

impl Signal {
    /// Sets `flag` and wakes the waiter, if any.
    pub(crate) fn raise(&self, flag: Flag) {
        // Already set: the waiter was woken then, or (set quietly by the waiter's own task, see `set`) will
        // find it set before it waits again. Another flag's wake-up may have taken the waker: the task is
        // woken already then, and looks at every flag it waits for before it waits again. Several flags
        // raised at once wake the waiter if any of them was not set.
        if self.raised.fetch_or(flag, Ordering::AcqRel) & flag != flag {
            self.waiter.wake();
        }
    }

    /// Sets `flag` without waking anyone: only for the waiter's own task, while it runs and before it
    /// waits again (waking a running task only makes it run once more for nothing).
    pub(crate) fn set(&self, flag: Flag) {
        self.raised.fetch_or(flag, Ordering::AcqRel);
    }

    /// Takes `flag` (or every flag of a mask) if it is set: whether any was.
    pub(crate) fn take(&self, flag: Flag) -> bool {
        self.raised.fetch_and(!flag, Ordering::AcqRel) & flag != 0
    }

    /// Whether `flag` is set now (it stays set).
    pub(crate) fn is_raised(&self, flag: Flag) -> bool {
        self.raised.load(Ordering::Acquire) & flag != 0
    }

    /// Registers `cx`'s waker as the waiter's, whatever is set: once per poll of the waiting task, before
    /// it looks at any flag with [`poll_take`](Self::poll_take). (Registering costs two atomic operations
    /// and a waker comparison; registered once rather than at every wait, the benchmark's calls made one at
    /// a time took about 180 instructions fewer a call on each side.)
    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.waiter.register(cx.waker());
    }

    /// Sets `flag` and wakes the waiter even if the flag was set already: for a flag standing for a waker
    /// handed to others (see `reads.rs`), whose waiter registers on every poll and must be woken by every
    /// wake-up, not only the first since it last took the flag.
    pub(crate) fn raise_and_wake(&self, flag: Flag) {
        self.raised.fetch_or(flag, Ordering::AcqRel);
        self.waiter.wake();
    }

    /// Ready (clearing it) if `flag` is set; otherwise pending, and the waiter is woken when it is raised:
    /// the waiter registered its waker with [`register`](Self::register) earlier in this poll, so that a
    /// raise after that registration wakes it even if it came before this look.
    pub(crate) fn poll_take(&self, flag: Flag) -> Poll<()> {
        if self.take(flag) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once `flag` is set, clearing it.
    #[cfg(test)]
    pub(crate) async fn wait(&self, flag: Flag) {
        std::future::poll_fn(|cx| {
            self.register(cx);
            self.poll_take(flag)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::*;

    #[test]
    fn a_raise_before_the_wait_is_kept_and_counts_once() {
        let signal = Signal::default();
        assert!(signal.wait(ONLY).now_or_never().is_none());
        signal.raise(ONLY);
        signal.raise(ONLY);
        assert!(signal.wait(ONLY).now_or_never().is_some());
        assert!(
            signal.wait(ONLY).now_or_never().is_none(),
            "two raises before a wait count as one"
        );
    }

    #[test]
    fn a_flag_set_quietly_is_seen_by_the_next_wait() {
        let signal = Signal::default();
        signal.set(ONLY);
        assert!(signal.wait(ONLY).now_or_never().is_some());
        assert!(signal.wait(ONLY).now_or_never().is_none());
    }

    #[test]
    fn flags_of_one_signal_are_kept_apart() {
        const A: Flag = 1;
        const B: Flag = 2;
        let signal = Signal::default();
        signal.raise(A);
        assert!(signal.wait(B).now_or_never().is_none(), "B was not raised");
        assert!(signal.wait(A).now_or_never().is_some());
        signal.raise(B);
        signal.raise(A);
        assert!(signal.wait(B).now_or_never().is_some());
        assert!(signal.wait(A).now_or_never().is_some(), "taking B left A raised");
        assert!(signal.wait(A).now_or_never().is_none());
    }

    #[test]
    fn a_raise_after_the_registration_wakes_the_waiter_whenever_it_looks() {
        #[derive(Default)]
        struct Count(std::sync::atomic::AtomicUsize);
        impl futures::task::ArcWake for Count {
            fn wake_by_ref(this: &Arc<Self>) {
                this.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        const A: Flag = 1;
        const B: Flag = 2;
        let count = Arc::new(Count::default());
        let waker = futures::task::waker(count.clone());
        let woken = || count.0.load(Ordering::SeqCst);
        let signal = Signal::default();
        // Raised between the registration and the look: seen by the look, and the waiter woken (it polls
        // once more, and registers again).
        signal.register(&Context::from_waker(&waker));
        signal.raise(A);
        assert_eq!(woken(), 1);
        assert!(signal.poll_take(A).is_ready());
        // Raised after the look: the waiter is woken, and its next poll sees it.
        signal.register(&Context::from_waker(&waker));
        assert!(signal.poll_take(A).is_pending() && signal.poll_take(B).is_pending());
        signal.raise(B);
        assert_eq!(woken(), 2);
        signal.register(&Context::from_waker(&waker));
        assert!(signal.poll_take(A).is_pending());
        assert!(signal.poll_take(B).is_ready());
        // Several flags raised at once wake it if any of them was not set.
        signal.register(&Context::from_waker(&waker));
        signal.set(A);
        signal.raise(A | B);
        assert_eq!(woken(), 3);
    }

    #[tokio::test]
    async fn a_raise_of_either_flag_wakes_a_task_waiting_for_both() {
        const A: Flag = 1;
        const B: Flag = 2;
        for flag in [A, B] {
            let signal = Arc::new(Signal::default());
            let waiter = tokio::spawn({
                let signal = signal.clone();
                async move {
                    std::future::poll_fn(|cx| {
                        signal.register(cx);
                        match (signal.poll_take(A), signal.poll_take(B)) {
                            (Poll::Pending, Poll::Pending) => Poll::Pending,
                            _ => Poll::Ready(()),
                        }
                    })
                    .await;
                }
            });
            // On this one-thread runtime the waiter runs, and registers, before the raise.
            tokio::task::yield_now().await;
            signal.raise(flag);
            finishes(waiter, "the waiter was woken").await;
        }
    }

    #[tokio::test]
    async fn a_raise_from_another_task_wakes_the_waiter() {
        // A lost wake-up would leave the waiter waiting: the test fails after 10 s instead of hanging.
        let signal = Arc::new(Signal::default());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move {
                for _ in 0..1000 {
                    signal.wait(ONLY).await;
                }
            }
        });
        // Each raise waits for the last to be taken, so that none is merged with another.
        for _ in 0..1000 {
            while signal.raised.load(Ordering::Acquire) != 0 {
                tokio::task::yield_now().await;
            }
            signal.raise(ONLY);
        }
        finishes(waiter, "the waiter saw every raise").await;
    }

    /// Awaits `task`, failing after 10 s (a lost wake-up leaves it pending) or if it panicked.
    async fn finishes(task: tokio::task::JoinHandle<()>, what: &str) {
        let limit = std::time::Duration::from_secs(10);
        tokio::time::timeout(limit, task)
            .await
            .unwrap_or_else(|_| panic!("not done within {limit:?}: {what}"))
            .expect("the task did not panic");
    }
}
