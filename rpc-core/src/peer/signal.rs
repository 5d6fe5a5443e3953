//! A wake-up for the connection's own task: raised by anyone, awaited by one waiter.
//!
//! The connection's task waits for several things at once on every turn (frames queued, calls added, an
//! earlier deadline, handlers done, a close asked for). With a `tokio::sync::Notify` each of those waits
//! registers in a locked list and unregisters when the turn ends, a few times per turn; a [`Signal`] is a
//! flag and one registered waker, so waiting costs an atomic swap and a waker comparison.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// A flag with one waiter: [`raise`](Self::raise) sets it and wakes the waiter; [`wait`](Self::wait)
/// resolves once it is set, and clears it. A raise while nobody waits is kept until the next wait, and
/// raises before a wait count as one.
///
/// Only one task may wait on a signal (the last one to poll is the one woken).
#[derive(Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

impl Signal {
    /// Sets the flag and wakes the waiter, if any.
    pub(crate) fn raise(&self) {
        // Already set: the waiter was woken then, or (set quietly by the waiter's own task, see `set`) will
        // find it set before it waits again.
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.waiter.wake();
        }
    }

    /// Sets the flag without waking anyone: only for the waiter's own task, while it runs and before it
    /// waits again (waking a running task only makes it run once more for nothing).
    pub(crate) fn set(&self) {
        self.raised.store(true, Ordering::Release);
    }

    /// Ready (clearing the flag) once it is set; otherwise registers `cx`'s waker.
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waiter.register(cx.waker());
        // Raised between the first look and the registration: its wake-up may have found no waker.
        if self.raised.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once the flag is set, clearing it.
    #[cfg(test)]
    pub(crate) async fn wait(&self) {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await;
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
        assert!(signal.wait().now_or_never().is_none());
        signal.raise();
        signal.raise();
        assert!(signal.wait().now_or_never().is_some());
        assert!(
            signal.wait().now_or_never().is_none(),
            "two raises before a wait count as one"
        );
    }

    #[test]
    fn a_flag_set_quietly_is_seen_by_the_next_wait() {
        let signal = Signal::default();
        signal.set();
        assert!(signal.wait().now_or_never().is_some());
        assert!(signal.wait().now_or_never().is_none());
    }

    #[tokio::test]
    async fn a_raise_from_another_task_wakes_the_waiter() {
        // A lost wake-up would leave the waiter waiting: the test fails after 10 s instead of hanging.
        let limit = std::time::Duration::from_secs(10);
        let signal = Arc::new(Signal::default());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move {
                for _ in 0..1000 {
                    signal.wait().await;
                }
            }
        });
        // Each raise waits for the last to be taken, so that none is merged with another.
        for _ in 0..1000 {
            while signal.raised.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
            }
            signal.raise();
        }
        tokio::time::timeout(limit, waiter)
            .await
            .expect("the waiter saw every raise")
            .expect("the waiter did not panic");
    }
}
