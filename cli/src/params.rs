//! The params of a call, from the words after the method name.
//!
//! - none: the call has no params;
//! - one JSON array or object: the params as they are (`'[1, 2]'`, `'{"a": 1}'`);
//! - `key=value` pairs: params by name; the value is JSON when it parses as JSON, a string otherwise
//!   (`n=3` is the number 3, `name=Ada` the string "Ada", `name='"3"'` the string "3");
//!   `key:=value` takes only JSON, and says so when the value is not;
//! - any other words: params by position, each JSON when it parses, a string otherwise (`add 1 2`).
//!
//! Values are sent exactly as typed (a 30-digit number stays one). Pairs and positions do not mix. To pass one array or object as the only positional value, wrap it:
//! `'[[1, 2]]'`, or name it: `value='[1, 2]'`.

use std::collections::HashSet;

use serde_json::value::RawValue;

/// The params of a call, as JSON text: `None` sends no params member.
pub(crate) type CallParams = Option<Box<RawValue>>;

/// Why the words are not params.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamsError {
    /// `key=value` pairs and positional values together.
    #[error("params are either all key=value pairs or all positional values, not both: {0:?}")]
    Mixed(String),
    /// `key:=value` whose value is not JSON.
    #[error("the value of {key}:= is not JSON ({reason}); use {key}=... for a string")]
    NotJson {
        /// The key.
        key: String,
        /// serde_json's explanation.
        reason: String,
    },
    /// One name given twice.
    #[error("the param {0:?} is given twice")]
    Duplicate(String),
}

/// The params the words after the method name stand for.
pub(crate) fn parse(words: &[String]) -> Result<CallParams, ParamsError> {
    let [first, rest @ ..] = words else {
        return Ok(None);
    };
    if rest.is_empty()
        && let Ok(whole) = serde_json::from_str::<Box<RawValue>>(first)
        && matches!(whole.get().as_bytes().first(), Some(b'[' | b'{'))
    {
        return Ok(Some(whole));
    }
    let mut text = String::new();
    if pair(first).is_some() {
        let mut names = HashSet::new();
        for word in words {
            let (key, value) = pair(word).ok_or_else(|| ParamsError::Mixed(word.clone()))?;
            let value = match value {
                Pair::Loose(text) => loose(text),
                Pair::Strict(text) => serde_json::from_str(text).map_err(|e| ParamsError::NotJson {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })?,
            };
            if !names.insert(key) {
                return Err(ParamsError::Duplicate(key.to_owned()));
            }
            text.push(if text.is_empty() { '{' } else { ',' });
            text.push_str(&string(key));
            text.push(':');
            text.push_str(value.get());
        }
        text.push('}');
    } else {
        for word in words {
            if pair(word).is_some() {
                return Err(ParamsError::Mixed(word.clone()));
            }
            text.push(if text.is_empty() { '[' } else { ',' });
            text.push_str(loose(word).get());
        }
        text.push(']');
    }
    // Made of JSON values and encoded strings, the text is JSON.
    Ok(RawValue::from_string(text).ok())
}

/// The value of a `key=value` pair.
enum Pair<'a> {
    /// `key=value`: JSON if it parses, else the text.
    Loose(&'a str),
    /// `key:=value`: JSON only.
    Strict(&'a str),
}

/// `word` as a `key=value` or `key:=value` pair, if it is one: a key of letters, digits, `_`, `-`, `.`,
/// `$` or `/` (so that a JSON value or a sentence with `=` in it is not taken for one).
fn pair(word: &str) -> Option<(&str, Pair<'_>)> {
    let (key, value) = word.split_once('=')?;
    let (key, value) = match key.strip_suffix(':') {
        Some(key) => (key, Pair::Strict(value)),
        None => (key, Pair::Loose(value)),
    };
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | '/'));
    is_key.then_some((key, value))
}

/// `text` as the JSON it is, if it parses, else as a string.
fn loose(text: &str) -> Box<RawValue> {
    serde_json::from_str(text).unwrap_or_else(|_| RawValue::from_string(string(text)).unwrap_or_default())
}

/// `text` as a JSON string.
fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    fn params(list: &[&str]) -> Result<Option<Value>, ParamsError> {
        let parsed = parse(&words(list))?;
        Ok(parsed.map(|raw| serde_json::from_str(raw.get()).unwrap()))
    }

    #[test]
    fn nothing_sends_no_params() {
        assert_eq!(params(&[]), Ok(None));
    }

    #[test]
    fn one_array_or_object_is_the_params() {
        assert_eq!(params(&["[1, 2]"]), Ok(Some(json!([1, 2]))));
        assert_eq!(params(&[r#"{"a": [true]}"#]), Ok(Some(json!({"a": [true]}))));
    }

    #[test]
    fn other_words_are_positional_json_or_strings() {
        assert_eq!(params(&["1", "2"]), Ok(Some(json!([1, 2]))));
        assert_eq!(params(&["hello"]), Ok(Some(json!(["hello"]))));
        assert_eq!(params(&["42"]), Ok(Some(json!([42]))));
        assert_eq!(
            params(&["null", "\"7\"", "two words", "[1]"]),
            Ok(Some(json!([null, "7", "two words", [1]])))
        );
        // A sentence with `=` in it is not a pair.
        assert_eq!(params(&["a = b"]), Ok(Some(json!(["a = b"]))));
        assert_eq!(params(&[r#""x=1""#]), Ok(Some(json!(["x=1"]))));
    }

    #[test]
    fn pairs_are_named_params() {
        assert_eq!(
            params(&["minuend=42", "subtrahend=23", "name=Ada", "quoted=\"3\"", "empty="]),
            Ok(Some(
                json!({"minuend": 42, "subtrahend": 23, "name": "Ada", "quoted": "3", "empty": ""})
            ))
        );
        assert_eq!(
            params(&["value=[1, 2]", "eq=a=b"]),
            Ok(Some(json!({"value": [1, 2], "eq": "a=b"})))
        );
    }

    #[test]
    fn strict_pairs_take_only_json() {
        assert_eq!(params(&["n:=3", "o:={}"]), Ok(Some(json!({"n": 3, "o": {}}))));
        assert!(matches!(params(&["n:=three"]), Err(ParamsError::NotJson { key, .. }) if key == "n"));
    }

    #[test]
    fn values_are_sent_as_typed() {
        let exact = |list: &[&str]| parse(&words(list)).unwrap().unwrap().get().to_owned();
        assert_eq!(
            exact(&["123456789012345678901234567890", "1.10"]),
            "[123456789012345678901234567890,1.10]"
        );
        assert_eq!(exact(&["n=1e400", "s=say \"hi\""]), r#"{"n":1e400,"s":"say \"hi\""}"#);
        assert_eq!(exact(&[r#"{"b": 1, "a": 2}"#]), r#"{"b": 1, "a": 2}"#);
    }

    #[test]
    fn pairs_and_positions_do_not_mix_and_names_are_unique() {
        assert_eq!(params(&["a=1", "2"]), Err(ParamsError::Mixed("2".into())));
        assert_eq!(params(&["1", "a=2"]), Err(ParamsError::Mixed("a=2".into())));
        assert_eq!(params(&["a=1", "a=2"]), Err(ParamsError::Duplicate("a".into())));
    }
}
