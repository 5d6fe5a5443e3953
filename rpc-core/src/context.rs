//! What a handler knows about the call it is answering.

use std::sync::Arc;

use crate::error_object::ErrorObject;
use crate::peer::link::Link;
use crate::peer::{PeerHandle, Shared};
use crate::stream::{Upload, UploadId};

/// The per-call context a handler receives: above all, a handle to the peer that called, so the handler can
/// call it back and await the answer.
///
/// ```
/// use rpc_core::{Context, ErrorObject, Router};
///
/// let router = Router::new().method("greet", |ctx: Context, (name,): (String,)| async move {
///     // Ask the caller something before answering.
///     let title: String = ctx.peer().call("title_of", (name.clone(),)).await.map_err(|e| {
///         ErrorObject::new(1, "the caller could not answer").with_detail(e)
///     })?;
///     Ok::<_, ErrorObject>(format!("Hello, {title} {name}"))
/// });
/// # let _ = router;
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    peer: PeerHandle,
    /// The credit the caller announced for a download this request opens (`$/stream.open`), if any.
    window: Option<u32>,
    /// Whether the request came in a batch (whose answers travel together, so it cannot open a stream).
    in_batch: bool,
}

impl Context {
    pub(crate) fn new(peer: PeerHandle, window: Option<u32>, in_batch: bool) -> Self {
        Self { peer, window, in_batch }
    }

    /// Whether the request came in a batch.
    pub(crate) fn in_batch(&self) -> bool {
        self.in_batch
    }

    /// The connection the handler runs on.
    pub(crate) fn shared(&self) -> Option<&Arc<Shared>> {
        match self.peer.link() {
            Link::Fixed(shared) => Some(shared),
            Link::Relayed(_) => None,
        }
    }

    /// The retry hint of a -32005 Busy answer on this connection.
    pub(crate) fn busy_retry_after(&self) -> std::time::Duration {
        self.shared()
            .map_or(crate::PeerConfig::default().busy_retry_after, |shared| {
                shared.config.busy_retry_after
            })
    }

    /// The window the caller announced for the download this request opens.
    pub(crate) fn window(&self) -> Option<u32> {
        self.window
    }

    /// Binds the upload the caller named `id` in this call's params: the items it sends while the call
    /// runs, decoded into `T`. Typed services do this for their [`Upload`] parameters.
    ///
    /// # Errors
    /// -32602 Invalid params when the caller already has an upload of that id bound on this connection;
    /// -32006 Too many streams past [`PeerConfig::max_streams`](crate::PeerConfig::max_streams).
    pub fn upload<T>(&self, id: UploadId) -> Result<Upload<T>, ErrorObject> {
        let shared = self
            .shared()
            .ok_or_else(|| ErrorObject::internal_error().with_detail("no connection"))?;
        Upload::bind(shared.clone(), id)
    }

    /// The peer that made this call. Calls made through it go back over the same connection.
    pub fn peer(&self) -> &PeerHandle {
        &self.peer
    }

    /// The value of type `T` attached to this connection (the authenticated user a server's admission hook
    /// admitted, the connection's details), if any.
    ///
    /// ```
    /// use rpc_core::{Context, ErrorObject, Router};
    ///
    /// struct User {
    ///     name: String,
    /// }
    ///
    /// let router = Router::new().method("whoami", |ctx: Context, _: rpc_core::NoParams| async move {
    ///     let user = ctx.state::<User>().ok_or_else(|| ErrorObject::new(401, "not signed in"))?;
    ///     Ok::<_, ErrorObject>(user.name.clone())
    /// });
    /// # let _ = router;
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        // Handlers always run on one connection; their handle is fixed.
        self.shared()?.extensions.get()
    }
}
