//! The method table: the handlers one side exports, by name.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::Context;
use crate::error_object::ErrorObject;
use crate::id::RawId;
use crate::layer::{Answer, BoxError, IncomingCall, Layered, LayeredFallback, MethodService};
use crate::params::Params;

/// The future a handler returns once erased: its answer (the encoded response frame, none for a
/// notification, and how the call ended).
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A handler with its types erased. It decodes the params, runs, and encodes its own answer, so that the
/// result goes straight from the handler's type into the outgoing frame.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    /// The name the method was exported under.
    fn name(&self) -> &Arc<str>;

    /// Whether this is the router's fallback bound to a name it received (not an exported name).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn is_fallback(&self) -> bool {
        false
    }

    /// Starts the handler. `id` is `None` for a notification, whose outcome is only logged.
    fn call(&self, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture;
}

/// A handler as registered: a shared, type-erased function.
pub(crate) type Method = Arc<dyn ErasedHandler>;

/// The methods one side exports, by name. The same type serves a server and a client.
///
/// A handler takes the per-call [`Context`] and its params, and returns a `Result` whose error converts
/// into an [`ErrorObject`]:
///
/// ```
/// use rpc_core::{Context, ErrorObject, Router};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Subtract {
///     minuend: i64,
///     subtrahend: i64,
/// }
///
/// let router = Router::new()
///     // A tuple takes params by position: [1, 2].
///     .method("add", |_ctx: Context, (a, b): (i64, i64)| async move { Ok::<_, ErrorObject>(a + b) })
///     // A struct takes them by position or by name: [42, 23] or {"minuend": 42, "subtrahend": 23}.
///     .method("subtract", |_ctx: Context, p: Subtract| async move {
///         Ok::<_, ErrorObject>(p.minuend - p.subtrahend)
///     });
/// assert!(router.contains("add"));
/// ```
///
/// Cloning a router is cheap (the table is shared until one of the clones adds a method), so a server can
/// hand every connection its own.
#[derive(Clone, Default)]
pub struct Router {
    methods: Arc<FxHashMap<Arc<str>, Method>>,
    /// What answers the names the table lacks (see [`Router::fallback`]); -32601 when `None`.
    fallback: Option<Arc<dyn FallbackHandler>>,
}

/// The fallback with its result type erased: it answers any name it is given.
pub(crate) trait FallbackHandler: Send + Sync + 'static {
    fn call(&self, ctx: Context, method: Arc<str>, params: Params, id: Option<RawId>) -> HandlerFuture;
}

impl<R, F, Fut> FallbackHandler for F
where
    R: Serialize + 'static,
    F: Fn(IncomingCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
{
    fn call(&self, ctx: Context, method: Arc<str>, params: Params, id: Option<RawId>) -> HandlerFuture {
        let fut = self(IncomingCall::new(method, id.clone(), params, ctx));
        Box::pin(async move { answer(fut.await, id) })
    }
}

/// The fallback bound to one received method name, run as any exported handler is.
struct Fallback {
    name: Arc<str>,
    handler: Arc<dyn FallbackHandler>,
}

impl ErasedHandler for Fallback {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn is_fallback(&self) -> bool {
        true
    }

    fn call(&self, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture {
        self.handler.call(ctx, self.name.clone(), params, id)
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exports `name`, decoding its params into `P` with [`Params::parse`].
    ///
    /// # Panics
    /// When `name` is already exported: two handlers for one name is a mistake in the program, found at
    /// start-up.
    #[must_use]
    pub fn method<P, R, E, F, Fut>(self, name: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        E: Into<ErrorObject> + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.method_raw(name, move |ctx, params: Params| {
            let decoded = params.parse::<P>();
            let running = decoded.map(|p| handler(ctx, p));
            async move {
                match running {
                    Ok(fut) => fut.await.map_err(Into::into),
                    Err(e) => Err(e),
                }
            }
        })
    }

    /// Exports `name` with a handler that reads its [`Params`] itself (with [`Params::reader`], say).
    ///
    /// # Panics
    /// When `name` is already exported.
    #[must_use]
    pub fn method_raw<R, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        R: Serialize + 'static,
        F: Fn(Context, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
    {
        self.insert(
            name,
            Arc::new(Typed {
                name: Arc::from(name),
                handler,
            }),
        );
        self
    }

    /// Exports `name` as a stream method: its handler answers with a stream of items (a download, or
    /// subscription), which the caller reads with [`PeerHandle::subscribe`](crate::PeerHandle::subscribe)
    /// (or a typed client's stream method).
    ///
    /// The handler decodes its params into `P` and returns the stream, or an error (then no stream opens
    /// and the caller's subscribe fails with it). The answer to the request is the stream's id; each
    /// item then travels as a notification `{"subscription": id, "result": item}` under `name`, within
    /// the credit the caller grants (`docs/streams.md`); the stream's first `Err` ends it with that error
    /// object. The stream is dropped, unfinished, when the caller cancels it or the connection ends.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use rpc_core::{Context, ErrorObject, Router};
    ///
    /// let router = Router::new().stream("count_to", |_ctx: Context, (n,): (u64,)| async move {
    ///     Ok::<_, ErrorObject>(futures::stream::iter(1..=n).map(Ok::<_, ErrorObject>))
    /// });
    /// assert!(router.contains("count_to"));
    /// ```
    ///
    /// # Panics
    /// When `name` is already exported.
    #[must_use]
    pub fn stream<P, T, E, EI, S, F, Fut>(self, name: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        T: Serialize + Send + 'static,
        E: Into<ErrorObject> + 'static,
        EI: Into<ErrorObject> + 'static,
        S: Stream<Item = Result<T, EI>> + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
    {
        self.stream_raw(name, move |ctx, params: Params| {
            let running = params.parse::<P>().map(|p| handler(ctx, p));
            async move {
                let items = running?.await.map_err(Into::into)?;
                Ok(items.map(|item| item.map_err(Into::into)))
            }
        })
    }

    /// Exports `name` as a stream method whose handler reads its [`Params`] itself and whose items'
    /// errors are error objects already (what `#[rpc]` generates); see [`stream`](Self::stream).
    ///
    /// # Panics
    /// When `name` is already exported.
    #[must_use]
    pub fn stream_raw<T, S, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        T: Serialize + Send + 'static,
        S: Stream<Item = Result<T, ErrorObject>> + Send + 'static,
        F: Fn(Context, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, ErrorObject>> + Send + 'static,
    {
        let method = StreamMethod {
            name: Arc::from(name),
            handler,
        };
        self.insert(name, Arc::new(method));
        self
    }

    /// Answers every call and notification whose method this router does not export (instead of
    /// -32601 Method not found, and of dropping the notification): for a proxy, a recorder, or a tool
    /// that answers whatever it is asked.
    ///
    /// The handler gets the call as an [`IncomingCall`]: the method name and id as received, the params as
    /// they came, and the call's context (for calls back to the caller).
    /// Exported methods, and the protocol's own messages (`$/cancelRequest`, the stream notifications),
    /// never reach it. Its result answers a call as an exported handler's does; for a notification it is
    /// dropped. It may answer -32601 itself for names it does not know either.
    ///
    /// ```
    /// use rpc_core::layer::IncomingCall;
    /// use rpc_core::{ErrorObject, Router};
    ///
    /// let router = Router::new().fallback(|call: IncomingCall| async move {
    ///     match call.method() {
    ///         "version" => Ok("1.0".to_owned()),
    ///         _ => Err(ErrorObject::method_not_found()),
    ///     }
    /// });
    /// assert!(!router.contains("version"));
    /// ```
    ///
    /// # Panics
    /// When the router has a fallback already.
    #[must_use]
    pub fn fallback<R, F, Fut>(mut self, handler: F) -> Self
    where
        R: Serialize + 'static,
        F: Fn(IncomingCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
    {
        assert!(self.fallback.is_none(), "the router has a fallback already");
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Exports every method of `other` as well, and takes its fallback if it has one.
    ///
    /// # Panics
    /// When both export a method of the same name, or both have a fallback.
    #[must_use]
    pub fn merge(mut self, other: Router) -> Self {
        for (name, method) in other.methods.iter() {
            self.insert(name, method.clone());
        }
        if let Some(fallback) = other.fallback {
            assert!(self.fallback.is_none(), "both routers have a fallback");
            self.fallback = Some(fallback);
        }
        self
    }

    /// Exports `alias` as another name for the already exported `name`.
    ///
    /// # Panics
    /// When `name` is not exported or `alias` already is.
    #[must_use]
    #[expect(
        clippy::panic,
        reason = "a misspelt name is a mistake in the program, reported at start-up"
    )]
    pub fn alias(mut self, alias: &str, name: &str) -> Self {
        let Some(method) = self.methods.get(name).cloned() else {
            panic!("cannot alias `{alias}` to `{name}`: no method `{name}` is exported");
        };
        self.insert(alias, method);
        self
    }

    /// Wraps every method exported so far, and the [fallback](Self::fallback) if there is one, in
    /// `layer`, a tower [`Layer`]: each call received for them goes through the layer's service (an
    /// [`IncomingCall`] in, an [`Answer`] out) before reaching its handler. Methods exported after this
    /// call are not wrapped; call it again to wrap all of them, the last layer outermost. The fallback
    /// gets one service of its own, shared by every name it answers.
    ///
    /// Each call runs on a clone of the layered service, and every connection given a clone of this
    /// router shares the same service: tower's `ConcurrencyLimit` then limits the calls of all those
    /// connections together (per connection, see [`PeerConfig::max_concurrent_requests`](crate::PeerConfig::max_concurrent_requests)).
    /// A layer whose state lives in the service value itself (tower's `RateLimit`) must sit behind a
    /// `Buffer` to be shared. A layer's error answers the call with an error object: the
    /// [`ErrorObject`] itself when the error is one (how a layer refuses with a code of its choosing;
    /// [`Answer::error`] does it without an error), -32007 Timed out for tower's `Timeout`, -32005 Busy
    /// for tower's `LoadShed`, and -32603 Internal error with the error's message as data otherwise.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use rpc_core::layer::IncomingCall;
    /// use rpc_core::{Context, ErrorObject, NoParams, Router};
    /// use tower::filter::FilterLayer;
    /// use tower::timeout::TimeoutLayer;
    ///
    /// /// Who the admission hook let in.
    /// struct Role(&'static str);
    ///
    /// let router = Router::new()
    ///     .method("report", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>("all quiet") })
    ///     .method("admin.reset", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(true) })
    ///     // No handler may run longer than 5 s (-32007 Timed out).
    ///     .layer(TimeoutLayer::new(Duration::from_secs(5)))
    ///     // Only admins may call `admin.*` (403 otherwise, with the handler never called).
    ///     .layer(FilterLayer::new(|call: IncomingCall| {
    ///         let admin = call.context().state::<Role>().is_some_and(|role| role.0 == "admin");
    ///         if call.method().starts_with("admin.") && !admin {
    ///             return Err(ErrorObject::new(403, "admins only"));
    ///         }
    ///         Ok(call)
    ///     }));
    /// # let _ = router;
    /// ```
    #[must_use]
    pub fn layer<L>(self, layer: L) -> Router
    where
        L: Layer<MethodService>,
        L::Service: Service<IncomingCall, Response = Answer> + Clone + Send + Sync + 'static,
        <L::Service as Service<IncomingCall>>::Error: Into<BoxError>,
        <L::Service as Service<IncomingCall>>::Future: Send + 'static,
    {
        let methods = self
            .methods
            .iter()
            .map(|(name, method)| {
                let service = layer.layer(MethodService::method(method.clone()));
                let layered: Method = Arc::new(Layered::new(method.name().clone(), service));
                (name.clone(), layered)
            })
            .collect();
        let fallback = self.fallback.map(|fallback| {
            let service = layer.layer(MethodService::fallback(fallback));
            Arc::new(LayeredFallback::new(service)) as Arc<dyn FallbackHandler>
        });
        Router {
            methods: Arc::new(methods),
            fallback,
        }
    }

    fn insert(&mut self, name: &str, method: Method) {
        let previous = Arc::make_mut(&mut self.methods).insert(Arc::from(name), method);
        assert!(previous.is_none(), "the method `{name}` is exported twice");
    }

    /// Whether `name` is exported.
    pub fn contains(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// The exported names, in no particular order.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(|name| &**name)
    }

    /// The handler for `name`: the exported one, else the fallback bound to that name.
    pub(crate) fn get(&self, name: &str) -> Option<Method> {
        if let Some(method) = self.methods.get(name) {
            return Some(method.clone());
        }
        let handler = self.fallback.clone()?;
        Some(Arc::new(Fallback {
            name: Arc::from(name),
            handler,
        }))
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.method_names().collect();
        names.sort_unstable();
        f.debug_struct("Router")
            .field("methods", &names)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

/// A typed handler function behind [`ErasedHandler`].
struct Typed<F> {
    /// The name it was exported under, for the call's span.
    name: Arc<str>,
    handler: F,
}

impl<R, F, Fut> ErasedHandler for Typed<F>
where
    R: Serialize + 'static,
    F: Fn(Context, Params) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
{
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn call(&self, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture {
        let fut = (self.handler)(ctx, params);
        if !tracing::enabled!(target: "birpc::call", tracing::Level::DEBUG) {
            return Box::pin(async move { answer(fut.await, id) });
        }
        // A span per received call: its method, id (none for a notification), how long it ran, how it ended.
        let span = tracing::debug_span!(
            target: "birpc::call",
            "call",
            direction = "in",
            method = %self.name,
            id = id.as_ref().map(tracing::field::display),
        );
        let started = std::time::Instant::now();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let outcome = fut.await;
                let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                match &outcome {
                    Ok(_) => tracing::debug!(target: "birpc::call", elapsed_us, "answered"),
                    Err(error) => {
                        tracing::debug!(target: "birpc::call", elapsed_us, code = error.code(), "failed");
                    }
                }
                answer(outcome, id)
            },
            span,
        ))
    }
}

/// The answer to send for a handler's outcome (no frame for a notification, whose failure is only logged).
fn answer<R: Serialize>(outcome: Result<R, ErrorObject>, id: Option<RawId>) -> Answer {
    if id.is_none()
        && let Err(error) = &outcome
    {
        tracing::debug!(target: "birpc::peer", %error, "a notification handler failed");
    }
    Answer::of(outcome, id.as_ref())
}

/// A stream method's handler behind [`ErasedHandler`]: its answer is the stream it opens.
struct StreamMethod<F> {
    name: Arc<str>,
    handler: F,
}

impl<T, S, F, Fut> ErasedHandler for StreamMethod<F>
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, ErrorObject>> + Send + 'static,
    F: Fn(Context, Params) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, ErrorObject>> + Send + 'static,
{
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn call(&self, ctx: Context, params: Params, id: Option<RawId>) -> HandlerFuture {
        let name = self.name.clone();
        if ctx.in_batch() {
            // A batch's answers travel together, after all of its requests are done: a stream's answer
            // must go before its first item.
            let error = ErrorObject::invalid_request().with_detail("a stream method cannot be called in a batch");
            return Box::pin(std::future::ready(Answer::failed(id.as_ref(), &error)));
        }
        let opening = (self.handler)(ctx.clone(), params);
        Box::pin(async move {
            let Some(id) = id else {
                tracing::debug!(target: "birpc::peer", method = %name, "ignored a notification to a stream method (it opens no stream)");
                return Answer::encoded(None, None);
            };
            let items = match opening.await {
                Ok(items) => items,
                Err(error) => return Answer::failed(Some(&id), &error),
            };
            let Some(shared) = ctx.shared() else {
                return Answer::encoded(None, None);
            };
            crate::stream::producer::answer_with_stream(shared, name, &id, ctx.window(), items).await
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::sync::mpsc;

    use super::*;
    use crate::{CallError, Peer, memory};

    /// The fallback answers the names the table lacks, with the method, id and params as received; the
    /// exported methods still answer themselves; a notification reaches it without an id.
    #[tokio::test]
    async fn the_fallback_answers_unknown_names_and_sees_notifications() {
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let router = Router::new()
            .method("known", |_: Context, _: crate::NoParams| async {
                Ok::<_, ErrorObject>("table")
            })
            .fallback(move |call: IncomingCall| {
                let raw = call
                    .params()
                    .as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                let _ = seen_tx.send((call.method().to_owned(), call.id().map(ToString::to_string), raw));
                async move {
                    match call.method() {
                        "refused" => Err(ErrorObject::method_not_found()),
                        _ => Ok(call.method().len()),
                    }
                }
            });
        let (a, b) = memory::pair(16);
        let _answering = Peer::builder().router(router).spawn(a);
        let caller = Peer::builder().spawn(b);

        assert_eq!(caller.call::<String>("known", ()).await.unwrap(), "table");
        assert_eq!(caller.call::<usize>("anything", [1, 2]).await.unwrap(), 8);
        let (method, id, params) = seen.recv().await.unwrap();
        assert_eq!(method, "anything");
        assert!(id.is_some());
        assert_eq!(params.as_deref(), Some("[1,2]"));
        assert!(matches!(
            caller.call::<Value>("refused", ()).await,
            Err(CallError::MethodNotFound(_))
        ));
        let _ = seen.recv().await.unwrap();

        caller.notify("told", serde_json::json!({"x": 1})).await.unwrap();
        let (method, id, params) = seen.recv().await.unwrap();
        assert_eq!(
            (method.as_str(), id, params.as_deref()),
            ("told", None, Some(r#"{"x":1}"#))
        );
    }

    #[test]
    fn merge_takes_the_other_fallback() {
        let with = Router::new().fallback(|_: IncomingCall| async { Ok::<_, ErrorObject>(()) });
        let merged = Router::new().merge(with);
        assert!(merged.get("whatever").is_some());
        assert!(Router::new().get("whatever").is_none());
    }
}
