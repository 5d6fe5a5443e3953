//! Request ids: the ones the other side chose (echoed back byte for byte) and our own.

use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// The id of a request this side received, kept as the exact JSON text the other side sent.
///
/// The specification allows a string, a number or null; whatever form the number takes (`1`, `-0`, `1e3`,
/// `12345678901234567890123`), it is echoed back unchanged, because the text is never reinterpreted.
#[derive(Clone)]
pub struct RawId(Text);

/// The longest id kept inline, in bytes (ids up to this long are copied instead of shared).
const INLINE: usize = 22;

/// An id's JSON text: short ones (every integer, most strings) copied into the value itself, so that
/// keeping and echoing them touches no reference count of the received frame; longer ones a slice of it.
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

/// What kind of JSON value an id is, told from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    String,
    Number,
    Null,
    /// A boolean, an array or an object: not allowed as an id.
    Invalid,
}

impl IdKind {
    /// The kind of the id whose JSON text is `text`.
    pub(crate) fn of(text: &str) -> Self {
        match text.as_bytes().first() {
            Some(b'"') => IdKind::String,
            Some(b'-' | b'0'..=b'9') => IdKind::Number,
            Some(b'n') => IdKind::Null,
            _ => IdKind::Invalid,
        }
    }
}

impl RawId {
    /// The id `null`.
    pub fn null() -> Self {
        Self::from_text(b"null")
    }

    /// Wraps the JSON text `text` (already checked to be a valid id): copied when short, else taken as
    /// `shared` gives it (a slice of the received frame, not copied).
    pub(crate) fn from_part(text: &[u8], shared: impl FnOnce() -> Bytes) -> Self {
        if text.len() <= INLINE {
            Self::from_text(text)
        } else {
            RawId(Text::Shared(shared()))
        }
    }

    /// Wraps the JSON text `text` (already checked to be a valid id), copying it.
    pub(crate) fn from_text(text: &[u8]) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..text.len()].copy_from_slice(text);
                RawId(Text::Inline { len, bytes })
            }
            _ => RawId(Text::Shared(Bytes::copy_from_slice(text))),
        }
    }

    /// The JSON text of the id.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Text::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Text::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for RawId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RawId {}

impl Hash for RawId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_from_the_first_byte() {
        let kind = IdKind::of;
        assert_eq!(kind(r#""a""#), IdKind::String);
        assert_eq!(kind("-1.5e3"), IdKind::Number);
        assert_eq!(kind("null"), IdKind::Null);
        assert_eq!(kind("true"), IdKind::Invalid);
        assert_eq!(kind("[1]"), IdKind::Invalid);
        assert_eq!(kind("{}"), IdKind::Invalid);
    }

    #[test]
    fn the_text_is_kept_exactly() {
        let id = RawId::from_text(b"1.50e+3");
        assert_eq!(id.as_bytes(), b"1.50e+3");
        assert_eq!(RawId::null().as_bytes(), b"null");
    }

    #[test]
    fn short_and_long_ids_compare_by_their_text() {
        let long = format!("\"{}\"", "x".repeat(INLINE));
        let shared = RawId::from_part(long.as_bytes(), || Bytes::from(long.clone()));
        assert!(matches!(shared.0, Text::Shared(_)));
        assert_eq!(shared.as_bytes(), long.as_bytes());
        assert_eq!(shared, RawId::from_text(long.as_bytes()));
        let short = RawId::from_part(b"\"abc\"", || unreachable!("a short id is copied"));
        assert!(matches!(short.0, Text::Inline { .. }));
        assert_eq!(short, RawId::from_text(b"\"abc\""));
        assert_ne!(short, shared);
        let hash = |id: &RawId| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut hasher);
            hasher.finish()
        };
        assert_eq!(hash(&short), hash(&RawId::from_text(b"\"abc\"")));
        assert_eq!(std::mem::size_of::<RawId>(), std::mem::size_of::<Bytes>());
    }
}
