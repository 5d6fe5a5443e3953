//! The error object that travels in a JSON-RPC response, and the codes birpc uses.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Error codes defined by the JSON-RPC 2.0 specification and by birpc.
///
/// Codes from -32768 to -32000 are reserved by the specification; birpc uses -32000 to -32099 for the
/// conditions listed here and leaves every other code to applications.
pub mod code {
    /// -32700: the message was not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// -32600: the JSON was not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// -32601: no method of that name is exported.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// -32602: the params did not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// -32603: the handler failed without an error of its own (it panicked, or its result could not be
    /// encoded).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// -32800: the caller cancelled the request (with `$/cancelRequest`) before it was answered.
    pub const REQUEST_CANCELLED: i64 = -32800;
    /// -32000: the default code of an application error (a handler returned its own error type and did not
    /// choose another code).
    pub const APPLICATION_ERROR: i64 = -32000;
    /// -32002: the peer is shutting down: it finishes the requests it has started but starts no new one.
    pub const SHUTTING_DOWN: i64 = -32002;
    /// -32003: the result was larger than the connection's maximum message size; the handler ran, its
    /// answer could not be sent.
    pub const RESPONSE_TOO_LARGE: i64 = -32003;
    /// -32004: a batch held more entries than the connection's maximum batch length; none of it ran.
    pub const BATCH_TOO_LARGE: i64 = -32004;
    /// -32005: the peer is busy: the request found every handler place taken and the queue of waiting
    /// requests full, and did not run. Nothing was done; the request may be sent again. The data is
    /// `{"retry_after_ms": N}`, a hint of how long to wait first, in milliseconds (the analogue of
    /// HTTP/2's `REFUSED_STREAM`, RFC 9113 section 8.7).
    pub const BUSY: i64 = -32005;
    /// -32006: the connection already carries as many streams as the peer allows
    /// ([`PeerConfig::max_streams`](crate::PeerConfig::max_streams)); no stream was opened. The data says
    /// the limit.
    pub const TOO_MANY_STREAMS: i64 = -32006;
    /// -32007: the handler ran past the time the answering side allows it (a timeout layer on its router,
    /// such as tower's `Timeout`) and was stopped; what it had done stays done.
    pub const TIMED_OUT: i64 = -32007;

    /// The message the specification (or birpc) gives for a code it defines, if it defines it.
    pub fn default_message(code: i64) -> Option<&'static str> {
        Some(match code {
            PARSE_ERROR => "Parse error",
            INVALID_REQUEST => "Invalid Request",
            METHOD_NOT_FOUND => "Method not found",
            INVALID_PARAMS => "Invalid params",
            INTERNAL_ERROR => "Internal error",
            REQUEST_CANCELLED => "Request cancelled",
            APPLICATION_ERROR => "Application error",
            SHUTTING_DOWN => "Shutting down",
            RESPONSE_TOO_LARGE => "Response too large",
            BATCH_TOO_LARGE => "Batch too large",
            BUSY => "Busy",
            TOO_MANY_STREAMS => "Too many streams",
            TIMED_OUT => "Timed out",
            _ => return None,
        })
    }

    /// Whether `code` is one the protocol itself uses (as opposed to one an application chose).
    pub fn is_protocol(code: i64) -> bool {
        default_message(code).is_some() && code != APPLICATION_ERROR
    }
}

/// The `error` member of a JSON-RPC response: a code, a message and optional data.
///
/// This is what crosses the wire. Local failures of a call (a timeout, a lost connection) are
/// [`CallError`](crate::CallError)s instead and never travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    code: i64,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
}

impl ErrorObject {
    /// An error with `code` and `message` and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An error with one of the codes of [`code`] and the message defined for it.
    fn standard(code: i64) -> Self {
        Self::new(code, code::default_message(code).unwrap_or("Error"))
    }

    /// -32700 Parse error.
    pub fn parse_error() -> Self {
        Self::standard(code::PARSE_ERROR)
    }

    /// -32600 Invalid Request.
    pub fn invalid_request() -> Self {
        Self::standard(code::INVALID_REQUEST)
    }

    /// -32601 Method not found.
    pub fn method_not_found() -> Self {
        Self::standard(code::METHOD_NOT_FOUND)
    }

    /// -32602 Invalid params, with `detail` (what was wrong) as its data.
    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::standard(code::INVALID_PARAMS).with_detail(detail)
    }

    /// -32603 Internal error.
    pub fn internal_error() -> Self {
        Self::standard(code::INTERNAL_ERROR)
    }

    /// -32800 Request cancelled.
    pub fn request_cancelled() -> Self {
        Self::standard(code::REQUEST_CANCELLED)
    }

    /// -32002 Shutting down.
    pub fn shutting_down() -> Self {
        Self::standard(code::SHUTTING_DOWN)
    }

    /// -32003 Response too large.
    pub fn response_too_large() -> Self {
        Self::standard(code::RESPONSE_TOO_LARGE)
    }

    /// -32004 Batch too large, with the limit as its data.
    pub fn batch_too_large(limit: usize) -> Self {
        Self::standard(code::BATCH_TOO_LARGE).with_detail(format_args!("at most {limit} entries"))
    }

    /// -32006 Too many streams, with the limit as its data.
    pub fn too_many_streams(limit: usize) -> Self {
        Self::standard(code::TOO_MANY_STREAMS).with_detail(format_args!("at most {limit} streams"))
    }

    /// -32007 Timed out: the handler was stopped after running as long as this side allows.
    pub fn timed_out() -> Self {
        Self::standard(code::TIMED_OUT)
    }

    /// -32005 Busy, with `{"retry_after_ms": N}` as its data: the request did not run and may be sent
    /// again after `retry_after` (rounded up to whole milliseconds).
    pub fn busy(retry_after: Duration) -> Self {
        let millis = retry_after.as_nanos().div_ceil(1_000_000);
        let data = format!(r#"{{"retry_after_ms":{millis}}}"#);
        let error = Self::standard(code::BUSY);
        match RawValue::from_string(data) {
            Ok(data) => error.with_raw_data(data),
            Err(_) => error,
        }
    }

    /// The retry hint of a -32005 Busy error (`data.retry_after_ms`), if it carries one.
    pub fn retry_after(&self) -> Option<Duration> {
        #[derive(Deserialize)]
        struct Hint {
            retry_after_ms: u64,
        }
        let hint = self.parse_data::<Hint>()?.ok()?;
        Some(Duration::from_millis(hint.retry_after_ms))
    }

    /// Sets the data to a JSON string holding `detail`.
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        // A string always encodes.
        self.data = serde_json::value::to_raw_value(&detail.to_string()).ok();
        self
    }

    /// Sets the data to `data` encoded as JSON.
    ///
    /// # Errors
    /// When `data` cannot be encoded (a map with non-string keys, a failing `Serialize` impl).
    pub fn with_data<T: Serialize + ?Sized>(mut self, data: &T) -> Result<Self, serde_json::Error> {
        self.data = Some(serde_json::value::to_raw_value(data)?);
        Ok(self)
    }

    /// Sets the data to already encoded JSON.
    pub fn with_raw_data(mut self, data: Box<RawValue>) -> Self {
        self.data = Some(data);
        self
    }

    /// The error code.
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The data, as JSON text, if any.
    pub fn data(&self) -> Option<&RawValue> {
        self.data.as_deref()
    }

    /// Decodes the data into `T`; `None` when there is no data.
    ///
    /// # Errors
    /// When the data does not decode into `T`.
    pub fn parse_data<T: serde::de::DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.data.as_deref().map(|raw| serde_json::from_str(raw.get()))
    }
}

impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.data.as_deref().map(RawValue::get) == other.data.as_deref().map(RawValue::get)
    }
}

impl Eq for ErrorObject {}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(data) = &self.data {
            write!(f, ": {}", data.get())?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorObject {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_errors_carry_the_messages_of_the_specification() {
        let e = ErrorObject::method_not_found();
        assert_eq!(e.code(), -32601);
        assert_eq!(e.message(), "Method not found");
        assert_eq!(
            serde_json::to_string(&ErrorObject::parse_error()).unwrap(),
            r#"{"code":-32700,"message":"Parse error"}"#
        );
    }

    #[test]
    fn data_round_trips() {
        let e = ErrorObject::new(7, "nope").with_data(&[1, 2]).unwrap();
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"code":7,"message":"nope","data":[1,2]}"#);
        let back: ErrorObject = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.parse_data::<Vec<u8>>().unwrap().unwrap(), vec![1, 2]);
    }

    #[test]
    fn busy_carries_its_retry_hint_in_milliseconds() {
        let e = ErrorObject::busy(Duration::from_micros(1500));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":-32005,"message":"Busy","data":{"retry_after_ms":2}}"#
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2)));
        assert_eq!(ErrorObject::internal_error().retry_after(), None);
    }

    #[test]
    fn protocol_codes_are_told_apart_from_application_codes() {
        assert!(code::is_protocol(code::INVALID_PARAMS));
        assert!(!code::is_protocol(code::APPLICATION_ERROR));
        assert!(!code::is_protocol(42));
    }
}
