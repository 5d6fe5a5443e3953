//! JSON-RPC 2.0 messages: incoming frames parsed into borrowed parts, outgoing ones encoded, no IO.
//!
//! Parsing never builds a `serde_json::Value`: the id, the params and the result stay slices of the
//! received frame ([`JsonText`]s), so that params are later decoded straight into a handler's argument
//! types and ids are echoed back byte for byte.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;

use bytes::Bytes;

use crate::error_object::ErrorObject;
use crate::id::{IdKind, RawId};
use crate::params::Params;

mod scratch;

/// The version string every message must carry.
const VERSION: &str = "2.0";

/// The JSON text of one value of a received message (its id, params or result), borrowed from the text it
/// was read from (the received frame, for [`parse`]): checked to be exactly one valid JSON value (RFC
/// 8259), and never reinterpreted. Its [`Display`](fmt::Display) writes that text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JsonText<'a>(&'a str);

impl<'a> JsonText<'a> {
    /// The value's JSON text, as it was received.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for JsonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for JsonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for JsonText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| JsonText(raw.get()))
    }
}

/// A received frame, parsed.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// One message.
    Single(Item<'a>),
    /// A batch: a non-empty array of messages, no longer than the limit given to [`parse`].
    Batch(Vec<Item<'a>>),
    /// The frame as a whole is rejected (not JSON, an empty array, a batch over the limit, not an object
    /// or array): it is answered with this one error, with id `null`.
    Rejected(ErrorObject),
}

/// One message of a frame.
#[derive(Debug)]
pub enum Item<'a> {
    /// A request (it has an id) or a notification (it has none) for this side.
    Call(Call<'a>),
    /// An answer to one of this side's requests.
    Response(Response<'a>),
    /// Not a valid request: answered with `error`, and with the id when one could be read.
    Invalid {
        /// The id of the message, when it was present and of an allowed type.
        id: Option<JsonText<'a>>,
        /// The error to answer with (-32600 Invalid Request).
        error: ErrorObject,
    },
    /// Something that looked like a response but was malformed. Responses are never answered, so this is
    /// only reported to the call it names, if any.
    InvalidResponse {
        /// The id, when present.
        id: Option<JsonText<'a>>,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A request or notification, as received.
#[derive(Debug)]
pub struct Call<'a> {
    /// The id: `Some` for a request, `None` for a notification.
    pub id: Option<JsonText<'a>>,
    /// The method name.
    pub method: Cow<'a, str>,
    /// The params, an array or an object, if present.
    pub params: Option<JsonText<'a>>,
}

/// A response, as received.
#[derive(Debug)]
pub struct Response<'a> {
    /// The id of the request it answers.
    pub id: JsonText<'a>,
    /// The `result` member, or the `error` member decoded.
    pub outcome: Result<JsonText<'a>, ErrorObject>,
}

/// A received message, with its id, params and result as slices of the frame it came in (shared, not
/// copied): what the peer's dispatcher works on, without slicing frames itself.
#[derive(Debug)]
pub enum Message<'a> {
    /// A request: it is answered under `id`, the exact JSON text the other side sent.
    Request {
        /// The id, echoed back byte for byte.
        id: RawId,
        /// The method name.
        method: Cow<'a, str>,
        /// The params, if present.
        params: Params,
    },
    /// A notification: never answered.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
        /// The params, if present.
        params: Params,
    },
    /// An answer to one of this side's requests.
    Response {
        /// The JSON text of the id it names.
        id: &'a str,
        /// The `result` member's JSON text, or the `error` member decoded.
        outcome: Result<Bytes, ErrorObject>,
    },
    /// Not a valid request: answered with `error`, under the id when one could be read.
    Invalid {
        /// The id, when present and of an allowed type.
        id: Option<RawId>,
        /// The error to answer with (-32600 Invalid Request).
        error: ErrorObject,
    },
    /// A malformed response; reported to the call it names, if any, and never answered.
    InvalidResponse {
        /// The JSON text of the id, when present.
        id: Option<&'a str>,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A received frame, parsed into [`Message`]s.
#[derive(Debug)]
pub enum Received<'a> {
    /// One message.
    Single(Message<'a>),
    /// A batch: a non-empty array of messages, no longer than the limit given to [`receive`].
    Batch(Vec<Message<'a>>),
    /// The frame as a whole is rejected: it is answered with this one error, with id `null`.
    Rejected(ErrorObject),
}

/// Parses one frame like [`parse`], handing over each message's parts as slices of `frame`.
pub fn receive(frame: &Bytes, max_batch: usize) -> Received<'_> {
    let owned = |item| Message::from_item(frame, item);
    match parse(frame, max_batch) {
        Parsed::Single(item) => Received::Single(owned(item)),
        Parsed::Batch(items) => Received::Batch(items.into_iter().map(owned).collect()),
        Parsed::Rejected(error) => Received::Rejected(error),
    }
}

impl<'a> Message<'a> {
    fn from_item(frame: &Bytes, item: Item<'a>) -> Self {
        let part = |raw: JsonText<'_>| slice(frame, raw.get());
        let id_of = |raw: JsonText<'_>| RawId::from_part(raw.get().as_bytes(), || part(raw));
        match item {
            Item::Call(call) => {
                let params = Params::from_raw(call.params.map(part));
                match call.id {
                    Some(id) => Message::Request {
                        id: id_of(id),
                        method: call.method,
                        params,
                    },
                    None => Message::Notification {
                        method: call.method,
                        params,
                    },
                }
            }
            Item::Response(response) => Message::Response {
                id: response.id.get(),
                outcome: response.outcome.map(part),
            },
            Item::Invalid { id, error } => Message::Invalid {
                id: id.map(id_of),
                error,
            },
            Item::InvalidResponse { id, reason } => Message::InvalidResponse {
                id: id.map(|id| id.get()),
                reason,
            },
        }
    }
}

/// The part of `frame` that `part` (parsed from it) occupies, without copying.
fn slice(frame: &Bytes, part: &str) -> Bytes {
    let part = part.as_bytes();
    let start = (part.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= frame.len() => frame.slice(start..end),
        // Not borrowed from the frame (cannot happen with the parser above); copy it.
        _ => Bytes::copy_from_slice(part),
    }
}

/// Parses one frame (a WebSocket message, a line).
///
/// `max_batch` is the longest batch accepted; a longer one is [`Parsed::Rejected`] as a whole with
/// -32004 Batch too large, without its entries being kept in memory.
pub fn parse(frame: &[u8], max_batch: usize) -> Parsed<'_> {
    // Checked once here, the text is then read without checking each string and value again.
    match std::str::from_utf8(frame) {
        Ok(text) => parse_text(text, max_batch),
        Err(_) => Parsed::Rejected(ErrorObject::parse_error()),
    }
}

/// Parses one frame already known to be text.
fn parse_text(frame: &str, max_batch: usize) -> Parsed<'_> {
    match frame.bytes().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => match read_fields(frame) {
            Ok(fields) => Parsed::Single(fields.classify()),
            Err(e) => Parsed::Rejected(rejection(&e)),
        },
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(frame);
            let batch = de
                .deserialize_seq(BatchVisitor { max: max_batch })
                .and_then(|batch| de.end().map(|()| batch));
            match batch {
                Err(e) => Parsed::Rejected(rejection(&e)),
                Ok(Batch::TooLong) => Parsed::Rejected(ErrorObject::batch_too_large(max_batch)),
                Ok(Batch::Items(items)) if items.is_empty() => {
                    Parsed::Rejected(ErrorObject::invalid_request().with_detail("empty batch"))
                }
                Ok(Batch::Items(items)) => Parsed::Batch(items.into_iter().map(parse_entry).collect()),
            }
        }
        _ => match serde_json::from_str::<IgnoredAny>(frame) {
            Ok(_) => {
                Parsed::Rejected(ErrorObject::invalid_request().with_detail("a message must be an object or an array"))
            }
            Err(_) => Parsed::Rejected(ErrorObject::parse_error()),
        },
    }
}

/// The error for a frame that failed to deserialize: broken JSON is a parse error, JSON of the wrong shape
/// (a duplicate member, say) an invalid request.
fn rejection(error: &serde_json::Error) -> ErrorObject {
    match error.classify() {
        Category::Data => ErrorObject::invalid_request().with_detail(error),
        Category::Syntax | Category::Eof | Category::Io => ErrorObject::parse_error(),
    }
}

/// Parses one entry of a batch.
fn parse_entry(raw: &RawValue) -> Item<'_> {
    if !raw.get().starts_with('{') {
        return Item::Invalid {
            id: None,
            error: ErrorObject::invalid_request().with_detail("a batch entry must be an object"),
        };
    }
    match read_fields(raw.get()) {
        Ok(fields) => fields.classify(),
        Err(e) => Item::Invalid {
            id: None,
            error: rejection(&e),
        },
    }
}

/// A batch as read: its entries, or the fact that it was too long.
enum Batch<'a> {
    Items(Vec<&'a RawValue>),
    TooLong,
}

struct BatchVisitor {
    max: usize,
}

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Batch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch of JSON-RPC messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(64));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max {
                // Read the rest to tell broken JSON (a parse error) from a long batch, keeping nothing.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Batch::TooLong);
            }
            items.push(item);
        }
        Ok(Batch::Items(items))
    }
}

/// The members of a message object that matter, each kept raw; others are ignored.
#[derive(Default)]
struct Fields<'a> {
    jsonrpc: Option<Member<'a>>,
    method: Option<Member<'a>>,
    params: Option<JsonText<'a>>,
    id: Option<JsonText<'a>>,
    result: Option<JsonText<'a>>,
    error: Option<JsonText<'a>>,
}

enum Key {
    Jsonrpc,
    Method,
    Params,
    Id,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::Jsonrpc,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "id" => Key::Id,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, name) = match key {
                        Key::Jsonrpc => {
                            fill(&mut fields.jsonrpc, "jsonrpc", &mut map)?;
                            continue;
                        }
                        Key::Method => {
                            fill(&mut fields.method, "method", &mut map)?;
                            continue;
                        }
                        Key::Params => (&mut fields.params, "params"),
                        Key::Id => (&mut fields.id, "id"),
                        Key::Result => (&mut fields.result, "result"),
                        Key::Error => (&mut fields.error, "error"),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    fill(slot, name, &mut map)?;
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Reads the members of one message object.
fn read_fields(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    match fields_in_order(text) {
        Some(fields) => Ok(fields),
        None => serde_json::from_str(text),
    }
}

/// The members of a message object written as birpc writes them, and as most encoders do (`JSON.stringify`
/// keeps the order in which members were set): no whitespace, `"jsonrpc":"2.0"` first, then an id, then a
/// method without escapes in its name and params, or a result; the id may come last instead. Read without
/// going through serde's map of members, whose names alone took about 7 % of the CPU time of a pipelined
/// call, both ends counted (the benchmark's pipelined scenario: 1.60 µs per call before, 1.48 after); each
/// value is still read and checked, a plain one here ([`plain_value`]), any other by `serde_json`. `None` for any other text, which the general reader then reads: what this reads, the
/// general reader reads the same.
fn fields_in_order(text: &str) -> Option<Fields<'_>> {
    let mut rest = text.strip_prefix(r#"{"jsonrpc":"2.0","#)?;
    let mut fields = Fields {
        jsonrpc: Some(Member::Text(Cow::Borrowed(VERSION))),
        ..Fields::default()
    };
    if let Some(after) = rest.strip_prefix(r#""id":"#) {
        let (id, after) = raw_value(after)?;
        fields.id = Some(id);
        rest = after.strip_prefix(',')?;
    }
    if let Some(after) = rest.strip_prefix(r#""method":""#) {
        // A name with an escape or a control character (which JSON forbids unescaped) is left to serde.
        let end = after.find(|c: char| c == '"' || c == '\\' || c < ' ')?;
        let (method, after) = after.split_at(end);
        fields.method = Some(Member::Text(Cow::Borrowed(method)));
        rest = after.strip_prefix('"')?;
        if let Some(after) = rest.strip_prefix(r#","params":"#) {
            let (params, after) = raw_value(after)?;
            fields.params = Some(params);
            rest = after;
        }
    } else if let Some(after) = rest.strip_prefix(r#""result":"#) {
        let (result, after) = raw_value(after)?;
        fields.result = Some(result);
        rest = after;
    } else {
        return None;
    }
    if fields.id.is_none()
        && let Some(after) = rest.strip_prefix(r#","id":"#)
    {
        let (id, after) = raw_value(after)?;
        fields.id = Some(id);
        rest = after;
    }
    (rest == "}").then_some(fields)
}

/// A response with a result, as birpc writes it and most encoders do: `{"jsonrpc":"2.0","id":N,"result":R}`
/// or `{"jsonrpc":"2.0","result":R,"id":N}`, without whitespace around the members, `N` plain decimal
/// digits naming a `u64` (as this side numbers its calls). Returns the id's value and where `R` lies in
/// `frame` (in bytes); `None` for any other frame, which [`receive`] then reads. What this reads,
/// [`receive`] reads as a response with that id and that result. A peer's answers, most of what a calling
/// side receives, are so read without making a [`Message`]: 477 instructions fewer a call on the
/// benchmark's fan-in client (6,818 → 6,343, callgrind), 507 on its pipelined client.
pub(crate) fn plain_result(frame: &[u8]) -> Option<(u64, std::ops::Range<usize>)> {
    let rest = frame.strip_prefix(br#"{"jsonrpc":"2.0","#)?;
    // Where a part (a slice of `frame`) starts in it.
    let offset = |part: &[u8]| part.as_ptr() as usize - frame.as_ptr() as usize;
    if let Some(after) = rest.strip_prefix(br#""id":"#) {
        // A request's method comes where a result would: told apart before the id is read.
        let (digits, after) = after.split_at(after.iter().position(|b| !b.is_ascii_digit())?);
        let (result, tail) = checked_value(after.strip_prefix(br#","result":"#)?)?;
        let start = offset(result);
        (tail == b"}").then_some((plain_id(digits)?, start..start + result.len()))
    } else {
        let (result, tail) = checked_value(rest.strip_prefix(br#""result":"#)?)?;
        let tail = tail.strip_prefix(br#","id":"#)?;
        let (digits, tail) = tail.split_at(tail.iter().position(|b| !b.is_ascii_digit())?);
        let start = offset(result);
        (tail == b"}").then_some((plain_id(digits)?, start..start + result.len()))
    }
}

/// The value of `digits` (ASCII digits) as a plain decimal integer (`0`, or digits not starting with `0`)
/// if it fits in a `u64`.
fn plain_id(digits: &[u8]) -> Option<u64> {
    match digits {
        [] | [b'0', _, ..] => None,
        _ => digits
            .iter()
            .try_fold(0_u64, |id, &d| id.checked_mul(10)?.checked_add(u64::from(d - b'0'))),
    }
}

/// The JSON value at the start of `text` and the text after it (slices of `text`), once that rest of the
/// frame is known to be UTF-8 (what [`parse`] checks of the whole frame).
fn checked_value(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let (value, after) = raw_value(std::str::from_utf8(text).ok()?)?;
    Some((value.get().as_bytes(), after.as_bytes()))
}

/// The JSON value at the start of `text`, and the text after it: a plain value read here (see
/// [`plain_value`]), any other value checked by `serde_json`.
fn raw_value(text: &str) -> Option<(JsonText<'_>, &str)> {
    if let Some(end) = plain_value(text.as_bytes()) {
        let (value, after) = text.split_at(end);
        return Some((JsonText(value), after));
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = <&RawValue>::deserialize(&mut reader).ok()?.get();
    // The value is a slice of `text`: it ends where its last byte does.
    let end = (value.as_ptr() as usize - text.as_ptr() as usize) + value.len();
    Some((JsonText(value), text.get(end..)?))
}

/// The length in bytes of the plain value at the start of `text` (valid UTF-8): a scalar (see
/// [`scalar`]), or an array or object of scalars, without whitespace or nesting (`[1,"a",null]`,
/// `{"a":1.5,"b":"x"}`); `None` for any other value, left to `serde_json`. Every id birpc sends, and most
/// params and results, are plain: reading them here costs a few instructions a byte, against about 190
/// for an integer through `serde_json`'s raw values. What follows the value is not looked at: the reader
/// requires a `,` or a `}` there, so that `12x` or `truex` fails the fast reading and goes to the general
/// reader, which refuses it.
fn plain_value(text: &[u8]) -> Option<usize> {
    let (object, close) = match text.first()? {
        b'[' => (false, b']'),
        b'{' => (true, b'}'),
        _ => return scalar(text),
    };
    let mut at = 1;
    if text.get(at) == Some(&close) {
        return Some(at + 1);
    }
    loop {
        if object {
            // A member's name: a string, then a colon.
            if text.get(at) != Some(&b'"') {
                return None;
            }
            at += scalar(&text[at..])?;
            if text.get(at) != Some(&b':') {
                return None;
            }
            at += 1;
        }
        at += scalar(text.get(at..)?)?;
        match text.get(at)? {
            b',' => at += 1,
            &b if b == close => return Some(at + 1),
            _ => return None,
        }
    }
}

/// The longest string [`scalar`] reads, in bytes between its quotes.
const PLAIN_STRING: usize = 128;

/// The length in bytes of the scalar at the start of `text` (valid UTF-8) when it is a number (RFC 8259:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), a string of at most [`PLAIN_STRING`] bytes without
/// escapes, `true`, `false` or `null`; `None` otherwise.
#[inline]
fn scalar(text: &[u8]) -> Option<usize> {
    match *text.first()? {
        b'"' => {
            // Inside a string every character but a quote, a backslash and the control characters U+0000
            // to U+001F stands for itself. Longer strings are left to `serde_json`, whose scan takes
            // eight bytes a step where this one takes one.
            let body = &text[1..text.len().min(PLAIN_STRING + 2)];
            let len = body.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            (body[len] == b'"').then_some(len + 2)
        }
        b'-' | b'0'..=b'9' => number(text),
        b't' => text.starts_with(b"true").then_some(4),
        b'f' => text.starts_with(b"false").then_some(5),
        b'n' => text.starts_with(b"null").then_some(4),
        _ => None,
    }
}

/// The length of the JSON number at the start of `text`, if one is there (see [`scalar`]).
#[inline]
fn number(text: &[u8]) -> Option<usize> {
    let sign = usize::from(text.first() == Some(&b'-'));
    let whole = digits(text, sign);
    // No digit (`-`), or a leading zero (`01`, which JSON forbids).
    if whole == 0 || (whole > 1 && text[sign] == b'0') {
        return None;
    }
    let at = sign + whole;
    match text.get(at) {
        Some(b'.' | b'e' | b'E') => fraction_and_exponent(text, at),
        _ => Some(at),
    }
}

/// The length of the number in `text` whose integer part ends at `at`, with its fraction and exponent.
fn fraction_and_exponent(text: &[u8], mut at: usize) -> Option<usize> {
    if text.get(at) == Some(&b'.') {
        match digits(text, at + 1) {
            0 => return None,
            n => at += 1 + n,
        }
    }
    if matches!(text.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(text.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        match digits(text, at) {
            0 => return None,
            n => at += n,
        }
    }
    Some(at)
}

/// How many ASCII digits `text` holds from byte `from` on, up to the first other byte.
#[inline]
fn digits(text: &[u8], from: usize) -> usize {
    let rest = text.get(from..).unwrap_or_default();
    rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len())
}

/// Reads the value of member `name` into `slot`, refusing a member given twice.
fn fill<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A member that must be a string (`jsonrpc`, `method`), read in one pass: the string, borrowed when it has
/// no escapes, or the fact that it is something else.
enum Member<'a> {
    Text(Cow<'a, str>),
    NotText,
}

impl<'a> Member<'a> {
    fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Member::Text(text) => Some(text),
            Member::NotText => None,
        }
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Member::NotText)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Member::NotText)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Member::NotText)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Member::NotText)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Member::NotText)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Member::NotText)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Member::NotText)
            }
        }
        deserializer.deserialize_any(MemberVisitor)
    }
}

impl<'a> Fields<'a> {
    /// Tells what kind of message the members make, and whether it is valid.
    fn classify(self) -> Item<'a> {
        let usable_id = self.id.filter(|id| IdKind::of(id.get()) != IdKind::Invalid);
        let invalid = |detail: &str| Item::Invalid {
            id: usable_id,
            error: ErrorObject::invalid_request().with_detail(detail),
        };
        if let Some(method) = self.method {
            if !is_version(self.jsonrpc) {
                return invalid(r#"the "jsonrpc" member must be "2.0""#);
            }
            let Some(method) = method.text() else {
                return invalid("the method must be a string");
            };
            if self.result.is_some() || self.error.is_some() {
                return invalid("a request cannot carry a result or an error");
            }
            if let Some(params) = self.params
                && !matches!(params.get().as_bytes().first(), Some(b'[' | b'{'))
            {
                return invalid("params must be an array or an object");
            }
            if self.id.is_some() && usable_id.is_none() {
                return invalid("the id must be a string, a number or null");
            }
            return Item::Call(Call {
                id: self.id,
                method,
                params: self.params,
            });
        }
        if self.result.is_none() && self.error.is_none() {
            // Without a method it is no request: with an id, it is taken for a malformed answer to the
            // call of that id, and never answered (an answer under that id could land on the other
            // side's own call of the same number).
            return match usable_id.filter(|id| IdKind::of(id.get()) != IdKind::Null) {
                Some(id) => Item::InvalidResponse {
                    id: Some(id),
                    reason: "a response with neither a result nor an error",
                },
                None => invalid("a message needs a method, a result or an error"),
            };
        }
        let bad = |reason| Item::InvalidResponse { id: self.id, reason };
        let Some(id) = self.id else {
            return bad("a response without an id");
        };
        if !is_version(self.jsonrpc) {
            return bad(r#"the "jsonrpc" member must be "2.0""#);
        }
        let outcome = match (self.result, self.error) {
            (Some(result), None) => Ok(result),
            (None, Some(error)) => match serde_json::from_str::<ErrorObject>(error.get()) {
                Ok(error) => Err(error),
                Err(_) => return bad("a malformed error object"),
            },
            _ => return bad("a response with both a result and an error"),
        };
        Item::Response(Response { id, outcome })
    }
}

fn is_version(member: Option<Member<'_>>) -> bool {
    member.and_then(Member::text).is_some_and(|v| v == VERSION)
}

/// Whether `params` serialize to `null` (`()`, `None`, a unit struct, a reference to one of those): such
/// params are left out of a message, since the specification allows only an array, an object, or nothing.
///
/// Only the outermost call of `params`' `Serialize` impl runs; nothing is written.
pub fn serializes_to_null<P: Serialize + ?Sized>(params: &P) -> bool {
    params.serialize(NullProbe).unwrap_or(false)
}

/// A serializer that only tells whether a value is `null`, stopping at the first call.
struct NullProbe;

/// Stops the probe at a structured value.
#[derive(Debug)]
struct Structured;

impl fmt::Display for Structured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a structured value")
    }
}

impl std::error::Error for Structured {}

impl serde::ser::Error for Structured {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Structured
    }
}

macro_rules! not_null {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<bool, Structured> { Ok(false) })*
    };
}

impl serde::Serializer for NullProbe {
    type Ok = bool;
    type Error = Structured;
    type SerializeSeq = serde::ser::Impossible<bool, Structured>;
    type SerializeTuple = serde::ser::Impossible<bool, Structured>;
    type SerializeTupleStruct = serde::ser::Impossible<bool, Structured>;
    type SerializeTupleVariant = serde::ser::Impossible<bool, Structured>;
    type SerializeMap = serde::ser::Impossible<bool, Structured>;
    type SerializeStruct = serde::ser::Impossible<bool, Structured>;
    type SerializeStructVariant = serde::ser::Impossible<bool, Structured>;

    not_null! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64), serialize_f32(f32),
        serialize_f64(f64), serialize_char(char), serialize_str(&str), serialize_bytes(&[u8]),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_none(self) -> Result<bool, Structured> {
        Ok(true)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, Structured> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, Structured> {
        Ok(true)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, Structured> {
        Ok(true)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<bool, Structured> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Structured> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Structured> {
        Err(Structured)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Structured> {
        Err(Structured)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Structured> {
        Err(Structured)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Structured> {
        Err(Structured)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Structured> {
        Err(Structured)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Structured> {
        Err(Structured)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Structured> {
        Err(Structured)
    }
}

/// Encodes a request (with `id`) or a notification (without), with `params` if given.
///
/// Messages are encoded in a buffer the thread reuses (at most 8 KiB kept per thread); a message of at
/// most 4 KiB is returned without spare capacity (so that a transport turning it into `Bytes` does not
/// allocate again), a longer one, or one encoded while the thread encodes another (from a `Serialize`
/// impl), with the spare capacity of its growth. The same holds for the responses below.
///
/// # Errors
/// When the params cannot be encoded.
pub fn encode_call<P: Serialize + ?Sized>(
    id: Option<u64>,
    method: &str,
    params: Option<&P>,
) -> Result<String, serde_json::Error> {
    utf8(scratch::encode(|out| {
        out.extend_from_slice(br#"{"jsonrpc":"2.0""#);
        if let Some(id) = id {
            out.extend_from_slice(br#","id":"#);
            serde_json::to_writer(&mut *out, &id)?;
        }
        out.extend_from_slice(br#","method":"#);
        serde_json::to_writer(&mut *out, method)?;
        if let Some(params) = params {
            out.extend_from_slice(br#","params":"#);
            serde_json::to_writer(&mut *out, params)?;
        }
        out.push(b'}');
        Ok(())
    })?)
}

/// Encodes a successful response.
///
/// # Errors
/// When the result cannot be encoded.
pub fn encode_result<R: Serialize + ?Sized>(id: &RawId, result: &R) -> Result<String, serde_json::Error> {
    encode_response(id.as_bytes(), "result", result)
}

/// Encodes an error response; `None` for the id writes `null`.
pub fn encode_error(id: Option<&RawId>, error: &ErrorObject) -> String {
    // An error object is a number, strings and already-valid JSON: it always encodes.
    encode_response(id.map_or(b"null".as_slice(), RawId::as_bytes), "error", error).unwrap_or_else(|_| {
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#.to_owned()
    })
}

/// Writes `{"jsonrpc":"2.0","id":<id>,"<member>":<value>}`, the id copied as received.
fn encode_response<T: Serialize + ?Sized>(id: &[u8], member: &str, value: &T) -> Result<String, serde_json::Error> {
    utf8(scratch::encode(|out| {
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        out.extend_from_slice(id);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(member.as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *out, value)?;
        out.push(b'}');
        Ok(())
    })?)
}

/// The text of an encoded message. Every part is UTF-8 (serde_json writes UTF-8, a received id was cut from a
/// checked frame), so the check does not fail.
fn utf8(out: Vec<u8>) -> Result<String, serde_json::Error> {
    String::from_utf8(out).map_err(|_| <serde_json::Error as serde::ser::Error>::custom("a message that is not UTF-8"))
}

/// Joins encoded messages into one batch frame.
pub fn encode_batch<S: AsRef<str>>(messages: &[S]) -> String {
    let len = messages.iter().map(|m| m.as_ref().len() + 1).sum::<usize>() + 1;
    let mut out = String::with_capacity(len);
    out.push('[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general reader makes of `text`, as the dispatcher sees it.
    fn read_generally(text: &str) -> String {
        format!("{:?}", serde_json::from_str::<Fields<'_>>(text).map(Fields::classify))
    }

    #[test]
    fn messages_in_the_usual_order_are_read_as_the_general_reader_reads_them() {
        let usual = [
            r#"{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}"#,
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"add","params":{"a":1}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"log","params":["x"]}"#,
            r#"{"jsonrpc":"2.0","method":"café","params":[]}"#,
            r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":7}"#,
            r#"{"jsonrpc":"2.0","method":"add","id":7}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":11}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"nested":[1,"two",null]}}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":"with \" an escape"}"#,
            r#"{"jsonrpc":"2.0","id":3.5,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":5}"#,
            r#"{"jsonrpc":"2.0","result":1}"#,
            r#"{"jsonrpc":"2.0","id": 1,"result": 2}"#,
        ];
        for text in usual {
            let fast = fields_in_order(text).unwrap_or_else(|| panic!("not read in order: {text}"));
            assert_eq!(
                format!("{:?}", Ok::<_, ()>(fast.classify())),
                read_generally(text),
                "{text}"
            );
        }
        // Anything else is left to the general reader, which reads or refuses it as before.
        let other = [
            r#"{"jsonrpc":"2.0","id":1,"result":1,"result":2}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"result":1}"#,
            r#"{"jsonrpc":"2.0","method":"a","params":[1],"id":1,"id":2}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[1,}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","method":"a\u0062","id":1}"#,
            "{\"jsonrpc\":\"2.0\",\"method\":\"a\u{1}b\",\"id\":1}",
            r#"{"jsonrpc":"2.0","id":1,"result":1} "#,
            r#"{"jsonrpc":"2.0","id":1,"result":1,"extra":true}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":[1]"#,
            r#"{ "jsonrpc":"2.0","id":1,"result":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"result":1}"#,
        ];
        for text in other {
            assert!(fields_in_order(text).is_none(), "read in order: {text}");
        }
    }

    #[test]
    fn every_combination_of_the_usual_parts_reads_the_same_both_ways() {
        let ids = ["1", "\"x\"", "null", "1.5", "[1]", "\"a\\\"b\"", "-0", "{}"];
        let bodies = [
            r#""method":"add","params":[1,2]"#,
            r#""method":"add","params":{"a":[true,false]}"#,
            r#""method":"add""#,
            r#""method":"","params":[]"#,
            r#""method":"add","params":"text""#,
            r#""result":11"#,
            r#""result":"\u00e9\n""#,
            r#""result":{"a":{"b":[null]}}"#,
            r#""result":[1,"#,
            r#""method":"a\"b""#,
        ];
        let mut read_in_order = 0;
        for id in ids {
            for body in bodies {
                for text in [
                    format!(r#"{{"jsonrpc":"2.0","id":{id},{body}}}"#),
                    format!(r#"{{"jsonrpc":"2.0",{body},"id":{id}}}"#),
                    format!(r#"{{"jsonrpc":"2.0",{body}}}"#),
                ] {
                    if let Some(fast) = fields_in_order(&text) {
                        read_in_order += 1;
                        assert_eq!(
                            format!("{:?}", Ok::<_, ()>(fast.classify())),
                            read_generally(&text),
                            "{text}"
                        );
                    }
                }
            }
        }
        // Of the 240 texts, the 48 with a value that is not JSON or a method name with an escape are left to
        // the general reader.
        assert_eq!(read_in_order, 192);
    }

    #[test]
    fn plain_values_are_read_as_serde_json_reads_them_and_nothing_else_is() {
        fn read_by_serde(text: &str) -> Option<&str> {
            let mut reader = serde_json::Deserializer::from_str(text);
            <&RawValue>::deserialize(&mut reader).ok().map(RawValue::get)
        }
        let plain = [
            "0",
            "-0",
            "7",
            "-12",
            "12345678901234567890123",
            "1.5",
            "-0.25e-3",
            "1E+9",
            "2e10",
            "\"\"",
            "\"x y\"",
            "\"é€😀\u{7f}\"",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            "[1]",
            "[1,\"a\",true,null,-1.5e3]",
            r#"{"a":1}"#,
            r#"{"a":"x","b":2}"#,
            r#"{"":null,"é":false}"#,
        ];
        for value in plain {
            for after in ["", ",", "}", ",\"id\":1}", "x", "]"] {
                let text = format!("{value}{after}");
                let read = plain_value(text.as_bytes()).map(|end| text.split_at(end));
                assert_eq!(read, Some((value, after)), "{text:?}");
                assert_eq!(read_by_serde(&text), Some(value), "{text:?}");
            }
        }
        // Left to serde_json: escapes, whitespace, nesting, and what is no JSON at all.
        let other = [
            "\"a\\\"b\"",
            "\"\\u0041\"",
            "[[1]]",
            "[{}]",
            "[1, 2]",
            " 1",
            "[1,]",
            "[,1]",
            "[1",
            "{\"a\"1}",
            "{\"a\":}",
            "{1:2}",
            "{\"a\":1,}",
            "{\"a\\\"\":1}",
            "01",
            "-01",
            "-",
            "1.",
            "1.e3",
            ".5",
            "1e",
            "1e+",
            "-a",
            "\"open",
            "\"tab\there\"",
            "nul",
            "tru",
            "fals",
            "",
            "\"nul\u{0}\"",
            "\"unit\u{1f}\"",
            "\"",
            "[",
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "-00",
            "1e-",
            "[1.]",
            "{\"a\":tru}",
            "[true,]",
        ];
        for text in other {
            assert_eq!(plain_value(text.as_bytes()), None, "{text:?}");
        }
        // Strings longer than `PLAIN_STRING` are left to serde_json's faster scan.
        for (len, plain) in [(PLAIN_STRING, true), (PLAIN_STRING + 1, false)] {
            let text = format!("\"{}\",", "é".repeat(len / 2) + &"x".repeat(len % 2));
            assert_eq!(plain_value(text.as_bytes()), plain.then_some(len + 2), "{len}");
            assert_eq!(read_by_serde(&text).map(str::len), Some(len + 2));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Texts from an alphabet of JSON's punctuation, digits, letters of its literals, an escape, a
        /// control character and a multi-byte one: what the fast reading takes, `serde_json` takes too,
        /// ending at the same byte.
        #[test]
        fn what_the_fast_reading_takes_serde_json_takes_the_same(
            text in "[-+.eE0-9\"\\\\\\[\\]{}:, tfrulnsa\u{1}é]{0,14}"
        ) {
            if let Some(end) = plain_value(text.as_bytes()) {
                let mut reader = serde_json::Deserializer::from_str(&text);
                let by_serde = <&RawValue>::deserialize(&mut reader).ok().map(|raw| raw.get().len());
                proptest::prop_assert_eq!(by_serde, Some(end), "{:?}", text);
            }
        }
    }

    #[test]
    fn a_plain_result_is_what_the_general_reading_finds_and_birpcs_own_answers_are_plain() {
        let ids = [
            "0",
            "1",
            "42",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "01",
            "00",
            "-1",
            "1.0",
            "1e2",
            "\"1\"",
            "null",
            "1 ",
            "",
        ];
        let values = [
            "1",
            "-2.5e3",
            "\"é€😀\"",
            "\"a\\\"b\"",
            "null",
            "true",
            "[1,\"a\"]",
            r#"{"a":{"b":[1,2]}}"#,
            r#"{"id":7,"result":8}"#,
            "01",
            "[1,]",
            "\"open",
            " 1",
            "1 ",
            "",
        ];
        let mut plain = 0;
        for id in ids {
            for value in values {
                for text in [
                    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{value}}}"#),
                    format!(r#"{{"jsonrpc":"2.0","result":{value},"id":{id}}}"#),
                    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{value}}}"#),
                    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{value},"error":null}}"#),
                    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m","params":{value}}}"#),
                    format!(r#" {{"jsonrpc":"2.0","id":{id},"result":{value}}}"#),
                    format!(r#"{{"jsonrpc":"1.0","id":{id},"result":{value}}}"#),
                ] {
                    let frame = Bytes::from(text.clone());
                    let Some((id, result)) = plain_result(&frame) else {
                        continue;
                    };
                    plain += 1;
                    match receive(&frame, 10) {
                        Received::Single(Message::Response {
                            id: text_id,
                            outcome: Ok(read),
                        }) => {
                            assert_eq!(text_id.parse::<u64>().ok(), Some(id), "{text:?}");
                            assert_eq!(read, frame.slice(result), "{text:?}");
                        }
                        other => panic!("{text:?} read as {other:?}"),
                    }
                }
            }
        }
        // Four ids are plain and fit (0, 1, 42, u64::MAX), ten values are valid JSON, two layouts.
        assert_eq!(plain, 4 * 10 * 2);
        for bad in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\"}"[..],
            b"{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":2}\xff",
        ] {
            assert_eq!(plain_result(bad), None, "not UTF-8");
            assert!(matches!(
                receive(&Bytes::copy_from_slice(bad), 10),
                Received::Rejected(_)
            ));
        }
        let own = encode_result(&RawId::from_text(b"12"), &(1, "two")).unwrap();
        assert_eq!(plain_result(own.as_bytes()).map(|(id, _)| id), Some(12), "{own}");
    }

    #[test]
    fn odd_values_and_method_names_read_the_same_both_ways() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (deep_130, deep_200) = (deep(130), deep(200));
        let unclosed = "[".repeat(200);
        let values = [
            "1",
            "-1",
            "1e999",
            "-0",
            "1.5E+3",
            "01",
            "-",
            "\"x\"",
            r#""\ud800""#,
            r#""\udfff\ud800""#,
            "\"é\\u0000\"",
            "\"\u{7f}\"",
            "\"tab\there\"",
            "\"\\\\\"",
            "\"\"",
            "\"open",
            "null",
            "nul",
            "true",
            "truex",
            "fals",
            "0",
            "-01",
            "12x",
            "1.",
            "-0.0e1",
            "[1,\"a\",-2.5e3]",
            "[1,]",
            "[1,2",
            r#"{"a":1,"b":"x"}"#,
            r#"{"a"1}"#,
            r#"{"a":}"#,
            "[[1]]",
            "[]",
            "{}",
            " 1",
            "1 ",
            "[1 ]",
            r#"{"id":1}"#,
            &deep_130,
            &deep_200,
            &unclosed,
        ];
        let methods = [
            "m",
            "",
            "\u{7f}",
            "é€😀",
            "a b",
            "id",
            "\"",
            "a\\\"",
            "}",
            ",\"id\":1",
            "a\u{1}b",
        ];
        let (mut texts, mut read_in_order) = (0, 0);
        for id in values {
            for value in values {
                for method in methods {
                    for text in [
                        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{value}}}"#),
                        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{value},"id":{id}}}"#),
                        format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":{id}}}"#),
                        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{value}}}"#),
                        format!(r#"{{"jsonrpc":"2.0","result":{value},"id":{id}}}"#),
                    ] {
                        texts += 1;
                        let Some(fast) = fields_in_order(&text) else { continue };
                        read_in_order += 1;
                        assert!(
                            serde_json::from_str::<IgnoredAny>(&text).is_ok(),
                            "read, not JSON: {text:?}"
                        );
                        assert_eq!(
                            format!("{:?}", Ok::<_, ()>(fast.classify())),
                            read_generally(&text),
                            "{text:?}"
                        );
                    }
                }
            }
        }
        // The rest (invalid values, an escape or a control character in the method name, whitespace after
        // a value) is left to the general reader.
        assert_eq!((texts, read_in_order), (97_020, 31_980));
    }

    #[test]
    fn a_message_without_method_result_or_error_is_a_malformed_answer_when_it_has_an_id() {
        for frame in [r#"{"jsonrpc":"2.0","id":3}"#, r#"{"id":3,"params":[]}"#] {
            let Parsed::Single(Item::InvalidResponse { id, .. }) = parse(frame.as_bytes(), 8) else {
                panic!("{frame}: not a malformed answer");
            };
            assert_eq!(id.map(|id| id.get()), Some("3"));
        }
        // Without an id (or with id null) nothing can be mistaken: it is an invalid request, answered
        // with id null.
        for frame in [r#"{"jsonrpc":"2.0"}"#, r#"{"jsonrpc":"2.0","id":null}"#] {
            assert!(
                matches!(parse(frame.as_bytes(), 8), Parsed::Single(Item::Invalid { .. })),
                "{frame}"
            );
        }
    }

    #[test]
    fn received_parts_are_slices_of_the_frame() {
        let frame = Bytes::from_static(br#"{"jsonrpc":"2.0","id":12,"method":"m","params":[1]}"#);
        let Received::Single(Message::Request { id, method, params }) = receive(&frame, 8) else {
            panic!("not a request");
        };
        assert_eq!(id.as_bytes(), b"12");
        assert_eq!(method, "m");
        assert_eq!(params.as_bytes(), Some(&b"[1]"[..]));
        assert_eq!(
            params.as_bytes().map(<[u8]>::as_ptr),
            Some(frame[frame.len() - 4..].as_ptr())
        );
        assert_eq!(&slice(&frame, "34")[..], b"34");
    }

    fn single(text: &str) -> Item<'_> {
        match parse(text.as_bytes(), 16) {
            Parsed::Single(item) => item,
            other => panic!("expected a single message, got {other:?}"),
        }
    }

    fn rejected(text: &str) -> ErrorObject {
        match parse(text.as_bytes(), 4) {
            Parsed::Rejected(e) => e,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_request_keeps_its_parts_as_sent() {
        let Item::Call(call) = single(r#" {"jsonrpc":"2.0","method":"sub\u0074ract","params":[42, 23],"id":1e2}"#)
        else {
            panic!("not a call")
        };
        assert_eq!(call.method, "subtract");
        assert_eq!(call.params.unwrap().get(), "[42, 23]");
        assert_eq!(call.id.unwrap().get(), "1e2");
    }

    #[test]
    fn a_null_id_is_a_request_and_a_missing_id_a_notification() {
        let Item::Call(call) = single(r#"{"jsonrpc":"2.0","method":"m","id":null}"#) else {
            panic!()
        };
        assert_eq!(call.id.unwrap().get(), "null");
        let Item::Call(call) = single(r#"{"jsonrpc":"2.0","method":"m"}"#) else {
            panic!()
        };
        assert!(call.id.is_none());
    }

    #[test]
    fn broken_json_is_a_parse_error_and_wrong_shapes_invalid_requests() {
        assert_eq!(rejected(r#"{"jsonrpc":"2.0","method":"foobar,"#).code(), -32700);
        assert_eq!(rejected(r#"{"a":1} x"#).code(), -32700);
        assert_eq!(rejected("").code(), -32700);
        assert_eq!(rejected("[]").code(), -32600);
        assert_eq!(rejected("42").code(), -32600);
        assert_eq!(
            rejected(r#"{"id":1,"id":2,"method":"m","jsonrpc":"2.0"}"#).code(),
            -32600
        );
        assert_eq!(rejected("[1,2,3,4,5]").code(), -32004);
        assert_eq!(rejected("[1,2,3,4,5,").code(), -32700);
    }

    #[test]
    fn invalid_requests_keep_their_id_when_it_is_usable() {
        let Item::Invalid { id, error } = single(r#"{"jsonrpc":"1.0","method":"m","id":"x"}"#) else {
            panic!()
        };
        assert_eq!(id.unwrap().get(), r#""x""#);
        assert_eq!(error.code(), -32600);
        let Item::Invalid { id, .. } = single(r#"{"jsonrpc":"2.0","method":"m","id":[1]}"#) else {
            panic!()
        };
        assert!(id.is_none());
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","method":"m","params":"x","id":1}"#),
            Item::Invalid { .. }
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","method":1}"#),
            Item::Invalid { .. }
        ));
    }

    #[test]
    fn responses_are_told_apart_and_checked() {
        let Item::Response(r) = single(r#"{"jsonrpc":"2.0","result":[1],"id":3}"#) else {
            panic!()
        };
        assert_eq!(r.outcome.unwrap().get(), "[1]");
        let Item::Response(r) = single(r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"m","data":{}},"id":3}"#)
        else {
            panic!()
        };
        assert_eq!(r.outcome.unwrap_err().code(), -1);
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":""},"id":3}"#),
            Item::InvalidResponse { .. }
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","result":1}"#),
            Item::InvalidResponse { .. }
        ));
    }

    #[test]
    fn batches_parse_each_entry_alone() {
        let Parsed::Batch(items) = parse(br#"[1, {"jsonrpc":"2.0","method":"m"}, {"foo":"boo"}]"#, 8) else {
            panic!()
        };
        assert!(matches!(items[0], Item::Invalid { .. }));
        assert!(matches!(items[1], Item::Call(_)));
        assert!(matches!(items[2], Item::Invalid { .. }));
    }

    #[test]
    fn encodings_are_exact() {
        let id = RawId::from_text(br#""abc""#);
        assert_eq!(
            encode_result(&id, &5).unwrap(),
            r#"{"jsonrpc":"2.0","id":"abc","result":5}"#
        );
        assert_eq!(
            encode_error(None, &ErrorObject::parse_error()),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
        );
        assert_eq!(
            encode_call(Some(1), "m", Some(&(1, 2))).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}"#
        );
        assert_eq!(
            encode_call::<()>(None, "n", None).unwrap(),
            r#"{"jsonrpc":"2.0","method":"n"}"#
        );
        assert_eq!(
            encode_call::<()>(Some(7), "say \"hi\"", None).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"method":"say \"hi\""}"#
        );
        assert_eq!(encode_batch(&["1", "2"]), "[1,2]");
    }

    #[test]
    fn params_that_serialize_to_null_are_told_apart() {
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Fields {
            a: u8,
        }
        assert!(serializes_to_null(&()));
        assert!(serializes_to_null(&&()));
        assert!(serializes_to_null(&Unit));
        assert!(serializes_to_null(&None::<Vec<u8>>));
        assert!(!serializes_to_null(&Some(vec![1])));
        assert!(!serializes_to_null(&[1, 2]));
        assert!(!serializes_to_null(&(1,)));
        assert!(!serializes_to_null(&Fields { a: 1 }));
        assert!(!serializes_to_null(&Vec::<u8>::new()));
        assert!(!serializes_to_null("text"));
    }
}
