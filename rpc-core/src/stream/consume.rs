//! Consuming a stream the other side produces: a [`Subscription`] (a download this side asked for) or
//! an [`Upload`] (a stream the caller of a handler sends it), and the credit this side grants back.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::inbox::{End, Inbox, Taken};
use super::table::Refusal;
use super::wire;
use crate::call_error::CallError;
use crate::peer::Shared;

/// A stream the other side produces for this side: the items of a stream method this side called
/// ([`PeerHandle::subscribe`](crate::PeerHandle::subscribe), or a typed client's stream method).
///
/// It yields each item decoded into `T`, in order; the producer's failure as one last `Err` (the
/// method's own error type `E` for a typed client, as [`CallError::Application`]); the end as `None`.
/// When the connection ends, it yields [`CallError::Disconnected`] at once, then `None`. It holds at most
/// the window of items ([`PeerConfig::stream_window`](crate::PeerConfig::stream_window)) and grants the
/// producer more as they are taken. Dropping it before the end cancels the stream (`$/stream.cancel`): the
/// producer stops within one round trip. The protocol: `docs/streams.md`.
#[must_use = "a subscription's items wait (and its producer with them) until the stream is read"]
pub struct Subscription<T, E = Infallible> {
    consumer: Consumer,
    decode: fn(CallError) -> CallError<E>,
    _item: PhantomData<fn() -> T>,
}

/// What both kinds of consumed stream share: the inbox, the grants, the cancel on drop.
struct Consumer {
    shared: Arc<Shared>,
    inbox: Arc<Inbox>,
    /// The producer's id for the stream.
    id: Box<RawValue>,
    /// Items taken since the last grant.
    taken: u64,
    done: bool,
    /// The method a cancel is sent as a request of (a foreign producer's unsubscribe method), instead of
    /// the `$/stream.cancel` notification.
    unsubscribe: Option<Box<str>>,
}

impl Consumer {
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<bytes::Bytes, End>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inbox.poll_take(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Taken::Item(item)) => {
                self.taken += 1;
                self.grant();
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Taken::End(End::Finished)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Taken::End(end)) => {
                self.done = true;
                Poll::Ready(Some(Err(end)))
            }
        }
    }

    /// Grants the items taken since the last grant, once they reach a quarter of the window (so that the
    /// producer rarely runs out of credit while the grant is on its way).
    fn grant(&mut self) {
        let threshold = u64::from(self.inbox.window() / 4).max(1);
        if self.taken < threshold || self.inbox.has_ended() {
            return;
        }
        let credit = std::mem::take(&mut self.taken);
        self.inbox.granted(credit);
        send_soon(&self.shared, wire::encode_credit(&self.id, credit));
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if !self.shared.streams.forget(self.id.get(), &self.inbox) {
            return;
        }
        let cancel = match &self.unsubscribe {
            // Its answer, to no pending call, is dropped when it comes.
            Some(method) => crate::message::encode_call(Some(self.shared.next_id()), method, Some(&[&self.id])).ok(),
            None => Some(wire::encode_cancel(&self.id)),
        };
        if let Some(cancel) = cancel {
            send_soon(&self.shared, cancel);
        }
    }
}

/// Queues a control message now if there is room, else from a task that waits for room: a grant must
/// not be lost (the producer would wait for it forever). Each stream has at most a grant or two in
/// flight this way (a grant follows a quarter of a window of items, which need credit to come).
fn send_soon(shared: &Arc<Shared>, frame: String) {
    if let Err(crate::peer::Refused::Full(frame)) = shared.try_send(frame, false) {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = shared.send(frame).await;
        });
    }
}

/// The error a stream's end carries, as a call's error.
fn end_error(end: End) -> CallError {
    match end {
        End::Finished => CallError::NotSent,
        End::Failed(error) => CallError::from_error_object(error),
        End::Overrun(window) => CallError::Overrun { window },
        End::Disconnected(reason) => CallError::Disconnected(reason),
    }
}

impl<T: DeserializeOwned, E> Stream for Subscription<T, E> {
    type Item = Result<T, CallError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let decode = self.decode;
        self.consumer.poll_next(cx).map(|next| {
            next.map(|next| match next {
                Ok(item) => serde_json::from_slice(&item).map_err(|error| decode(CallError::Decode(error))),
                Err(end) => Err(decode(end_error(end))),
            })
        })
    }
}

impl<T, E> fmt::Debug for Subscription<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.consumer.id.get())
            .field("done", &self.consumer.done)
            .finish_non_exhaustive()
    }
}

/// A subscription on its way: await it for the [`Subscription`] (the answer to the request, with the
/// stream's id, has come) or the reason it failed (the method's errors as for a call). Returned by
/// [`PeerHandle::subscribe`](crate::PeerHandle::subscribe) and by typed clients' stream methods.
#[must_use = "a subscription does nothing until it is awaited"]
pub struct Subscribe<T, E = Infallible> {
    opening: Opening,
    decode: fn(CallError) -> CallError<E>,
    unsubscribe: Option<Box<str>>,
    _item: PhantomData<fn() -> T>,
}

/// Opens a download with the window given (`None`: the peer's `stream_window`).
pub(crate) type Open = Box<dyn FnOnce(Option<u32>) -> BoxFuture<'static, Result<Opened, CallError>> + Send>;

enum Opening {
    /// Not polled yet: the window may still be chosen.
    Ready(Open, Option<u32>),
    Running(BoxFuture<'static, Result<Opened, CallError>>),
    Done,
}

/// A download whose answer came: its stream is bound.
pub(crate) struct Opened {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) id: Box<RawValue>,
}

impl<T> Subscribe<T> {
    pub(crate) fn new(open: Open) -> Self {
        Self {
            opening: Opening::Ready(open, None),
            decode: |error| error,
            unsubscribe: None,
            _item: PhantomData,
        }
    }

    /// The same subscription, its errors decoded into the method's error type `E` by `decode` (what
    /// typed clients do).
    pub fn with_errors<E>(self, decode: fn(CallError) -> CallError<E>) -> Subscribe<T, E> {
        Subscribe {
            opening: self.opening,
            decode,
            unsubscribe: self.unsubscribe,
            _item: PhantomData,
        }
    }
}

impl<T, E> Subscribe<T, E> {
    /// Grants this stream a window of `items` (at least 1) instead of the peer's
    /// [`stream_window`](crate::PeerConfig::stream_window): a larger one for a producer that ignores
    /// credit and may run that far ahead, a smaller one to hold less. No effect once polled.
    pub fn window(mut self, items: u32) -> Self {
        if let Opening::Ready(_, window) = &mut self.opening {
            *window = Some(items.max(1));
        }
        self
    }

    /// Cancels the stream, when the [`Subscription`] is dropped before its end, with a request to
    /// `method` whose params are `[stream id]` (how jsonrpsee and Ethereum clients unsubscribe: name the
    /// server's unsubscribe method), instead of the `$/stream.cancel` notification a birpc producer
    /// understands.
    pub fn unsubscribe_with(mut self, method: &str) -> Self {
        self.unsubscribe = Some(method.into());
        self
    }
}

impl<T, E> Future for Subscribe<T, E> {
    type Output = Result<Subscription<T, E>, CallError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let decode = self.decode;
        if let Opening::Ready(..) = self.opening
            && let Opening::Ready(open, window) = std::mem::replace(&mut self.opening, Opening::Done)
        {
            self.opening = Opening::Running(open(window));
        }
        let Opening::Running(running) = &mut self.opening else {
            return Poll::Ready(Err(decode(CallError::NotSent)));
        };
        let opened = std::task::ready!(running.as_mut().poll(cx));
        self.opening = Opening::Done;
        Poll::Ready({
            let opened = opened.map_err(decode)?;
            Ok(Subscription {
                consumer: Consumer {
                    shared: opened.shared,
                    inbox: opened.inbox,
                    id: opened.id,
                    taken: 0,
                    done: false,
                    unsubscribe: self.unsubscribe.take(),
                },
                decode,
                _item: PhantomData,
            })
        })
    }
}

/// A stream of items the caller of a handler sends it while the call runs: the type of a stream method's
/// upload parameter.
///
/// It yields each item decoded into `T`, in order, and `None` at the end. It fails with
/// [`CallError::Disconnected`] when the connection ends, [`CallError::Decode`] for an item that is not a
/// `T` (the stream goes on), [`CallError::Overrun`] when the caller sends beyond its credit. Get one from
/// a typed service's parameter, or with [`Context::upload`](crate::Context::upload). Dropping it before the
/// end cancels the upload (`$/stream.cancel`).
#[must_use = "an upload's items wait (and its producer with them) until the stream is read"]
pub struct Upload<T> {
    consumer: Consumer,
    _item: PhantomData<fn() -> T>,
}

impl<T> Upload<T> {
    /// Binds the upload `id` of the caller on `shared`, granting the first window.
    pub(crate) fn bind(shared: Arc<Shared>, id: UploadId) -> Result<Self, crate::ErrorObject> {
        let window = shared.config.stream_window.max(1);
        let inbox = Arc::new(Inbox::new(window));
        shared
            .streams
            .bind(id.0.get(), inbox.clone())
            .map_err(|refusal| match refusal {
                Refusal::Taken => crate::ErrorObject::invalid_params(format_args!(
                    "the upload {} is already bound on this connection",
                    id.0.get()
                )),
                Refusal::Full => crate::ErrorObject::too_many_streams(shared.streams.limit()),
                Refusal::Closed => crate::ErrorObject::shutting_down(),
            })?;
        send_soon(&shared, wire::encode_credit(&id.0, u64::from(window)));
        Ok(Self {
            consumer: Consumer {
                shared,
                inbox,
                id: id.0,
                taken: 0,
                done: false,
                unsubscribe: None,
            },
            _item: PhantomData,
        })
    }
}

impl<T: DeserializeOwned> Stream for Upload<T> {
    type Item = Result<T, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.consumer.poll_next(cx).map(|next| {
            next.map(|next| match next {
                Ok(item) => serde_json::from_slice(&item).map_err(CallError::Decode),
                Err(end) => Err(end_error(end)),
            })
        })
    }
}

impl<T> fmt::Debug for Upload<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("id", &self.consumer.id.get())
            .field("done", &self.consumer.done)
            .finish_non_exhaustive()
    }
}

/// The id of an upload as a request's params carry it (a JSON number or string the caller chose); bind
/// it with [`Context::upload`](crate::Context::upload).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct UploadId(Box<RawValue>);

/// An upload this side sends as a call's parameter: serializes as its stream id. Made by
/// [`PeerHandle::upload`](crate::PeerHandle::upload); the items are produced while it lives, and
/// dropping it (once the call is answered, or given up) stops them.
#[must_use = "the upload stops when this is dropped"]
pub struct OutgoingUpload {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl OutgoingUpload {
    /// The stream's id, as the call's params carry it.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Serialize for OutgoingUpload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.id)
    }
}

impl Drop for OutgoingUpload {
    fn drop(&mut self) {
        self.shared.streams.cancel(self.id);
    }
}

impl fmt::Debug for OutgoingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingUpload").field("id", &self.id).finish()
    }
}
