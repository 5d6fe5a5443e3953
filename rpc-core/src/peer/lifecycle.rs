//! Where a connection is in its life, and who is told when it moves.
//!
//! Three facts, each set once: this side asked to close (with which frame), a graceful close is under way
//! (until when), the connection has ended (why). The driver is told of the first two by the connection's
//! [`Signal`] (given to each call that sets them), the writer of the first, and anyone awaiting the end
//! (handles, relays) by a `Notify`. A plain lock holds them: they change a handful of times in a
//! connection's life, and a `watch` channel cost each connection about 440 bytes where this costs about 100
//! until the first of them is set.

use std::pin::pin;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::signal::{CLOSE_ASKED, MOVED, Signal};
use crate::close::{CloseFrame, CloseReason};

/// A graceful close under way: no new request is started, and the connection closes with `frame` once the
/// running ones are done, or at `deadline`.
#[derive(Debug, Clone)]
pub(crate) struct Drain {
    pub(crate) frame: CloseFrame,
    pub(crate) deadline: Instant,
}

#[derive(Default)]
struct State {
    close_request: Option<CloseFrame>,
    drain: Option<Drain>,
    ended: Option<CloseReason>,
}

/// The life of one connection (see the module's documentation).
#[derive(Default)]
pub(crate) struct Lifecycle {
    /// Made when the first of the three facts is set (an idle connection keeps 16 bytes, not 130).
    state: Mutex<Option<Box<State>>>,
    /// Wakes everyone awaiting the end.
    ended: Notify,
}

impl Lifecycle {
    fn lock(&self) -> MutexGuard<'_, Option<Box<State>>> {
        // Each member is set at most once; a panic elsewhere leaves nothing half-done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets one member through `set` (which says whether it did), making the state if need be.
    fn set(&self, set: impl FnOnce(&mut State) -> bool) -> bool {
        set(self.lock().get_or_insert_default())
    }

    /// Reads one member through `get`.
    fn get<T>(&self, get: impl FnOnce(&State) -> Option<T>) -> Option<T> {
        self.lock().as_deref().and_then(get)
    }

    /// Asks for the connection to close with `frame`; the first request wins (`false` for a later one). Raises
    /// [`MOVED`] (the driver's wake-up) and [`CLOSE_ASKED`] (the writer's, in the driver's task too) on `wake`.
    pub(crate) fn request_close(&self, frame: CloseFrame, wake: &Signal) -> bool {
        if !self.set(|state| set_once(&mut state.close_request, frame)) {
            return false;
        }
        wake.raise(MOVED | CLOSE_ASKED);
        true
    }

    /// Starts a graceful close; the first one wins (`false` for a later one). Raises [`MOVED`] on `wake`.
    pub(crate) fn start_drain(&self, drain: Drain, wake: &Signal) -> bool {
        if !self.set(|state| set_once(&mut state.drain, drain)) {
            return false;
        }
        wake.raise(MOVED);
        true
    }

    /// Records why the connection ended; the first reason wins (`false` for a later one).
    pub(crate) fn end(&self, reason: CloseReason) -> bool {
        if !self.set(|state| set_once(&mut state.ended, reason)) {
            return false;
        }
        self.ended.notify_waiters();
        true
    }

    /// The close this side asked for, if it has.
    pub(crate) fn close_request(&self) -> Option<CloseFrame> {
        self.get(|state| state.close_request.clone())
    }

    /// Whether a close was asked for, and the graceful close under way, in one look.
    pub(crate) fn requests(&self) -> (bool, Option<Drain>) {
        match self.lock().as_deref() {
            Some(state) => (state.close_request.is_some(), state.drain.clone()),
            None => (false, None),
        }
    }

    /// Why the connection ended, once it has.
    pub(crate) fn ended(&self) -> Option<CloseReason> {
        self.get(|state| state.ended.clone())
    }

    /// Whether the connection has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.lock().as_deref().is_some_and(|state| state.ended.is_some())
    }

    /// Waits until the connection has ended and tells why.
    pub(crate) async fn wait_ended(&self) -> CloseReason {
        loop {
            let mut ended = pin!(self.ended.notified());
            ended.as_mut().enable();
            if let Some(reason) = self.ended() {
                return reason;
            }
            ended.await;
        }
    }

    /// Ready when a close or a drain may have been asked for since it was last ready (the driver's wait;
    /// one waiter only, registered on `wake` in this poll).
    pub(crate) fn poll_moved(&self, wake: &Signal) -> std::task::Poll<()> {
        wake.poll_take(MOVED)
    }

    /// Whether a close may have been asked for since [`poll_close_asked`](Self::poll_close_asked) was
    /// last ready: it would be ready now. One load, nothing taken or registered.
    pub(crate) fn close_may_be_asked(&self, wake: &Signal) -> bool {
        wake.is_raised(CLOSE_ASKED)
    }

    /// Ready when a close may have been asked for since it was last ready (the writer's wait; one waiter
    /// only, registered on `wake` in this poll).
    pub(crate) fn poll_close_asked(&self, wake: &Signal) -> std::task::Poll<()> {
        wake.poll_take(CLOSE_ASKED)
    }
}

/// Fills `slot` with `value` unless it holds one already; whether it did.
fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::close::CloseCode;

    #[test]
    fn the_first_request_wins_and_wakes_the_driver_and_the_writer_once() {
        let life = Lifecycle::default();
        let wake = Signal::default();
        assert!(life.poll_moved(&wake).is_pending());
        assert!(life.request_close(CloseFrame::new(CloseCode::GOING_AWAY, "first"), &wake));
        assert!(!life.request_close(CloseFrame::new(CloseCode::NORMAL, "second"), &wake));
        assert_eq!(life.close_request().map(|f| f.code), Some(CloseCode::GOING_AWAY));
        assert!(life.poll_moved(&wake).is_ready());
        let close_asked = || life.poll_close_asked(&wake);
        assert!(close_asked().is_ready());
        assert!(close_asked().is_pending(), "one request, one wake-up");
        let drain = Drain {
            frame: CloseFrame::normal(),
            deadline: Instant::now(),
        };
        assert!(life.start_drain(drain.clone(), &wake));
        assert!(!life.start_drain(drain, &wake));
        assert!(life.poll_moved(&wake).is_ready());
        assert!(close_asked().is_pending(), "a drain is the driver's business");
        assert!(matches!(life.requests(), (true, Some(_))));
    }

    #[tokio::test]
    async fn everyone_awaiting_the_end_learns_the_first_reason() {
        let life = Arc::new(Lifecycle::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                tokio::spawn({
                    let life = life.clone();
                    async move { life.wait_ended().await }
                })
            })
            .collect();
        assert!(!life.has_ended());
        assert!(life.end(CloseReason::Local(CloseFrame::normal())));
        assert!(!life.end(CloseReason::Transport("later".into())));
        for waiter in waiters {
            assert!(matches!(waiter.await.unwrap(), CloseReason::Local(_)));
        }
        // Awaited after the end, it returns at once.
        assert!(matches!(life.wait_ended().await, CloseReason::Local(_)));
    }
}
