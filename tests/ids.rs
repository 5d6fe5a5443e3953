//! Request ids of every JSON type the specification allows come back byte for byte; other types are
//! invalid requests answered with id null.

mod common;

use birpc::prelude::*;
use common::RawClient;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct RawAnswer {
    id: Box<RawValue>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

async fn client() -> (birpc::ServerHandle, RawClient) {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new().method(
            "echo",
            |_: Context, (v,): (i64,)| async move { Ok::<_, ErrorObject>(v) },
        )
    });
    let client = RawClient::connect(server.local_addr()).await;
    (server, client)
}

#[tokio::test]
async fn ids_of_every_allowed_type_are_echoed_exactly() {
    let (_server, mut c) = client().await;
    let ids = [
        "0",
        "1",
        "-1",
        "-0",
        "1.5",
        "1e3",
        "-2.50E-7",
        "9007199254740993",
        "123456789012345678901234567890",
        "1.000000000000000000000000000001",
        r#""""#,
        r#""abc""#,
        r#""\u00e9t\u00e9 \ud83d\ude00""#,
        r#""é""#,
        r#""with \"quotes\" and \\""#,
        "null",
    ];
    for id in ids {
        let text = c
            .ask_raw(&format!(
                r#"{{"jsonrpc":"2.0","method":"echo","params":[7],"id":{id}}}"#
            ))
            .await;
        let answer: RawAnswer = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.id.get(), id, "in {text}");
        assert_eq!(answer.result.unwrap().get(), "7");
    }
}

#[tokio::test]
async fn ids_of_other_types_are_invalid_requests_with_id_null() {
    let (_server, mut c) = client().await;
    for id in ["true", "false", "[1]", "{}", r#"{"a":1}"#] {
        let text = c
            .ask_raw(&format!(
                r#"{{"jsonrpc":"2.0","method":"echo","params":[7],"id":{id}}}"#
            ))
            .await;
        let answer: RawAnswer = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.id.get(), "null", "for id {id}: {text}");
        assert!(answer.error.unwrap().get().contains("-32600"));
    }
}

#[tokio::test]
async fn errors_echo_the_id_too() {
    let (_server, mut c) = client().await;
    let text = c.ask_raw(r#"{"jsonrpc":"2.0","method":"nope","id":1.0e+2}"#).await;
    let answer: RawAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(answer.id.get(), "1.0e+2");
    let text = c
        .ask_raw(r#"{"jsonrpc":"2.0","method":"echo","params":["x"],"id":"p"}"#)
        .await;
    let answer: RawAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(answer.id.get(), r#""p""#);
    assert!(answer.error.unwrap().get().contains("-32602"));
}

/// Each side numbers its own calls; an incoming request that reuses an id this side has pending is still
/// a request (it has a method), never mistaken for the answer.
#[tokio::test]
async fn the_two_directions_never_confuse_their_ids() {
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new().method("ask_back", |ctx: Context, _: NoParams| async move {
            // This call gets id 1 on the server side, the same number the client's call has.
            let n: i64 = ctx
                .peer()
                .call("number", ())
                .await
                .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
            Ok::<_, ErrorObject>(n * 10)
        })
    });
    let client_router = Router::new().method("number", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(4) });
    let peer = Client::builder()
        .router(client_router)
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    let answer: i64 = peer.call("ask_back", ()).await.unwrap();
    assert_eq!(answer, 40);
}
