//! Running the handlers the dispatcher starts: each is polled once where it starts, and becomes a task of
//! its own if it is not done at once. The driver owns the running ones ([`Handlers`]): it cancels one by
//! id, and all of them when the connection ends (or its task dies); each task reports its end.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{AbortHandle, Abortable, join_all};
use rustc_hash::FxHashMap;

use super::dispatch::{Job, Ticket, fit_batch};
use super::handle::PeerHandle;
use super::shared::Shared;
use super::signal::{FINISHED, Signal};
use crate::context::Context;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::layer::Answer;
use crate::message;
use crate::metrics::observe_received;
use crate::params::Params;
use crate::router::{HandlerFuture, Method};

tokio::task_local! {
    /// The connection whose handler the current task is running, while it runs one.
    static HANDLING: u64;
}

/// Whether the current task is running a handler of connection `connection_id` (its calls to that
/// connection may then use the pending table's reserve, and must not wait for a place).
pub(crate) fn handling(connection_id: u64) -> bool {
    HANDLING.try_with(|id| *id == connection_id).unwrap_or(false)
}

/// Keys of handler tasks that ended, reported by the tasks to the driver (woken by [`FINISHED`] on the
/// connection's signal). It holds at most one key per running task (each reports once), so it is bounded
/// by the handler places.
#[derive(Default)]
pub(crate) struct Finished {
    keys: Mutex<Vec<u64>>,
}

impl Finished {
    fn report(&self, key: u64, wake: &Signal) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).push(key);
        wake.raise(FINISHED);
    }

    /// Ready when a task may have ended since the keys were last taken (one waiter only, registered on
    /// `wake` in this poll).
    pub(super) fn poll_wait(&self, wake: &Signal) -> std::task::Poll<()> {
        wake.poll_take(FINISHED)
    }

    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Calls `method`'s handler for the future that answers. A handler may run code of its own before it
/// returns that future (a closure's body before its `async` block, say); a panic there is caught here and
/// raised again when the future is first polled, inside the `catch_unwind` every handler runs in, so it is
/// answered -32603 as a panic while running is, and the connection goes on.
fn call_handler(method: &Method, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture {
    match std::panic::catch_unwind(AssertUnwindSafe(|| method.call(ctx, params, id))) {
        Ok(running) => running,
        Err(panic) => Box::pin(async move { std::panic::resume_unwind(panic) }),
    }
}

/// Reports the end of a handler task, however it ends (done, aborted, panicked, dropped with the runtime).
struct Report {
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for Report {
    fn drop(&mut self) {
        self.shared.finished.report(self.key, &self.shared.wake);
    }
}

/// How a running task is cancelled: one handler, or each request of a batch by its id.
enum Cancel {
    One(Option<RawId>, AbortHandle),
    Batch(Vec<(RawId, AbortHandle)>),
}

struct Task {
    ticket: Ticket,
    cancel: Cancel,
}

/// The handlers of a connection that run as tasks. Dropping it (the connection ended, or its task died)
/// aborts them all.
pub(super) struct Handlers {
    shared: Arc<Shared>,
    /// The connection's id, which marks the tasks running its handlers (see [`handling`]).
    connection: u64,
    handle: PeerHandle,
    tasks: FxHashMap<u64, Task>,
    next_key: u64,
}

/// What running a job's handler gave at once.
pub(super) enum Started {
    /// Done at once: send this answer (if any) and give the ticket back now.
    Done(Option<String>),
    /// Running as a task; its ticket comes back through [`Handlers::finished`].
    Running,
}

impl Handlers {
    pub(super) fn new(shared: Arc<Shared>, handle: PeerHandle) -> Self {
        Self {
            connection: shared.connection_id,
            shared,
            handle,
            tasks: FxHashMap::default(),
            next_key: 0,
        }
    }

    /// The number of handlers running as tasks.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Runs `job`'s handler: polled once here, then as a task if it is not done.
    pub(super) fn start(&mut self, job: Job, ticket: Ticket) -> Started {
        let max = self.shared.config.max_message_size;
        match job {
            Job::Request(request) => {
                let ctx = Context::new(self.handle.clone(), request.window, false);
                let id = request.id;
                let running = call_handler(&request.method, ctx, request.params, Some(id.clone()));
                let running = observe_received(&request.method, running).map(Answer::into_frame);
                let mut running = AssertUnwindSafe(running).catch_unwind();
                let connection = self.connection;
                if let Some(outcome) = HANDLING.sync_scope(connection, || (&mut running).now_or_never()) {
                    return Started::Done(finish(outcome, &id, max));
                }
                let running = HANDLING.scope(connection, running);
                let (abort, registration) = AbortHandle::new_pair();
                let answer_id = id.clone();
                let running = async move {
                    match Abortable::new(running, registration).await {
                        Ok(outcome) => finish(outcome, &answer_id, max),
                        Err(_aborted) => Some(message::encode_error(
                            Some(&answer_id),
                            &ErrorObject::request_cancelled(),
                        )),
                    }
                };
                self.spawn(
                    running,
                    Task {
                        ticket,
                        cancel: Cancel::One(Some(id), abort),
                    },
                )
            }
            Job::Batch(batch) => {
                let mut cancel = Vec::with_capacity(batch.requests.len());
                let entries: Vec<_> = batch
                    .requests
                    .into_iter()
                    .map(|request| {
                        let ctx = Context::new(self.handle.clone(), request.window, true);
                        let id = request.id;
                        let running = call_handler(&request.method, ctx, request.params, Some(id.clone()));
                        let running = observe_received(&request.method, running);
                        let (abort, registration) = AbortHandle::new_pair();
                        cancel.push((id.clone(), abort));
                        run_entry(running, registration, id, max)
                    })
                    .collect();
                let mut answered = batch.answered;
                let mut running = Box::pin(HANDLING.scope(self.connection, async move {
                    answered.extend(join_all(entries).await.into_iter().flatten());
                    Some(fit_batch(answered, max))
                }));
                if let Some(answer) = (&mut running).now_or_never() {
                    return Started::Done(answer);
                }
                self.spawn(
                    running,
                    Task {
                        ticket,
                        cancel: Cancel::Batch(cancel),
                    },
                )
            }
            Job::Notification(notification) => {
                let ctx = Context::new(self.handle.clone(), None, false);
                let running = call_handler(&notification.method, ctx, notification.params, None);
                let running = observe_received(&notification.method, running).map(Answer::into_frame);
                let mut running = AssertUnwindSafe(running).catch_unwind();
                let connection = self.connection;
                if let Some(outcome) = HANDLING.sync_scope(connection, || (&mut running).now_or_never()) {
                    notified(outcome);
                    return Started::Done(None);
                }
                let running = HANDLING.scope(connection, running);
                let (abort, registration) = AbortHandle::new_pair();
                let running = async move {
                    if let Ok(outcome) = Abortable::new(running, registration).await {
                        notified(outcome);
                    }
                    None
                };
                self.spawn(
                    running,
                    Task {
                        ticket,
                        cancel: Cancel::One(None, abort),
                    },
                )
            }
        }
    }

    /// Runs a handler that was not done at once as a task, which sends its answer (waiting for room in
    /// the outgoing queue, holding its places meanwhile) and then reports its end.
    fn spawn<F>(&mut self, running: F, task: Task) -> Started
    where
        F: Future<Output = Option<String>> + Send + 'static,
    {
        let key = self.next_key;
        self.next_key += 1;
        self.tasks.insert(key, task);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let report = Report { shared, key };
            if let Some(answer) = running.await {
                report.shared.send_answer(answer).await;
            }
            drop(report);
        });
        Started::Running
    }

    /// Holds `ticket` while `answer`, made by a handler done at once, waits for room in the outgoing queue.
    pub(super) fn hold(&mut self, answer: String, ticket: Ticket) {
        let (abort, _registration) = AbortHandle::new_pair();
        self.spawn(
            std::future::ready(Some(answer)),
            Task {
                ticket,
                cancel: Cancel::One(None, abort),
            },
        );
    }

    /// The tickets of the tasks that ended since last asked.
    pub(super) fn finished(&mut self) -> Vec<Ticket> {
        self.shared
            .finished
            .take()
            .into_iter()
            .filter_map(|key| self.tasks.remove(&key).map(|task| task.ticket))
            .collect()
    }

    /// Aborts the handler answering `id` (it answers -32800); `false` when none runs.
    pub(super) fn cancel(&mut self, id: &RawId) -> bool {
        for task in self.tasks.values() {
            match &task.cancel {
                Cancel::One(Some(running), abort) if running == id => {
                    abort.abort();
                    return true;
                }
                Cancel::Batch(entries) => {
                    if let Some((_, abort)) = entries.iter().find(|(running, _)| running == id) {
                        abort.abort();
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            match &task.cancel {
                Cancel::One(_, abort) => abort.abort(),
                Cancel::Batch(entries) => entries.iter().for_each(|(_, abort)| abort.abort()),
            }
        }
    }
}

/// Logs a notification handler's panic.
fn notified(outcome: std::thread::Result<Option<String>>) {
    if let Err(panic) = outcome {
        tracing::error!(target: "birpc::peer", panic = panic_message(&*panic), "a notification handler panicked");
    }
}

/// The answer to send for a finished handler: its own, -32603 if it panicked, -32003 if too large.
fn finish(outcome: std::thread::Result<Option<String>>, id: &RawId, max: usize) -> Option<String> {
    match outcome {
        Ok(Some(answer)) if answer.len() > max => {
            tracing::warn!(target: "birpc::peer", %id, size = answer.len(), max, "a result was too large to send");
            Some(message::encode_error(Some(id), &ErrorObject::response_too_large()))
        }
        Ok(answer) => answer,
        Err(panic) => {
            tracing::error!(target: "birpc::peer", %id, panic = panic_message(&*panic), "a handler panicked");
            Some(message::encode_error(Some(id), &ErrorObject::internal_error()))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs one request of a batch to its answer; aborted (by `$/cancelRequest`), it answers -32800 and the
/// rest of the batch goes on.
async fn run_entry(
    running: HandlerFuture,
    registration: futures::future::AbortRegistration,
    id: RawId,
    max: usize,
) -> Option<String> {
    match Abortable::new(
        AssertUnwindSafe(running.map(Answer::into_frame)).catch_unwind(),
        registration,
    )
    .await
    {
        Ok(outcome) => finish(outcome, &id, max),
        Err(_aborted) => Some(message::encode_error(Some(&id), &ErrorObject::request_cancelled())),
    }
}
