//! The wait on the connection's one timer, polled only when polling can tell something new.
//!
//! The driver keeps one `tokio::time::Sleep` for everything timed and moves it only when the earliest
//! deadline changes. Between moves, the connection's task is polled many times for other reasons (frames
//! read, frames queued): polling the sleep again each time (the runtime's cooperative budget, the timer's
//! state, the waker's registration) cost about 120 instructions a poll, two polls a call one at a time.
//! A sleep polled while the task has cooperative budget left registers the waker it was polled with, and
//! the timer sets its state before it wakes that waker: while the waker is the same and the state says not
//! fired, there is nothing to poll for. (Polled with the budget spent, a sleep registers nothing: it only
//! has the task polled again. It is polled again then.)

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::Sleep;

/// Whether the connection's sleep needs polling: the waker it holds since it was last set, if polled.
#[derive(Default)]
pub(super) struct TimerWait {
    /// The waker the sleep was last polled with, since it was last set (`None`: not polled since).
    registered: Option<Waker>,
}

impl TimerWait {
    /// The sleep was set to another deadline: it must be polled again to be registered.
    pub(super) fn reset(&mut self) {
        self.registered = None;
    }

    /// Ready once `sleep` has fired. Polls it only when it has not been polled with `cx`'s waker (and
    /// budget left) since it was set (see [`reset`](Self::reset)), or when it has fired; otherwise
    /// `Pending`, the waker it holds being the one that would be registered.
    pub(super) fn poll(&mut self, sleep: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(waker) = &self.registered
            && waker.will_wake(cx.waker())
            && !sleep.is_elapsed()
        {
            return Poll::Pending;
        }
        let budget = tokio::task::coop::has_budget_remaining();
        if sleep.poll(cx).is_ready() {
            self.registered = None;
            return Poll::Ready(());
        }
        if !budget {
            self.registered = None;
        } else if !self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use futures::task::noop_waker;
    use tokio::time::{Instant, sleep_until};

    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_registered_sleep_is_not_polled_again_until_it_fires() {
        let sleep = sleep_until(Instant::now() + Duration::from_secs(1));
        tokio::pin!(sleep);
        let mut wait = TimerWait::default();
        let started = Instant::now();
        let mut polls = 0;
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| {
                polls += 1;
                let fired = wait.poll(sleep.as_mut(), cx);
                if polls < 3 {
                    // Polled again for other reasons: pending, the timer untouched.
                    assert!(fired.is_pending());
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                fired
            }),
        )
        .await;
        assert!(waited.is_ok(), "the timer's wake-up was lost");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "woken by the timer, at its deadline"
        );
        assert!(
            polls >= 4,
            "woken by the timer after the polls for other reasons, {polls} polls"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_sleep_polled_with_the_budget_spent_is_polled_again() {
        let sleep = sleep_until(Instant::now() + Duration::from_secs(1));
        tokio::pin!(sleep);
        let mut wait = TimerWait::default();
        let started = Instant::now();
        let mut first = true;
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| {
                if std::mem::take(&mut first) {
                    // The task's budget spent (as by a long burst of reads): the sleep registers nothing.
                    while let Poll::Ready(spent) = tokio::task::coop::poll_proceed(cx) {
                        spent.made_progress();
                    }
                    assert!(wait.poll(sleep.as_mut(), cx).is_pending());
                    return Poll::Pending;
                }
                wait.poll(sleep.as_mut(), cx)
            }),
        )
        .await;
        assert!(waited.is_ok(), "the timer's wake-up was lost");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_reset_or_another_waker_polls_the_sleep_again() {
        let sleep = sleep_until(Instant::now() + Duration::from_secs(5));
        tokio::pin!(sleep);
        let mut wait = TimerWait::default();
        // Registered with a waker that wakes nobody.
        let noop = noop_waker();
        assert!(wait.poll(sleep.as_mut(), &mut Context::from_waker(&noop)).is_pending());
        let started = Instant::now();
        // The task's own waker is registered on its first poll, although the sleep was polled before.
        let waited = tokio::time::timeout(Duration::from_secs(10), poll_fn(|cx| wait.poll(sleep.as_mut(), cx))).await;
        assert!(waited.is_ok(), "the sleep kept the waker that wakes nobody");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // Set again: the new deadline is registered, not the fired one kept.
        sleep.as_mut().reset(Instant::now() + Duration::from_secs(2));
        wait.reset();
        let started = Instant::now();
        poll_fn(|cx| wait.poll(sleep.as_mut(), cx)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
