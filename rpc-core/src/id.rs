//! Request ids: the ones the other side chose (echoed back byte for byte) and our own.

use std::fmt;

use bytes::Bytes;
use serde_json::value::RawValue;

/// The id of a request this side received, kept as the exact JSON text the other side sent.
///
/// The specification allows a string, a number or null; whatever form the number takes (`1`, `-0`, `1e3`,
/// `12345678901234567890123`), it is echoed back unchanged, because the text is never reinterpreted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawId(Bytes);

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
    pub(crate) fn of(raw: &RawValue) -> Self {
        match raw.get().as_bytes().first() {
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
        RawId(Bytes::from_static(b"null"))
    }

    /// Wraps JSON text already checked to be a valid id (a slice of a received frame).
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        RawId(bytes)
    }

    /// The JSON text of the id.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_from_the_first_byte() {
        let kind = |text: &str| IdKind::of(&RawValue::from_string(text.to_owned()).unwrap());
        assert_eq!(kind(r#""a""#), IdKind::String);
        assert_eq!(kind("-1.5e3"), IdKind::Number);
        assert_eq!(kind("null"), IdKind::Null);
        assert_eq!(kind("true"), IdKind::Invalid);
        assert_eq!(kind("[1]"), IdKind::Invalid);
        assert_eq!(kind("{}"), IdKind::Invalid);
    }

    #[test]
    fn the_text_is_kept_exactly() {
        let id = RawId::from_checked(Bytes::from_static(b"1.50e+3"));
        assert_eq!(id.as_bytes(), b"1.50e+3");
        assert_eq!(RawId::null().as_bytes(), b"null");
    }
}
