//! Property test of dispatch: arbitrary sequences of frames (well-formed requests, notifications, stray
//! responses, batches, broken JSON) sent to a live peer. The peer never dies or hangs, every answer is a
//! well-formed response carrying an id that was sent (or null), and every well-formed request is answered
//! exactly once.

use std::collections::HashMap;
use std::time::Duration;

use birpc::memory;
use birpc::prelude::*;
use birpc::{Inbound, Outbound};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use serde_json::{Value, json};

fn router() -> Router {
    Router::new()
        .method("add", |_: Context, (a, b): (i64, i64)| async move {
            Ok::<_, ErrorObject>(a.wrapping_add(b))
        })
        .method(
            "echo",
            |_: Context, (v,): (Value,)| async move { Ok::<_, ErrorObject>(v) },
        )
        .method("boom", |_: Context, _: NoParams| async {
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<(), ErrorObject>(())
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("add".to_owned()),
        Just("echo".to_owned()),
        Just("boom".to_owned()),
        Just("$/cancelRequest".to_owned()),
        "[a-z]{1,4}",
    ]
}

/// One message, as JSON: well-formed requests carry ids `"w<n>"` (made unique later); everything else is
/// anything.
#[derive(Debug, Clone)]
enum Message {
    WellFormed { method: String, params: Value },
    Anything(Value),
}

fn message() -> impl Strategy<Value = Message> {
    let well_formed = (method(), json_value()).prop_map(|(method, params)| Message::WellFormed {
        method,
        params: match params {
            Value::Array(_) | Value::Object(_) => params,
            other => json!([other]),
        },
    });
    let notification = (method(), json_value()).prop_map(|(m, p)| json!({"jsonrpc": "2.0", "method": m, "params": p}));
    let response = (json_value(), json_value(), any::<bool>()).prop_map(|(id, v, error)| {
        if error {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": 1, "message": "x", "data": v}})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "result": v})
        }
    });
    let odd_request = (json_value(), json_value(), json_value(), json_value()).prop_map(
        |(version, method, params, id)| json!({"jsonrpc": version, "method": method, "params": params, "id": id}),
    );
    prop_oneof![
        4 => well_formed,
        2 => notification.prop_map(Message::Anything),
        1 => response.prop_map(Message::Anything),
        2 => odd_request.prop_map(Message::Anything),
        1 => json_value().prop_map(Message::Anything),
    ]
}

/// A frame: a message, a batch of messages, or text that may not be JSON at all.
#[derive(Debug, Clone)]
enum Frame {
    Single(Message),
    Batch(Vec<Message>),
    Text(String),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        5 => message().prop_map(Frame::Single),
        2 => prop::collection::vec(message(), 0..6).prop_map(Frame::Batch),
        1 => ".{0,40}".prop_map(Frame::Text),
    ]
}

/// The JSON of a message; well-formed requests get the next unique id, recorded in `expected`.
fn render(message: &Message, next: &mut usize, expected: &mut HashMap<String, usize>) -> Value {
    match message {
        Message::WellFormed { method, params } => {
            *next += 1;
            let id = format!("w{next}");
            if method != "$/cancelRequest" {
                expected.insert(id.clone(), 0);
            }
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id})
        }
        Message::Anything(value) => value.clone(),
    }
}

/// Every id that appears anywhere in what was sent, as JSON text.
fn ids_sent(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(id) = map.get("id") {
                into.push(id.to_string());
            }
            map.values().for_each(|v| ids_sent(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| ids_sent(v, into)),
        _ => {}
    }
}

fn check_answer(answer: &Value, sent_ids: &[String], expected: &mut HashMap<String, usize>) -> Result<(), String> {
    let object = answer.as_object().ok_or_else(|| format!("not an object: {answer}"))?;
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(format!("no version: {answer}"));
    }
    if object.contains_key("result") == object.contains_key("error") {
        return Err(format!("not exactly one of result and error: {answer}"));
    }
    let id = object.get("id").ok_or_else(|| format!("no id: {answer}"))?;
    if !id.is_null() && !sent_ids.contains(&id.to_string()) {
        return Err(format!("an id never sent: {answer}"));
    }
    if let Some(count) = id.as_str().and_then(|id| expected.get_mut(id)) {
        *count += 1;
    }
    Ok(())
}

async fn exchange(frames: Vec<Frame>) -> Result<(), String> {
    let (ours, theirs) = memory::pair(1024);
    let config = PeerConfig::default().max_batch_len(8).heartbeat_interval(None);
    let _peer = Peer::builder().router(router()).config(config).spawn(theirs);
    let (mut tx, mut rx) = ours.split();

    let (mut next, mut expected, mut sent_ids) = (0, HashMap::new(), Vec::new());
    for frame in &frames {
        let text = match frame {
            Frame::Single(message) => render(message, &mut next, &mut expected).to_string(),
            Frame::Batch(messages) => {
                Value::Array(messages.iter().map(|m| render(m, &mut next, &mut expected)).collect()).to_string()
            }
            Frame::Text(text) => text.clone(),
        };
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            ids_sent(&value, &mut sent_ids);
        }
        tx.send(Outbound::Frame(text)).await.map_err(|e| e.to_string())?;
    }
    let probe = r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":"probe"}"#;
    tx.send(Outbound::Frame(probe.to_owned()))
        .await
        .map_err(|e| e.to_string())?;
    sent_ids.push("\"probe\"".to_owned());

    // Handlers here finish when first polled, so every answer comes before the probe's.
    loop {
        let inbound = tokio::time::timeout(Duration::from_secs(10), rx.next())
            .await
            .map_err(|_| "the peer hung".to_owned())?;
        let Some(Ok(Inbound::Frame(bytes))) = inbound else {
            return Err(format!("the peer went away: {inbound:?}"));
        };
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON ({e})"))?;
        let answers = match &answer {
            Value::Array(items) if !items.is_empty() => items.clone(),
            Value::Array(_) => return Err("an empty batch answer".to_owned()),
            single => vec![single.clone()],
        };
        for answer in &answers {
            check_answer(answer, &sent_ids, &mut expected)?;
        }
        if answers.iter().any(|a| a["id"] == "probe") {
            break;
        }
    }
    match expected.iter().find(|(_, count)| **count != 1) {
        Some((id, count)) => Err(format!("request {id} was answered {count} times")),
        None => Ok(()),
    }
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
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn dispatch_survives_any_frames(frames in prop::collection::vec(frame(), 0..12)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = runtime.block_on(exchange(frames));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
