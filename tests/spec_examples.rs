//! Every example of section 7 of the JSON-RPC 2.0 specification, sent over a real WebSocket to a birpc
//! server, gets the response the specification shows.

mod common;

use std::collections::HashMap;

use birpc::ServerHandle;
use birpc::prelude::*;
use common::{RawClient, within};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Where the notification handlers report what they were called with.
type Seen = mpsc::Sender<String>;

/// Waits for the notifications in `expected`, in that order.
async fn assert_seen(seen: &mut mpsc::Receiver<String>, expected: &[&str]) {
    for want in expected {
        let got = within("a notification handler", seen.recv())
            .await
            .expect("server alive");
        assert_eq!(got, *want);
    }
}

#[derive(Deserialize)]
struct Subtract {
    minuend: i64,
    subtrahend: i64,
}

/// The methods the specification's examples use; notifications are recorded so the test can see they
/// ran.
async fn spec_server(seen: Seen) -> ServerHandle {
    let server = Server::bind("127.0.0.1:0").await.expect("bind");
    server.serve(move |_| {
        let record = |seen: &Seen, name: &'static str| {
            let seen = seen.clone();
            move |_: Context, p: Vec<i64>| {
                seen.try_send(format!("{name}{p:?}"))
                    .expect("the test reads every record");
                async { Ok::<_, ErrorObject>(()) }
            }
        };
        Router::new()
            .method("subtract", |_: Context, p: Subtract| async move {
                Ok::<_, ErrorObject>(p.minuend - p.subtrahend)
            })
            .method("sum", |_: Context, p: Vec<i64>| async move {
                Ok::<_, ErrorObject>(p.iter().sum::<i64>())
            })
            .method("get_data", |_: Context, _: NoParams| async {
                Ok::<_, ErrorObject>(json!(["hello", 5]))
            })
            .method("update", record(&seen, "update"))
            .method("notify_hello", record(&seen, "notify_hello"))
            .method("notify_sum", record(&seen, "notify_sum"))
    })
}

async fn setup() -> (ServerHandle, RawClient, mpsc::Receiver<String>) {
    let (seen, seen_rx) = mpsc::channel(16);
    let server = spec_server(seen).await;
    let client = RawClient::connect(server.local_addr()).await;
    (server, client, seen_rx)
}

/// Compares an answer with the specification's, allowing the optional `data` member of errors (birpc puts
/// a human-readable detail there).
fn assert_answer(actual: &Value, expected: &Value) {
    let mut actual = actual.clone();
    if let Some(error) = actual.get_mut("error").and_then(Value::as_object_mut)
        && let Some(data) = error.remove("data")
    {
        assert!(data.is_string(), "error data should be a readable detail: {data}");
    }
    assert_eq!(&actual, expected);
}

/// Compares a batch answer with the specification's, in any order (the specification allows any).
fn assert_batch(actual: &Value, expected: &Value) {
    let key = |v: &Value| {
        format!(
            "{}|{}",
            v["id"],
            v.get("error").map_or(0, |e| e["code"].as_i64().unwrap_or(0))
        )
    };
    let actual = actual.as_array().expect("a batch answer is an array");
    let expected = expected.as_array().expect("array");
    assert_eq!(actual.len(), expected.len(), "batch answer: {actual:?}");
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    for answer in actual {
        by_key.entry(key(answer)).or_default().push(answer);
    }
    for want in expected {
        let got = by_key
            .get_mut(&key(want))
            .and_then(Vec::pop)
            .unwrap_or_else(|| panic!("missing {want}"));
        assert_answer(got, want);
    }
}

#[tokio::test]
async fn positional_parameters() {
    let (_server, mut c, _) = setup().await;
    let a = c
        .ask(r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#)
        .await;
    assert_answer(&a, &json!({"jsonrpc": "2.0", "result": 19, "id": 1}));
    let a = c
        .ask(r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#)
        .await;
    assert_answer(&a, &json!({"jsonrpc": "2.0", "result": -19, "id": 2}));
}

#[tokio::test]
async fn named_parameters() {
    let (_server, mut c, _) = setup().await;
    let a = c
        .ask(r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#)
        .await;
    assert_answer(&a, &json!({"jsonrpc": "2.0", "result": 19, "id": 3}));
    let a = c
        .ask(r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#)
        .await;
    assert_answer(&a, &json!({"jsonrpc": "2.0", "result": 19, "id": 4}));
}

#[tokio::test]
async fn notifications_run_and_get_no_answer() {
    let (_server, mut c, mut seen) = setup().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#)
        .await;
    c.send(r#"{"jsonrpc": "2.0", "method": "foobar"}"#).await;
    c.expect_no_answer().await;
    assert_seen(&mut seen, &["update[1, 2, 3, 4, 5]"]).await;
}

#[tokio::test]
async fn a_notification_with_bad_params_gets_no_answer_either() {
    let (_server, mut c, _) = setup().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "subtract", "params": ["x"]}"#)
        .await;
    c.expect_no_answer().await;
}

#[tokio::test]
async fn non_existent_method() {
    let (_server, mut c, _) = setup().await;
    let a = c.ask(r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#).await;
    assert_answer(
        &a,
        &json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    );
}

#[tokio::test]
async fn invalid_json() {
    let (_server, mut c, _) = setup().await;
    let a = c
        .ask(r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#)
        .await;
    assert_answer(
        &a,
        &json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}),
    );
}

#[tokio::test]
async fn invalid_request_object() {
    let (_server, mut c, _) = setup().await;
    let a = c.ask(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#).await;
    assert_answer(
        &a,
        &json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}),
    );
}

#[tokio::test]
async fn batch_with_invalid_json() {
    let (_server, mut c, _) = setup().await;
    let a = c
        .ask(
            r#"[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#,
        )
        .await;
    assert_answer(
        &a,
        &json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}),
    );
}

#[tokio::test]
async fn empty_array() {
    let (_server, mut c, _) = setup().await;
    let a = c.ask("[]").await;
    assert_answer(
        &a,
        &json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}),
    );
}

#[tokio::test]
async fn invalid_batch_of_one() {
    let (_server, mut c, _) = setup().await;
    let a = c.ask("[1]").await;
    assert_batch(
        &a,
        &json!([{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]),
    );
}

#[tokio::test]
async fn invalid_batch() {
    let (_server, mut c, _) = setup().await;
    let a = c.ask("[1,2,3]").await;
    let invalid = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null});
    assert_batch(&a, &json!([invalid, invalid, invalid]));
}

#[tokio::test]
async fn mixed_batch() {
    let (_server, mut c, mut seen) = setup().await;
    let a = c
        .ask(
            r#"[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"#,
        )
        .await;
    assert_batch(
        &a,
        &json!([
            {"jsonrpc": "2.0", "result": 7, "id": "1"},
            {"jsonrpc": "2.0", "result": 19, "id": "2"},
            {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
            {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
        ]),
    );
    assert_seen(&mut seen, &["notify_hello[7]"]).await;
}

#[tokio::test]
async fn batch_of_notifications_only() {
    let (_server, mut c, mut seen) = setup().await;
    c.send(
        r#"[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"#,
    )
    .await;
    c.expect_no_answer().await;
    assert_seen(&mut seen, &["notify_sum[1, 2, 4]", "notify_hello[7]"]).await;
}

#[tokio::test]
async fn invalid_params() {
    let (_server, mut c, _) = setup().await;
    for params in [r#"["x", 1]"#, "[1]", r#"{"minuend": 1}"#, "[1, 2, 3]"] {
        let request = format!(r#"{{"jsonrpc": "2.0", "method": "subtract", "params": {params}, "id": 7}}"#);
        let a = c.ask(&request).await;
        assert_answer(
            &a,
            &json!({"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params"}, "id": 7}),
        );
    }
}

#[tokio::test]
async fn binary_messages_are_accepted_and_answered_as_text() {
    let (_server, mut c, _) = setup().await;
    c.send_binary(br#"{"jsonrpc": "2.0", "method": "subtract", "params": [5, 3], "id": 1}"#)
        .await;
    assert_answer(&c.recv_json().await, &json!({"jsonrpc": "2.0", "result": 2, "id": 1}));
}
