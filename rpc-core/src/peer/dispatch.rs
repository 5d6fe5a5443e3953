//! The dispatcher: what to do with each received message, decided without IO.
//!
//! Frames and events go in ([`Dispatcher::on_frame`], [`on_finished`](Dispatcher::on_finished),
//! [`calls_pending`](Dispatcher::calls_pending), [`drain`](Dispatcher::drain)); [`Action`]s come out, in
//! order, to whatever [`Act`]s on them (the driver; a `Vec` in tests). The dispatcher owns the admission
//! of received work and nothing else: it never reads or writes, never runs a handler, knows no clock, and
//! is tested without a runtime.
//!
//! Work is bounded the way HTTP/2 bounds streams (RFC 9113, `SETTINGS_MAX_CONCURRENT_STREAMS` and
//! `REFUSED_STREAM`), never by no longer reading:
//! - requests run on up to `max_concurrent_requests` places; while calls of this side await answers, on
//!   extra places too, as many as this side can have calls pending (twice `max_pending_calls`): the
//!   nested call an awaiting handler needs must not wait for that handler's place. Since more handlers
//!   may run than calls may await answers, some handler can always finish; and when the pending table is
//!   full the handlers' calls fail at once: nested calls between request handlers never wait on each
//!   other in a circle (a request behind waiting notifications waits for them, see below);
//! - past that they wait, in arrival order, in a queue bounded by count and bytes; past the queue they are
//!   refused at once with -32005 Busy and never run;
//! - notifications run one after another; past their queue the connection closes with 1008;
//! - every handler starts in the order its message arrived: nothing overtakes what waits before it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::pending::Answer;
use super::shared::CANCEL_METHOD;
use crate::close::{CloseCode, CloseFrame};
use crate::config::PeerConfig;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::message::{self, Message, Received};
use crate::params::Params;
use crate::router::{Method, Router};
use crate::stream::wire::{self, Control};

/// The most `$/stream.open` announcements kept that no request has claimed yet; past it the oldest is
/// forgotten (its stream then runs as for a consumer that grants no credit).
const MAX_ANNOUNCED: usize = 16;

/// A received request admitted to run.
pub(super) struct RequestJob {
    pub(super) method: Method,
    pub(super) id: RawId,
    pub(super) params: Params,
    /// The credit its caller announced for the download it opens, if any.
    pub(super) window: Option<u32>,
}

/// A received notification admitted to run.
pub(super) struct NotificationJob {
    pub(super) method: Method,
    pub(super) params: Params,
}

/// The requests of one batch, run together and answered in one frame.
pub(super) struct BatchJob {
    pub(super) requests: Vec<RequestJob>,
    /// Answers already known (errors for invalid entries, unknown methods, cancelled entries).
    pub(super) answered: Vec<String>,
}

/// Work for handlers.
pub(super) enum Job {
    Request(RequestJob),
    Batch(BatchJob),
    Notification(NotificationJob),
}

/// What a started job holds; given back to [`Dispatcher::on_finished`] when its handler is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ticket {
    /// Request places: `places` in all, `extra` of them beyond `max_concurrent_requests`.
    Requests { places: usize, extra: usize },
    /// The one notification lane.
    Notification,
}

/// What the driver is to do.
pub(super) enum Action {
    /// Send this answer, made by the dispatcher itself (an error, a refusal).
    Reply(String),
    /// Run this job's handler now; give the ticket back when it is done.
    Start(Job, Ticket),
    /// Hand this answer to the call of this side with this id.
    Answer(u64, Answer),
    /// An error answered with id `null`: a batch of this side's rejected as a whole fails with it.
    BatchRejected(ErrorObject),
    /// Abort the running handler answering this id, if there is one (`$/cancelRequest`).
    Cancel(RawId),
    /// The other side broke a rule: close the connection with this frame.
    Close(CloseFrame),
}

/// Where the dispatcher's actions go, in order, as they are decided: the driver carries each out at once
/// (tests collect them in a `Vec`). Pushing them into the driver, instead of queueing them in the
/// dispatcher, saves a queue's round trip per message.
pub(super) trait Act {
    fn act(&mut self, action: Action);

    /// Whether handlers' answers wait for room beyond the outgoing budget: then no further request
    /// starts (they wait, then are refused Busy), so that answers nobody reads cannot pile up.
    fn congested(&self) -> bool {
        false
    }

    /// Whether this side consumes any stream, so that a notification may be one of its items.
    fn consumes_streams(&self) -> bool {
        false
    }

    /// Whether this side has made calls, so that a frame is likely to be an answer (a side that never
    /// calls is not asked to read each request as one first).
    fn has_called(&self) -> bool {
        true
    }

    /// How many calls of this side await answers now, where that is known (`None`: the count last told by
    /// [`Dispatcher::calls_pending`] stands). Asked only when a request finds no regular place.
    fn calls_pending(&self) -> Option<usize> {
        None
    }

    /// A message of the stream protocol (`docs/streams.md`) for the connection's streams; whether it
    /// was taken. An item or end of no stream consumed here is not taken (an ordinary notification may
    /// have that shape); a cancel is taken if its stream was live.
    fn stream(&mut self, control: Control) -> bool {
        let _ = control;
        false
    }
}

impl Act for Vec<Action> {
    fn act(&mut self, action: Action) {
        self.push(action);
    }
}

/// A job waiting for its turn, with what it counts against the queue's bounds.
struct Waiting {
    job: Job,
    /// Bytes of the frame it holds (counted once per frame).
    bytes: usize,
}

impl Job {
    /// How many requests it holds.
    fn requests(&self) -> usize {
        match self {
            Job::Request(_) => 1,
            Job::Batch(batch) => batch.requests.len(),
            Job::Notification(_) => 0,
        }
    }
}

/// The admission of one connection's received work; see the [module](self).
pub(super) struct Dispatcher {
    router: Router,
    /// The configuration, whose limits are read where they apply (shared by the connections built from
    /// one configuration, not copied into each).
    config: Arc<PeerConfig>,
    /// Request places taken, extra ones included.
    running: usize,
    /// Of which beyond `max_running`.
    extra: usize,
    /// Whether a notification handler runs.
    notifying: bool,
    /// This side's calls awaiting answers, as last told.
    calls_pending: usize,
    waiting: VecDeque<Waiting>,
    queued_requests: usize,
    queued_notifications: usize,
    queued_bytes: usize,
    draining: bool,
    /// `$/stream.open` announcements not yet claimed by their request: the id's JSON text, the window.
    announced: VecDeque<(Box<str>, u32)>,
    /// A rule was broken and the connection is closing: nothing more is dispatched.
    broken: bool,
}

impl Dispatcher {
    pub(super) fn new(router: Router, config: Arc<PeerConfig>) -> Self {
        Self {
            router,
            config,
            running: 0,
            extra: 0,
            notifying: false,
            calls_pending: 0,
            waiting: VecDeque::new(),
            queued_requests: 0,
            queued_notifications: 0,
            queued_bytes: 0,
            draining: false,
            announced: VecDeque::new(),
            broken: false,
        }
    }

    /// The extra request places beyond `max_concurrent_requests`: as many as this side can have calls
    /// pending, reserve included, so that a waiting request always finds a place while every running
    /// handler awaits an answer (see `ticket_for`).
    fn max_extra(&self) -> usize {
        self.config.max_pending_calls.max(1).saturating_mul(2)
    }

    /// Whether nothing runs or waits: no request, no notification (a graceful close waits for this).
    pub(super) fn is_idle(&self) -> bool {
        self.running == 0 && !self.notifying && self.waiting.is_empty()
    }

    /// Requests and notifications waiting for their turn.
    pub(super) fn queued(&self) -> (usize, usize) {
        (self.queued_requests, self.queued_notifications)
    }

    /// Whether a waiting request could start if this side had a call awaiting an answer.
    pub(super) fn waits_for_calls(&self) -> bool {
        self.calls_pending == 0
            && self
                .waiting
                .front()
                .is_some_and(|w| !matches!(w.job, Job::Notification(_)))
    }

    /// This side now has `count` calls awaiting answers: while it has any, extra places are usable. Told
    /// at every turn of the driver's loop (before it asks [`waits_for_calls`](Self::waits_for_calls)) and
    /// after a burst of answers that takes none; a request that finds no regular place asks the executor
    /// for the count at that moment ([`Act::calls_pending`]), which calls made, answered or withdrawn since
    /// change.
    pub(super) fn calls_pending(&mut self, count: usize, out: &mut impl Act) {
        let grew = count > self.calls_pending;
        self.calls_pending = count;
        if grew {
            self.advance(out);
        }
    }

    /// A started job's handler is done: its places (or the notification lane) are free again.
    pub(super) fn on_finished(&mut self, ticket: Ticket, out: &mut impl Act) {
        match ticket {
            Ticket::Requests { places, extra } => {
                self.running = self.running.saturating_sub(places);
                self.extra = self.extra.saturating_sub(extra);
            }
            Ticket::Notification => self.notifying = false,
        }
        self.advance(out);
    }

    /// A graceful close began: requests that have not started are answered -32002 Shutting down, and so
    /// is every request from now on. Waiting notifications still run.
    pub(super) fn drain(&mut self, out: &mut impl Act) {
        if std::mem::replace(&mut self.draining, true) {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for waiting in waiting {
            match waiting.job {
                Job::Notification(_) => self.waiting.push_back(waiting),
                job => {
                    self.queued_requests -= job.requests();
                    self.queued_bytes -= waiting.bytes;
                    self.refuse(job, &ErrorObject::shutting_down(), out);
                }
            }
        }
        self.advance(out);
    }

    /// One received frame (a WebSocket message, a line).
    pub(super) fn on_frame(&mut self, mut frame: Bytes, out: &mut impl Act) {
        if self.broken {
            return;
        }
        if frame.len() > self.config.max_message_size {
            let detail = format!(
                "message of {} bytes is larger than the limit of {} bytes",
                frame.len(),
                self.config.max_message_size
            );
            return self.close(CloseFrame::new(CloseCode::TOO_BIG, detail), out);
        }
        // An answer as this side's calls are answered (see `message::plain_result`): the frame, narrowed to
        // its result, is the answer.
        if out.has_called()
            && let Some((id, result)) = message::plain_result(&frame)
        {
            frame.truncate(result.end);
            frame.advance(result.start);
            return out.act(Action::Answer(id, Answer::Result(frame)));
        }
        // The frame's bytes are counted against the queue's bound by the first job that holds it.
        let mut bytes = frame.len();
        match message::receive(&frame, self.config.max_batch_len.max(1)) {
            Received::Rejected(error) => {
                crate::metrics::refused(error.code(), 1);
                self.reply(message::encode_error(None, &error), out);
            }
            Received::Single(message) => match self.on_message(message, false, out) {
                Step::Nothing => {}
                Step::Reply(answer) => self.reply(answer, out),
                Step::Run(request) => self.submit(Job::Request(request), bytes, out),
                Step::Notify(notification) => self.submit(Job::Notification(notification), bytes, out),
            },
            Received::Batch(messages) => {
                // The entries of a batch may be handled in any order (JSON-RPC 2.0, section 6): its
                // requests go as one job, holding the frame's bytes, then its notifications in order.
                let mut requests = Vec::new();
                let mut answered = Vec::new();
                let mut notifications = Vec::new();
                for message in messages {
                    match self.on_message(message, true, out) {
                        Step::Nothing => {}
                        Step::Reply(answer) => answered.push(answer),
                        Step::Run(request) => requests.push(request),
                        Step::Notify(notification) => notifications.push(notification),
                    }
                }
                if !requests.is_empty() {
                    self.submit(
                        Job::Batch(BatchJob { requests, answered }),
                        std::mem::take(&mut bytes),
                        out,
                    );
                } else if !answered.is_empty() {
                    let answer = fit_batch(answered, self.config.max_message_size);
                    self.reply(answer, out);
                }
                for notification in notifications {
                    self.submit(Job::Notification(notification), std::mem::take(&mut bytes), out);
                }
                // A batch of notifications and responses only gets no answer at all.
            }
        }
    }

    /// Handles one message, alone in its frame or (`in_batch`) an entry of a batch.
    fn on_message(&mut self, message: Message<'_>, in_batch: bool, out: &mut impl Act) -> Step {
        match message {
            Message::Request { id, method, params } => {
                let window = self.claim(&id);
                if method == wire::CANCEL {
                    return Step::Reply(self.cancel_stream(&id, &params, out));
                }
                match self.router.get(&method) {
                    Some(method) => Step::Run(RequestJob {
                        method,
                        id,
                        params,
                        window,
                    }),
                    None => {
                        crate::metrics::refused(crate::code::METHOD_NOT_FOUND, 1);
                        Step::Reply(message::encode_error(Some(&id), &ErrorObject::method_not_found()))
                    }
                }
            }
            Message::Notification { method, params } => {
                if method == CANCEL_METHOD {
                    self.on_cancel(&params, out);
                    return Step::Nothing;
                }
                let control = wire::is_control(&method);
                if control || out.consumes_streams() {
                    let taken = match wire::parse(&method, params.raw()) {
                        Some(Control::Open { id, window }) => {
                            self.announce(id, window);
                            true
                        }
                        Some(message) => out.stream(message),
                        None => {
                            if control {
                                tracing::debug!(target: "birpc::peer", %method, "ignored a malformed stream message");
                            }
                            false
                        }
                    };
                    if taken || control {
                        return Step::Nothing;
                    }
                }
                match self.router.get(&method) {
                    Some(method) => Step::Notify(NotificationJob { method, params }),
                    None => {
                        tracing::debug!(target: "birpc::peer", %method, "dropped a notification for an unknown method");
                        Step::Nothing
                    }
                }
            }
            Message::Response {
                id: "null",
                outcome: Err(error),
            } => {
                // Alone in its frame, it rejects a batch as a whole (JSON-RPC 2.0, section 6); in an array
                // of responses it answers one entry that could not be read, and names no call.
                if in_batch {
                    tracing::debug!(target: "birpc::peer", %error, "dropped an error with id null among a batch's responses");
                } else {
                    out.act(Action::BatchRejected(error));
                }
                Step::Nothing
            }
            Message::Response { id, outcome } => {
                let answer = match outcome {
                    Ok(result) => Answer::Result(result),
                    Err(error) => Answer::Error(Box::new(error)),
                };
                self.answer(id, answer, out);
                Step::Nothing
            }
            Message::Invalid { id, error } => {
                crate::metrics::refused(error.code(), 1);
                Step::Reply(message::encode_error(id.as_ref(), &error))
            }
            Message::InvalidResponse { id, reason } => {
                match id {
                    Some(id) => self.answer(id, Answer::Invalid(reason), out),
                    None => tracing::debug!(target: "birpc::peer", reason, "dropped an invalid response without an id"),
                }
                Step::Nothing
            }
        }
    }

    /// Starts `job` now if it may (nothing waits before it and it has places), queues it if the queue has
    /// room, refuses it otherwise.
    fn submit(&mut self, job: Job, bytes: usize, out: &mut impl Act) {
        let is_notification = matches!(job, Job::Notification(_));
        if self.draining && !is_notification {
            return self.refuse(job, &ErrorObject::shutting_down(), out);
        }
        if self.waiting.is_empty()
            && let Some(ticket) = self.ticket_for(&job, out)
        {
            return self.start(job, ticket, out);
        }
        let bytes_fit =
            self.queued_bytes == 0 || self.queued_bytes.saturating_add(bytes) <= self.config.max_queued_received_bytes;
        if is_notification {
            if self.queued_notifications < self.config.max_queued_notifications.max(1) && bytes_fit {
                self.queued_notifications += 1;
                self.queued_bytes += bytes;
                self.waiting.push_back(Waiting { job, bytes });
            } else {
                let limit = self.config.max_queued_notifications.max(1);
                self.close(
                    CloseFrame::new(
                        CloseCode::POLICY,
                        format!(
                            "too many notifications waiting (at most {limit}, or their bytes): sent faster than handled"
                        ),
                    ),
                    out,
                );
            }
            return;
        }
        let count = job.requests();
        if self.queued_requests + count <= self.config.max_queued_requests && bytes_fit {
            self.queued_requests += count;
            self.queued_bytes += bytes;
            self.waiting.push_back(Waiting { job, bytes });
        } else {
            self.refuse(job, &ErrorObject::busy(self.config.busy_retry_after), out);
        }
    }

    /// The places `job` would take now, if it may start.
    fn ticket_for(&self, job: &Job, out: &impl Act) -> Option<Ticket> {
        let places = match job {
            Job::Notification(_) => return (!self.notifying).then_some(Ticket::Notification),
            _ if out.congested() => return None,
            job => job.requests().clamp(1, self.config.max_concurrent_requests.max(1)),
        };
        if self.running - self.extra + places <= self.config.max_concurrent_requests.max(1) {
            return Some(Ticket::Requests { places, extra: 0 });
        }
        // Extra places, while calls of this side await answers (counted now: calls made, answered or
        // withdrawn since the count was last told count too).
        let calls_pending = out.calls_pending().unwrap_or(self.calls_pending);
        (calls_pending > 0 && self.extra + places <= self.max_extra())
            .then_some(Ticket::Requests { places, extra: places })
    }

    fn start(&mut self, job: Job, ticket: Ticket, out: &mut impl Act) {
        match ticket {
            Ticket::Requests { places, extra } => {
                self.running += places;
                self.extra += extra;
            }
            Ticket::Notification => self.notifying = true,
        }
        out.act(Action::Start(job, ticket));
    }

    /// Starts waiting jobs, in order, while the first one may start.
    fn advance(&mut self, out: &mut impl Act) {
        while let Some(front) = self.waiting.front() {
            let Some(ticket) = self.ticket_for(&front.job, out) else {
                break;
            };
            let Some(waiting) = self.waiting.pop_front() else { break };
            match &waiting.job {
                Job::Notification(_) => self.queued_notifications -= 1,
                job => self.queued_requests -= job.requests(),
            }
            self.queued_bytes -= waiting.bytes;
            self.start(waiting.job, ticket, out);
        }
    }

    /// Answers every request of a job that will not run with `error`.
    fn refuse(&mut self, job: Job, error: &ErrorObject, out: &mut impl Act) {
        crate::metrics::refused(error.code(), job.requests());
        match job {
            Job::Request(request) => self.reply(message::encode_error(Some(&request.id), error), out),
            Job::Batch(batch) => {
                let mut answers = batch.answered;
                answers.extend(
                    batch
                        .requests
                        .iter()
                        .map(|request| message::encode_error(Some(&request.id), error)),
                );
                let answer = fit_batch(answers, self.config.max_message_size);
                self.reply(answer, out);
            }
            Job::Notification(_) => {}
        }
    }

    /// `$/cancelRequest {"id": …}`: a waiting request is answered -32800 at once and never runs; a running
    /// one is aborted by the driver.
    fn on_cancel(&mut self, params: &Params, out: &mut impl Act) {
        #[derive(Deserialize)]
        struct Cancel<'a> {
            #[serde(borrow)]
            id: &'a RawValue,
        }
        let Some(Ok(cancel)) = params.as_bytes().map(serde_json::from_slice::<Cancel<'_>>) else {
            tracing::debug!(target: "birpc::peer", "ignored a malformed $/cancelRequest");
            return;
        };
        let id = cancel.id.get().as_bytes();
        let cancelled = ErrorObject::request_cancelled();
        for index in 0..self.waiting.len() {
            let waiting = &mut self.waiting[index];
            match &mut waiting.job {
                Job::Request(request) if request.id.as_bytes() == id => {
                    let answer = message::encode_error(Some(&request.id), &cancelled);
                    self.queued_requests -= 1;
                    self.queued_bytes -= waiting.bytes;
                    self.waiting.remove(index);
                    self.reply(answer, out);
                    // What waited behind it may start now.
                    return self.advance(out);
                }
                Job::Batch(batch) => {
                    let Some(entry) = batch.requests.iter().position(|r| r.id.as_bytes() == id) else {
                        continue;
                    };
                    let request = batch.requests.remove(entry);
                    batch
                        .answered
                        .push(message::encode_error(Some(&request.id), &cancelled));
                    self.queued_requests -= 1;
                    if batch.requests.is_empty() {
                        self.queued_bytes -= waiting.bytes;
                        if let Some(Waiting {
                            job: Job::Batch(batch), ..
                        }) = self.waiting.remove(index)
                        {
                            let answer = fit_batch(batch.answered, self.config.max_message_size);
                            self.reply(answer, out);
                        }
                    }
                    // What waited behind it (or the batch itself, now smaller) may start now.
                    return self.advance(out);
                }
                _ => {}
            }
        }
        let id = RawId::from_text(id);
        out.act(Action::Cancel(id));
    }

    /// `$/stream.open`: the request `id`, coming next, opens a download consumed with `window` credits.
    fn announce(&mut self, id: Box<str>, window: u64) {
        if self.announced.len() >= MAX_ANNOUNCED {
            self.announced.pop_front();
        }
        self.announced
            .push_back((id, u32::try_from(window).unwrap_or(u32::MAX)));
    }

    /// The window announced for request `id`, taken out of the announcements.
    fn claim(&mut self, id: &RawId) -> Option<u32> {
        if self.announced.is_empty() {
            return None;
        }
        let index = self
            .announced
            .iter()
            .position(|(announced, _)| announced.as_bytes() == id.as_bytes())?;
        self.announced.remove(index).map(|(_, window)| window)
    }

    /// `$/stream.cancel` sent as a request (a jsonrpsee client's unsubscribe): answered `true` if the
    /// stream was live.
    fn cancel_stream(&mut self, id: &RawId, params: &Params, out: &mut impl Act) -> String {
        match params.as_bytes().and_then(wire::cancelled) {
            Some(subscription) => {
                let live = out.stream(Control::Cancel { subscription });
                message::encode_result(id, &live).unwrap_or_default()
            }
            None => message::encode_error(
                Some(id),
                &ErrorObject::invalid_params("expected {\"subscription\": id} or [id], id a stream of this side"),
            ),
        }
    }

    /// An answer for the call of this side whose id is the JSON text `id`. This side numbers its calls
    /// with plain decimal integers; an answer naming anything else answers none of them.
    fn answer(&mut self, id: &str, answer: Answer, out: &mut impl Act) {
        match our_id(id) {
            Some(id) => out.act(Action::Answer(id, answer)),
            None => tracing::debug!(target: "birpc::peer", id, "dropped an answer to no call of this side"),
        }
    }

    fn reply(&mut self, answer: String, out: &mut impl Act) {
        out.act(Action::Reply(answer));
    }

    fn close(&mut self, frame: CloseFrame, out: &mut impl Act) {
        self.broken = true;
        out.act(Action::Close(frame));
    }
}

/// What one received message asks for.
enum Step {
    Nothing,
    Reply(String),
    Run(RequestJob),
    Notify(NotificationJob),
}

/// The id of a call of this side that the JSON number `text` names. This side numbers its calls with
/// integers; an answer matches by the id's value, not its text (JSON-RPC 2.0 compares ids as values), so
/// `1`, `1.0`, `1e0` and `10e-1` all name call 1. A string, `null`, a negative or fractional number, or one
/// beyond `u64` names none.
fn our_id(text: &str) -> Option<u64> {
    // The common case, as this side writes its ids: plain decimal digits.
    if let [b'1'..=b'9', ..] | [b'0'] = text.as_bytes()
        && text.bytes().all(|b| b.is_ascii_digit())
    {
        return text.parse().ok();
    }
    integer_value(text)
}

/// The value of the JSON number `text` if it is a non-negative integer that fits in a `u64`, computed
/// exactly from its digits (no floating point).
fn integer_value(text: &str) -> Option<u64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (mantissa, ""),
    };
    if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The value is `digits` × 10^`scale`.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        // Zero, whatever its sign or form.
        return Some(0);
    }
    if text.starts_with('-') {
        return None;
    }
    let scale = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let trailing_zeros = digits.len() - digits.trim_end_matches('0').len();
    let digits = if scale < 0 {
        // A fraction: only as many trailing zeros as the scale takes away leave an integer.
        let cut = usize::try_from(scale.unsigned_abs()).ok()?;
        if cut > trailing_zeros {
            return None;
        }
        &digits[..digits.len() - cut]
    } else {
        digits
    };
    let zeros = usize::try_from(scale.max(0)).ok()?;
    if digits.len() + zeros > 20 {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(10u64.checked_pow(u32::try_from(zeros).ok()?)?)
}

/// Joins batch answers into one frame, replacing the largest results by -32003 errors until it fits.
pub(super) fn fit_batch(mut answers: Vec<String>, max: usize) -> String {
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
    Some(RawId::from_text(id.get().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn router() -> Router {
        Router::new()
            .method(
                "work",
                |_: Context, (_n,): (u64,)| async move { Ok::<_, ErrorObject>(()) },
            )
            .method(
                "note",
                |_: Context, (_n,): (u64,)| async move { Ok::<_, ErrorObject>(()) },
            )
    }

    /// A dispatcher with the actions it decided, collected.
    struct Lab {
        d: Dispatcher,
        out: Vec<Action>,
    }

    impl Lab {
        fn new(d: Dispatcher) -> Self {
            Self { d, out: Vec::new() }
        }
        fn on_frame(&mut self, frame: Bytes) {
            self.d.on_frame(frame, &mut self.out);
        }
        fn on_finished(&mut self, ticket: Ticket) {
            self.d.on_finished(ticket, &mut self.out);
        }
        fn calls_pending(&mut self, count: usize) {
            self.d.calls_pending(count, &mut self.out);
        }
        fn drain(&mut self) {
            self.d.drain(&mut self.out);
        }
        fn queued(&self) -> (usize, usize) {
            self.d.queued()
        }
        fn waits_for_calls(&self) -> bool {
            self.d.waits_for_calls()
        }
    }

    fn dispatcher(running: usize, queued: usize) -> Lab {
        let config = PeerConfig::default()
            .max_concurrent_requests(running)
            .max_queued_requests(queued)
            .max_queued_notifications(2);
        Lab::new(Dispatcher::new(router(), Arc::new(config)))
    }

    fn request(id: u64) -> Bytes {
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"work","params":[{id}]}}"#
        ))
    }

    fn notification(n: u64) -> Bytes {
        Bytes::from(format!(r#"{{"jsonrpc":"2.0","method":"note","params":[{n}]}}"#))
    }

    fn cancel(id: u64) -> Bytes {
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","method":"$/cancelRequest","params":{{"id":{id}}}}}"#
        ))
    }

    /// The actions, each as a short text: `start r1`, `start n1`, `reply …`, `answer 7`, `cancel 3`, `close 1008`.
    fn drain_actions(d: &mut Lab) -> Vec<String> {
        std::mem::take(&mut d.out)
            .into_iter()
            .map(|action| match action {
                Action::Reply(text) => format!("reply {text}"),
                Action::Start(Job::Request(r), _) => format!("start r{}", r.id),
                Action::Start(Job::Notification(n), _) => {
                    format!(
                        "start n{}",
                        String::from_utf8_lossy(n.params.as_bytes().unwrap_or_default())
                    )
                }
                Action::Start(Job::Batch(b), _) => format!("start batch of {}", b.requests.len()),
                Action::Answer(id, _) => format!("answer {id}"),
                Action::BatchRejected(error) => format!("batch rejected {}", error.code()),
                Action::Cancel(id) => format!("cancel {id}"),
                Action::Close(frame) => format!("close {}", frame.code.0),
            })
            .collect()
    }

    #[test]
    fn requests_past_the_limit_wait_then_are_refused_busy() {
        let mut d = dispatcher(2, 1);
        for id in 1..=4 {
            d.on_frame(request(id));
        }
        let actions = drain_actions(&mut d);
        assert_eq!(actions[..2], ["start r1", "start r2"]);
        assert_eq!(actions.len(), 3, "{actions:?}");
        assert!(
            actions[2].starts_with(r#"reply {"jsonrpc":"2.0","id":4,"error":{"code":-32005"#),
            "{actions:?}"
        );
        assert!(actions[2].contains(r#""data":{"retry_after_ms":100}"#));
        assert_eq!(d.queued(), (1, 0));
        d.on_finished(Ticket::Requests { places: 1, extra: 0 });
        assert_eq!(drain_actions(&mut d), ["start r3"]);
        assert_eq!(d.queued(), (0, 0));
    }

    #[test]
    fn answers_and_cancels_pass_whatever_waits() {
        let mut d = dispatcher(1, 4);
        d.on_frame(request(1));
        d.on_frame(request(2));
        d.on_frame(Bytes::from_static(br#"{"jsonrpc":"2.0","id":7,"result":true}"#));
        d.on_frame(cancel(2));
        d.on_frame(cancel(1));
        let actions = drain_actions(&mut d);
        assert_eq!(actions[0], "start r1");
        assert_eq!(actions[1], "answer 7");
        assert_eq!(
            actions[2],
            r#"reply {"jsonrpc":"2.0","id":2,"error":{"code":-32800,"message":"Request cancelled"}}"#
        );
        assert_eq!(actions[3], "cancel 1");
        assert_eq!(d.queued(), (0, 0));
    }

    #[test]
    fn handlers_start_in_arrival_order() {
        let mut d = dispatcher(4, 4);
        d.on_frame(notification(1));
        d.on_frame(notification(2));
        d.on_frame(request(3));
        // The second notification waits for the first; the request waits behind it.
        assert_eq!(drain_actions(&mut d), ["start n[1]"]);
        d.on_finished(Ticket::Notification);
        assert_eq!(drain_actions(&mut d), ["start n[2]", "start r3"]);
    }

    #[test]
    fn notifications_past_their_queue_close_the_connection() {
        let mut d = dispatcher(4, 4);
        for n in 1..=4 {
            d.on_frame(notification(n));
        }
        assert_eq!(drain_actions(&mut d), ["start n[1]", "close 1008"]);
        // Nothing more is dispatched.
        d.on_frame(request(9));
        assert!(drain_actions(&mut d).is_empty());
    }

    #[test]
    fn awaiting_calls_open_extra_places_for_nested_calls() {
        let mut d = dispatcher(1, 4);
        d.on_frame(request(1));
        d.on_frame(request(2));
        assert_eq!(drain_actions(&mut d), ["start r1"]);
        assert!(d.waits_for_calls());
        d.calls_pending(1);
        assert!(!d.waits_for_calls());
        assert_eq!(drain_actions(&mut d), ["start r2"]);
        d.on_frame(request(3));
        assert_eq!(drain_actions(&mut d), ["start r3"]);
        d.calls_pending(0);
        d.on_frame(request(4));
        assert!(
            drain_actions(&mut d).is_empty(),
            "no call awaits an answer: no extra place"
        );
        d.on_finished(Ticket::Requests { places: 1, extra: 1 });
        assert!(
            drain_actions(&mut d).is_empty(),
            "an extra place does not make a regular one"
        );
        d.on_finished(Ticket::Requests { places: 1, extra: 0 });
        assert_eq!(drain_actions(&mut d), ["start r4"]);
    }

    #[test]
    fn a_cancel_that_frees_the_head_of_the_queue_starts_what_waited_behind_it() {
        let mut d = dispatcher(1, 4);
        d.on_frame(request(1));
        d.on_frame(request(2));
        d.on_frame(notification(3));
        assert_eq!(drain_actions(&mut d), ["start r1"]);
        d.on_frame(cancel(2));
        let actions = drain_actions(&mut d);
        assert!(actions[0].contains(r#""id":2,"error":{"code":-32800"#), "{actions:?}");
        assert_eq!(actions[1..], ["start n[3]"]);
    }

    #[test]
    fn extra_places_follow_the_calls_pending_now() {
        let mut d = dispatcher(1, 4);
        d.on_frame(request(1));
        d.calls_pending(5);
        d.calls_pending(0);
        d.on_frame(request(2));
        assert_eq!(
            drain_actions(&mut d),
            ["start r1"],
            "no call awaits an answer: no extra place"
        );
        assert_eq!(d.queued(), (1, 0));
    }

    #[test]
    fn a_batch_with_requests_and_notifications_counts_its_bytes_once_against_the_queue() {
        let config = PeerConfig::default()
            .max_concurrent_requests(1)
            .max_queued_received_bytes(200);
        let mut d = Lab::new(Dispatcher::new(router(), Arc::new(config)));
        d.on_frame(request(1));
        let batch = |a: u64, b: u64| {
            let (n, r) = (notification(a), request(b));
            Bytes::from(format!(
                "[{},{}]",
                String::from_utf8_lossy(&n),
                String::from_utf8_lossy(&r)
            ))
        };
        d.on_frame(batch(10, 2));
        // The batch's requests go first, then its notification, which waits behind them.
        assert_eq!(drain_actions(&mut d), ["start r1"]);
        // The first batch holds its frame's bytes while its request waits: a second does not fit.
        d.on_frame(batch(11, 3));
        let actions = drain_actions(&mut d);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(actions[0].contains(r#""id":3,"error":{"code":-32005"#), "{actions:?}");
        assert_eq!(d.queued(), (1, 2));
    }

    /// Actions collected by an executor whose answers are congested.
    struct Congested(Vec<Action>);

    impl Act for Congested {
        fn act(&mut self, action: Action) {
            self.0.push(action);
        }
        fn congested(&self) -> bool {
            true
        }
    }

    #[test]
    fn while_answers_are_congested_requests_wait_and_notifications_run() {
        let mut d = dispatcher(4, 1);
        let mut out = Congested(Vec::new());
        d.d.on_frame(request(1), &mut out);
        d.d.on_frame(request(2), &mut out);
        d.d.on_frame(notification(3), &mut out);
        d.out = out.0;
        let actions = drain_actions(&mut d);
        assert!(actions[0].contains(r#""id":2,"error":{"code":-32005"#), "{actions:?}");
        assert_eq!(
            actions.len(),
            1,
            "the notification waits behind the waiting request: {actions:?}"
        );
        assert_eq!(d.queued(), (1, 1));
        // Once answers flow again, what waits starts in order.
        d.on_finished(Ticket::Notification);
        assert_eq!(drain_actions(&mut d), ["start r1", "start n[3]"]);
    }

    #[test]
    fn a_drain_refuses_waiting_requests_and_keeps_notifications() {
        let mut d = dispatcher(1, 4);
        d.on_frame(request(1));
        d.on_frame(request(2));
        d.on_frame(notification(5));
        d.drain();
        let actions = drain_actions(&mut d);
        assert_eq!(actions[0], "start r1");
        assert!(actions[1].contains(r#""id":2,"error":{"code":-32002"#), "{actions:?}");
        assert_eq!(actions[2], "start n[5]");
        d.on_frame(request(3));
        assert!(drain_actions(&mut d)[0].contains("-32002"));
    }

    #[test]
    fn a_batch_waits_whole_and_a_cancel_takes_out_one_entry() {
        let mut d = dispatcher(1, 8);
        d.on_frame(request(1));
        let batch = format!(
            "[{},{}]",
            String::from_utf8_lossy(&request(2)),
            String::from_utf8_lossy(&request(3))
        );
        d.on_frame(Bytes::from(batch));
        assert_eq!(drain_actions(&mut d), ["start r1"]);
        assert_eq!(d.queued(), (2, 0));
        d.on_frame(cancel(2));
        assert!(drain_actions(&mut d).is_empty());
        d.on_finished(Ticket::Requests { places: 1, extra: 0 });
        assert_eq!(drain_actions(&mut d), ["start batch of 1"]);
    }

    #[test]
    fn an_oversized_frame_closes_with_1009() {
        let config = PeerConfig::default().max_message_size(8);
        let mut d = Lab::new(Dispatcher::new(router(), Arc::new(config)));
        d.on_frame(request(1));
        assert_eq!(drain_actions(&mut d), ["close 1009"]);
    }

    #[test]
    fn a_plain_answer_and_the_same_answer_written_otherwise_reach_the_same_call_with_the_same_result() {
        let result = |action: &Action| match action {
            Action::Answer(id, Answer::Result(result)) => Some((*id, result.clone())),
            _ => None,
        };
        for text in [
            r#"{"jsonrpc":"2.0","id":7,"result":[1,{"a":"é"}]}"#,
            r#"{"jsonrpc":"2.0","result":[1,{"a":"é"}],"id":7}"#,
            r#"{"jsonrpc":"2.0","id":7.0,"result":[1,{"a":"é"}]}"#,
            r#"{"jsonrpc":"2.0", "id":7,"result":[1,{"a":"é"}]}"#,
            r#"{"result":[1,{"a":"é"}],"id":7,"jsonrpc":"2.0"}"#,
        ] {
            let mut d = dispatcher(1, 1);
            d.on_frame(Bytes::from(text));
            let answers: Vec<_> = d.out.iter().filter_map(result).collect();
            assert_eq!(
                answers,
                [(7, Bytes::from_static(r#"[1,{"a":"é"}]"#.as_bytes()))],
                "{text}"
            );
            assert_eq!(d.out.len(), 1, "{text}");
        }
        // Read as a plain answer, its result is the frame narrowed: no copy.
        let frame = Bytes::from(r#"{"jsonrpc":"2.0","id":7,"result":"x"}"#);
        let start = frame.as_ptr() as usize + frame.len() - 4;
        let end = start + 3;
        let mut d = dispatcher(1, 1);
        d.on_frame(frame);
        match &d.out[..] {
            [Action::Answer(7, Answer::Result(result))] => {
                assert_eq!(&result[..], b"\"x\"");
                assert_eq!(
                    (result.as_ptr() as usize, result.as_ptr() as usize + result.len()),
                    (start, end)
                );
            }
            other => panic!("{:?}", other.len()),
        }
    }

    #[test]
    fn answers_name_calls_of_this_side_by_the_id_s_value() {
        for (text, id) in [
            ("0", 0),
            ("7", 7),
            ("1.0", 1),
            ("1e0", 1),
            ("1.00e0", 1),
            ("1E+0", 1),
            ("10e-1", 1),
            ("0.1e1", 1),
            ("-0", 0),
            ("0.0e5", 0),
            ("12e3", 12_000),
            ("18446744073709551615", u64::MAX),
            ("1.8446744073709551615e19", u64::MAX),
        ] {
            assert_eq!(our_id(text), Some(id), "{text}");
        }
        for other in [
            "",
            "-1",
            "1.5",
            "1e-1",
            "\"1\"",
            "null",
            "true",
            "18446744073709551616",
            "1e20",
            "1e999999999999",
            " 1",
            "1.",
            ".5",
            "0x1",
        ] {
            assert_eq!(our_id(other), None, "{other}");
        }
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
