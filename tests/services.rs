//! Services declared with `#[birpc::rpc]`, served and called over real sockets in both directions: every
//! attribute, typed errors, params by position and by name from a raw client, omitted options, merged
//! services.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use birpc::prelude::*;
use birpc::{ParamsStyle, ServerHandle, code};
use common::{RawClient, within};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// An error type that chooses its code.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum ChatError {
    NoSuchRoom { room: String },
    Empty,
}

impl RpcError for ChatError {
    fn code(&self) -> i64 {
        match self {
            ChatError::NoSuchRoom { .. } => 4004,
            ChatError::Empty => 4000,
        }
    }
}

/// An error type that does not: it gets the defaults.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum PlainError {
    Nope(u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Hit {
    text: String,
}

#[birpc::rpc(namespace = "chat")]
trait Chat {
    /// Posts a message; returns its sequence number.
    async fn post(&self, room: String, text: String) -> Result<u64, ChatError>;
    /// Joins a room and greets the caller through its own service; returns who is there.
    #[rpc(name = "join_room", aliases = ["enter"])]
    async fn join(&self, ctx: &Context, room: String) -> Vec<String>;
    #[rpc(notification)]
    async fn typing(&self, room: String);
    #[rpc(params = "named")]
    async fn search(&self, query: String, limit: Option<u32>) -> Vec<Hit>;
    async fn plain(&self, fail: bool) -> Result<(), PlainError>;
    async fn raw(&self) -> Result<(), ErrorObject>;
    async fn slow(&self);
}

/// What clients export, for the server to call.
#[birpc::rpc]
trait Events {
    #[rpc(notification, params = "named")]
    async fn message(&self, from: String, text: String);
    #[rpc(name = "still_there")]
    async fn are_you_there(&self, asked_by: String) -> Result<String, PlainError>;
}

#[birpc::rpc(namespace = "admin")]
trait Admin {
    async fn uptime(&self) -> u64;
}

struct ChatService {
    typing: mpsc::Sender<String>,
}

impl Chat for ChatService {
    async fn post(&self, room: String, text: String) -> Result<u64, ChatError> {
        match (room.as_str(), text.is_empty()) {
            (_, true) => Err(ChatError::Empty),
            ("lobby", false) => Ok(text.len() as u64),
            _ => Err(ChatError::NoSuchRoom { room }),
        }
    }

    async fn join(&self, ctx: &Context, room: String) -> Vec<String> {
        // Calls back the caller through the typed stub of its service.
        let caller = EventsClient::new(ctx.peer().clone());
        let _ = caller.message("server".into(), format!("welcome to {room}")).await;
        let answer = caller
            .are_you_there("server".into())
            .await
            .unwrap_or_else(|e| format!("no answer: {e}"));
        vec![room, answer]
    }

    async fn typing(&self, room: String) {
        let _ = self.typing.send(room).await;
    }

    async fn search(&self, query: String, limit: Option<u32>) -> Vec<Hit> {
        let limit = limit.unwrap_or(2) as usize;
        (0..limit)
            .map(|i| Hit {
                text: format!("{query}{i}"),
            })
            .collect()
    }

    async fn plain(&self, fail: bool) -> Result<(), PlainError> {
        if fail { Err(PlainError::Nope(7)) } else { Ok(()) }
    }

    async fn raw(&self) -> Result<(), ErrorObject> {
        Err(ErrorObject::new(12, "made by hand").with_data(&[1, 2]).unwrap())
    }

    async fn slow(&self) {
        futures::future::pending::<()>().await;
    }
}

struct AdminService;

impl Admin for AdminService {
    async fn uptime(&self) -> u64 {
        99
    }
}

struct EventsService {
    messages: mpsc::Sender<(String, String)>,
    refuse: bool,
}

impl Events for EventsService {
    async fn message(&self, from: String, text: String) {
        let _ = self.messages.send((from, text)).await;
    }

    async fn are_you_there(&self, asked_by: String) -> Result<String, PlainError> {
        if self.refuse {
            Err(PlainError::Nope(3))
        } else {
            Ok(format!("yes, {asked_by}"))
        }
    }
}

async fn server() -> (ServerHandle, mpsc::Receiver<String>) {
    let (typing_tx, typing) = mpsc::channel(8);
    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(move |_| {
        ChatService {
            typing: typing_tx.clone(),
        }
        .into_router()
        .merge(AdminService.into_router())
    });
    (server, typing)
}

async fn client(server: &ServerHandle, refuse: bool) -> (ChatClient, mpsc::Receiver<(String, String)>) {
    let (messages_tx, messages) = mpsc::channel(8);
    let events = EventsService {
        messages: messages_tx,
        refuse,
    };
    let peer = Client::builder()
        .router(events.into_router())
        .connect(&format!("ws://{}", server.local_addr()))
        .await
        .unwrap();
    (ChatClient::new(peer), messages)
}

#[tokio::test]
async fn typed_calls_in_both_directions() {
    let (server, mut typing) = server().await;
    let (chat, mut messages) = client(&server, false).await;

    assert_eq!(chat.post("lobby".into(), "hello".into()).await.unwrap(), 5);
    // join calls the client back twice through the generated `EventsClient`: a notification and a request.
    let joined = chat.join("lobby".into()).await.unwrap();
    assert_eq!(joined, vec!["lobby".to_owned(), "yes, server".to_owned()]);
    assert_eq!(
        within("the welcome", messages.recv()).await.unwrap(),
        ("server".to_owned(), "welcome to lobby".to_owned())
    );
    chat.typing("lobby".into()).await.unwrap();
    assert_eq!(within("the typing notification", typing.recv()).await.unwrap(), "lobby");
    assert_eq!(chat.search("q".into(), Some(3)).await.unwrap().len(), 3);
    assert_eq!(
        chat.search("q".into(), None).await.unwrap(),
        vec![Hit { text: "q0".into() }, Hit { text: "q1".into() }]
    );
    // The merged service answers on the same connection.
    let admin = AdminClient::new(chat.peer().clone());
    assert_eq!(admin.uptime().await.unwrap(), 99);
    server.shutdown().await;
}

#[tokio::test]
async fn typed_errors_survive_the_trip() {
    let (server, _typing) = server().await;
    let (chat, _messages) = client(&server, true).await;

    let error = chat.post("attic".into(), "hi".into()).await.unwrap_err();
    assert!(matches!(error, CallError::Application(ChatError::NoSuchRoom { ref room }) if room == "attic"));
    assert!(matches!(
        chat.post("lobby".into(), String::new()).await,
        Err(CallError::Application(ChatError::Empty))
    ));
    assert!(matches!(
        chat.plain(true).await,
        Err(CallError::Application(PlainError::Nope(7)))
    ));
    chat.plain(false).await.unwrap();
    let Err(CallError::Application(object)) = chat.raw().await else {
        panic!("a raw error object")
    };
    assert_eq!((object.code(), object.message()), (12, "made by hand"));
    // A client's typed error reaches the server's stub too (join reports it).
    let joined = chat.join("lobby".into()).await.unwrap();
    assert!(joined[1].starts_with("no answer"), "{joined:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn error_objects_carry_the_chosen_or_default_code_and_message() {
    let (server, _typing) = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","method":"chat.post","params":["attic","hi"],"id":1}"#)
        .await;
    assert_eq!(
        answer["error"],
        json!({"code": 4004, "message": "NoSuchRoom", "data": {"NoSuchRoom": {"room": "attic"}}})
    );
    let answer = raw
        .ask(r#"{"jsonrpc":"2.0","method":"chat.plain","params":[true],"id":2}"#)
        .await;
    assert_eq!(
        answer["error"],
        json!({"code": code::APPLICATION_ERROR, "message": "Nope", "data": {"Nope": 7}})
    );
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn every_method_takes_params_by_position_and_by_name_from_a_raw_client() {
    let (server, mut typing) = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let cases: &[(&str, &str, Value)] = &[
        ("chat.post", r#"["lobby","abc"]"#, json!(3)),
        ("chat.post", r#"{"text":"abcd","room":"lobby"}"#, json!(4)),
        ("chat.search", r#"["q"]"#, json!([{"text": "q0"}, {"text": "q1"}])),
        (
            "chat.search",
            r#"{"query":"q"}"#,
            json!([{"text": "q0"}, {"text": "q1"}]),
        ),
        ("chat.search", r#"["q", 1]"#, json!([{"text": "q0"}])),
        ("chat.search", r#"{"limit":1,"query":"q"}"#, json!([{"text": "q0"}])),
        (
            "chat.search",
            r#"{"query":"q","limit":null}"#,
            json!([{"text": "q0"}, {"text": "q1"}]),
        ),
        ("chat.plain", r#"[false]"#, Value::Null),
        ("chat.plain", r#"{"fail":false}"#, Value::Null),
        ("admin.uptime", "[]", json!(99)),
        ("admin.uptime", "{}", json!(99)),
    ];
    for (i, (method, params, expected)) in cases.iter().enumerate() {
        let answer = raw
            .ask(&format!(
                r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{i}}}"#
            ))
            .await;
        assert_eq!(answer["result"], *expected, "{method} {params}: {answer}");
    }
    // Without params at all, where every param may be omitted.
    let answer = raw.ask(r#"{"jsonrpc":"2.0","method":"admin.uptime","id":"u"}"#).await;
    assert_eq!(answer["result"], 99);
    // The alias reaches the same method, which calls the raw client back before answering.
    raw.send(r#"{"jsonrpc":"2.0","method":"chat.enter","params":["lobby"],"id":"e"}"#)
        .await;
    let welcome = raw.recv_json().await;
    assert_eq!(welcome["method"], "message");
    assert_eq!(welcome["params"], json!({"from": "server", "text": "welcome to lobby"}));
    let question = raw.recv_json().await;
    assert_eq!(
        (&question["method"], &question["params"]),
        (&json!("still_there"), &json!(["server"]))
    );
    raw.send(&json!({"jsonrpc": "2.0", "id": question["id"], "result": "raw here"}).to_string())
        .await;
    let answer = raw.recv_json().await;
    assert_eq!(answer["id"], "e");
    assert_eq!(answer["result"], json!(["lobby", "raw here"]));
    // Notifications by position and by name.
    raw.send(r#"{"jsonrpc":"2.0","method":"chat.typing","params":["a"]}"#)
        .await;
    raw.send(r#"{"jsonrpc":"2.0","method":"chat.typing","params":{"room":"b"}}"#)
        .await;
    assert_eq!(within("typing", typing.recv()).await.unwrap(), "a");
    assert_eq!(within("typing", typing.recv()).await.unwrap(), "b");
    drop(raw);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_params_name_what_is_wrong() {
    let (server, _typing) = server().await;
    let mut raw = RawClient::connect(server.local_addr()).await;
    let cases = [
        (r#"["lobby"]"#, "missing parameter `text`"),
        (r#"{"room":"lobby"}"#, "missing parameter `text`"),
        (r#"["lobby", 5]"#, "parameter `text`"),
        (r#"["lobby", "x", "surplus"]"#, "at most 2"),
        (r#"{"room":"lobby","text":"x","txet":"y"}"#, "unknown parameter `txet`"),
    ];
    for (params, detail) in cases {
        let answer = raw
            .ask(&format!(
                r#"{{"jsonrpc":"2.0","method":"chat.post","params":{params},"id":1}}"#
            ))
            .await;
        assert_eq!(answer["error"]["code"], code::INVALID_PARAMS, "{params}");
        assert!(
            answer["error"]["data"].as_str().unwrap().contains(detail),
            "{params}: {answer}"
        );
    }
    drop(raw);
    server.shutdown().await;
}

/// What the typed client puts on the wire: positional params as an array, named ones as an object, no
/// params member when there are none, and no context.
#[tokio::test]
async fn the_typed_client_sends_each_method_in_its_style() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            let request: Value = serde_json::from_str(&text).unwrap();
            recorder.lock().unwrap().push(request.clone());
            if let Some(id) = request.get("id") {
                let answer = json!({"jsonrpc": "2.0", "id": id, "result": []});
                ws.send(Message::text(answer.to_string())).await.unwrap();
            }
        }
    });
    let peer = Client::connect(&format!("ws://{addr}")).await.unwrap();
    let chat = ChatClient::new(peer.clone());
    chat.join("lobby".into()).await.unwrap();
    chat.search("q".into(), None).await.unwrap();
    chat.typing("lobby".into()).await.unwrap();
    let _ = AdminClient::new(peer.clone()).uptime().await;
    peer.close();
    within("the raw server", raw_server).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["method"], "chat.join_room");
    assert_eq!(seen[0]["params"], json!(["lobby"]));
    assert_eq!(seen[1]["method"], "chat.search");
    assert_eq!(seen[1]["params"], json!({"query": "q", "limit": null}));
    assert_eq!(
        seen[2],
        json!({"jsonrpc": "2.0", "method": "chat.typing", "params": ["lobby"]})
    );
    assert_eq!(seen[3]["method"], "admin.uptime");
    assert!(seen[3].get("params").is_none());
}

#[tokio::test]
async fn typed_calls_take_a_timeout() {
    let (server, _typing) = server().await;
    let (chat, _messages) = client(&server, false).await;
    let outcome = chat.slow().timeout(Some(Duration::from_millis(100))).await;
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    server.shutdown().await;
}

#[test]
fn the_method_list_describes_the_service() {
    let all = ChatMethods::all();
    assert_eq!(all.len(), 7);
    assert_eq!((ChatMethods::POST, ChatMethods::JOIN), ("chat.post", "chat.join_room"));
    let join = &all[1];
    assert_eq!(join.aliases, ["chat.enter"]);
    assert_eq!(join.params.len(), 1, "the context is not a param");
    assert_eq!((join.params[0].name, join.params[0].ty), ("room", "String"));
    assert_eq!(join.result, "Vec<String>");
    assert!(join.docs.starts_with("Joins a room"));
    assert_eq!(all[0].error, Some("ChatError"));
    assert!(all[2].notification);
    assert_eq!(all[3].params_style, ParamsStyle::Named);
    assert_eq!(all[3].params[1].ty, "Option<u32>");
    assert_eq!(EventsMethods::ARE_YOU_THERE, "still_there");
}

#[test]
#[should_panic(expected = "exported twice")]
fn merging_services_that_share_a_name_is_refused() {
    let (typing, _) = mpsc::channel(1);
    let _ = ChatService { typing: typing.clone() }
        .into_router()
        .merge(ChatService { typing }.into_router());
}
