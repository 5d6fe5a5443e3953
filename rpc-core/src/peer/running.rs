//! The handlers of received requests still running, so that they can be cancelled.

use std::sync::{Mutex, MutexGuard};

use futures::future::{AbortHandle, AbortRegistration};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::id::RawId;

#[derive(Default)]
struct Registry {
    next_key: u64,
    handlers: FxHashMap<u64, (Option<RawId>, AbortHandle)>,
    closed: bool,
}

/// Handlers that did not finish at once and run as tasks. A `$/cancelRequest` aborts the one with its id;
/// the end of the connection aborts all.
#[derive(Default)]
pub(crate) struct Running {
    registry: Mutex<Registry>,
    /// Woken when the last running handler ends.
    idle: Notify,
}

/// A registered handler; dropping it takes the handler out of the registry.
pub(crate) struct Registration<'a> {
    running: &'a Running,
    key: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut registry = self.running.lock();
        registry.handlers.remove(&self.key);
        if registry.handlers.is_empty() {
            drop(registry);
            self.running.idle.notify_one();
        }
    }
}

impl Running {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a handler answering `id` (`None` for a batch). Returns the abort registration to wrap the
    /// handler with, or `None` when the connection already ended and the handler should not run.
    pub(crate) fn register(&self, id: Option<RawId>) -> Option<(u64, AbortRegistration)> {
        let (handle, registration) = AbortHandle::new_pair();
        let mut registry = self.lock();
        if registry.closed {
            return None;
        }
        let key = registry.next_key;
        registry.next_key += 1;
        registry.handlers.insert(key, (id, handle));
        Some((key, registration))
    }

    /// A guard that unregisters `key` when dropped (when the handler task ends, however it ends).
    pub(crate) fn guard(&self, key: u64) -> Registration<'_> {
        Registration { running: self, key }
    }

    /// Aborts the handler answering `id`; `false` when none is running.
    pub(crate) fn cancel(&self, id: &RawId) -> bool {
        let registry = self.lock();
        let found = registry
            .handlers
            .values()
            .find(|(running_id, _)| running_id.as_ref() == Some(id));
        match found {
            Some((_, handle)) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// Aborts every handler and refuses new ones.
    pub(crate) fn abort_all(&self) {
        let mut registry = self.lock();
        registry.closed = true;
        for (_, handle) in registry.handlers.values() {
            handle.abort();
        }
    }

    /// The number of handlers running as tasks.
    pub(crate) fn len(&self) -> usize {
        self.lock().handlers.len()
    }

    /// Resolves when no handler may be running any more (check [`len`](Self::len) after it).
    pub(crate) async fn idle(&self) {
        self.idle.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::future::Abortable;

    use super::*;

    #[tokio::test]
    async fn cancel_aborts_the_handler_with_that_id() {
        let running = Running::default();
        let id = RawId::from_checked(Bytes::from_static(b"3"));
        let (key, registration) = running.register(Some(id.clone())).unwrap();
        let guard = running.guard(key);
        assert!(running.cancel(&id));
        let outcome = Abortable::new(futures::future::pending::<()>(), registration).await;
        assert!(outcome.is_err());
        drop(guard);
        assert_eq!(running.len(), 0);
        assert!(!running.cancel(&id));
    }

    #[tokio::test]
    async fn nothing_registers_after_the_end() {
        let running = Running::default();
        running.abort_all();
        assert!(running.register(None).is_none());
    }
}
