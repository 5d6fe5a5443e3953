//! A consumer's buffer: the items of one stream the other side produces, waiting to be taken, bounded by
//! the credit this side granted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::close::CloseReason;
use crate::error_object::ErrorObject;

/// How a consumed stream ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// The producer ended it.
    Finished,
    /// The producer failed with this error.
    Failed(ErrorObject),
    /// The producer sent beyond the credit it was granted (the window).
    Overrun(u32),
    /// The connection ended.
    Disconnected(CloseReason),
}

/// What taking from an inbox gave.
pub(crate) enum Taken {
    Item(Bytes),
    End(End),
}

/// Why an item was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The stream has ended already (the item is dropped).
    Ended,
    /// The item is beyond the credit granted: the stream ends with [`End::Overrun`].
    Overrun,
}

struct State {
    items: VecDeque<Bytes>,
    /// Items the producer may still send: granted and not yet received.
    credit: u64,
    end: Option<End>,
    waker: Option<Waker>,
}

/// The buffer of one consumed stream, shared by the driver (which puts items in) and the consuming
/// [`Subscription`](crate::Subscription) or [`Upload`](crate::Upload) (which takes them). It holds at most
/// the window: more is an overrun.
pub(crate) struct Inbox {
    state: Mutex<State>,
    window: u32,
}

impl Inbox {
    /// An inbox granting `window` items to start with.
    pub(crate) fn new(window: u32) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                credit: u64::from(window),
                end: None,
                waker: None,
            }),
            window,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// Puts a received item in.
    pub(crate) fn push(&self, item: Bytes) -> Result<(), Refused> {
        let mut state = self.state();
        if state.end.is_some() {
            return Err(Refused::Ended);
        }
        if state.credit == 0 {
            state.end = Some(End::Overrun(self.window));
            wake(&mut state);
            return Err(Refused::Overrun);
        }
        state.credit -= 1;
        state.items.push_back(item);
        wake(&mut state);
        Ok(())
    }

    /// Ends the stream (the first end wins); items already in are still taken first, except on a
    /// disconnection, which the consumer learns at once.
    pub(crate) fn end(&self, end: End) {
        let mut state = self.state();
        if state.end.is_none() {
            if matches!(end, End::Disconnected(_)) {
                state.items.clear();
            }
            state.end = Some(end);
            wake(&mut state);
        }
    }

    /// Records that `credit` more items were granted to the producer.
    pub(crate) fn granted(&self, credit: u64) {
        self.state().credit += credit;
    }

    /// Whether the stream has ended (items may still wait to be taken).
    pub(crate) fn has_ended(&self) -> bool {
        self.state().end.is_some()
    }

    /// Takes the next item, or the end once no item is left.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken> {
        let mut state = self.state();
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Taken::Item(item));
        }
        if let Some(end) = &state.end {
            return Poll::Ready(Taken::End(end.clone()));
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Items waiting to be taken.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state().items.len()
    }
}

fn wake(state: &mut State) {
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_holds_at_most_the_credit_granted() {
        let inbox = Inbox::new(2);
        inbox.push(Bytes::from_static(b"1")).unwrap();
        inbox.push(Bytes::from_static(b"2")).unwrap();
        assert_eq!(inbox.push(Bytes::from_static(b"3")), Err(Refused::Overrun));
        assert!(inbox.has_ended());
        // What came within the window is still taken, then the overrun.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(inbox.poll_take(&mut cx), Poll::Ready(Taken::Item(b)) if &b[..] == b"1"));
        assert!(matches!(inbox.poll_take(&mut cx), Poll::Ready(Taken::Item(b)) if &b[..] == b"2"));
        assert!(matches!(
            inbox.poll_take(&mut cx),
            Poll::Ready(Taken::End(End::Overrun(2)))
        ));
    }

    #[test]
    fn granted_credit_makes_room_and_a_disconnection_ends_at_once() {
        let inbox = Inbox::new(1);
        inbox.push(Bytes::from_static(b"1")).unwrap();
        inbox.granted(1);
        inbox.push(Bytes::from_static(b"2")).unwrap();
        assert_eq!(inbox.len(), 2);
        inbox.end(End::Disconnected(CloseReason::Transport("cut".into())));
        assert_eq!(inbox.push(Bytes::from_static(b"3")), Err(Refused::Ended));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            inbox.poll_take(&mut cx),
            Poll::Ready(Taken::End(End::Disconnected(_)))
        ));
    }
}
