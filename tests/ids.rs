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

/// An answer matches its call by the id's value: `1.0`, `1e0` and `1.00e0` answer call 1, a string id
/// `"1"` answers nothing. A malformed answer (neither result nor error) fails its call at once with
/// `CallError::InvalidResponse`, and is never answered: nothing goes back under that id.
#[tokio::test]
async fn answers_match_calls_by_the_id_s_value_and_malformed_ones_are_never_answered() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut next = async || -> serde_json::Value {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                    Some(Ok(_)) => continue,
                    other => panic!("{other:?}"),
                }
            }
        };
        let mut requests = Vec::new();
        for _ in 0..4 {
            requests.push(next().await);
        }
        for request in requests {
            let id = request["id"].as_u64().unwrap();
            let answers = match request["method"].as_str().unwrap() {
                "one" => vec![
                    format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":"wrong"}}"#),
                    format!(r#"{{"jsonrpc":"2.0","id":{id}.0,"result":"one"}}"#),
                ],
                "two" => vec![format!(r#"{{"jsonrpc":"2.0","id":{id}e0,"result":"two"}}"#)],
                "three" => vec![format!(r#"{{"jsonrpc":"2.0","id":{id}.00e0,"result":"three"}}"#)],
                _ => vec![format!(r#"{{"jsonrpc":"2.0","id":{id}}}"#)],
            };
            for answer in answers {
                ws.send(Message::text(answer)).await.unwrap();
            }
        }
        // A probe: the next thing the client sends must be its answer, not an answer to the malformed one.
        ws.send(Message::text(r#"{"jsonrpc":"2.0","id":"probe","method":"nope"}"#))
            .await
            .unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    });
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let calls: Vec<_> = ["one", "two", "three", "bad"]
        .into_iter()
        .map(|method| tokio::spawn(peer.call::<String>(method, ())))
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(common::within("an answer", call).await.unwrap());
    }
    assert_eq!(outcomes[0].as_deref().unwrap(), "one");
    assert_eq!(outcomes[1].as_deref().unwrap(), "two");
    assert_eq!(outcomes[2].as_deref().unwrap(), "three");
    assert!(
        matches!(outcomes[3], Err(CallError::InvalidResponse(_))),
        "{:?}",
        outcomes[3]
    );
    let first_reply = common::within("the probe's answer", raw_server).await.unwrap();
    assert_eq!(first_reply["id"], "probe", "{first_reply}");
    assert_eq!(first_reply["error"]["code"], -32601);
}
