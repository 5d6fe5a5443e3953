//! Streams in both directions: a method may answer with a stream of items (a download, or
//! subscription) or take one from its caller (an upload), whichever side exports it.
//!
//! Items travel as notifications in the subscription shape Ethereum nodes and jsonrpsee use; the
//! consumer grants the producer credit, as HTTP/2 does per stream (RFC 9113 section 6.9), so a producer
//! is never more than a window of items ahead. The protocol is specified in `docs/streams.md`.
//!
//! - `wire`: the protocol's messages, encoded and parsed without IO;
//! - `credit`: a producer's credit; `inbox`: a consumer's bounded buffer;
//! - `table`: the streams of one connection, ended all at once with it;
//! - `producer`: the task that sends a stream's items; `consume`: the streams user code reads.

mod consume;
mod credit;
mod inbox;
pub(crate) mod producer;
pub(crate) mod table;
pub(crate) mod wire;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;

pub(crate) use self::consume::Opened;
pub use self::consume::{OutgoingUpload, Subscribe, Subscription, Upload, UploadId};
pub(crate) use self::inbox::Inbox;

/// What a stream method of an `#[rpc]` trait returns: its items, each an item or the error that ends
/// the stream (the method's own error type `E`).
///
/// ```
/// use rpc_core::ItemStream;
///
/// let ticks: ItemStream<u64> = ItemStream::iter(0..3);
/// # let _ = ticks;
/// ```
pub struct ItemStream<T, E = crate::ErrorObject> {
    items: BoxStream<'static, Result<T, E>>,
}

impl<T, E> ItemStream<T, E> {
    /// The items of `stream`; the first `Err` ends the stream with that error.
    pub fn new(stream: impl Stream<Item = Result<T, E>> + Send + 'static) -> Self {
        Self {
            items: Box::pin(stream),
        }
    }

    /// The items of `items`, none failing.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: 'static,
        E: 'static,
    {
        Self::new(futures::stream::iter(items.into_iter().map(Ok)))
    }

    /// The items of `stream`, none failing.
    pub fn ok(stream: impl Stream<Item = T> + Send + 'static) -> Self
    where
        T: 'static,
        E: 'static,
    {
        use futures::StreamExt;
        Self::new(stream.map(Ok))
    }
}

impl<T, E> Stream for ItemStream<T, E> {
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl<T, E> fmt::Debug for ItemStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemStream").finish_non_exhaustive()
    }
}
