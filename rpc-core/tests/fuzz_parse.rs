//! Property tests of frame parsing: arbitrary bytes and arbitrary message-shaped JSON never make the parser
//! panic, and what it keeps is exactly what was sent.

use proptest::prelude::*;
use rpc_core::message::{Item, Parsed, parse};
use rpc_core::{Params, code};
use serde_json::{Map, Value, json};

/// JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects built from the members of a message, with values of any type, plus strangers.
fn message_like() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("jsonrpc".to_owned()),
        Just("method".to_owned()),
        Just("params".to_owned()),
        Just("id".to_owned()),
        Just("result".to_owned()),
        Just("error".to_owned()),
        "[a-z]{1,5}",
    ];
    let value = prop_oneof![3 => json_value(), 1 => Just(json!("2.0")), 1 => Just(json!({"code": 1, "message": "m"}))];
    prop::collection::vec((key, value), 0..7)
        .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
}

/// The number of cases: `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // A bounded run by default; `PROPTEST_CASES=100000` for a long one.
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, 8);
    }

    #[test]
    fn message_shaped_json_is_classified_without_panic(message in message_like(), batch in any::<bool>()) {
        let text = if batch { format!("[{message},{message}]") } else { message.to_string() };
        match parse(text.as_bytes(), 8) {
            Parsed::Rejected(error) => prop_assert!(error.code() != code::PARSE_ERROR, "valid JSON: {text}"),
            Parsed::Single(item) => check_item(&item)?,
            Parsed::Batch(items) => for item in &items { check_item(item)?; },
        }
    }

    #[test]
    fn a_valid_request_keeps_its_parts_exactly(
        method in "[a-z._/$]{1,12}",
        params in json_value(),
        id in prop_oneof![any::<i64>().prop_map(Value::from), ".{0,8}".prop_map(Value::String), Just(Value::Null)],
    ) {
        let params = match params {
            Value::Array(_) | Value::Object(_) => params,
            other => json!([other]),
        };
        let text = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string();
        let Parsed::Single(Item::Call(call)) = parse(text.as_bytes(), 8) else {
            return Err(TestCaseError::fail(format!("not a call: {text}")));
        };
        prop_assert_eq!(&*call.method, method.as_str());
        // Kept as the very text that was sent (not re-encoded: floats and all come back unchanged).
        prop_assert_eq!(call.params.unwrap().get(), params.to_string());
        prop_assert_eq!(call.id.unwrap().get(), id.to_string());
    }

    #[test]
    fn the_param_reader_never_panics(params in json_value(), named in any::<bool>()) {
        let text = match (params, named) {
            (Value::Object(map), _) => Value::Object(map).to_string(),
            (Value::Array(items), _) => Value::Array(items).to_string(),
            (other, true) => json!({"a": other}).to_string(),
            (other, false) => json!([other]).to_string(),
        };
        let params = Params::from_json(text).unwrap();
        if let Ok(mut reader) = params.reader(&["a", "b"]) {
            let _ = reader.arg::<Option<String>>();
            let _ = reader.arg::<Value>();
            let _ = reader.finish();
        }
    }
}

/// What holds of every parsed item.
fn check_item(item: &Item<'_>) -> Result<(), TestCaseError> {
    match item {
        Item::Call(call) => {
            if let Some(params) = call.params {
                let structured = matches!(params.get().as_bytes()[0], b'[' | b'{');
                prop_assert!(structured, "params {}", params.get());
            }
            if let Some(id) = call.id {
                let allowed = matches!(id.get().as_bytes()[0], b'"' | b'-' | b'0'..=b'9' | b'n');
                prop_assert!(allowed, "id {}", id.get());
            }
        }
        Item::Invalid { error, .. } => prop_assert_eq!(error.code(), code::INVALID_REQUEST),
        Item::Response(_) | Item::InvalidResponse { .. } => {}
    }
    Ok(())
}
