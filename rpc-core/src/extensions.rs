//! Typed values attached to a connection (the authenticated user, what the server knew of the upgrade
//! request), reachable from every handler through its [`Context`](crate::Context).

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// A set of values keyed by their type: at most one of each type.
///
/// Kept as a list searched in order: a connection holds a few values (the server's
/// `ConnectionInfo`, what admission attached), and a list of one costs a 32-byte allocation where a hash
/// table costs about 150 bytes, for every connection.
///
/// ```
/// use rpc_core::Extensions;
///
/// struct User(String);
///
/// let mut extensions = Extensions::new();
/// extensions.insert(User("ada".into()));
/// assert_eq!(extensions.get::<User>().map(|u| u.0.as_str()), Some("ada"));
/// assert!(extensions.get::<u32>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct Extensions {
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing the value of the same type, if any.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.put(TypeId::of::<T>(), Arc::new(value));
    }

    fn put(&mut self, key: TypeId, value: Arc<dyn Any + Send + Sync>) {
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => {
                // Grown one entry at a time: a connection holds one or two values, and a first push
                // would otherwise make room for four.
                self.values.reserve_exact(1);
                self.values.push((key, value));
            }
        }
    }

    fn find(&self, key: TypeId) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, value)| value)
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.find(TypeId::of::<T>()).and_then(|value| value.downcast_ref())
    }

    /// The value of type `T`, shared, if there is one.
    pub fn get_arc<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.find(TypeId::of::<T>())?.clone().downcast().ok()
    }

    /// Adds every value of `other`, replacing those of the same types.
    pub fn extend(&mut self, other: Extensions) {
        self.values.reserve_exact(other.values.len());
        for (key, value) in other.values {
            self.put(key, value);
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions").field("len", &self.values.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut extensions = Extensions::new();
        extensions.insert(1u8);
        extensions.insert(2u8);
        extensions.insert("text");
        assert_eq!(extensions.get::<u8>(), Some(&2));
        assert_eq!(extensions.get_arc::<&str>().as_deref(), Some(&"text"));
        let mut more = Extensions::new();
        more.insert(3u8);
        extensions.extend(more);
        assert_eq!(extensions.get::<u8>(), Some(&3));
    }
}
