//! The examples run, and do what they say: the interoperability server is driven over a real socket, the
//! quickstart prints its conversation.

mod common;

use std::process::Stdio;

use birpc::prelude::*;
use common::{RawClient, example, interop_server, within};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct Shout {
    text: String,
}

/// The methods the test client exports, for `ask_client` and `notify_client` to call.
fn client_methods(notes: mpsc::Sender<Value>) -> Router {
    Router::new()
        .method("shout", |_: Context, p: Shout| async move {
            Ok::<_, ErrorObject>(p.text.to_uppercase())
        })
        .method("refuse", |_: Context, _: NoParams| async {
            Err::<(), _>(
                ErrorObject::new(-7, "refused")
                    .with_data(&json!({"reason": "testing"}))
                    .unwrap(),
            )
        })
        .method("note", move |_: Context, p: Value| {
            let notes = notes.clone();
            async move { notes.send(p).await.map_err(|_| ErrorObject::internal_error()) }
        })
}

#[tokio::test]
async fn the_interop_server_serves_every_method_by_position_and_by_name() {
    let (_child, addr) = interop_server().await;
    let (notes_tx, mut notes) = mpsc::channel(4);
    let peer = Client::builder()
        .router(client_methods(notes_tx))
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();

    assert_eq!(peer.call::<i64>("subtract", (42, 23)).await.unwrap(), 19);
    assert_eq!(
        peer.call::<i64>("subtract", json!({"subtrahend": 23, "minuend": 42}))
            .await
            .unwrap(),
        19
    );
    assert_eq!(peer.call::<i64>("sum", (1, 2, 4)).await.unwrap(), 7);
    assert_eq!(
        peer.call::<i64>("sum", json!({"c": 4, "b": 2, "a": 1})).await.unwrap(),
        7
    );
    assert_eq!(peer.call::<Value>("get_data", ()).await.unwrap(), json!(["hello", 5]));
    assert_eq!(
        peer.call::<Value>("get_data", json!([])).await.unwrap(),
        json!(["hello", 5])
    );
    let value = json!({"nested": [1, 2.5, null, true, "é"], "n": -3});
    assert_eq!(peer.call::<Value>("echo", (&value,)).await.unwrap(), value);
    assert_eq!(
        peer.call::<Value>("echo", json!({"value": value})).await.unwrap(),
        value
    );
    assert_eq!(peer.call::<u64>("sleep", (30,)).await.unwrap(), 30);
    assert_eq!(peer.call::<u64>("sleep", json!({"ms": 1})).await.unwrap(), 1);

    // The server calls the client back and returns its answer...
    let shouted: String = peer.call("ask_client", ("shout", json!({"text": "hi"}))).await.unwrap();
    assert_eq!(shouted, "HI");
    let shouted: String = peer
        .call("ask_client", json!({"method": "shout", "params": ["hey"]}))
        .await
        .unwrap();
    assert_eq!(shouted, "HEY");
    // ...or the client's error, unchanged.
    let Err(CallError::Remote(error)) = peer.call::<Value>("ask_client", ("refuse", ())).await else {
        panic!("the client's error was not passed on")
    };
    assert_eq!((error.code(), error.message()), (-7, "refused"));
    assert_eq!(
        error.parse_data::<Value>().unwrap().unwrap(),
        json!({"reason": "testing"})
    );
    let Err(CallError::MethodNotFound(_)) = peer.call::<Value>("ask_client", ("absent", [1])).await else {
        panic!("the client's method-not-found was not passed on")
    };

    // notify_client sends the notification and answers null.
    let answer: Value = peer.call("notify_client", ("note", json!({"x": 1}))).await.unwrap();
    assert_eq!(answer, Value::Null);
    assert_eq!(within("the notification", notes.recv()).await.unwrap(), json!({"x": 1}));
}

#[tokio::test]
async fn the_interop_server_echoes_values_exactly() {
    let (_child, addr) = interop_server().await;
    let mut raw = RawClient::connect(addr).await;
    let value = r#"{"b":[1,2.50,"x"],"a":1e3}"#;
    let answer = raw
        .ask_raw(&format!(
            r#"{{"jsonrpc":"2.0","method":"echo","params":[{value}],"id":1}}"#
        ))
        .await;
    #[derive(Deserialize)]
    struct Answer {
        result: Box<RawValue>,
    }
    let answer: Answer = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer.result.get(), value);
}

#[tokio::test]
async fn the_quickstart_prints_the_conversation() {
    let output = within(
        "the quickstart",
        Command::new(example("quickstart"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = [
        "client: connected; calling greet(\"Hello\")",
        "server: greet(\"Hello\") called; asking the client who it is",
        "client: the server asks who I am",
        "server: the client says it is \"Ada\"",
        "client: the server answered \"Hello, Ada!\"",
    ];
    let mut lines = stdout.lines();
    for want in expected {
        assert!(
            lines.any(|line| line == want),
            "missing or out of order: {want:?}\n{stdout}"
        );
    }
}

/// SIGTERM, which service managers send, stops the interoperability server gracefully, as Ctrl-C does: a
/// call in flight is answered, then the connection closes with 1001 and the process exits cleanly.
#[tokio::test]
async fn the_interop_server_shuts_down_gracefully_on_sigterm() {
    let (mut child, addr) = interop_server().await;
    let client = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let slow = tokio::spawn(client.call::<u64>("sleep", (1000,)));
    // Handlers start in arrival order: once `echo` is answered, `sleep` is running.
    let echoed: String = within("echo", client.call("echo", ("x",))).await.unwrap();
    assert_eq!(echoed, "x");
    let pid = child.id().expect("the server runs").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    assert_eq!(within("the call in flight", slow).await.unwrap().unwrap(), 1000);
    let reason = within("the close", client.closed()).await;
    assert_eq!(reason.code(), birpc::CloseCode::GOING_AWAY, "{reason}");
    let status = within("the exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
}

/// The axum app serves its page, its REST route and the birpc endpoint on one port: a client admitted by
/// name is greeted after the server asks its mood, hears what it says through the hub, and counts in the
/// REST route; a client without a name is refused 401; SIGTERM closes the connection with 1001 and the app
/// exits cleanly.
#[cfg(feature = "axum")]
#[tokio::test]
async fn the_axum_app_serves_a_page_a_rest_route_and_rpc_on_one_port() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// A plain GET: the status and the body.
    async fn get(addr: &str, path: &str) -> (u16, String) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        within("the answer", tcp.read_to_string(&mut answer)).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
        (status, body.to_owned())
    }

    let mut child = Command::new(example("axum_app"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start axum_app");
    let stdout = child.stdout.take().unwrap();
    let first = within("the first line", tokio::io::BufReader::new(stdout).lines().next_line())
        .await
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    let (status, page) = get(&addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>birpc in axum</title>"), "{page}");
    assert!(page.contains("/rpc?name="), "{page}");
    let (status, stats) = get(&addr, "/api/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&stats).unwrap(),
        json!({"connections": 0})
    );

    let anonymous = Client::connect(&format!("ws://{addr}/rpc")).await;
    assert!(
        matches!(anonymous, Err(birpc::ConnectError::Rejected { status: 401 })),
        "{anonymous:?}"
    );
    let (said_tx, mut said) = mpsc::channel(4);
    let visitor = Router::new()
        .method("client.mood", |_: Context, _: NoParams| async {
            Ok::<_, ErrorObject>("tested")
        })
        .method("client.said", move |_: Context, (from, text): (String, String)| {
            let said = said_tx.clone();
            async move {
                said.send(format!("{from}: {text}"))
                    .await
                    .map_err(|_| ErrorObject::internal_error())
            }
        });
    let peer = Client::builder()
        .router(visitor)
        .query("name", "ada")
        .connect(&format!("ws://{addr}/rpc"))
        .await
        .unwrap();
    let hello: String = within("hello", peer.call("app.hello", ())).await.unwrap();
    assert_eq!(hello, "Hello, ada, who feels tested! 1 connected.");
    let (_, stats) = get(&addr, "/api/stats").await;
    assert_eq!(
        serde_json::from_str::<Value>(&stats).unwrap(),
        json!({"connections": 1})
    );
    let sent: usize = within("say", peer.call("app.say", ("hi all",))).await.unwrap();
    assert_eq!(sent, 1);
    assert_eq!(within("what was said", said.recv()).await.unwrap(), "ada: hi all");

    let pid = child.id().expect("the app runs").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    let reason = within("the close", peer.closed()).await;
    assert_eq!(reason.code(), birpc::CloseCode::GOING_AWAY, "{reason}");
    let status = within("the exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
}

/// A port already in use: the example servers say which address, and the flag that picks another.
#[test]
fn an_example_server_on_a_port_in_use_names_it_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    for example in ["web_chat", "interop_server"] {
        let output = std::process::Command::new(common::example(example))
            .args(["--listen", &address])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{example}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains(&format!("{address} is already in use")) && said.contains("--listen HOST:PORT"),
            "{example}: {said}"
        );
    }
}

/// An HTTP/1.1 GET of `path` on `addr`; the body of the answer.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    within("the HTTP answer", socket.read_to_string(&mut answer))
        .await
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[tokio::test]
async fn the_metrics_example_exports_its_calls_as_prometheus_text() {
    let mut child = Command::new(example("metrics"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    within(
        "the listening line",
        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first),
    )
    .await
    .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ws://")
        .expect(&first)
        .to_owned();

    let peer = Client::builder().connect(&format!("ws://{addr}")).await.unwrap();
    assert_eq!(peer.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(peer.call::<i64>("add", (3, 4)).await.unwrap(), 7);
    let refused = peer.call::<i64>("divide", (1, 0)).await.unwrap_err();
    assert_eq!(refused.error_object().map(ErrorObject::code), Some(1));
    assert!(matches!(
        peer.call::<()>("nope", ()).await,
        Err(CallError::MethodNotFound(_))
    ));

    let text = http_get(&addr, "/metrics").await;
    for line in [
        r#"birpc_calls_received_total{method="add",outcome="ok"} 2"#,
        r#"birpc_calls_received_total{method="divide",outcome="1"} 1"#,
        r#"birpc_refused_total{reason="method_not_found"} 1"#,
        "birpc_connections_opened_total 1",
        "birpc_connections_open 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"birpc_call_duration_seconds_count{direction="in",method="add"} 2"#)),
        "no duration of add in:\n{text}"
    );
    peer.close();
    child.kill().await.unwrap();
}
