//! Batches this side sends: several calls and notifications in one frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{CallFuture, CallGuard, deadline, encode, within};
use super::handle::PeerHandle;
use super::handlers::handling;
use super::pending::Refusal;
use super::sent_batches::BatchNumber;
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
    entries: Vec<Entry>,
    timeout: Option<Option<Duration>>,
    /// Shared with the batch's calls.
    sending: Arc<Mutex<Sending>>,
}

/// One entry of a batch: its text and, for a call, its id.
struct Entry {
    frame: String,
    call: Option<u64>,
}

/// What a batch's calls share with it.
#[derive(Default)]
struct Sending {
    /// The connection the batch went out on, once its frame is queued; its calls withdraw from there.
    sent_on: Option<Arc<Shared>>,
    /// Calls given up (dropped, or awaited, see [`BatchCall`]) before the batch went out: those given up
    /// before [`Batch::send`] began are left out of the frame, those given up while it was being sent are
    /// withdrawn once it is queued. At most one id per call of the batch.
    given_up: Vec<u64>,
}

impl Sending {
    /// The connection the batch went out on; `None` (the call with `id` noted as given up) before that.
    fn sent_on_or_give_up(this: &Mutex<Self>, id: u64) -> Option<Arc<Shared>> {
        let mut sending = lock(this);
        if sending.sent_on.is_none() {
            sending.given_up.push(id);
        }
        sending.sent_on.clone()
    }
}

fn lock(sending: &Mutex<Sending>) -> MutexGuard<'_, Sending> {
    sending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Withdraws the sent call `id`, as a dropped call is: out of the pending table, and the other side told.
fn withdraw(shared: Arc<Shared>, id: u64) {
    let mut guard = CallGuard::new(shared, id);
    guard.sent = true;
}

/// A batch's calls registered in the pending table, their frame not queued yet: if the sending stops
/// before it is (it failed, timed out, or its future was dropped), they are taken out again and the batch
/// is forgotten.
struct Registered {
    shared: Arc<Shared>,
    ids: Vec<u64>,
    batch: Option<BatchNumber>,
    queued: bool,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if !self.queued {
            if let Some(batch) = self.batch {
                self.shared.pending.forget_batch(batch);
            }
            for &id in &self.ids {
                self.shared.pending.remove(id);
            }
        }
    }
}

impl<'a> Batch<'a> {
    pub(crate) fn new(peer: &'a PeerHandle) -> Self {
        Self {
            peer,
            entries: Vec::new(),
            timeout: None,
            sending: Arc::default(),
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
        self.entries.push(Entry { frame, call: Some(id) });
        Ok(BatchCall {
            sending: self.sending.clone(),
            id,
            polled: false,
            running: None,
        })
    }

    /// Adds a notification.
    ///
    /// # Errors
    /// [`CallError::Encode`] or [`CallError::TooLarge`] for this entry; the batch is unchanged.
    pub fn notify(&mut self, method: &str, params: impl Serialize) -> Result<(), CallError> {
        let frame = encode(self.peer.link().config(), None, method, &params)?;
        self.entries.push(Entry { frame, call: None });
        Ok(())
    }

    /// The number of entries added, calls and notifications, counting calls given up since (which
    /// [`send`](Self::send) leaves out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry has been added (calls given up since still count as added).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends the batch in one frame. An empty batch sends nothing. Calls given up before (their
    /// [`BatchCall`] dropped or awaited) are left out; a batch left with no entry sends nothing.
    ///
    /// # Errors
    /// [`CallError::TooLarge`] when the whole frame is over the maximum message size,
    /// [`CallError::TooManyCalls`] when it holds more calls than may be pending at once,
    /// [`CallError::TooManyPending`] when it is sent by one of the connection's own handlers and the
    /// pending table has no room for it (such a batch does not wait),
    /// [`CallError::Disconnected`], [`CallError::Timeout`]. The calls of a batch that failed to be sent
    /// resolve with [`CallError::NotSent`], and so do they when this future is dropped before the batch is
    /// sent.
    pub async fn send(self) -> Result<(), CallError> {
        let mut entries = self.entries;
        // The calls given up so far are left out; those given up from now on are withdrawn once the frame
        // is queued.
        let mut given_up = std::mem::take(&mut lock(&self.sending).given_up);
        given_up.sort_unstable();
        entries.retain(|entry| entry.call.is_none_or(|id| given_up.binary_search(&id).is_err()));
        if entries.is_empty() {
            return Ok(());
        }
        let link = self.peer.link();
        let config = link.config();
        let frame = message::encode_batch(&entries.iter().map(|entry| entry.frame.as_str()).collect::<Vec<_>>());
        let count = entries.len();
        let ids: Vec<u64> = entries.into_iter().filter_map(|entry| entry.call).collect();
        if frame.len() > config.max_message_size {
            return Err(CallError::TooLarge {
                size: frame.len(),
                limit: config.max_message_size,
            });
        }
        if ids.len() > config.max_pending_calls {
            return Err(CallError::TooManyCalls {
                count: ids.len(),
                limit: config.max_pending_calls,
            });
        }
        let sending = self.sending.clone();
        let deadline = deadline(config, self.timeout);
        within(deadline, async {
            let shared = link.connection().await?;
            // A batch of one of the connection's own handlers may use the reserve and never waits.
            let reserve = handling(shared.connection_id);
            let batch = match shared
                .pending
                .insert_all(&ids, deadline, reserve, Some(count), &shared.wake)
                .await
            {
                Ok(batch) => batch,
                Err(Refusal::Full) => {
                    return Err(CallError::TooManyPending {
                        limit: shared.pending.limit(true),
                    });
                }
                Err(Refusal::Closed) => return Err(shared.disconnected()),
            };
            let mut registered = Registered {
                shared: shared.clone(),
                ids,
                batch,
                queued: false,
            };
            shared.send(frame).await?;
            registered.queued = true;
            shared.withdraw_if_gone(&registered.ids);
            // From here on a call given up withdraws itself; those given up meanwhile are withdrawn now.
            let given_up = {
                let mut sending = lock(&sending);
                sending.sent_on = Some(shared.clone());
                std::mem::take(&mut sending.given_up)
            };
            for id in given_up {
                withdraw(shared.clone(), id);
            }
            Ok(())
        })
        .await
    }
}

/// One call of a batch; await it, once the batch is sent, for the answer.
///
/// Awaited before [`Batch::send`], it resolves with [`CallError::NotSent`] and the call is left out of the
/// batch. Dropped before its answer:
/// - before the batch is sent, the call is left out of it (given up while `send` runs, it is withdrawn
///   once the frame is queued, as below);
/// - after, it is withdrawn as a dropped single call is: it leaves the pending table at once and the other
///   side is sent `$/cancelRequest` for it (best effort: not sent when the outgoing queue is full). Its
///   answer within the batch's response is discarded.
#[must_use = "the answer is only read when this is awaited"]
pub struct BatchCall<R> {
    sending: Arc<Mutex<Sending>>,
    id: u64,
    /// Whether it was polled once (then it runs, or it resolved with [`CallError::NotSent`]).
    polled: bool,
    running: Option<CallFuture<R>>,
}

impl<R: DeserializeOwned + 'static> Future for BatchCall<R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        if self.running.is_none() {
            if std::mem::replace(&mut self.polled, true) {
                return std::task::Poll::Ready(Err(CallError::NotSent));
            }
            // Awaited before the batch went out: the call is given up, and left out of the batch.
            let Some(shared) = Sending::sent_on_or_give_up(&self.sending, self.id) else {
                return std::task::Poll::Ready(Err(CallError::NotSent));
            };
            self.running = Some(Box::pin(wait(shared, self.id)));
        }
        match &mut self.running {
            Some(running) => running.as_mut().poll(cx),
            None => std::task::Poll::Ready(Err(CallError::NotSent)),
        }
    }
}

impl<R> Drop for BatchCall<R> {
    fn drop(&mut self) {
        // Never awaited: withdrawn now if the batch went out, else by `send` (see `Sending::given_up`). Once
        // awaited, the running wait's guard withdraws it.
        if self.running.is_none()
            && !self.polled
            && let Some(shared) = Sending::sent_on_or_give_up(&self.sending, self.id)
        {
            withdraw(shared, self.id);
        }
    }
}

/// Waits for the answer to one call of a sent batch (the connection times it out at the batch's deadline).
async fn wait<R: DeserializeOwned>(shared: Arc<Shared>, id: u64) -> Result<R, CallError> {
    let mut call = CallGuard::new(shared, id);
    call.sent = true;
    let result = call.outcome().await?;
    serde_json::from_slice(&result).map_err(CallError::Decode)
}
