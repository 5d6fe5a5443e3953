//! The reader: parses what arrives, hands answers to waiting calls, admits requests to their handlers.
//!
//! The reader never waits on a handler. A handler is polled once where it is admitted; if it is not done
//! at once it becomes a task of its own. Requests are admitted up to
//! [`PeerConfig::max_concurrent_requests`](crate::PeerConfig); past that the reader stops reading (the
//! other side is slowed down by TCP) unless calls of this side await answers. Those answers must still be
//! read, and a request arriving then may be the nested call an awaiting handler needs (a handler calling
//! back its caller, who calls back again): so such requests may run on up to
//! [`PeerConfig::max_pending_calls`](crate::PeerConfig) extra places, then wait in a bounded backlog;
//! reading stops only when that is full too.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::future::{Abortable, OptionFuture, join_all};
use futures::{FutureExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::handle::PeerHandle;
use super::pending::Answer;
use super::shared::{CANCEL_METHOD, Lifecycle, Refused, Shared};
use crate::close::{CloseCode, CloseFrame};
use crate::context::Context;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::message::{self, Item, Parsed};
use crate::params::Params;
use crate::router::{HandlerFuture, Method, Router};
use crate::transport::{Inbound, TransportError};

/// How the reader stopped.
#[derive(Debug)]
pub(super) enum ReaderEnd {
    /// The other side sent its close frame (and the transport answered it).
    Closed(CloseFrame),
    /// The stream ended without a close frame.
    Eof,
    /// The transport failed.
    Failed(TransportError),
    /// The other side broke a rule (a message too large, invalid UTF-8, a bad frame): the connection is
    /// to be closed with this frame.
    Violation(CloseFrame),
}

/// The most frames read in one go before the rest of the peer gets a turn.
const BURST: usize = 64;

/// What the reader does after handling one thing the transport delivered.
enum Flow {
    /// Goes on reading.
    Go,
    /// Stops.
    End(ReaderEnd),
    /// The other side sent its close frame: the reader finishes the handshake, then stops.
    Closed(CloseFrame),
}

/// A request admitted to run.
struct RequestJob {
    method: Method,
    id: RawId,
    params: Params,
}

/// A notification waiting for its turn.
pub(super) struct NotificationJob {
    method: Method,
    params: Params,
}

/// The requests of one batch, run together and answered in one frame.
struct BatchJob {
    requests: Vec<RequestJob>,
    /// Answers already known (errors for invalid entries and unknown methods).
    answered: Vec<String>,
}

enum Job {
    Request(RequestJob),
    Batch(BatchJob),
}

impl Job {
    /// The handler places the job takes: one per request, a batch at most all of them.
    fn places(&self, max: usize) -> u32 {
        let wanted = match self {
            Job::Request(_) => 1,
            Job::Batch(batch) => batch.requests.len().clamp(1, max),
        };
        u32::try_from(wanted).unwrap_or(u32::MAX)
    }
}

/// What blocked work became possible.
enum Progress {
    /// Room for the first stashed answer may have been made.
    Room,
    Places(OwnedSemaphorePermit),
    NotificationRoom(mpsc::OwnedPermit<Box<NotificationJob>>),
    MayRead,
}

pub(super) struct Reader {
    shared: Arc<Shared>,
    router: Router,
    /// Given to every handler's context.
    handle: PeerHandle,
    /// Places for running handlers.
    places: Arc<Semaphore>,
    /// Extra places, used only while calls of this side await answers: a request arriving then may be the
    /// nested call an awaiting handler needs, and must not wait for that handler's place.
    extra_places: Arc<Semaphore>,
    notifications: mpsc::Sender<Box<NotificationJob>>,
    /// Wakes the reader when a graceful close starts.
    drain: watch::Receiver<Lifecycle>,
    /// Requests and batches waiting for places, in arrival order.
    backlog: VecDeque<Job>,
    /// Notifications waiting for room in the notification queue, in arrival order.
    waiting_notifications: VecDeque<Box<NotificationJob>>,
    /// Answers made by the reader itself waiting for room in the writer's queue.
    stash: VecDeque<String>,
}

impl Reader {
    pub(super) fn new(
        shared: Arc<Shared>,
        router: Router,
        handle: PeerHandle,
        notifications: mpsc::Sender<Box<NotificationJob>>,
    ) -> Self {
        let places = Arc::new(Semaphore::new(shared.config.max_concurrent_requests.max(1)));
        let extra_places = Arc::new(Semaphore::new(shared.config.max_pending_calls.max(1)));
        let drain = shared.lifecycle.subscribe();
        Self {
            drain,
            shared,
            router,
            handle,
            places,
            extra_places,
            notifications,
            backlog: VecDeque::new(),
            waiting_notifications: VecDeque::new(),
            stash: VecDeque::new(),
        }
    }

    /// Reads until the connection ends.
    pub(super) async fn run<S>(mut self, stream: &mut S) -> ReaderEnd
    where
        S: Stream<Item = Result<Inbound, TransportError>> + Unpin,
    {
        loop {
            self.make_progress();
            let holding = self.is_holding();
            let may_read = !holding || (self.has_room() && !self.shared.pending.is_empty());
            self.shared.reading_paused.store(!may_read, Ordering::Relaxed);
            self.shared
                .waiting_requests
                .store(self.backlog.len(), Ordering::Relaxed);
            // Built only while work is held back (rarely), and then on the heap: an idle connection does not
            // carry its state.
            let progress: OptionFuture<_> = holding.then(|| Box::pin(self.progress(!may_read))).into();
            let mut next = tokio::select! {
                Some(progress) = progress, if holding => {
                    self.apply(progress);
                    continue;
                }
                // A graceful close started: what waits is answered at once by `make_progress`.
                Ok(()) = self.drain.changed() => continue,
                next = stream.next(), if may_read => next,
            };
            // Frames that are already here are read one after another without going round the loop (a
            // burst at most: the writer, the timers and the rest of the peer share this task).
            let mut read = 0;
            loop {
                match self.on_inbound(next) {
                    Flow::Go => {}
                    Flow::End(end) => return end,
                    Flow::Closed(frame) => {
                        // Let the transport finish the close handshake (it answers while being read).
                        let drain = async { while stream.next().await.is_some() {} };
                        let _ = tokio::time::timeout(self.shared.config.close_timeout, drain).await;
                        return ReaderEnd::Closed(frame);
                    }
                }
                read += 1;
                if read == BURST || self.is_holding() {
                    break;
                }
                match stream.next().now_or_never() {
                    Some(ready) => next = ready,
                    None => break,
                }
            }
        }
    }

    /// Handles what the transport delivered.
    fn on_inbound(&mut self, next: Option<Result<Inbound, TransportError>>) -> Flow {
        if let Some(Ok(_)) = &next {
            self.shared.heard.store(true, Ordering::Relaxed);
        }
        match next {
            Some(Ok(Inbound::Frame(frame))) => {
                let limit = self.shared.config.max_message_size;
                if frame.len() > limit {
                    let error = TransportError::TooLarge {
                        size: frame.len(),
                        limit,
                    };
                    return Flow::End(ReaderEnd::Violation(CloseFrame::new(
                        CloseCode::TOO_BIG,
                        error.to_string(),
                    )));
                }
                self.on_frame(&frame);
                Flow::Go
            }
            Some(Ok(Inbound::Close(frame))) => Flow::Closed(frame),
            // A pong, or what a newer transport may add: a sign of life, nothing more.
            Some(Ok(_)) => Flow::Go,
            Some(Err(e)) => Flow::End(match e.close_code() {
                Some(code) => ReaderEnd::Violation(CloseFrame::new(code, e.to_string())),
                None => ReaderEnd::Failed(e),
            }),
            None => Flow::End(ReaderEnd::Eof),
        }
    }

    /// Whether work is held back, waiting for room or places.
    fn is_holding(&self) -> bool {
        !self.backlog.is_empty() || !self.waiting_notifications.is_empty() || !self.stash.is_empty()
    }

    /// Whether the held-back work may grow.
    fn has_room(&self) -> bool {
        let config = &self.shared.config;
        self.backlog.len() < config.max_concurrent_requests
            && self.waiting_notifications.len() < config.max_queued_notifications
            && self.stash.len() < config.max_queued_frames
    }

    /// Moves held-back work on as far as it can go without waiting.
    fn make_progress(&mut self) {
        while let Some(frame) = self.stash.pop_front() {
            match self.shared.try_send(frame, true) {
                Ok(()) => {}
                Err(Refused::Full(frame)) => {
                    self.stash.push_front(frame);
                    break;
                }
                // The connection is ending: nothing more will be sent.
                Err(Refused::Closed) => self.stash.clear(),
            }
        }
        if self.shared.is_draining() {
            while let Some(job) = self.backlog.pop_front() {
                self.refuse(job);
            }
        }
        while let Some(job) = self.backlog.front() {
            let Some(places) = self.try_places(job) else { break };
            if let Some(job) = self.backlog.pop_front() {
                self.start(job, places);
            }
        }
        while let Some(job) = self.waiting_notifications.pop_front() {
            match self.notifications.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.waiting_notifications.push_front(job);
                    break;
                }
                Err(TrySendError::Closed(_)) => self.waiting_notifications.clear(),
            }
        }
    }

    /// Places for `job`: regular ones, or extra ones while calls of this side await answers.
    fn try_places(&self, job: &Job) -> Option<OwnedSemaphorePermit> {
        let wanted = job.places(self.shared.config.max_concurrent_requests);
        self.places.clone().try_acquire_many_owned(wanted).ok().or_else(|| {
            if self.shared.pending.is_empty() {
                None
            } else {
                self.extra_places.clone().try_acquire_many_owned(wanted).ok()
            }
        })
    }

    /// A future that resolves when some held-back work can move on, or (with `watch_calls`) when calls
    /// of this side start awaiting answers, which makes reading necessary again and extra places usable.
    fn progress(&self, watch_calls: bool) -> impl Future<Output = Progress> + use<> {
        let room = self.stash.front().map(String::len);
        let max = self.shared.config.max_concurrent_requests;
        let places = self.backlog.front().map(|job| (self.places.clone(), job.places(max)));
        let extra_places = places
            .as_ref()
            .filter(|_| !self.shared.pending.is_empty())
            .map(|(_, wanted)| (self.extra_places.clone(), *wanted));
        let notification_room = (!self.waiting_notifications.is_empty()).then(|| self.notifications.clone());
        let shared = self.shared.clone();
        async move {
            tokio::select! {
                true = async { match room { Some(bytes) => { shared.queue.room_for(bytes).await; true } None => false } } => Progress::Room,
                Some(Ok(permit)) = async { match places { Some((s, n)) => Some(s.acquire_many_owned(n).await), None => None } } => Progress::Places(permit),
                Some(Ok(permit)) = async { match extra_places { Some((s, n)) => Some(s.acquire_many_owned(n).await), None => None } } => Progress::Places(permit),
                Some(Ok(permit)) = async { match notification_room { Some(tx) => Some(tx.reserve_owned().await), None => None } } => Progress::NotificationRoom(permit),
                () = shared.pending.became_busy(), if watch_calls => Progress::MayRead,
                else => futures::future::pending().await,
            }
        }
    }

    fn apply(&mut self, progress: Progress) {
        match progress {
            // The stash is tried again first thing.
            Progress::Room => {}
            Progress::Places(places) => {
                if let Some(job) = self.backlog.pop_front() {
                    self.start(job, places);
                }
            }
            Progress::NotificationRoom(permit) => {
                if let Some(job) = self.waiting_notifications.pop_front() {
                    permit.send(job);
                }
            }
            Progress::MayRead => {}
        }
    }

    fn on_frame(&mut self, frame: &Bytes) {
        match message::parse(frame, self.shared.config.max_batch_len.max(1)) {
            Parsed::Rejected(error) => self.reply(message::encode_error(None, &error)),
            Parsed::Single(item) => match self.on_item(frame, item) {
                Step::Nothing => {}
                Step::Reply(answer) => self.reply(answer),
                Step::Run(request) => self.submit(Job::Request(request)),
            },
            Parsed::Batch(items) => {
                let mut requests = Vec::new();
                let mut answered = Vec::new();
                for item in items {
                    match self.on_item(frame, item) {
                        Step::Nothing => {}
                        Step::Reply(answer) => answered.push(answer),
                        Step::Run(request) => requests.push(request),
                    }
                }
                if !requests.is_empty() {
                    self.submit(Job::Batch(BatchJob { requests, answered }));
                } else if !answered.is_empty() {
                    let answer = fit_batch(answered, self.shared.config.max_message_size);
                    self.reply(answer);
                }
                // A batch of notifications and responses only gets no answer at all.
            }
        }
    }

    fn on_item(&mut self, frame: &Bytes, item: Item<'_>) -> Step {
        match item {
            Item::Call(call) => {
                let params = Params::from_raw(call.params.map(|p| slice(frame, p)));
                let Some(id) = call.id else {
                    self.on_notification(&call.method, params);
                    return Step::Nothing;
                };
                let id = RawId::from_checked(slice(frame, id));
                match self.router.get(&call.method) {
                    Some(method) => Step::Run(RequestJob {
                        method: method.clone(),
                        id,
                        params,
                    }),
                    None => Step::Reply(message::encode_error(Some(&id), &ErrorObject::method_not_found())),
                }
            }
            Item::Response(response) => {
                let answer = match response.outcome {
                    Ok(result) => Answer::Result(slice(frame, result)),
                    Err(error) => Answer::Error(error),
                };
                self.answer(response.id, answer);
                Step::Nothing
            }
            Item::Invalid { id, error } => {
                let id = id.map(|id| RawId::from_checked(slice(frame, id)));
                Step::Reply(message::encode_error(id.as_ref(), &error))
            }
            Item::InvalidResponse { id, reason } => {
                match id {
                    Some(id) => self.answer(id, Answer::Invalid(reason)),
                    None => tracing::debug!(reason, "dropped an invalid response without an id"),
                }
                Step::Nothing
            }
        }
    }

    /// Hands an answer to the call it names; an answer nobody waits for is logged and dropped.
    fn answer(&self, id: &RawValue, answer: Answer) {
        let delivered = id
            .get()
            .parse::<u64>()
            .is_ok_and(|id| self.shared.pending.complete(id, answer));
        if !delivered {
            tracing::debug!(
                id = id.get(),
                "dropped an answer to no pending call (late, withdrawn or unknown)"
            );
        }
    }

    fn on_notification(&mut self, method: &str, params: Params) {
        if method == CANCEL_METHOD {
            self.on_cancel(&params);
            return;
        }
        let Some(method) = self.router.get(method) else {
            tracing::debug!(method, "dropped a notification for an unknown method");
            return;
        };
        // Boxed, so that the queue's slots are small: every connection allocates a block of them.
        let job = Box::new(NotificationJob {
            method: method.clone(),
            params,
        });
        if self.waiting_notifications.is_empty() {
            match self.notifications.try_send(job) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(job)) => self.waiting_notifications.push_back(job),
            }
        } else {
            self.waiting_notifications.push_back(job);
        }
    }

    /// `$/cancelRequest {"id": …}`: aborts that request's handler, or drops it if it has not started yet.
    fn on_cancel(&mut self, params: &Params) {
        #[derive(Deserialize)]
        struct Cancel<'a> {
            #[serde(borrow)]
            id: &'a RawValue,
        }
        let Some(Ok(cancel)) = params.as_bytes().map(serde_json::from_slice::<Cancel<'_>>) else {
            tracing::debug!("ignored a malformed $/cancelRequest");
            return;
        };
        let id = RawId::from_checked(Bytes::copy_from_slice(cancel.id.get().as_bytes()));
        if self.shared.running.cancel(&id) {
            return;
        }
        let queued = self
            .backlog
            .iter()
            .position(|job| matches!(job, Job::Request(request) if request.id == id));
        if let Some(Job::Request(request)) = queued.and_then(|index| self.backlog.remove(index)) {
            self.reply(message::encode_error(
                Some(&request.id),
                &ErrorObject::request_cancelled(),
            ));
        }
    }

    /// Sends an answer the reader made, or holds it until the writer's queue has room.
    fn reply(&mut self, answer: String) {
        if !self.stash.is_empty() {
            self.stash.push_back(answer);
            return;
        }
        match self.shared.try_send(answer, true) {
            Ok(()) | Err(Refused::Closed) => {}
            Err(Refused::Full(answer)) => self.stash.push_back(answer),
        }
    }

    /// Answers every request of a job that will not run (the peer is shutting down) with -32002.
    fn refuse(&mut self, job: Job) {
        let refusal = |id: &RawId| message::encode_error(Some(id), &ErrorObject::shutting_down());
        match job {
            Job::Request(request) => {
                let answer = refusal(&request.id);
                self.reply(answer);
            }
            Job::Batch(batch) => {
                let mut answers = batch.answered;
                answers.extend(batch.requests.iter().map(|request| refusal(&request.id)));
                let answer = fit_batch(answers, self.shared.config.max_message_size);
                self.reply(answer);
            }
        }
    }

    /// Starts a job now if places are free and nothing is ahead of it, else queues it.
    fn submit(&mut self, job: Job) {
        if self.shared.is_draining() {
            self.refuse(job);
            return;
        }
        if self.backlog.is_empty()
            && let Some(places) = self.try_places(&job)
        {
            self.start(job, places);
            return;
        }
        self.backlog.push_back(job);
    }

    /// Runs a job holding its places: polled once here, then as a task if it is not done.
    fn start(&mut self, job: Job, places: OwnedSemaphorePermit) {
        let max = self.shared.config.max_message_size;
        match job {
            Job::Request(request) => {
                let ctx = Context::new(self.handle.clone());
                let id = request.id;
                let running = AssertUnwindSafe(request.method.call(ctx, request.params, Some(id.clone())));
                let mut running = running.catch_unwind();
                match (&mut running).now_or_never() {
                    Some(outcome) => {
                        if let Some(answer) = finish(outcome, &id, max) {
                            self.reply(answer);
                        }
                    }
                    None => {
                        let answer_id = id.clone();
                        let running =
                            running.map(move |outcome: std::thread::Result<_>| finish(outcome, &answer_id, max));
                        self.spawn(Some(id), running, places);
                    }
                }
            }
            Job::Batch(batch) => {
                let entries: Vec<_> = batch
                    .requests
                    .into_iter()
                    .map(|request| {
                        let ctx = Context::new(self.handle.clone());
                        let id = request.id;
                        let running = request.method.call(ctx, request.params, Some(id.clone()));
                        run_entry(self.shared.clone(), running, id, max)
                    })
                    .collect();
                let mut answered = batch.answered;
                let mut running = Box::pin(async move {
                    answered.extend(join_all(entries).await.into_iter().flatten());
                    Some(fit_batch(answered, max))
                });
                match (&mut running).now_or_never() {
                    Some(Some(answer)) => self.reply(answer),
                    Some(None) => {}
                    None => self.spawn(None, running, places),
                }
            }
        }
    }

    /// Runs a handler that was not done at once as a task, cancellable by its id.
    fn spawn<F>(&self, id: Option<RawId>, running: F, places: OwnedSemaphorePermit)
    where
        F: Future<Output = Option<String>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let Some((key, registration)) = shared.running.register(id.clone()) else {
            // The connection ended; there is nobody to answer.
            return;
        };
        tokio::spawn(async move {
            let registered = shared.running.guard(key);
            let answer = match Abortable::new(running, registration).await {
                Ok(answer) => answer,
                Err(_aborted) => id.map(|id| message::encode_error(Some(&id), &ErrorObject::request_cancelled())),
            };
            if let Some(answer) = answer {
                // Fails only when the connection has ended; then the answer has nowhere to go.
                let _ = shared.send(answer).await;
            }
            // Running until its answer is queued: a graceful close waits for it to be sent.
            drop(registered);
            drop(places);
        });
    }
}

/// What to do with one received message.
enum Step {
    Nothing,
    Reply(String),
    Run(RequestJob),
}

/// The answer to send for a finished handler: its own, -32603 if it panicked, -32003 if too large.
fn finish(outcome: std::thread::Result<Option<String>>, id: &RawId, max: usize) -> Option<String> {
    match outcome {
        Ok(Some(answer)) if answer.len() > max => {
            tracing::warn!(%id, size = answer.len(), max, "a result was too large to send");
            Some(message::encode_error(Some(id), &ErrorObject::response_too_large()))
        }
        Ok(answer) => answer,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(%id, panic = what, "a handler panicked");
            Some(message::encode_error(Some(id), &ErrorObject::internal_error()))
        }
    }
}

/// Runs one request of a batch to its answer.
///
/// Each entry is registered under its own id while it runs, so that `$/cancelRequest` can withdraw it
/// (it is answered -32800 and the rest of the batch goes on).
async fn run_entry(shared: Arc<Shared>, running: HandlerFuture, id: RawId, max: usize) -> Option<String> {
    let Some((key, registration)) = shared.running.register(Some(id.clone())) else {
        // The connection ended; there is nobody to answer.
        return None;
    };
    let _registered = shared.running.guard(key);
    match Abortable::new(AssertUnwindSafe(running).catch_unwind(), registration).await {
        Ok(outcome) => finish(outcome, &id, max),
        Err(_aborted) => Some(message::encode_error(Some(&id), &ErrorObject::request_cancelled())),
    }
}

/// Joins batch answers into one frame, replacing the largest results by -32003 errors until it fits.
fn fit_batch(mut answers: Vec<String>, max: usize) -> String {
    let mut total: usize = answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1;
    while total > max {
        let Some((index, _)) = answers.iter().enumerate().max_by_key(|(_, a)| a.len()) else {
            break;
        };
        let id = answer_id(&answers[index]);
        let replacement = message::encode_error(id.as_ref(), &ErrorObject::response_too_large());
        if replacement.len() >= answers[index].len() {
            // Nothing left to shrink.
            break;
        }
        total -= answers[index].len() - replacement.len();
        answers[index] = replacement;
    }
    message::encode_batch(&answers)
}

/// The id of an answer this side encoded.
fn answer_id(answer: &str) -> Option<RawId> {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
    }
    let id = serde_json::from_str::<IdOnly<'_>>(answer).ok()?.id;
    Some(RawId::from_checked(Bytes::copy_from_slice(id.get().as_bytes())))
}

/// The part of `frame` that `part` (parsed from it) occupies, without copying.
fn slice(frame: &Bytes, part: &RawValue) -> Bytes {
    let part = part.get().as_bytes();
    let start = (part.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= frame.len() => frame.slice(start..end),
        // Not borrowed from the frame (cannot happen with the parser above); copy it.
        _ => Bytes::copy_from_slice(part),
    }
}

/// Runs notification handlers one after another, in the order they arrived.
pub(super) async fn run_notifications(mut queue: mpsc::Receiver<Box<NotificationJob>>, handle: PeerHandle) {
    while let Some(job) = queue.recv().await {
        let running = job.method.call(Context::new(handle.clone()), job.params, None);
        if AssertUnwindSafe(running).catch_unwind().await.is_err() {
            tracing::error!("a notification handler panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_borrow_from_the_frame() {
        let frame = Bytes::from_static(br#"{"id": 12}"#);
        let raw: &RawValue =
            serde_json::from_slice::<std::collections::HashMap<&str, &RawValue>>(&frame).unwrap()["id"];
        let part = slice(&frame, raw);
        assert_eq!(&part[..], b"12");
        assert_eq!(part.as_ptr(), frame[7..].as_ptr());
        let foreign = RawValue::from_string("34".into()).unwrap();
        assert_eq!(&slice(&frame, &foreign)[..], b"34");
    }

    #[test]
    fn oversized_batch_answers_are_replaced_until_the_frame_fits() {
        let big = message::encode_result(&RawId::null(), &"x".repeat(500)).unwrap();
        let small = message::encode_result(&RawId::null(), &1).unwrap();
        let joined = fit_batch(vec![small.clone(), big], 200);
        assert!(joined.len() <= 200);
        assert!(joined.contains(&small));
        assert!(joined.contains("-32003"));
    }
}
