//! A call of this side: its future, and the guard that owns it while it is pending.
//!
//! A call is encoded when it is made and sent when first polled. From then until its answer (or its
//! end), one [`CallGuard`] owns its place in the pending table: dropped before the answer came (the caller
//! gave up, the call timed out while it waited for room), it takes the call out of the table and, if the
//! request went out, tells the other side with `$/cancelRequest`. A call has one deadline: waiting for a
//! connection, a place or room is bounded by it here, from when the call starts; waiting for the answer
//! is bounded by the connection's timer, which times out every call of the pending table at its deadline.
//! A call that goes out at once is timed from when it is made if it is the connection's only pending call;
//! otherwise it leaves its deadline to the connection's task, which sets it when it next looks at the
//! table, with one reading of the clock for all the calls added since (`pending.rs`, [`Due::After`]).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::handlers::handling;
use super::link::Link;
use super::pending::{Answer, Deadline, Due, Refusal};
use super::shared::{Refused, Shared};
use crate::call_error::CallError;
use crate::config::PeerConfig;
use crate::message;

/// The boxed future of a call that had to wait (for room, for a place, for a connection).
pub(crate) type CallFuture<T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send>>;

/// A call; await it to send it and get the answer. See [`PeerHandle::call`](crate::PeerHandle::call).
///
/// The params are encoded when the call is made; nothing is sent until it is first polled. It owns what
/// it needs, so it can be moved into a task. When the connection has room, the first poll registers the
/// call and queues it without waiting, and later polls only look for the answer; the call's timeout is kept
/// by the connection (one timer for all its calls), not by a timer of its own.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<R> {
    state: CallState,
    /// Present when calls are traced (`birpc::call` at debug) or measured (feature `metrics`): what the
    /// outcome is reported with.
    trace: Option<Box<Trace>>,
    _result: PhantomData<fn() -> R>,
}

/// A traced call: its method, id and start.
struct Trace {
    method: Box<str>,
    id: u64,
    started: std::time::Instant,
}

impl Trace {
    fn report(&self, outcome: &Result<Bytes, CallError>) {
        let elapsed = self.started.elapsed();
        crate::metrics::call_sent(&self.method, outcome.as_ref().map(|_| ()), elapsed);
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let (method, id) = (&*self.method, self.id);
        match outcome {
            Ok(_) => tracing::debug!(target: "birpc::call", direction = "out", method, id, elapsed_us, "answered"),
            Err(error) => tracing::debug!(
                target: "birpc::call",
                direction = "out",
                method,
                id,
                elapsed_us,
                code = error.error_object().map(|e| e.code()),
                %error,
                "failed"
            ),
        }
    }
}

enum CallState {
    Ready {
        link: Link,
        id: u64,
        /// Boxed when the encoding failed: a call's future is 72 bytes, not 112 (the error's 64 inline).
        frame: Result<String, Box<CallError>>,
        timeout: Option<Option<Duration>>,
    },
    /// Registered and queued: only the answer is awaited (see
    /// [`Pending::poll_answer`](super::pending::Pending::poll_answer)).
    Waiting(CallGuard),
    /// Waiting for room, a place or a connection first.
    Slow(CallFuture<Bytes>),
    Done,
}

impl<R> Call<R> {
    /// A call numbered `id` on `link`, its request encoded (or the encoding's failure, returned when the
    /// call is first polled).
    pub(crate) fn new(link: Link, id: u64, frame: Result<String, CallError>) -> Self {
        Self {
            state: CallState::Ready {
                link,
                id,
                frame: frame.map_err(Box::new),
                timeout: None,
            },
            trace: None,
            _result: PhantomData,
        }
    }

    /// Reports this call's outcome, with `method`, when calls are traced.
    pub(crate) fn traced(mut self, method: &str) -> Self {
        if (crate::metrics::ON || tracing::enabled!(target: "birpc::call", tracing::Level::DEBUG))
            && let CallState::Ready { id, .. } = &self.state
        {
            tracing::debug!(target: "birpc::call", direction = "out", method, id = *id, "calling");
            self.trace = Some(Box::new(Trace {
                method: method.into(),
                id: *id,
                started: std::time::Instant::now(),
            }));
        }
        self
    }

    /// A call that fails with `error` when first polled, sending nothing.
    pub(crate) fn failed(error: CallError) -> Self {
        Self {
            state: CallState::Slow(Box::pin(std::future::ready(Err(error)))),
            trace: None,
            _result: PhantomData,
        }
    }

    /// Sets this call's timeout, replacing the peer's default; `None` waits forever. Has no effect once the
    /// call has been polled.
    pub fn timeout(mut self, limit: Option<Duration>) -> Self {
        if let CallState::Ready { timeout, .. } = &mut self.state {
            *timeout = Some(limit);
        }
        self
    }
}

impl<R: DeserializeOwned> Future for Call<R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        loop {
            let result = match &mut self.state {
                CallState::Ready { .. } => {
                    let state = std::mem::replace(&mut self.state, CallState::Done);
                    if let CallState::Ready {
                        link,
                        id,
                        frame,
                        timeout,
                    } = state
                    {
                        match start(link, id, frame, timeout, cx.waker()) {
                            // Registered with this task's waker: nothing to look at before it is woken.
                            Ok(next @ CallState::Waiting(_)) => {
                                self.state = next;
                                return std::task::Poll::Pending;
                            }
                            Ok(next) => self.state = next,
                            Err(error) => return std::task::Poll::Ready(Err(error)),
                        }
                    }
                    continue;
                }
                CallState::Waiting(call) => std::task::ready!(call.poll_outcome(cx)),
                CallState::Slow(running) => std::task::ready!(running.as_mut().poll(cx)),
                CallState::Done => Err(CallError::NotSent),
            };
            self.state = CallState::Done;
            if let Some(trace) = self.trace.take() {
                trace.report(&result);
            }
            return std::task::Poll::Ready(
                result.and_then(|bytes| serde_json::from_slice(&bytes).map_err(CallError::Decode)),
            );
        }
    }
}

/// Starts a call: at once when the connection has a place and room (registered to wake `waker` when its
/// answer comes), else through the slow path. A call made by one of the connection's own handlers (while
/// it runs, in its task) may use the reserve, and fails at once when it finds no place: the calls holding
/// the places may be waiting on that very handler.
fn start(
    link: Link,
    id: u64,
    frame: Result<String, Box<CallError>>,
    timeout: Option<Option<Duration>>,
    waker: &std::task::Waker,
) -> Result<CallState, CallError> {
    let frame = frame.map_err(|error| *error)?;
    let limit = timeout.unwrap_or(link.config().call_timeout);
    // The slow paths time their waits themselves; the fast one leaves the clock to the pending table (see
    // `Due::After`).
    let deadline = || limit.map(|limit| (Instant::now() + limit, limit));
    // A fixed link's connection is taken over by the call, not counted again.
    let (now, link) = match link {
        Link::Fixed(shared) => (Some(shared), None),
        relayed => (relayed.now(), Some(relayed)),
    };
    if let Some(shared) = now {
        let from_handler = handling(shared.connection_id);
        let due = limit.map_or(Due::Never, Due::After);
        match shared
            .pending
            .try_insert(id, Some(waker), due, true, from_handler, &shared.wake)
        {
            Ok(()) => {
                let mut call = CallGuard::new(shared, id);
                return match call.shared.try_send(frame, true) {
                    Ok(()) => {
                        call.sent = true;
                        Ok(CallState::Waiting(call))
                    }
                    Err(Refused::Full(frame)) => {
                        call.shared.pending.set_unsent(id);
                        Ok(CallState::Slow(Box::pin(finish_sending(call, frame, deadline()))))
                    }
                    Err(Refused::Closed) => Err(call.shared.disconnected()),
                };
            }
            Err(Refusal::Closed) => return Err(shared.disconnected()),
            Err(Refusal::Full) if from_handler => {
                return Err(CallError::TooManyPending {
                    limit: shared.pending.limit(true),
                });
            }
            Err(Refusal::Full) => {
                let link = link.unwrap_or(Link::Fixed(shared));
                return Ok(CallState::Slow(Box::pin(call_slowly(link, id, frame, deadline()))));
            }
        }
    }
    // Only a relay is without a connection here (a fixed link always has its own).
    let link = link.ok_or(CallError::NotSent)?;
    Ok(CallState::Slow(Box::pin(call_slowly(link, id, frame, deadline()))))
}

/// A registered call whose frame found no room: waits for room, then for the answer.
async fn finish_sending(mut call: CallGuard, frame: String, deadline: Option<Deadline>) -> Result<Bytes, CallError> {
    within(deadline, call.shared.send(frame)).await?;
    call.queued();
    call.outcome().await
}

/// A call that must wait for a connection or a place in the pending table first.
async fn call_slowly(link: Link, id: u64, frame: String, deadline: Option<Deadline>) -> Result<Bytes, CallError> {
    let mut call = within(deadline, async {
        let shared = link.connection().await?;
        shared
            .pending
            .insert_all(&[id], deadline, false, None, &shared.wake)
            .await
            .map_err(|_| shared.disconnected())?;
        let mut call = CallGuard::new(shared, id);
        call.shared.send(frame).await?;
        call.queued();
        Ok(call)
    })
    .await?;
    call.outcome().await
}

/// Turns what arrived for a call into its outcome (`None`: the connection ended before the answer).
fn outcome(shared: &Shared, answer: Option<Answer>) -> Result<Bytes, CallError> {
    match answer {
        Some(Answer::Result(result)) => Ok(result),
        Some(Answer::Error(error)) => Err(CallError::from_error_object(*error)),
        Some(Answer::Invalid(reason)) => Err(CallError::InvalidResponse(reason)),
        Some(Answer::TimedOut(limit)) => Err(CallError::Timeout(limit)),
        None => Err(shared.disconnected()),
    }
}

/// The deadline of a call starting now: at its own timeout, or the peer's default (`None`: none).
pub(crate) fn deadline(config: &PeerConfig, own: Option<Option<Duration>>) -> Option<Deadline> {
    own.unwrap_or(config.call_timeout)
        .map(|limit| (Instant::now() + limit, limit))
}

/// Runs `exchange` until `deadline`, if any.
pub(crate) async fn within<T>(
    deadline: Option<Deadline>,
    exchange: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    match deadline {
        Some((at, limit)) => tokio::time::timeout_at(at, exchange)
            .await
            .unwrap_or(Err(CallError::Timeout(limit))),
        None => exchange.await,
    }
}

/// Encodes a call or notification, refusing one larger than the maximum message size.
pub(crate) fn encode<P: Serialize>(
    config: &PeerConfig,
    id: Option<u64>,
    method: &str,
    params: &P,
) -> Result<String, CallError> {
    // Params that serialize to `null` (`()`, `None`, a unit struct) are left out: the specification allows
    // only an array, an object, or no params member.
    let params = (!message::serializes_to_null(params)).then_some(params);
    let frame = message::encode_call(id, method, params).map_err(CallError::Encode)?;
    let limit = config.max_message_size;
    if frame.len() > limit {
        return Err(CallError::TooLarge {
            size: frame.len(),
            limit,
        });
    }
    Ok(frame)
}

/// The owner of a call registered in the pending table. Given up before its answer came (its future
/// dropped, its timeout passed while it waited for room), it takes the call out of the table, and if the
/// request was sent the other side is told.
pub(crate) struct CallGuard {
    pub(crate) shared: Arc<Shared>,
    id: u64,
    pub(crate) sent: bool,
    pub(crate) answered: bool,
}

impl CallGuard {
    pub(crate) fn new(shared: Arc<Shared>, id: u64) -> Self {
        Self {
            shared,
            id,
            sent: false,
            answered: false,
        }
    }

    /// The request was queued (after waiting for room): the call is now withdrawn at the other side if it
    /// times out, or at once if it already has.
    pub(crate) fn queued(&mut self) {
        self.sent = true;
        self.shared.withdraw_if_gone(&[self.id]);
    }

    /// Ready with the call's outcome once its answer came (or the connection ended first).
    fn poll_outcome(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<Bytes, CallError>> {
        let answer = std::task::ready!(self.shared.pending.poll_answer(self.id, cx));
        self.answered = true;
        std::task::Poll::Ready(outcome(&self.shared, answer))
    }

    /// The call's outcome, once its answer came (or the connection ended first).
    pub(crate) async fn outcome(&mut self) -> Result<Bytes, CallError> {
        std::future::poll_fn(|cx| self.poll_outcome(cx)).await
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.answered && self.shared.pending.remove(self.id) && self.sent {
            self.shared.send_cancel(self.id);
        }
    }
}
