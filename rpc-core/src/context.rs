//! What a handler knows about the call it is answering.

use crate::peer::PeerHandle;
use crate::peer::link::Link;

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
}

impl Context {
    pub(crate) fn new(peer: PeerHandle) -> Self {
        Self { peer }
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
        match self.peer.link() {
            Link::Fixed(shared) => shared.extensions.get(),
            // Handlers always run on one connection; their handle is fixed.
            Link::Relayed(_) => None,
        }
    }
}
