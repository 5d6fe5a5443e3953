//! Hostile and broken input over a real socket: each gets the specification's error or a close code, never
//! a panic, a hang or a leak, and the connection lives on wherever the specification allows.

mod common;

use std::sync::Arc;

use birpc::prelude::*;
use birpc::{ServerHandle, code};
use bytes::Bytes;
use common::{RawClient, eventually, within};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

async fn server() -> ServerHandle {
    Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new()
            .method("echo", |_: Context, (value,): (Value,)| async move {
                Ok::<_, ErrorObject>(value)
            })
            .method("add", |_: Context, (a, b): (i64, i64)| async move {
                Ok::<_, ErrorObject>(a + b)
            })
    })
}

/// After anything hostile, the connection still answers.
async fn still_answers(raw: &mut RawClient) {
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","method":"add","params":[2,2],"id":"alive"}"#)
        .await;
    assert_eq!(answer["result"], 4, "{answer}");
}

/// Expects an error answer with one of `codes` (or, for a frame that is a batch, errors with those codes).
async fn expect_error(raw: &mut RawClient, request: &str, codes: &[i64]) -> Value {
    let answer = raw.ask(request).await;
    let errors = match &answer {
        Value::Array(entries) => entries.clone(),
        single => vec![single.clone()],
    };
    for error in &errors {
        let got = error["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {answer}"));
        assert!(codes.contains(&got), "expected one of {codes:?}, got {answer}");
    }
    answer
}

#[tokio::test]
async fn broken_and_strange_json_gets_the_specified_errors() {
    let server = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let cases: &[(&str, &[i64])] = &[
        ("{", &[code::PARSE_ERROR]),
        ("not json at all", &[code::PARSE_ERROR]),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1} trailing"#,
            &[code::PARSE_ERROR],
        ),
        ("\"just a string\"", &[code::INVALID_REQUEST]),
        ("null", &[code::INVALID_REQUEST]),
        (
            r#"{"jsonrpc":"1.0","method":"add","params":[1,2],"id":1}"#,
            &[code::INVALID_REQUEST],
        ),
        (r#"{"method":"add","params":[1,2],"id":1}"#, &[code::INVALID_REQUEST]),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":"1,2","id":1}"#,
            &[code::INVALID_REQUEST],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":12,"id":1}"#,
            &[code::INVALID_REQUEST],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","method":"echo","params":[1,2],"id":1}"#,
            &[code::INVALID_REQUEST],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"params":[3],"id":1}"#,
            &[code::INVALID_REQUEST],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":[1e400, 2],"id":1}"#,
            &[code::INVALID_PARAMS],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":[99999999999999999999999, 2],"id":1}"#,
            &[code::INVALID_PARAMS],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"add","params":{"a":1,"a":2},"id":1}"#,
            &[code::INVALID_PARAMS],
        ),
    ];
    for (request, codes) in cases {
        expect_error(&mut raw, request, codes).await;
        still_answers(&mut raw).await;
    }
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn huge_ids_and_numbers_are_echoed_exactly() {
    let server = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let huge = "9".repeat(5000);
    let answer = raw
        .ask_raw(&format!(
            r#"{{"jsonrpc":"2.0","method":"add","params":[1,1],"id":{huge}}}"#
        ))
        .await;
    assert!(answer.contains(&format!(r#""id":{huge}"#)), "{answer}");
    let answer = raw
        .ask_raw(r#"{"jsonrpc":"2.0","method":"add","params":[1,1],"id":1e999999}"#)
        .await;
    assert!(answer.contains(r#""id":1e999999"#), "{answer}");
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn json_nested_thousands_deep_is_refused_without_a_crash() {
    let server = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let arrays = deep("[", "]", 20_000);
    let objects = deep(r#"{"a":"#, "}", 20_000);
    for body in [&arrays, &objects] {
        // As the whole message (a deep array is a batch of one entry that is not an object), and as params.
        expect_error(&mut raw, body, &[code::PARSE_ERROR, code::INVALID_REQUEST]).await;
        let request = format!(r#"{{"jsonrpc":"2.0","method":"echo","params":[{body}],"id":7}}"#);
        expect_error(
            &mut raw,
            &request,
            &[code::PARSE_ERROR, code::INVALID_REQUEST, code::INVALID_PARAMS],
        )
        .await;
        still_answers(&mut raw).await;
    }
    // Deep, but within serde's limit: answered.
    let fine = deep("[", "]", 100);
    let answer = raw
        .ask(&format!(
            r#"{{"jsonrpc":"2.0","method":"echo","params":[{fine}],"id":8}}"#
        ))
        .await;
    assert!(answer["result"].is_array(), "{answer}");
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn binary_garbage_is_a_parse_error() {
    let server = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    raw.send_binary(&garbage).await;
    let answer = raw.recv_json().await;
    assert_eq!(answer["error"]["code"], code::PARSE_ERROR);
    // Invalid UTF-8 inside an otherwise fine message, sent as binary.
    let mut bytes = br#"{"jsonrpc":"2.0","method":"echo","params":[""#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#""],"id":1}"#);
    raw.send_binary(&bytes).await;
    let answer = raw.recv_json().await;
    assert!(answer.get("error").is_some(), "{answer}");
    still_answers(&mut raw).await;
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_message_closes_with_1007() {
    let server = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let payload = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\",\"id\":1}");
    raw.send_message(Message::Frame(Frame::message(payload, OpCode::Data(Data::Text), true)))
        .await;
    assert_eq!(raw.expect_close().await, 1007);
    server.shutdown().await;
}

/// A peer that sends a batch of slow requests and disconnects before the answers: the handlers are
/// cancelled and the connection is released; nothing waits forever.
#[tokio::test]
async fn a_peer_that_leaves_mid_batch_leaves_nothing_behind() {
    let entered = Arc::new(Semaphore::new(0));
    let (dropped_tx, mut dropped) = mpsc::channel(8);
    let entered2 = entered.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        let (entered, dropped) = (entered2.clone(), dropped_tx.clone());
        Router::new().method("slow", move |_: Context, _: birpc::NoParams| {
            struct Guard(mpsc::Sender<()>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    let _ = self.0.try_send(());
                }
            }
            let (entered, guard) = (entered.clone(), Guard(dropped.clone()));
            async move {
                let _guard = guard;
                entered.add_permits(1);
                futures::future::pending::<Result<(), ErrorObject>>().await
            }
        })
    });
    let mut raw = RawClient::connect(server.local_addr()).await;
    let entry = r#"{"jsonrpc":"2.0","method":"slow","id":1}"#;
    raw.send(&format!("[{entry},{entry},{entry}]")).await;
    within("the handlers", entered.acquire_many(3)).await.unwrap().forget();
    drop(raw);
    for _ in 0..3 {
        within("a handler to be cancelled", dropped.recv()).await.unwrap();
    }
    eventually("the connection to be released", || server.connection_count() == 0).await;
    server.shutdown().await;
}

/// RFC 6455 section 5.2: a frame whose 64-bit length has its most significant bit set is a protocol
/// error, answered with close code 1002 (not 1009, as a merely large frame would be).
#[tokio::test]
async fn a_frame_length_with_its_top_bit_set_is_a_protocol_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| Router::new());
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    // The 101 answer, up to its blank line.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("the upgrade", tcp.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // A masked binary frame claiming 2^63 + 16 bytes.
    let frame = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x10, 1, 2, 3, 4];
    tcp.write_all(&frame).await.unwrap();
    // The server's close frame: opcode 8, then the code.
    let mut close = [0u8; 4];
    within("the close frame", tcp.read_exact(&mut close)).await.unwrap();
    assert_eq!(close[0], 0x88, "{close:?}");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002, "{close:?}");
    server.shutdown().await;
}
