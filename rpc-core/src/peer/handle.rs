//! The cloneable handle through which user code calls the other side.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::batch::Batch;
use super::link::Link;
use super::pending::{Answer, Deadline, Refusal};
use super::shared::{Drain, Outstanding, Refused, Shared, bounded, effective_timeout, encode, within};
use super::stats::PeerStats;
use crate::call_error::CallError;
use crate::close::{CloseCode, CloseFrame, CloseReason};

/// A handle to a connection: call the other side, notify it, close the connection, await its end.
///
/// Clones are cheap and all refer to the same connection. Calls from many tasks at once are multiplexed
/// over it and matched to their answers by id. A handle made by a [`Relay`](crate::Relay) (a reconnecting
/// client's) follows one connection after another.
#[derive(Clone)]
pub struct PeerHandle {
    link: Link,
    /// Present on the handles given to the application that opened a client connection: when the last of
    /// them is dropped, the connection closes (and a relay stops).
    _owner: Option<Arc<CloseOnDrop>>,
}

/// Closes the connection when the last owning handle goes.
struct CloseOnDrop(Link);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.request_close(CloseFrame::normal());
    }
}

impl PeerHandle {
    pub(crate) fn new(shared: Arc<Shared>, close_on_drop: bool) -> Self {
        Self::from_link(Link::Fixed(shared), close_on_drop)
    }

    pub(crate) fn from_link(link: Link, close_on_drop: bool) -> Self {
        let owner = close_on_drop.then(|| Arc::new(CloseOnDrop(link.clone())));
        Self { link, _owner: owner }
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// A number identifying the connection, unique within the process (for a reconnecting client's
    /// handle: identifying the client). A key for maps of connections, such as [`Hub`](crate::Hub)'s.
    pub fn id(&self) -> u64 {
        self.link.id()
    }

    /// The value of type `T` attached to the connection (by the server's admission hook, say), if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.link.now()?.extensions.get_arc()
    }

    /// Calls `method` with `params` and decodes the answer into `R`.
    ///
    /// `params` is anything that serializes to an array (a tuple, a `Vec`: by position) or an object (a
    /// struct, a map: by name); a value that serializes to `null`, such as `()`, sends no params. The returned [`Call`] is a
    /// future, optionally given its own timeout first:
    ///
    /// ```no_run
    /// # async fn f(peer: rpc_core::PeerHandle) -> Result<(), rpc_core::CallError> {
    /// use std::time::Duration;
    /// let sum: i64 = peer.call("add", (1, 2)).await?;
    /// let slow: String = peer.call("report", ()).timeout(Some(Duration::from_secs(300))).await?;
    /// # Ok(()) }
    /// ```
    pub fn call<R>(&self, method: &str, params: impl Serialize) -> Call<R> {
        let id = self.link.next_id();
        Call {
            state: CallState::Ready {
                frame: encode(self.link.config(), Some(id), method, &params),
                link: self.link.clone(),
                id,
                timeout: None,
            },
            _result: PhantomData,
        }
    }

    /// Sends a notification: a call without an answer. Returns once it is queued for sending (waiting for
    /// room up to the peer's call timeout).
    ///
    /// # Errors
    /// [`CallError::Encode`], [`CallError::TooLarge`], [`CallError::Disconnected`], [`CallError::Timeout`].
    pub async fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), CallError> {
        let frame = encode(self.link.config(), None, method, &params)?;
        bounded(effective_timeout(self.link.config(), None), async {
            self.link.connection().await?.send(frame).await
        })
        .await
    }

    /// Sends a notification if the outgoing queue has room now, without waiting.
    ///
    /// For broadcasts and other fan-out, where one slow reader must not hold up the rest.
    ///
    /// # Errors
    /// [`CallError::Full`] when the queue is full (by frames or bytes), [`CallError::Encode`],
    /// [`CallError::TooLarge`], [`CallError::Disconnected`].
    pub fn try_notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), CallError> {
        let frame = encode(self.link.config(), None, method, &params)?;
        self.try_send_frame(frame)
    }

    /// Queues an already encoded notification if there is room now (a hub's broadcast encodes once).
    pub(crate) fn try_send_frame(&self, frame: String) -> Result<(), CallError> {
        let limit = self.link.config().max_message_size;
        if frame.len() > limit {
            return Err(CallError::TooLarge {
                size: frame.len(),
                limit,
            });
        }
        let Some(shared) = self.link.now() else {
            return Err(self.link.disconnected());
        };
        match shared.try_send(frame, false) {
            Ok(()) => Ok(()),
            Err(Refused::Full(_)) => Err(CallError::Full),
            Err(Refused::Closed) => Err(shared.disconnected()),
        }
    }

    /// Starts a batch: several calls and notifications sent in one frame, each call resolved on its own.
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// Closes the connection normally (1000). Frames already queued are sent first. A reconnecting client
    /// stops reconnecting.
    ///
    /// Returns at once; await [`closed`](Self::closed) to know when the connection is over.
    pub fn close(&self) {
        self.close_with(CloseCode::NORMAL, "");
    }

    /// Closes the connection with a close code and reason of your choice.
    pub fn close_with(&self, code: CloseCode, reason: &str) {
        self.link.request_close(CloseFrame::new(code, reason));
    }

    /// Closes the connection gracefully: requests of the other side that have not started are answered
    /// with -32002 Shutting down, those running are let finish (their answers are sent), then the
    /// connection closes with `code` and `reason`, or once `grace` has passed, whichever comes first.
    ///
    /// Calls of this side keep working meanwhile. Returns at once; await [`closed`](Self::closed).
    pub fn close_gracefully(&self, code: CloseCode, reason: &str, grace: Duration) {
        let Some(shared) = self.link.now() else {
            return self.close_with(code, reason);
        };
        let drain = Drain {
            frame: CloseFrame::new(code, reason),
            deadline: Instant::now() + grace,
        };
        shared.lifecycle.send_if_modified(|state| {
            if state.drain.is_none() {
                state.drain = Some(drain);
                true
            } else {
                false
            }
        });
    }

    /// Waits until the connection has ended and tells why (for a reconnecting client: until it has stopped
    /// for good). Returns at once if it already has.
    pub async fn closed(&self) -> CloseReason {
        self.link.closed().await
    }

    /// What the connection holds now: pending calls, running handlers, queued frames and bytes.
    pub fn stats(&self) -> PeerStats {
        self.link.now().map(|shared| shared.stats()).unwrap_or_default()
    }

    /// Whether the connection has ended (for a reconnecting client: stopped for good).
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// Whether a connection is up now (for a plain connection: whether it has not ended yet).
    pub fn is_connected(&self) -> bool {
        self.link.now().is_some_and(|shared| !shared.is_closed())
    }
}

impl fmt::Debug for PeerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerHandle")
            .field("id", &self.id())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The boxed future of a call that had to wait (for room, for a place, for a connection).
pub(crate) type CallFuture<T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send>>;

/// A call; await it to send it and get the answer. See [`PeerHandle::call`].
///
/// The params are encoded when the call is made; nothing is sent until it is first polled. It owns what
/// it needs, so it can be moved into a task. When the connection has room, the first poll registers the
/// call and queues it without waiting, and later polls only look for the answer; the call's timeout is kept
/// by the connection (one timer for all its calls), not by a timer of its own.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<R> {
    state: CallState,
    _result: PhantomData<fn() -> R>,
}

enum CallState {
    Ready {
        link: Link,
        id: u64,
        frame: Result<String, CallError>,
        timeout: Option<Option<Duration>>,
    },
    /// Registered and queued: only the answer is awaited.
    Waiting {
        call: Outstanding,
        answer: oneshot::Receiver<Answer>,
    },
    /// Waiting for room, a place or a connection first.
    Slow(CallFuture<Bytes>),
    Done,
}

impl<R> Call<R> {
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
                        match start(link, id, frame, timeout) {
                            Ok(next) => self.state = next,
                            Err(error) => return std::task::Poll::Ready(Err(error)),
                        }
                    }
                    continue;
                }
                CallState::Waiting { call, answer } => {
                    let answer = std::task::ready!(Pin::new(answer).poll(cx));
                    call.answered = true;
                    call.shared.resolve(answer)
                }
                CallState::Slow(running) => std::task::ready!(running.as_mut().poll(cx)),
                CallState::Done => Err(CallError::NotSent),
            };
            self.state = CallState::Done;
            return std::task::Poll::Ready(
                result.and_then(|bytes| serde_json::from_slice(&bytes).map_err(CallError::Decode)),
            );
        }
    }
}

/// Starts a call: at once when the connection has a place and room, else through the slow path.
fn start(
    link: Link,
    id: u64,
    frame: Result<String, CallError>,
    timeout: Option<Option<Duration>>,
) -> Result<CallState, CallError> {
    let frame = frame?;
    let deadline = effective_timeout(link.config(), timeout).map(|limit| (Instant::now() + limit, limit));
    if let Some(shared) = link.now() {
        let (tx, answer) = oneshot::channel();
        match shared.pending.try_insert(id, tx, deadline, true) {
            Ok(()) => {
                let mut call = Outstanding::new(shared, id);
                return match call.shared.try_send(frame, true) {
                    Ok(()) => {
                        call.sent = true;
                        Ok(CallState::Waiting { call, answer })
                    }
                    Err(Refused::Full(frame)) => {
                        call.shared.pending.set_unsent(id);
                        Ok(CallState::Slow(Box::pin(finish_sending(call, frame, answer, deadline))))
                    }
                    Err(Refused::Closed) => Err(call.shared.disconnected()),
                };
            }
            Err(Refusal::Closed) => return Err(shared.disconnected()),
            Err(Refusal::Full) => {}
        }
    }
    Ok(CallState::Slow(Box::pin(call_slowly(link, id, frame, deadline))))
}

/// A registered call whose frame found no room: waits for room, then for the answer.
async fn finish_sending(
    mut call: Outstanding,
    frame: String,
    answer: oneshot::Receiver<Answer>,
    deadline: Option<Deadline>,
) -> Result<Bytes, CallError> {
    within(deadline, call.shared.send(frame)).await?;
    call.queued();
    let answer = answer.await;
    call.answered = true;
    call.shared.resolve(answer)
}

/// A call that must wait for a connection or a place in the pending table first.
async fn call_slowly(link: Link, id: u64, frame: String, deadline: Option<Deadline>) -> Result<Bytes, CallError> {
    let (mut call, answer) = within(deadline, async {
        let shared = link.connection().await?;
        let (tx, answer) = oneshot::channel();
        shared
            .pending
            .insert_all(vec![(id, tx)], deadline)
            .await
            .map_err(|()| shared.disconnected())?;
        let mut call = Outstanding::new(shared, id);
        call.shared.send(frame).await?;
        call.queued();
        Ok((call, answer))
    })
    .await?;
    let answer = answer.await;
    call.answered = true;
    call.shared.resolve(answer)
}
