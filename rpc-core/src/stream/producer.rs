//! Producing a stream: the task that sends a stream's items within its credit, and the ways one starts
//! (a stream method's answer, an upload of this side).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{AbortHandle, Abortable};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::credit::Credit;
use super::table::Refusal;
use super::wire;
use crate::call_error::CallError;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::layer::Answer;
use crate::message;
use crate::peer::Shared;

/// A stream's items, each encoded as its notification, or the error that ends the stream.
pub(crate) type Frames = BoxStream<'static, Result<String, ErrorObject>>;

/// Encodes each item of `items` as a notification of stream `id` under `method`.
pub(crate) fn frames<T, S>(method: Arc<str>, id: u64, items: S) -> Frames
where
    T: Serialize,
    S: Stream<Item = Result<T, ErrorObject>> + Send + 'static,
{
    items
        .map(move |item| {
            item.and_then(|item| {
                wire::encode_item(&method, id, &item).map_err(|error| {
                    ErrorObject::internal_error().with_detail(format_args!("an item could not be encoded: {error}"))
                })
            })
        })
        .boxed()
}

/// A produced stream's place in the table: given up however its producing ends (done, cancelled,
/// panicked, or dropped before it started), unless handed on.
pub(crate) struct Produced {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Produced {
    fn drop(&mut self) {
        self.shared.streams.produced(self.id);
    }
}

/// Runs stream `place` as a task of its own until it ends, is cancelled, or the connection ends. Its
/// future (and so the producing stream) is dropped at once on a cancel.
pub(crate) fn start(place: Produced, credit: Arc<Credit>, frames: Frames) {
    let (abort, registration) = AbortHandle::new_pair();
    let (shared, id) = (place.shared.clone(), place.id);
    let running = Abortable::new(produce(shared.clone(), id, credit, frames), registration);
    tokio::spawn(async move {
        let _place = place;
        let _ = running.await;
    });
    shared.streams.set_abort(id, abort);
}

/// Sends each item once there is credit for it, then the end. Without credit the stream is polled for
/// one more item at most, which waits, unsent, for credit: so the end (which needs none) goes out as
/// soon as the stream is done. A panic of the stream ends it with -32603.
async fn produce(shared: Arc<Shared>, id: u64, credit: Arc<Credit>, mut frames: Frames) {
    let max = shared.config.max_message_size;
    loop {
        let credited = credit.try_take();
        let next = match AssertUnwindSafe(frames.next()).catch_unwind().await {
            Ok(next) => next,
            Err(_) => {
                tracing::error!(target: "birpc::stream", stream = id, "a producing stream panicked");
                Some(Err(ErrorObject::internal_error()))
            }
        };
        let error = match next {
            Some(Ok(frame)) if frame.len() <= max => {
                if !credited {
                    credit.take().await;
                }
                if shared.send(frame).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Ok(frame)) => {
                tracing::warn!(target: "birpc::stream", stream = id, size = frame.len(), max, "a stream item was too large to send");
                Some(ErrorObject::response_too_large())
            }
            Some(Err(error)) => Some(error),
            None => None,
        };
        let _ = shared.send(wire::encode_end(id, error.as_ref())).await;
        return;
    }
}

/// Opens a download for the request `request` of the other side: registers the stream, sends the answer
/// (its id) before any item, and starts producing. `window` is the credit the consumer announced; `None`
/// when it announced none (a consumer that grants no credit). Returns the answer when it was not sent
/// here (an error).
pub(crate) async fn answer_with_stream<T, S>(
    shared: &Arc<Shared>,
    method: Arc<str>,
    request: &RawId,
    window: Option<u32>,
    items: S,
) -> Answer
where
    T: Serialize,
    S: Stream<Item = Result<T, ErrorObject>> + Send + 'static,
{
    let credit = Arc::new(Credit::new(window.map(u64::from)));
    let id = match shared.streams.produce(credit.clone()) {
        Ok(id) => id,
        Err(Refusal::Full) => {
            return Answer::failed(Some(request), &ErrorObject::too_many_streams(shared.streams.limit()));
        }
        // The connection is ending: nobody is left to answer.
        Err(Refusal::Closed | Refusal::Taken) => return Answer::encoded(None, None),
    };
    // Given up if this is dropped before the stream starts (the request cancelled while its answer waits).
    let place = Produced {
        shared: shared.clone(),
        id,
    };
    let answer = match message::encode_result(request, &id) {
        Ok(answer) => answer,
        Err(error) => {
            return Answer::failed(Some(request), &ErrorObject::internal_error().with_detail(error));
        }
    };
    // The answer goes into the outgoing queue before the first item can.
    shared.send_answer(answer).await;
    start(place, credit, frames(method, id, items));
    // Answered already.
    Answer::encoded(None, None)
}

/// Starts an upload of this side under `method`: the items wait for the callee's credit. Returns the
/// stream's id.
pub(crate) fn upload<T, S>(shared: &Arc<Shared>, method: &str, items: S) -> Result<u64, CallError>
where
    T: Serialize + Send + 'static,
    S: Stream<Item = T> + Send + 'static,
{
    let credit = Arc::new(Credit::new(Some(0)));
    let id = shared
        .streams
        .produce(credit.clone())
        .map_err(|refusal| match refusal {
            Refusal::Full => CallError::TooManyStreams {
                limit: shared.streams.limit(),
            },
            Refusal::Closed | Refusal::Taken => shared.disconnected(),
        })?;
    let place = Produced {
        shared: shared.clone(),
        id,
    };
    start(place, credit, frames(method.into(), id, items.map(Ok)));
    Ok(id)
}
