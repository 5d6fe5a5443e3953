//! The params of a received call, decoded straight from the frame into the handler's argument types.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::value::UnitDeserializer;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error_object::ErrorObject;

/// The params of a received request or notification: an array, an object, or nothing.
///
/// They are a slice of the received frame; nothing is decoded until a handler asks for its arguments.
#[derive(Clone, Default)]
pub struct Params {
    raw: Option<Bytes>,
}

impl Params {
    /// Params from their JSON text (an array or an object), or none.
    pub(crate) fn from_raw(raw: Option<Bytes>) -> Self {
        Self { raw }
    }

    /// The params' JSON text as the frame's bytes, if present.
    pub(crate) fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// Params holding `json`, which must be an array or an object; for tests and for dispatching by hand.
    ///
    /// # Errors
    /// -32602 when `json` is not an array or an object.
    pub fn from_json(json: impl Into<String>) -> Result<Self, ErrorObject> {
        let json = json.into();
        match serde_json::from_str::<&RawValue>(&json) {
            Ok(raw) if matches!(raw.get().as_bytes().first(), Some(b'[' | b'{')) => Ok(Self {
                raw: Some(Bytes::from(json.trim().to_owned())),
            }),
            _ => Err(ErrorObject::invalid_params("params must be an array or an object")),
        }
    }

    /// Whether the message had no params member.
    pub fn is_absent(&self) -> bool {
        self.raw.is_none()
    }

    /// The params' JSON text, if present.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    /// Decodes the params as a whole into `T`.
    ///
    /// A tuple or a `Vec` takes params by position; a struct deriving `Deserialize` takes them by position
    /// or by name; absent params decode like an empty array (so a struct whose fields all have defaults, or
    /// [`NoParams`], accepts them).
    ///
    /// # Errors
    /// -32602 Invalid params, with serde's explanation as data.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        let result = match &self.raw {
            Some(raw) => serde_json::from_slice(raw),
            None => serde_json::from_str("[]"),
        };
        result.map_err(ErrorObject::invalid_params)
    }

    /// Reads the params one by one, each by position (array) or by name (object).
    ///
    /// `names` lists the method's params in order. An argument missing from either form is decoded from
    /// `null`, so an `Option` argument may be left out (in the array form only from the end) and any other
    /// type reports "missing parameter". Call [`ParamReader::arg`] for each argument in turn, then [`ParamReader::finish`] to reject
    /// surplus ones.
    ///
    /// # Errors
    /// -32602 Invalid params when the params are malformed.
    pub fn reader<'n>(&self, names: &'n [&'n str]) -> Result<ParamReader<'_, 'n>, ErrorObject> {
        let form = match &self.raw {
            None => Form::Positional(Vec::new()),
            Some(raw) => match raw.first() {
                Some(b'[') => Form::Positional(
                    serde_json::from_slice::<Vec<&RawValue>>(raw).map_err(ErrorObject::invalid_params)?,
                ),
                _ => Form::Named(
                    serde_json::from_slice::<NamedParams<'_>>(raw)
                        .map_err(ErrorObject::invalid_params)?
                        .0,
                ),
            },
        };
        Ok(ParamReader { names, next: 0, form })
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.raw {
            Some(raw) => f.write_str(&String::from_utf8_lossy(raw)),
            None => f.write_str("(none)"),
        }
    }
}

/// Reads a method's arguments one at a time; see [`Params::reader`].
#[derive(Debug)]
pub struct ParamReader<'p, 'n> {
    names: &'n [&'n str],
    next: usize,
    form: Form<'p>,
}

#[derive(Debug)]
enum Form<'p> {
    Positional(Vec<&'p RawValue>),
    /// Each entry is taken (set to `None`) once read, so that what is left at the end is unknown.
    Named(Vec<(Cow<'p, str>, Option<&'p RawValue>)>),
}

impl ParamReader<'_, '_> {
    /// Decodes the next argument.
    ///
    /// # Errors
    /// -32602 Invalid params naming the argument, when it is missing or of the wrong type.
    pub fn arg<T: DeserializeOwned>(&mut self) -> Result<T, ErrorObject> {
        let index = self.next;
        self.next += 1;
        let name = self.names.get(index).copied().unwrap_or("?");
        let raw = match &mut self.form {
            Form::Positional(values) => values.get(index).copied(),
            Form::Named(entries) => entries
                .iter_mut()
                .find(|(key, _)| key == name)
                .and_then(|(_, value)| value.take()),
        };
        match raw {
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|e| ErrorObject::invalid_params(format_args!("parameter `{name}`: {e}"))),
            None => T::deserialize(UnitDeserializer::<serde_json::Error>::new())
                .map_err(|_| ErrorObject::invalid_params(format_args!("missing parameter `{name}`"))),
        }
    }

    /// Checks that no argument is left over: no more array elements than names, no unknown names.
    ///
    /// # Errors
    /// -32602 Invalid params naming the surplus.
    pub fn finish(self) -> Result<(), ErrorObject> {
        match &self.form {
            Form::Positional(values) if values.len() > self.names.len() => Err(ErrorObject::invalid_params(
                format_args!("expected at most {} parameters, got {}", self.names.len(), values.len()),
            )),
            Form::Positional(_) => Ok(()),
            Form::Named(entries) => match entries.iter().find(|(_, value)| value.is_some()) {
                Some((key, _)) => Err(ErrorObject::invalid_params(format_args!("unknown parameter `{key}`"))),
                None => Ok(()),
            },
        }
    }
}

/// An object's members in order, keys decoded, values raw; duplicate names are an error.
struct NamedParams<'a>(Vec<(Cow<'a, str>, Option<&'a RawValue>)>);

impl<'de> Deserialize<'de> for NamedParams<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor;
        impl<'de> Visitor<'de> for NamedVisitor {
            type Value = NamedParams<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Cow<'de, str>, Option<&'de RawValue>)> = Vec::new();
                while let Some(key) = map.next_key::<MaybeBorrowed<'de>>()? {
                    if entries.iter().any(|(k, _)| *k == key.0) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate parameter `{}`",
                            key.0
                        )));
                    }
                    entries.push((key.0, Some(map.next_value()?)));
                }
                Ok(NamedParams(entries))
            }
        }
        deserializer.deserialize_map(NamedVisitor)
    }
}

/// A string borrowed from the input when it has no escapes.
struct MaybeBorrowed<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MaybeBorrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = MaybeBorrowed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeBorrowed(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeBorrowed(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Params for a method that takes none: accepts an absent member, `[]`, `{}` and `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoParams;

impl<'de> Deserialize<'de> for NoParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NoParamsVisitor;
        impl<'de> Visitor<'de> for NoParamsVisitor {
            type Value = NoParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("no params")
            }
            fn visit_unit<E>(self) -> Result<NoParams, E> {
                Ok(NoParams)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoParams, A::Error> {
                match seq.next_element::<IgnoredAny>()? {
                    None => Ok(NoParams),
                    Some(_) => Err(serde::de::Error::custom("this method takes no parameters")),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoParams, A::Error> {
                match map.next_key::<IgnoredAny>()? {
                    None => Ok(NoParams),
                    Some(_) => Err(serde::de::Error::custom("this method takes no parameters")),
                }
            }
        }
        deserializer.deserialize_any(NoParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn params(json: &str) -> Params {
        Params::from_json(json).unwrap()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Subtract {
        minuend: i64,
        subtrahend: i64,
    }

    #[test]
    fn a_struct_takes_params_by_position_and_by_name() {
        let expected = Subtract {
            minuend: 42,
            subtrahend: 23,
        };
        assert_eq!(params("[42, 23]").parse::<Subtract>().unwrap(), expected);
        assert_eq!(
            params(r#"{"subtrahend": 23, "minuend": 42}"#)
                .parse::<Subtract>()
                .unwrap(),
            expected
        );
        assert_eq!(params("[42]").parse::<Subtract>().unwrap_err().code(), -32602);
    }

    #[test]
    fn no_params_accepts_every_empty_form() {
        assert_eq!(Params::default().parse::<NoParams>().unwrap(), NoParams);
        assert_eq!(params("[]").parse::<NoParams>().unwrap(), NoParams);
        assert_eq!(params("{}").parse::<NoParams>().unwrap(), NoParams);
        assert!(params("[1]").parse::<NoParams>().is_err());
    }

    fn read(p: &Params) -> Result<(String, Option<u32>), ErrorObject> {
        let mut r = p.reader(&["query", "limit"])?;
        let out = (r.arg()?, r.arg()?);
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn the_reader_takes_both_forms_and_trailing_options_may_be_omitted() {
        assert_eq!(read(&params(r#"["a", 3]"#)).unwrap(), ("a".into(), Some(3)));
        assert_eq!(read(&params(r#"["a"]"#)).unwrap(), ("a".into(), None));
        assert_eq!(
            read(&params(r#"{"limit": 3, "query": "a"}"#)).unwrap(),
            ("a".into(), Some(3))
        );
        assert_eq!(read(&params(r#"{"query": "\u0061"}"#)).unwrap(), ("a".into(), None));
    }

    #[test]
    fn the_reader_names_what_is_wrong() {
        let detail = |p: &str| read(&params(p)).unwrap_err().data().unwrap().get().to_owned();
        assert!(detail("[]").contains("missing parameter `query`"));
        assert!(detail(r#"[1]"#).contains("parameter `query`"));
        assert!(detail(r#"["a", 1, 2]"#).contains("at most 2"));
        assert!(detail(r#"{"query": "a", "limt": 1}"#).contains("unknown parameter `limt`"));
        assert!(detail(r#"{"query": "a", "query": "b"}"#).contains("duplicate parameter"));
    }
}
