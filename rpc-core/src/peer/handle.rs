//! The cloneable handle through which user code calls the other side.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::batch::Batch;
use super::call::{Call, deadline, encode, within};
use super::lifecycle::Drain;
use super::link::Link;
use super::shared::{Refused, Shared};
use super::stats::PeerStats;
use crate::call_error::CallError;
use crate::close::{CloseCode, CloseFrame, CloseReason};
use crate::stream::table::Refusal;
use crate::stream::wire;
use crate::stream::{Inbox, Opened, OutgoingUpload, Subscribe};

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
        let frame = encode(self.link.config(), Some(id), method, &params);
        Call::new(self.link.clone(), id, frame).traced(method)
    }

    /// Calls the stream method `method` with `params` (as [`call`](Self::call) takes them) and, once the
    /// other side has answered with the stream's id, gives the [`Subscription`](crate::Subscription): its items decoded into
    /// `T`. The protocol: `docs/streams.md`.
    ///
    /// ```no_run
    /// # async fn f(peer: rpc_core::PeerHandle) -> Result<(), rpc_core::CallError> {
    /// use futures::StreamExt;
    /// let mut ticks = peer.subscribe::<u64>("ticks", (3, 10)).await?;
    /// while let Some(tick) = ticks.next().await {
    ///     println!("{}", tick?);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// The subscription fails as a call does (the answer's error, the call's timeout, the connection's
    /// end), and with [`CallError::TooManyStreams`] when this side already consumes
    /// [`PeerConfig::max_streams`](crate::PeerConfig::max_streams) streams on the connection. Over a
    /// reconnecting client's handle, the stream lives on the connection it was opened on and ends with it.
    pub fn subscribe<T>(&self, method: &str, params: impl Serialize) -> Subscribe<T> {
        let link = self.link.clone();
        let id = link.next_id();
        let frame = encode(link.config(), Some(id), method, &params);
        Subscribe::new(Box::new(move |window: Option<u32>| {
            Box::pin(Self::open(link, id, frame, window))
        }))
    }

    /// Opens download `id` with `window` credits (the peer's default if `None`).
    async fn open(
        link: Link,
        id: u64,
        frame: Result<String, CallError>,
        window: Option<u32>,
    ) -> Result<Opened, CallError> {
        {
            let frame = frame?;
            let shared = link.connection().await?;
            let window = window.unwrap_or(shared.config.stream_window).max(1);
            let inbox = Arc::new(Inbox::new(window));
            shared
                .streams
                .open(id, inbox.clone())
                .map_err(|refusal| match refusal {
                    Refusal::Full => CallError::TooManyStreams {
                        limit: shared.streams.limit(),
                    },
                    Refusal::Closed | Refusal::Taken => shared.disconnected(),
                })?;
            /// Forgets the download if it is given up before it is handed over (and cancels the stream if
            /// its answer bound one already).
            struct Abandon {
                shared: Arc<Shared>,
                call: u64,
                inbox: Arc<Inbox>,
                armed: bool,
            }
            impl Drop for Abandon {
                fn drop(&mut self) {
                    if self.armed
                        && let Some(stream) = self.shared.streams.abandon(self.call, &self.inbox)
                        && let Ok(id) = RawValue::from_string(stream.into())
                    {
                        let _ = self.shared.try_send(wire::encode_cancel(&id), false);
                    }
                }
            }
            let mut abandon = Abandon {
                shared: shared.clone(),
                call: id,
                inbox: inbox.clone(),
                armed: true,
            };
            // The announcement goes first: the other side learns the window before the request.
            within(
                deadline(&shared.config, None),
                shared.send(wire::encode_open(id, window)),
            )
            .await?;
            let subscription: Box<RawValue> = Call::new(Link::Fixed(shared.clone()), id, Ok(frame)).await?;
            abandon.armed = false;
            Ok(Opened {
                shared,
                inbox,
                id: subscription,
            })
        }
    }

    /// Starts an upload under `method`: `items` are sent to the callee of the call whose params carry the
    /// returned [`OutgoingUpload`] (in the place of the method's upload parameter), within the credit the
    /// callee grants, then the end. Typed clients do this for their stream parameters.
    ///
    /// ```no_run
    /// # async fn f(peer: rpc_core::PeerHandle) -> Result<(), rpc_core::CallError> {
    /// let numbers = peer.upload("sum_upload", futures::stream::iter(1..=100_i64))?;
    /// let sum: i64 = peer.call("sum_upload", (&numbers,)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The items are produced while the returned value lives: drop it once the call is answered (or
    /// given up). Nothing is sent before the callee's handler takes the upload.
    ///
    /// # Errors
    /// [`CallError::Disconnected`] when no connection is up; [`CallError::TooManyStreams`] past
    /// [`PeerConfig::max_streams`](crate::PeerConfig::max_streams).
    pub fn upload<T, S>(&self, method: &str, items: S) -> Result<OutgoingUpload, CallError>
    where
        T: Serialize + Send + 'static,
        S: futures::Stream<Item = T> + Send + 'static,
    {
        let shared = self.link.now().ok_or_else(|| self.link.disconnected())?;
        let id = crate::stream::producer::upload(&shared, method, items)?;
        Ok(OutgoingUpload { shared, id })
    }

    /// Sends a notification: a call without an answer. Returns once it is queued for sending (waiting for
    /// room up to the peer's call timeout).
    ///
    /// # Errors
    /// [`CallError::Encode`], [`CallError::TooLarge`], [`CallError::Disconnected`], [`CallError::Timeout`].
    pub async fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), CallError> {
        let frame = encode(self.link.config(), None, method, &params)?;
        within(deadline(self.link.config(), None), async {
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
        shared.lifecycle.start_drain(drain, &shared.wake);
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
