//! Bad framing from the other side of a byte stream: each case ends that connection with an error it can
//! read (a JSON-RPC error with a `null` id, then the end of the stream), and the server goes on serving a
//! fresh connection.

mod common;

use birpc::byte_stream::{StreamServer, StreamServerHandle};
use birpc::framing::Framing;
use birpc::prelude::*;
use birpc::{PeerConfig, Target};
use common::within;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The limit of the servers here, in bytes.
const LIMIT: usize = 1024;

async fn server(framing: Framing) -> (StreamServerHandle, String) {
    let server = StreamServer::builder()
        .framing(framing)
        .config(PeerConfig::default().max_message_size(LIMIT))
        .bind_tcp("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("{}?framing={framing}", server.local_addr());
    let running = server.serve(|_| {
        Router::new().method("echo", |_: Context, (value,): (Value,)| async move {
            Ok::<_, ErrorObject>(value)
        })
    });
    (running, target)
}

/// Sends `bytes` (then, if `shut`, the end of the stream) and returns everything the server wrote until
/// it ended the connection.
async fn send_raw(target: &str, bytes: &[u8], shut: bool) -> String {
    let Ok(Target::Tcp { addr, .. }) = target.parse::<Target>() else {
        panic!("a tcp target")
    };
    let mut socket = TcpStream::connect(addr.as_str()).await.expect("connect");
    socket.write_all(bytes).await.expect("write");
    if shut {
        socket.shutdown().await.expect("shut down");
    }
    let mut written = Vec::new();
    within("the end of the connection", socket.read_to_end(&mut written))
        .await
        .expect("read");
    String::from_utf8(written).expect("UTF-8")
}

/// The error object of the last message in `written` (the body after the last header part, or the last
/// line).
fn last_error(written: &str) -> Value {
    let body = written
        .rsplit("\r\n\r\n")
        .next()
        .and_then(|rest| rest.trim_end().lines().last())
        .unwrap_or_default();
    let message: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {written:?}"));
    assert_eq!(message["id"], Value::Null, "{message}");
    message["error"].clone()
}

/// After a bad connection, a fresh one is served.
async fn still_serves(target: &str) {
    let target: Target = target.parse().expect("a target");
    let client = target
        .connect(Router::new(), PeerConfig::default())
        .await
        .expect("connect");
    assert_eq!(client.call::<Value>("echo", ("ok",)).await.expect("echo"), "ok");
}

#[tokio::test]
async fn bad_content_length_framing_ends_the_connection_with_an_error_and_the_server_serves_on() {
    let (server, target) = server(Framing::ContentLength).await;
    let over = format!("Content-Length: {}\r\n\r\n", LIMIT + 1);
    for (what, bytes, code, says) in [
        ("a garbage header", &b"Hello there\r\n\r\n"[..], -32700, "Name: value"),
        (
            "no Content-Length",
            b"Content-Type: application/json\r\n\r\n{}",
            -32700,
            "without Content-Length",
        ),
        (
            "a malformed Content-Length",
            b"Content-Length: twelve\r\n\r\n",
            -32700,
            "malformed",
        ),
        (
            "a body over the limit",
            over.as_bytes(),
            -32600,
            "larger than the limit",
        ),
        (
            "a body of invalid UTF-8",
            b"Content-Length: 4\r\n\r\n\"\xff\xfe\"",
            -32700,
            "UTF-8",
        ),
    ] {
        let written = send_raw(&target, bytes, false).await;
        let error = last_error(&written);
        assert_eq!(error["code"], code, "{what}: {error}");
        assert!(
            error["message"].as_str().unwrap_or_default().contains(says),
            "{what}: {error}"
        );
        still_serves(&target).await;
    }
    // A message cut by the end of the stream: the connection ends (the error cannot be read by a side
    // that is gone, but is written while its read half lives).
    let written = send_raw(&target, b"Content-Length: 20\r\n\r\n{\"jsonrpc\":", true).await;
    assert_eq!(last_error(&written)["code"], -32700);
    still_serves(&target).await;
    common::eventually("every bad connection to be gone", || server.connection_count() == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_lines_end_the_connection_with_an_error_and_the_server_serves_on() {
    let (server, target) = server(Framing::Lines).await;
    let long = format!("[\"{}\"]\n", "x".repeat(LIMIT));
    let written = send_raw(&target, long.as_bytes(), false).await;
    assert_eq!(last_error(&written)["code"], -32600);
    still_serves(&target).await;
    let written = send_raw(&target, b"[\"\xc3\x28\"]\n", false).await;
    assert_eq!(last_error(&written)["code"], -32700);
    still_serves(&target).await;
    let written = send_raw(
        &target,
        b"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1],\"id\":1}\n{\"jsonrpc\"",
        true,
    )
    .await;
    let mut lines = written.lines();
    let answer: Value = serde_json::from_str(lines.next().unwrap_or_default()).expect("JSON");
    assert_eq!(answer["result"], 1, "the whole message before the cut is answered");
    assert_eq!(last_error(&written)["code"], -32700);
    still_serves(&target).await;
    // Not JSON at all, but framed well: the peer's usual answer, and the connection lives on.
    let written = send_raw(&target, b"not json\n", true).await;
    assert_eq!(last_error(&written)["code"], -32700);
    common::eventually("every bad connection to be gone", || server.connection_count() == 0).await;
    server.shutdown().await;
}

/// A peer that sends half a message and then nothing (slow-loris) holds one of the server's places only
/// until its idle timeout: the server closes it, and the place serves a new client.
#[tokio::test]
async fn with_an_idle_timeout_half_a_message_and_silence_lose_their_place() {
    let idle = std::time::Duration::from_millis(200);
    let server = StreamServer::builder()
        .framing(Framing::ContentLength)
        .max_connections(1)
        .config(PeerConfig::default().idle_timeout(Some(idle)))
        .bind_tcp("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("{}?framing=content-length", server.local_addr());
    let Ok(Target::Tcp { addr, .. }) = target.parse::<Target>() else {
        panic!("a tcp target")
    };
    let running = server.serve(|_| {
        Router::new().method("echo", |_: Context, (value,): (Value,)| async move {
            Ok::<_, ErrorObject>(value)
        })
    });
    let mut stalled = TcpStream::connect(addr.as_str()).await.expect("connect");
    stalled
        .write_all(b"Content-Length: 40\r\n\r\n{\"jsonrpc\":")
        .await
        .expect("write");
    // The server ends the connection: the stalled client reads the end of the stream.
    let mut rest = Vec::new();
    within("the idle connection to be closed", stalled.read_to_end(&mut rest))
        .await
        .expect("read");
    // Its place is free again once the stalled client is gone (the server waits for the end of its
    // stream, up to the close timeout): a new client is then served.
    drop(stalled);
    let echoed = within("a new client to be served", async {
        loop {
            let client = target
                .parse::<Target>()
                .expect("target")
                .connect(Router::new(), PeerConfig::default())
                .await
                .expect("connect");
            // Refused (-32005, then the end of the stream) while the old connection still ends.
            if let Ok(echoed) = client.call::<Value>("echo", (7,)).await {
                break echoed;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(echoed, Value::from(7));
    running.shutdown().await;
}
