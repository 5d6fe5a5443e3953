//! Metrics of connections and calls, recorded through the [`metrics`](https://docs.rs/metrics) facade when
//! the `metrics` feature is on (to whichever recorder the program installed: Prometheus, StatsD, …).
//! Without the feature every function here is empty and nothing is recorded.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `birpc_connections_opened_total` | counter | | connections whose peer started |
//! | `birpc_connections_open` | gauge | | connections running now |
//! | `birpc_connections_closed_total` | counter | `code` | connections ended, by close code (RFC 6455; 1006 when the transport ended without one; `other` for codes from 3000) |
//! | `birpc_calls_received_total` | counter | `method`, `outcome` | requests and notifications that reached an exported method, by how they ended |
//! | `birpc_calls_sent_total` | counter | `method`, `outcome` | calls this side made, by how they ended |
//! | `birpc_call_duration_seconds` | histogram | `direction` (`in`, `out`), `method` | from receipt to answer (in), from sending to the answer (out), in seconds |
//! | `birpc_refused_total` | counter | `reason` | requests answered with an error without reaching a handler: `method_not_found`, `busy`, `parse_error`, `invalid_request`, `shutting_down`, `batch_too_large` |
//! | `birpc_handlers_running` | gauge | | handlers running as tasks, all connections together |
//! | `birpc_requests_waiting` | gauge | | received requests waiting for a handler place |
//! | `birpc_notifications_waiting` | gauge | | received notifications waiting for their turn |
//!
//! `outcome` is `ok`, the error object's code (`-32601`, `-32005`, an application's own code), or for a
//! call of this side that got no error object the local failure: `timeout`, `disconnected`, `not_sent`,
//! `too_many_pending`, `too_large`, `encode`, `decode`, `invalid_response`, `other`. A handler that
//! panicked counts as `-32603`, one cancelled before it answered as `-32800`. `method` is an exported
//! method's name for calls received, or `(fallback)` for those the router's fallback answered (never a
//! name a caller made up: without a fallback those count as
//! `birpc_refused_total{reason="method_not_found"}`), and the name this side called for calls sent.

use std::time::Duration;

use crate::call_error::CallError;
use crate::close::CloseReason;
use crate::router::{HandlerFuture, Method};

/// The gauges a connection's driver contributes to, as it last published them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    pub(crate) running: usize,
    pub(crate) waiting_requests: usize,
    pub(crate) waiting_notifications: usize,
}

#[cfg(feature = "metrics")]
mod recorded {
    use std::sync::Arc;

    use super::*;

    pub(crate) fn connection_opened() {
        metrics::counter!("birpc_connections_opened_total").increment(1);
        metrics::gauge!("birpc_connections_open").increment(1.0);
    }

    pub(crate) fn connection_closed(reason: &CloseReason) {
        let code = reason.code().0;
        let label: metrics::SharedString = if code < 3000 {
            code.to_string().into()
        } else {
            "other".into()
        };
        metrics::counter!("birpc_connections_closed_total", "code" => label).increment(1);
        metrics::gauge!("birpc_connections_open").decrement(1.0);
    }

    pub(crate) fn call_received(method: &Arc<str>, error_code: Option<i64>, elapsed: Duration) {
        let outcome: metrics::SharedString = match error_code {
            None => "ok".into(),
            Some(code) => code.to_string().into(),
        };
        let method = metrics::SharedString::from(method.clone());
        metrics::counter!("birpc_calls_received_total", "method" => method.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("birpc_call_duration_seconds", "direction" => "in", "method" => method)
            .record(elapsed.as_secs_f64());
    }

    pub(crate) fn call_sent<E>(method: &str, outcome: Result<(), &CallError<E>>, elapsed: Duration) {
        let outcome: metrics::SharedString = match outcome {
            Ok(()) => "ok".into(),
            Err(error) => match error.error_object() {
                Some(object) => object.code().to_string().into(),
                None => local_failure(error).into(),
            },
        };
        let method = metrics::SharedString::from_owned(method.to_owned());
        metrics::counter!("birpc_calls_sent_total", "method" => method.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("birpc_call_duration_seconds", "direction" => "out", "method" => method)
            .record(elapsed.as_secs_f64());
    }

    fn local_failure<E>(error: &CallError<E>) -> &'static str {
        match error {
            CallError::Timeout(_) => "timeout",
            CallError::Disconnected(_) => "disconnected",
            CallError::NotSent | CallError::Full => "not_sent",
            CallError::TooManyPending { .. } | CallError::TooManyCalls { .. } => "too_many_pending",
            CallError::TooLarge { .. } => "too_large",
            CallError::Encode(_) => "encode",
            CallError::Decode(_) => "decode",
            CallError::InvalidResponse(_) => "invalid_response",
            _ => "other",
        }
    }

    pub(crate) fn refused(error_code: i64, count: usize) {
        use crate::error_object::code;
        let reason = match error_code {
            code::METHOD_NOT_FOUND => "method_not_found",
            code::BUSY => "busy",
            code::PARSE_ERROR => "parse_error",
            code::INVALID_REQUEST => "invalid_request",
            code::SHUTTING_DOWN => "shutting_down",
            code::BATCH_TOO_LARGE => "batch_too_large",
            _ => "other",
        };
        metrics::counter!("birpc_refused_total", "reason" => reason).increment(count as u64);
    }

    /// Wraps a received call's handler so that its outcome is recorded when it answers, or when it is
    /// dropped without answering (cancelled: -32800; unwinding from a panic: -32603).
    pub(crate) fn observe_received(method: &Method, running: HandlerFuture) -> HandlerFuture {
        // Names a fallback answers are the callers' own: one label for them all.
        static FALLBACK: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("(fallback)"));
        let label = if method.is_fallback() {
            FALLBACK.clone()
        } else {
            method.name().clone()
        };
        struct Observed {
            method: Arc<str>,
            started: std::time::Instant,
            answered: bool,
        }
        impl Drop for Observed {
            fn drop(&mut self) {
                if !self.answered {
                    let code = if std::thread::panicking() {
                        crate::error_object::code::INTERNAL_ERROR
                    } else {
                        crate::error_object::code::REQUEST_CANCELLED
                    };
                    call_received(&self.method, Some(code), self.started.elapsed());
                }
            }
        }
        let mut observed = Observed {
            method: label,
            started: std::time::Instant::now(),
            answered: false,
        };
        Box::pin(async move {
            let answer = running.await;
            observed.answered = true;
            call_received(&observed.method, answer.error_code(), observed.started.elapsed());
            answer
        })
    }

    /// Moves the load gauges from what a connection last published to what it publishes now.
    pub(crate) fn load(before: Load, now: Load) {
        fn shift(name: &'static str, before: usize, now: usize) {
            if before != now {
                // Counts of one connection, far below 2^52: exact as f64.
                metrics::gauge!(name).increment(now as f64 - before as f64);
            }
        }
        shift("birpc_handlers_running", before.running, now.running);
        shift("birpc_requests_waiting", before.waiting_requests, now.waiting_requests);
        shift(
            "birpc_notifications_waiting",
            before.waiting_notifications,
            now.waiting_notifications,
        );
    }
}

#[cfg(not(feature = "metrics"))]
mod recorded {
    use super::*;

    pub(crate) fn connection_opened() {}
    pub(crate) fn connection_closed(_: &CloseReason) {}
    pub(crate) fn call_sent<E>(_: &str, _: Result<(), &CallError<E>>, _: Duration) {}
    pub(crate) fn refused(_: i64, _: usize) {}
    pub(crate) fn observe_received(_: &Method, running: HandlerFuture) -> HandlerFuture {
        running
    }
    pub(crate) fn load(_: Load, _: Load) {}
}

pub(crate) use recorded::{call_sent, connection_closed, connection_opened, load, observe_received, refused};

/// Whether metrics are recorded (the `metrics` feature): calls of this side then note their start.
pub(crate) const ON: bool = cfg!(feature = "metrics");
