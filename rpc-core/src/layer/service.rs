//! The innermost service of a router's layers, and a layered method as the peer runs it.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tower_service::Service;

use super::{Answer, BoxError, IncomingCall};
use crate::context::Context;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::params::Params;
use crate::router::{ErasedHandler, FallbackHandler, HandlerFuture, Method};

/// An exported method as a tower service: it decodes the call's params, runs the method's handler, and
/// answers with its encoded result or error. The innermost service of the layers of
/// [`Router::layer`](crate::Router::layer); always ready, it never fails as a service (a failed call is an
/// [`Answer`] with an error code).
#[derive(Clone)]
pub struct MethodService {
    handler: Handler,
}

/// What a [`MethodService`] runs: one exported method, or the router's fallback (for any name).
#[derive(Clone)]
enum Handler {
    Method(Method),
    Fallback(Arc<dyn FallbackHandler>),
}

impl std::fmt::Debug for MethodService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match &self.handler {
            Handler::Method(method) => &**method.name(),
            Handler::Fallback(_) => "(fallback)",
        };
        f.debug_struct("MethodService").field("method", &method).finish()
    }
}

impl MethodService {
    pub(crate) fn method(method: Method) -> Self {
        Self {
            handler: Handler::Method(method),
        }
    }

    pub(crate) fn fallback(fallback: Arc<dyn FallbackHandler>) -> Self {
        Self {
            handler: Handler::Fallback(fallback),
        }
    }
}

impl Service<IncomingCall> for MethodService {
    type Response = Answer;
    type Error = Infallible;
    type Future = MethodFuture;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: IncomingCall) -> MethodFuture {
        let (method, context, params, id) = call.into_parts();
        let running = match &self.handler {
            Handler::Method(exported) => exported.call(context, params, id),
            Handler::Fallback(fallback) => fallback.call(context, method, params, id),
        };
        MethodFuture { running }
    }
}

/// The future of a [`MethodService`]'s call: the method's handler running to its answer.
#[must_use = "futures do nothing unless polled"]
pub struct MethodFuture {
    running: HandlerFuture,
}

impl std::fmt::Debug for MethodFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodFuture").finish_non_exhaustive()
    }
}

impl Future for MethodFuture {
    type Output = Result<Answer, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.running.as_mut().poll(cx).map(Ok)
    }
}

/// A method wrapped in layers, as the router holds it: each call goes through a clone of the layered
/// service (tower's usual way to share one service between concurrent calls).
pub(crate) struct Layered<S> {
    name: Arc<str>,
    service: S,
}

impl<S> Layered<S> {
    pub(crate) fn new(name: Arc<str>, service: S) -> Self {
        Self { name, service }
    }
}

impl<S> ErasedHandler for Layered<S>
where
    S: Service<IncomingCall, Response = Answer> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn call(&self, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture {
        run(
            self.service.clone(),
            IncomingCall::new(self.name.clone(), id, params, ctx),
        )
    }
}

/// A router's fallback wrapped in layers: one service for every name it answers.
pub(crate) struct LayeredFallback<S> {
    service: S,
}

impl<S> LayeredFallback<S> {
    pub(crate) fn new(service: S) -> Self {
        Self { service }
    }
}

impl<S> FallbackHandler for LayeredFallback<S>
where
    S: Service<IncomingCall, Response = Answer> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    fn call(&self, ctx: Context, method: Arc<str>, params: Params, id: Option<RawId>) -> HandlerFuture {
        run(self.service.clone(), IncomingCall::new(method, id, params, ctx))
    }
}

/// Runs `call` through `service` once it is ready; the service's error answers the call.
fn run<S>(mut service: S, call: IncomingCall) -> HandlerFuture
where
    S: Service<IncomingCall, Response = Answer> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let retry_after = call.context().busy_retry_after();
    let id = call.id().cloned();
    Box::pin(async move {
        if let Err(error) = poll_fn(|cx| service.poll_ready(cx)).await {
            return Answer::failed(id.as_ref(), &error_object(error.into(), retry_after));
        }
        match service.call(call).await {
            Ok(answer) => answer,
            Err(error) => Answer::failed(id.as_ref(), &error_object(error.into(), retry_after)),
        }
    })
}

/// The error object answering a layer's error: the [`ErrorObject`] itself when the layer failed with
/// one; -32007 Timed out for tower's `Timeout`; -32005 Busy (with `retry_after` as its hint) for tower's
/// `LoadShed`; otherwise -32603 Internal error with the error's message as its data.
fn error_object(error: BoxError, retry_after: Duration) -> ErrorObject {
    let error = match error.downcast::<ErrorObject>() {
        Ok(error) => return *error,
        Err(error) => error,
    };
    if error.is::<tower::timeout::error::Elapsed>() {
        ErrorObject::timed_out()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ErrorObject::busy(retry_after)
    } else {
        ErrorObject::internal_error().with_detail(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_errors_map_to_error_objects() {
        let retry = Duration::from_millis(250);
        let own: BoxError = Box::new(ErrorObject::new(401, "who are you?"));
        assert_eq!(error_object(own, retry).code(), 401);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(error_object(elapsed, retry).code(), crate::code::TIMED_OUT);
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        let busy = error_object(shed, retry);
        assert_eq!(busy.code(), crate::code::BUSY);
        assert_eq!(busy.retry_after(), Some(retry));
        let other: BoxError = "the database is down".into();
        let internal = error_object(other, retry);
        assert_eq!(internal.code(), crate::code::INTERNAL_ERROR);
        assert!(
            internal
                .data()
                .is_some_and(|data| data.get().contains("the database is down"))
        );
    }
}
