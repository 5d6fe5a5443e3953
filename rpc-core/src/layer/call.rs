//! A received request or notification, as the request of a tower service.

use std::sync::Arc;

use crate::context::Context;
use crate::id::RawId;
use crate::params::Params;

/// One call this side received (a JSON-RPC request, or a notification), on its way to the handler of
/// its method: what a layer (see [`Router::layer`](crate::Router::layer)) sees and may refuse.
#[derive(Debug)]
pub struct IncomingCall {
    method: Arc<str>,
    id: Option<RawId>,
    params: Params,
    context: Context,
}

impl IncomingCall {
    pub(crate) fn new(method: Arc<str>, id: Option<RawId>, params: Params, context: Context) -> Self {
        Self {
            method,
            id,
            params,
            context,
        }
    }

    /// The method's name as it was exported (the name the call arrived with, or the name an alias stands
    /// for).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request's id; `None` for a notification, which gets no answer.
    pub fn id(&self) -> Option<&RawId> {
        self.id.as_ref()
    }

    /// Whether the call is a notification.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The params, as received (not yet decoded).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The call's context: the connection's state ([`Context::state`]), and the peer that called.
    pub fn context(&self) -> &Context {
        &self.context
    }

    pub(crate) fn into_parts(self) -> (Arc<str>, Context, Params, Option<RawId>) {
        (self.method, self.context, self.params, self.id)
    }
}
