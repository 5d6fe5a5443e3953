//! Admission at the WebSocket upgrade: the hook sees the request and admits with typed state or refuses with
//! an HTTP status before any frame; allowed origins (cross-site WebSocket hijacking); subprotocols; custom
//! headers and query; plain HTTP on the same port.

mod common;

use birpc::prelude::*;
use birpc::{Admit, ConnectError, ConnectionInfo, Reject, SUBPROTOCOL, ServerHandle};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Who the admission hook says a connection is.
#[derive(Debug, Clone, PartialEq)]
struct User {
    name: String,
    team: Option<String>,
}

/// A server that admits `Authorization: Bearer <name>` or `?token=<name>`, refuses the rest with 401, and
/// refuses the user "mallory" with 403.
async fn server(builder: birpc::ServerBuilder) -> ServerHandle {
    builder
        .admit(|request: ConnectionInfo| async move {
            let bearer = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let Some(name) = bearer.or_else(|| request.query("token")) else {
                return Err(Reject::unauthorized("who are you?"));
            };
            if name == "mallory" {
                return Err(Reject::forbidden("not you"));
            }
            let team = request
                .headers()
                .get("x-team")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(Admit::new().with_state(User { name, team }))
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|connection: &ConnectionInfo| {
            // The router factory sees what the hook attached, and can build per-user routers.
            let greeting = format!("hello {}", connection.state::<User>().map_or("?", |u| &u.name));
            Router::new()
                .method("whoami", |ctx: Context, _: NoParams| async move {
                    let user = ctx
                        .state::<User>()
                        .cloned()
                        .ok_or_else(|| ErrorObject::new(1, "no user"))?;
                    let path = ctx.state::<ConnectionInfo>().map(|c| c.uri().path().to_owned());
                    Ok::<_, ErrorObject>((user.name, user.team, path))
                })
                .method("greeting", move |_: Context, _: NoParams| {
                    let greeting = greeting.clone();
                    async move { Ok::<_, ErrorObject>(greeting) }
                })
        })
}

#[tokio::test]
async fn the_hook_refuses_with_an_http_status_before_any_frame() {
    let server = server(Server::builder()).await;
    let url = format!("ws://{}/chat", server.local_addr());
    let anonymous = Client::connect(&url).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Rejected { status: 401 })),
        "{anonymous:?}"
    );
    let mallory = Client::builder()
        .header("Authorization", "Bearer mallory")
        .connect(&url)
        .await;
    assert!(
        matches!(mallory, Err(ConnectError::Rejected { status: 403 })),
        "{mallory:?}"
    );
    assert_eq!(server.connection_count(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn admitted_state_reaches_every_handler_and_the_router_factory() {
    let server = server(Server::builder()).await;
    let url = format!("ws://{}/chat", server.local_addr());
    let peer = Client::builder()
        .header("Authorization", "Bearer ada")
        .header("X-Team", "blue")
        .connect(&url)
        .await
        .unwrap();
    let (name, team, path): (String, Option<String>, Option<String>) = peer.call("whoami", ()).await.unwrap();
    assert_eq!(
        (name.as_str(), team.as_deref(), path.as_deref()),
        ("ada", Some("blue"), Some("/chat"))
    );
    assert_eq!(peer.call::<String>("greeting", ()).await.unwrap(), "hello ada");
    server.shutdown().await;
}

#[tokio::test]
async fn the_query_of_the_upgrade_request_is_decoded_for_the_hook() {
    let server = server(Server::builder()).await;
    let peer = Client::builder()
        .query("token", "grace & hopper")
        .connect(&format!("ws://{}/", server.local_addr()))
        .await
        .unwrap();
    let (name, _, _): (String, Option<String>, Option<String>) = peer.call("whoami", ()).await.unwrap();
    assert_eq!(name, "grace & hopper");
    server.shutdown().await;
}

/// Sends a hand-written upgrade request and returns the response head.
async fn upgrade_by_hand(server: &ServerHandle, extra_headers: &str) -> String {
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match common::within("the response", tcp.read(&mut byte)).await.unwrap() {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

/// A page on another site cannot use the signed-in user's cookie to open a connection: its `Origin` gives
/// it away.
#[tokio::test]
async fn cross_site_websocket_hijacking_is_refused() {
    let server = server(Server::builder().allowed_origins(["https://app.example"])).await;
    let cookie = "Authorization: Bearer ada\r\n";
    let evil = upgrade_by_hand(&server, &format!("{cookie}Origin: https://evil.example\r\n")).await;
    assert!(evil.starts_with("http/1.1 403"), "{evil}");
    let good = upgrade_by_hand(&server, &format!("{cookie}Origin: https://APP.example\r\n")).await;
    assert!(good.starts_with("http/1.1 101"), "{good}");
    // Clients that are not browsers send no Origin; the hook decides for them.
    let native = upgrade_by_hand(&server, cookie).await;
    assert!(native.starts_with("http/1.1 101"), "{native}");
    server.shutdown().await;
}

#[tokio::test]
async fn subprotocols_are_negotiated_as_rfc_6455_says() {
    let server = server(Server::builder()).await;
    let auth = "Authorization: Bearer ada\r\n";
    let ours = upgrade_by_hand(
        &server,
        &format!("{auth}Sec-WebSocket-Protocol: other, {SUBPROTOCOL}\r\n"),
    )
    .await;
    assert!(
        ours.contains(&format!("sec-websocket-protocol: {SUBPROTOCOL}")),
        "{ours}"
    );
    // Only unknown ones offered: answered without the header, and the client decides.
    let unknown = upgrade_by_hand(&server, &format!("{auth}Sec-WebSocket-Protocol: mqtt, soap\r\n")).await;
    assert!(unknown.starts_with("http/1.1 101"), "{unknown}");
    assert!(!unknown.contains("sec-websocket-protocol"), "{unknown}");
    // A birpc client may insist on it.
    let peer = Client::builder()
        .header("Authorization", "Bearer ada")
        .subprotocol(SUBPROTOCOL)
        .connect(&format!("ws://{}/", server.local_addr()))
        .await
        .unwrap();
    assert_eq!(peer.call::<String>("greeting", ()).await.unwrap(), "hello ada");
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_same_port_goes_to_the_http_handler() {
    let builder = Server::builder().http(|request| {
        let body = match request.uri().path() {
            "/" => Bytes::from_static(b"<h1>the page</h1>"),
            _ => Bytes::from_static(b"not here"),
        };
        let mut response = http::Response::new(body);
        if request.uri().path() != "/" {
            *response.status_mut() = http::StatusCode::NOT_FOUND;
        }
        response
    });
    let server = server(builder).await;
    for (path, expected) in [("/", "200"), ("/missing", "404")] {
        let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with(&format!("HTTP/1.1 {expected}")), "{answer}");
    }
    let peer = Client::builder()
        .query("token", "ada")
        .connect(&format!("ws://{}/", server.local_addr()))
        .await;
    assert!(peer.is_ok());
    server.shutdown().await;
}
