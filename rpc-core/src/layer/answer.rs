//! What a call's service gives back: the encoded response, and how the call ended.

use serde::Serialize;

use super::IncomingCall;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::message;

/// How a call ended, and the response to send for it: what a layer's service returns.
///
/// The result is already encoded (JSON-RPC 2.0 section 5), so that it goes from the handler's type into
/// the outgoing frame without a detour; a layer sees whether the call failed and with which code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response frame; `None` for a notification.
    frame: Option<String>,
    /// The error object's code, when the call failed.
    error_code: Option<i64>,
}

impl Answer {
    /// The answer refusing `call` with `error`: a layer's way to answer without calling the handler
    /// (a notification gets no response; the code is still reported).
    pub fn error(call: &IncomingCall, error: &ErrorObject) -> Self {
        Self::failed(call.id(), error)
    }

    pub(crate) fn failed(id: Option<&RawId>, error: &ErrorObject) -> Self {
        Self {
            frame: id.map(|id| message::encode_error(Some(id), error)),
            error_code: Some(error.code()),
        }
    }

    /// The answer of a handler's outcome: its result encoded (or -32603 when it cannot be), or its error.
    pub(crate) fn of<R: Serialize>(outcome: Result<R, ErrorObject>, id: Option<&RawId>) -> Self {
        let Some(id) = id else {
            return Self {
                frame: None,
                error_code: outcome.err().map(|error| error.code()),
            };
        };
        match outcome {
            Ok(result) => match message::encode_result(id, &result) {
                Ok(frame) => Self {
                    frame: Some(frame),
                    error_code: None,
                },
                Err(error) => {
                    tracing::warn!(target: "birpc::peer", %error, "a result could not be encoded");
                    Self::failed(Some(id), &ErrorObject::internal_error().with_detail(error))
                }
            },
            Err(error) => Self::failed(Some(id), &error),
        }
    }

    /// An answer already encoded: `frame` answers with a result when `error_code` is `None`.
    pub(crate) fn encoded(frame: Option<String>, error_code: Option<i64>) -> Self {
        Self { frame, error_code }
    }

    /// The error object's code when the call failed (JSON-RPC 2.0 section 5.1); `None` when it succeeded.
    pub fn error_code(&self) -> Option<i64> {
        self.error_code
    }

    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.error_code.is_some()
    }

    /// The response, as it will be sent: one JSON-RPC response object; `None` for a notification.
    pub fn frame(&self) -> Option<&str> {
        self.frame.as_deref()
    }

    pub(crate) fn into_frame(self) -> Option<String> {
        self.frame
    }
}
