//! Producing a stream: the task that sends a stream's items within its credit, and the ways one starts
//! (a stream method's answer, an upload of this side).

use std::sync::Arc;

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

/// Runs stream `id` as a task of its own until it ends, is cancelled, or the connection ends. Its future
/// (and so the producing stream) is dropped at once on a cancel.
pub(crate) fn start(shared: Arc<Shared>, id: u64, credit: Arc<Credit>, frames: Frames) {
    let (abort, registration) = AbortHandle::new_pair();
    let running = Abortable::new(produce(shared.clone(), id, credit, frames), registration);
    let streams = shared.clone();
    tokio::spawn(async move {
        let _ = running.await;
        streams.streams.produced(id);
    });
    shared.streams.set_abort(id, abort);
}

/// Sends each item once there is credit for it, then the end.
async fn produce(shared: Arc<Shared>, id: u64, credit: Arc<Credit>, mut frames: Frames) {
    let max = shared.config.max_message_size;
    loop {
        // The producing stream is not polled without credit: it never runs ahead of its consumer.
        credit.take().await;
        let error = match frames.next().await {
            Some(Ok(frame)) if frame.len() <= max => {
                if shared.send(frame).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Ok(frame)) => {
                tracing::warn!(target: "birpc::stream",
                    stream = id,
                    size = frame.len(),
                    max,
                    "a stream item was too large to send"
                );
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
) -> Option<String>
where
    T: Serialize,
    S: Stream<Item = Result<T, ErrorObject>> + Send + 'static,
{
    let credit = Arc::new(Credit::new(window.map(u64::from)));
    let id = match shared.streams.produce(credit.clone()) {
        Ok(id) => id,
        Err(Refusal::Full) => {
            let error = ErrorObject::too_many_streams(shared.streams.limit());
            return Some(message::encode_error(Some(request), &error));
        }
        Err(Refusal::Closed | Refusal::Taken) => return None,
    };
    let answer = match message::encode_result(request, &id) {
        Ok(answer) => answer,
        Err(error) => {
            shared.streams.produced(id);
            return Some(message::encode_error(
                Some(request),
                &ErrorObject::internal_error().with_detail(error),
            ));
        }
    };
    // The answer goes into the outgoing queue before the first item can.
    shared.send_answer(answer).await;
    start(shared.clone(), id, credit, frames(method, id, items));
    None
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
    start(shared.clone(), id, credit, frames(method.into(), id, items.map(Ok)));
    Ok(id)
}
