//! Batches this side sends: several calls and notifications in one frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::call::{CallFuture, CallGuard, deadline, encode, outcome, within};
use super::handle::PeerHandle;
use super::handlers::handling;
use super::pending::Refusal;
use super::pending::{Answer, AnswerReceiver, answer_channel};
use super::shared::Shared;
use crate::call_error::CallError;
use crate::message;

/// A batch being assembled; see [`PeerHandle::batch`].
///
/// ```no_run
/// # async fn f(peer: rpc_core::PeerHandle) -> Result<(), rpc_core::CallError> {
/// let mut batch = peer.batch();
/// let sum = batch.call::<i64>("add", (1, 2))?;
/// let echo = batch.call::<String>("echo", ("hi",))?;
/// batch.notify("log", ("sent a batch",))?;
/// batch.send().await?;
/// assert_eq!(sum.await?, 3);
/// assert_eq!(echo.await?, "hi");
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until it is sent"]
pub struct Batch<'a> {
    peer: &'a PeerHandle,
    entries: Vec<String>,
    calls: Vec<(u64, oneshot::Sender<Answer>)>,
    timeout: Option<Option<Duration>>,
    /// The connection the batch went out on, once sent; its calls withdraw from there.
    sent_on: Arc<OnceLock<Arc<Shared>>>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(peer: &'a PeerHandle) -> Self {
        Self {
            peer,
            entries: Vec::new(),
            calls: Vec::new(),
            timeout: None,
            sent_on: Arc::new(OnceLock::new()),
        }
    }

    /// Sets the timeout of the sending and of each call's answer, replacing the peer's default.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a call; await the returned [`BatchCall`] after [`send`](Self::send) for its answer.
    ///
    /// # Errors
    /// [`CallError::Encode`] or [`CallError::TooLarge`] for this entry; the batch is unchanged.
    pub fn call<R>(&mut self, method: &str, params: impl Serialize) -> Result<BatchCall<R>, CallError> {
        let link = self.peer.link();
        let id = link.next_id();
        let frame = encode(link.config(), Some(id), method, &params)?;
        let (tx, rx) = answer_channel();
        self.entries.push(frame);
        self.calls.push((id, tx));
        Ok(BatchCall {
            sent_on: self.sent_on.clone(),
            id,
            answer: Some(rx),
            running: None,
        })
    }

    /// Adds a notification.
    ///
    /// # Errors
    /// [`CallError::Encode`] or [`CallError::TooLarge`] for this entry; the batch is unchanged.
    pub fn notify(&mut self, method: &str, params: impl Serialize) -> Result<(), CallError> {
        let frame = encode(self.peer.link().config(), None, method, &params)?;
        self.entries.push(frame);
        Ok(())
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends the batch in one frame. An empty batch sends nothing.
    ///
    /// # Errors
    /// [`CallError::TooLarge`] when the whole frame is over the maximum message size,
    /// [`CallError::TooManyCalls`] when it holds more calls than may be pending at once,
    /// [`CallError::TooManyPending`] when it is sent by one of the connection's own handlers and the
    /// pending table has no room for it (such a batch does not wait),
    /// [`CallError::Disconnected`], [`CallError::Timeout`]. The calls of a batch that failed to be sent
    /// resolve with [`CallError::NotSent`] (or the disconnection).
    pub async fn send(self) -> Result<(), CallError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let link = self.peer.link();
        let config = link.config();
        let frame = message::encode_batch(&self.entries);
        if frame.len() > config.max_message_size {
            return Err(CallError::TooLarge {
                size: frame.len(),
                limit: config.max_message_size,
            });
        }
        if self.calls.len() > config.max_pending_calls {
            return Err(CallError::TooManyCalls {
                count: self.calls.len(),
                limit: config.max_pending_calls,
            });
        }
        let ids: Vec<u64> = self.calls.iter().map(|(id, _)| *id).collect();
        let sent_on = self.sent_on.clone();
        let calls = self.calls;
        let deadline = deadline(config, self.timeout);
        let mut registered_on = None;
        let outcome = within(deadline, async {
            let shared = link.connection().await?;
            registered_on = Some(shared.clone());
            // A batch of one of the connection's own handlers may use the reserve and never waits.
            let reserve = handling(shared.connection_id);
            match shared.pending.insert_all(calls, deadline, reserve, true).await {
                Ok(()) => {}
                Err(Refusal::Full) => {
                    return Err(CallError::TooManyPending {
                        limit: shared.pending.limit(true),
                    });
                }
                Err(Refusal::Closed) => return Err(shared.disconnected()),
            }
            shared.send(frame).await?;
            shared.withdraw_if_gone(&ids);
            let _ = sent_on.set(shared);
            Ok(())
        })
        .await;
        if outcome.is_err()
            && let Some(shared) = registered_on
        {
            for id in ids {
                shared.pending.remove(id);
            }
        }
        outcome
    }
}

/// One call of a batch; await it, once the batch is sent, for the answer.
///
/// Dropped before its answer, whether awaited or not, the call is withdrawn as a dropped single call is:
/// it leaves the pending table at once and, if the batch was sent, the other side is sent
/// `$/cancelRequest` for it (the entry's answer within the batch's response is then discarded).
#[must_use = "the answer is only read when this is awaited"]
pub struct BatchCall<R> {
    sent_on: Arc<OnceLock<Arc<Shared>>>,
    id: u64,
    answer: Option<AnswerReceiver>,
    running: Option<CallFuture<R>>,
}

impl<R: DeserializeOwned + 'static> Future for BatchCall<R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        if self.running.is_none() {
            let (Some(answer), Some(shared)) = (self.answer.take(), self.sent_on.get().cloned()) else {
                return std::task::Poll::Ready(Err(CallError::NotSent));
            };
            self.running = Some(Box::pin(wait(shared, self.id, answer)));
        }
        match &mut self.running {
            Some(running) => running.as_mut().poll(cx),
            None => std::task::Poll::Ready(Err(CallError::NotSent)),
        }
    }
}

impl<R> Drop for BatchCall<R> {
    fn drop(&mut self) {
        // Sent but never awaited: withdrawn as a dropped call is (its place freed, the other side told).
        // Once awaited, the running wait's guard does it; dropped before the batch went out, `send` does.
        if self.running.is_none()
            && self.answer.is_some()
            && let Some(shared) = self.sent_on.get()
        {
            let mut guard = CallGuard::new(shared.clone(), self.id);
            guard.sent = true;
        }
    }
}

/// Waits for the answer to one call of a sent batch (the connection times it out at the batch's deadline).
async fn wait<R: DeserializeOwned>(shared: Arc<Shared>, id: u64, answer: AnswerReceiver) -> Result<R, CallError> {
    let mut call = CallGuard::new(shared, id);
    call.sent = true;
    let answer = answer.await;
    call.answered = true;
    let result = outcome(&call.shared, answer)?;
    serde_json::from_slice(&result).map_err(CallError::Decode)
}
