//! OpenRPC and AsyncAPI documents of `#[rpc(openrpc)]` services: their content, `rpc.discover`, and their
//! validation with the official tooling (tests/schemas/validate.mjs: `@open-rpc/schema-utils-js` and
//! `@asyncapi/parser`, pinned in tests/schemas/package-lock.json).
//!
//! Without Node.js or those packages the validation is skipped with a message saying how to install
//! them, except in CI (`CI=true`), where it fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use birpc::openrpc::{Document, Method, Param, Service};
use birpc::prelude::*;
use birpc::{JsonSchema, RpcError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "birpc::schemars")]
enum ChatError {
    EmptyMessage,
    TooLong { max: usize },
}

impl RpcError for ChatError {
    fn code(&self) -> i64 {
        4000
    }
}

/// A message of the room.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "birpc::schemars")]
struct Message {
    /// Who wrote it.
    author: String,
    text: String,
    #[serde(default)]
    reply_to: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "birpc::schemars")]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Activity {
    Joined { who: String },
    Posted { message: Message },
}

/// The chat the server exports.
#[birpc::rpc(namespace = "chat", openrpc)]
trait Chat {
    /// Posts a message; returns its sequence number.
    ///
    /// Empty messages are refused.
    #[rpc(aliases = ["send"])]
    async fn post(&self, room: String, text: String, reply_to: Option<u64>) -> Result<u64, ChatError>;
    /// The room's messages, found by name.
    #[rpc(params = "named")]
    async fn search(&self, room: String, query: Option<String>, limit: Option<u32>) -> Vec<Message>;
    /// Says the caller is typing.
    #[rpc(notification)]
    async fn typing(&self, room: String);
    /// Leaves the room.
    async fn leave(&self, ctx: &Context, room: String);
    /// Anything, echoed.
    async fn echo(&self, value: serde_json::Value) -> serde_json::Value;
    /// The room's activity, as it comes.
    async fn activity(&self, room: String) -> Result<ItemStream<Activity, ChatError>, ChatError>;
    /// Counts to `n`.
    async fn count(&self, n: u32) -> ItemStream<u32>;
    /// Posts each uploaded line; returns how many.
    async fn paste(&self, room: String, lines: Upload<String>) -> Result<u32, ErrorObject>;
}

/// What each page exports, for the server to call.
#[allow(dead_code, reason = "described, never served")]
#[birpc::rpc(namespace = "page", openrpc)]
trait Page {
    /// Are you still there?
    async fn still_there(&self, deadline_ms: u64) -> bool;
    /// A message for the page.
    #[rpc(notification)]
    async fn message(&self, message: Message);
    /// The files the page shares.
    async fn files(&self) -> ItemStream<String>;
}

fn document() -> Document {
    Document::new("Chat", "1.2.0")
        .description("A chat with rooms.")
        .endpoint("ws://127.0.0.1:8080/rpc")
        .server(ChatMethods::openrpc())
        .client(PageMethods::openrpc())
}

fn method<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// Follows a local `$ref` in `document`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(pointer) => document
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {pointer}")),
        None => schema,
    }
}

#[test]
fn the_openrpc_document_describes_every_method_with_schemas() {
    let doc = document().openrpc();
    assert_eq!(doc["openrpc"], "1.3.2");
    assert_eq!(
        doc["info"],
        json!({ "title": "Chat", "version": "1.2.0", "description": "A chat with rooms." })
    );
    assert_eq!(
        doc["servers"],
        json!([{ "name": "websocket", "url": "ws://127.0.0.1:8080/rpc" }])
    );
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chat.post",
            "chat.search",
            "chat.typing",
            "chat.leave",
            "chat.echo",
            "chat.activity",
            "chat.count",
            "chat.paste",
            "page.still_there",
            "page.message",
            "page.files"
        ]
    );

    // Positional params, an optional one last, a typed error with its schema, an alias, docs.
    let post = method(&doc, "chat.post");
    assert_eq!(post["summary"], "Posts a message; returns its sequence number.");
    assert_eq!(
        post["description"],
        "Posts a message; returns its sequence number.\n\nEmpty messages are refused."
    );
    assert_eq!(post["paramStructure"], "either");
    assert_eq!(
        post["params"],
        json!([
            { "name": "room", "required": true, "schema": { "type": "string" } },
            { "name": "text", "required": true, "schema": { "type": "string" } },
            {
                "name": "reply_to",
                "required": false,
                "schema": { "type": ["integer", "null"], "format": "uint64", "minimum": 0 }
            },
        ])
    );
    assert_eq!(
        post["result"],
        json!({ "name": "result", "schema": { "type": "integer", "format": "uint64", "minimum": 0 } })
    );
    assert_eq!(post["x-birpc-aliases"], json!(["chat.send"]));
    assert_eq!(post["x-birpc-direction"], "client-to-server");
    assert_eq!(post["tags"][0]["name"], "Chat");
    assert_eq!(post["tags"][0]["description"], "The chat the server exports.");
    assert_eq!(post["tags"][1]["name"], "client-to-server");
    let error = &post["x-birpc-error"];
    assert_eq!(error["name"], "ChatError");
    assert_eq!(error["schema"], json!({ "$ref": "#/components/schemas/ChatError" }));
    let chat_error = resolve(&doc, &error["schema"]).to_string();
    assert!(
        chat_error.contains("EmptyMessage") && chat_error.contains("TooLong"),
        "{chat_error}"
    );

    // Its typed client sends params by name; the server takes both forms, and so does the document.
    let search = method(&doc, "chat.search");
    assert_eq!(search["paramStructure"], "either");
    let required: Vec<&Value> = search["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["required"])
        .collect();
    assert_eq!(required, [&json!(true), &json!(false), &json!(false)]);
    let messages = &search["result"]["schema"];
    assert_eq!(messages["type"], "array");
    assert_eq!(messages["items"], json!({ "$ref": "#/components/schemas/Message" }));
    let message = &doc["components"]["schemas"]["Message"];
    assert_eq!(message["description"], "A message of the room.");
    assert_eq!(message["required"], json!(["author", "text"]));
    assert_eq!(message["properties"]["author"]["description"], "Who wrote it.");

    // A notification has no result; a method returning nothing answers null.
    let typing = method(&doc, "chat.typing");
    assert!(typing.get("result").is_none(), "{typing}");
    let leave = method(&doc, "chat.leave");
    assert_eq!(
        leave["params"].as_array().unwrap().len(),
        1,
        "the context is not a param"
    );
    assert_eq!(leave["result"]["schema"], json!({ "type": "null" }));
    assert!(leave.get("x-birpc-error").is_none());

    // Any JSON value: an empty schema, and a param that may be left out (it decodes from nothing).
    let echo = method(&doc, "chat.echo");
    assert_eq!(echo["params"][0]["schema"], json!(true));
    assert_eq!(echo["params"][0]["required"], false);

    // A stream method: answered with the stream's id, its items described by the extension.
    let activity = method(&doc, "chat.activity");
    assert_eq!(activity["result"]["name"], "subscription");
    assert_eq!(
        activity["result"]["schema"],
        json!({ "$ref": "#/components/schemas/birpc.StreamId" })
    );
    assert_eq!(
        activity["x-birpc-stream"]["item"],
        json!({ "$ref": "#/components/schemas/Activity" })
    );
    assert_eq!(activity["x-birpc-error"]["name"], "ChatError");
    let activity_schema = resolve(&doc, &activity["x-birpc-stream"]["item"]).to_string();
    assert!(activity_schema.contains("\"kind\""), "{activity_schema}");
    let count = method(&doc, "chat.count");
    assert_eq!(count["x-birpc-stream"]["item"]["format"], "uint32");
    assert!(
        count.get("x-birpc-error").is_none(),
        "items fail with error objects: no type of their own"
    );
    assert_eq!(
        doc["components"]["schemas"]["birpc.StreamId"]["type"],
        json!(["integer", "string"])
    );

    // An upload: the param's value is a stream id; its items' schema is in the extension. An error object
    // of the method's own making has no schema.
    let paste = method(&doc, "chat.paste");
    let lines = &paste["params"][1];
    assert_eq!(lines["name"], "lines");
    assert_eq!(lines["required"], true);
    assert_eq!(
        lines["schema"],
        json!({ "$ref": "#/components/schemas/birpc.StreamId" })
    );
    assert_eq!(lines["x-birpc-upload"], json!({ "item": { "type": "string" } }));
    assert!(paste.get("x-birpc-error").is_none());

    // The clients' methods: marked, tagged, with their own schemas.
    let still_there = method(&doc, "page.still_there");
    assert_eq!(still_there["x-birpc-direction"], "server-to-client");
    assert_eq!(still_there["tags"][0]["name"], "Page");
    assert_eq!(still_there["tags"][1]["name"], "server-to-client");
    assert_eq!(still_there["result"]["schema"], json!({ "type": "boolean" }));
    assert!(method(&doc, "page.message").get("result").is_none());
    assert_eq!(method(&doc, "page.files")["x-birpc-direction"], "server-to-client");

    // The extensions are declared, for validators.
    let declared: Vec<&str> = doc["x-extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "x-birpc-direction",
        "x-birpc-error",
        "x-birpc-stream",
        "x-birpc-upload",
        "x-birpc-aliases",
    ] {
        assert!(declared.contains(&name), "{name} is not declared: {declared:?}");
    }

    // Every reference resolves.
    assert_refs_resolve(&doc, &doc);
}

fn assert_refs_resolve(document: &Value, value: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(pointer)) = map.get("$ref") {
                assert!(
                    document.pointer(pointer.trim_start_matches('#')).is_some(),
                    "dangling $ref {pointer}"
                );
            }
            map.values().for_each(|v| assert_refs_resolve(document, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(document, v)),
        _ => {}
    }
}

#[test]
fn the_asyncapi_document_describes_both_directions() {
    let doc = document().asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["title"], "Chat");
    assert_eq!(
        doc["servers"]["websocket"],
        json!({ "host": "127.0.0.1:8080", "protocol": "ws", "title": "Chat" })
    );
    let channel = &doc["channels"]["rpc"];
    assert_eq!(channel["address"], "/rpc");
    let operations = doc["operations"].as_object().unwrap();
    let messages = &doc["components"]["messages"];

    // A request the server receives, with its replies: the result, its own error, any error.
    let post = &operations["chat.post"];
    assert_eq!(post["action"], "receive");
    assert_eq!(
        post["messages"],
        json!([{ "$ref": "#/channels/rpc/messages/chat.post.request" }])
    );
    assert_eq!(
        post["reply"]["messages"],
        json!([
            { "$ref": "#/channels/rpc/messages/chat.post.result" },
            { "$ref": "#/channels/rpc/messages/chat.post.error" },
            { "$ref": "#/channels/rpc/messages/birpc.error" },
        ])
    );
    let request = &messages["chat.post.request"]["payload"];
    assert_eq!(request["required"], json!(["jsonrpc", "id", "method", "params"]));
    assert_eq!(
        request["properties"]["method"],
        json!({ "enum": ["chat.post", "chat.send"] })
    );
    let [by_position, by_name] = request["properties"]["params"]["oneOf"].as_array().unwrap().as_slice() else {
        panic!("params by position or by name")
    };
    assert_eq!(by_position["minItems"], 2);
    assert_eq!(by_position["items"].as_array().unwrap().len(), 3);
    assert_eq!(by_name["required"], json!(["room", "text"]));
    assert_eq!(by_name["additionalProperties"], false);
    let search = &messages["chat.search.request"]["payload"]["properties"]["params"]["oneOf"];
    assert_eq!(search[0]["minItems"], 1);
    assert_eq!(search[1]["required"], json!(["room"]));
    assert_eq!(
        messages["chat.post.request"]["correlationId"]["location"],
        "$message.payload#/id"
    );
    let error = &messages["chat.post.error"]["payload"]["properties"]["error"]["allOf"][1]["properties"]["data"];
    assert_eq!(error, &json!({ "$ref": "#/components/schemas/ChatError" }));

    // No boolean schemas in AsyncAPI: any value is `{}`.
    let echo = &messages["chat.echo.request"]["payload"]["properties"]["params"]["oneOf"][0]["items"][0];
    assert_eq!(echo, &json!({}));

    // A notification has no reply.
    let typing = &operations["chat.typing"];
    assert_eq!(typing["action"], "receive");
    assert!(typing.get("reply").is_none());

    // Streams: items go the other way, and the protocol's messages where streams flow.
    assert_eq!(operations["chat.activity.items"]["action"], "send");
    let item = &messages["chat.activity.item"]["payload"]["properties"]["params"]["properties"];
    assert_eq!(item["result"], json!({ "$ref": "#/components/schemas/Activity" }));
    assert_eq!(operations["chat.paste.lines.upload"]["action"], "receive");
    assert_eq!(operations["page.files.items"]["action"], "receive");
    for (operation, action) in [
        ("birpc.stream.open.receive", "receive"),
        ("birpc.stream.open.send", "send"),
        ("birpc.stream.credit.receive", "receive"),
        ("birpc.stream.credit.send", "send"),
        ("birpc.stream.end.send", "send"),
        ("birpc.stream.end.receive", "receive"),
        ("birpc.stream.cancel.receive", "receive"),
        ("birpc.stream.cancel.send", "send"),
        ("birpc.cancelRequest.receive", "receive"),
        ("birpc.cancelRequest.send", "send"),
    ] {
        assert_eq!(operations[operation]["action"], action, "{operation}");
    }
    assert_eq!(
        messages["birpc.stream.credit"]["payload"]["properties"]["method"],
        json!({ "const": "$/stream.credit" })
    );

    // The server calls the clients' methods.
    let still_there = &operations["page.still_there"];
    assert_eq!(still_there["action"], "send");
    assert_eq!(still_there["tags"][1]["name"], "server-to-client");
    assert_eq!(operations["page.message"]["action"], "send");

    // Every operation's messages are its channel's, and every reference resolves.
    let channel_messages = channel["messages"].as_object().unwrap();
    for (key, operation) in operations {
        let refs = operation["messages"]
            .as_array()
            .unwrap()
            .iter()
            .chain(operation["reply"]["messages"].as_array().into_iter().flatten());
        for reference in refs {
            let pointer = reference["$ref"].as_str().unwrap();
            let name = pointer.strip_prefix("#/channels/rpc/messages/").expect(key);
            assert!(channel_messages.contains_key(name), "{key}: {pointer}");
        }
    }
    assert_refs_resolve(&doc, &doc);
}

#[test]
fn a_document_of_services_without_streams_has_no_stream_protocol() {
    #[allow(dead_code, reason = "described, never served")]
    #[birpc::rpc(openrpc)]
    trait Clock {
        async fn now(&self) -> u64;
    }
    let document = Document::new("Clock", "1").server(ClockMethods::openrpc());
    let openrpc = document.openrpc();
    assert!(openrpc.get("servers").is_none());
    assert!(openrpc["components"]["schemas"].as_object().unwrap().is_empty());
    let asyncapi = document.asyncapi();
    let mut operations: Vec<&String> = asyncapi["operations"].as_object().unwrap().keys().collect();
    operations.sort();
    assert_eq!(operations, ["birpc.cancelRequest.receive", "now"]);
    assert!(asyncapi.get("servers").is_none());
    assert!(asyncapi["channels"]["rpc"].get("address").is_none());
}

#[test]
#[should_panic(expected = "the method `ping` is described twice")]
fn a_name_described_twice_is_refused() {
    let service = || Service::new("Ping", "").method(Method::new("ping"));
    let _ = Document::new("Ping", "1").server(service()).client(service());
}

#[test]
fn hand_made_descriptions_and_names_asyncapi_cannot_key() {
    let service = Service::new("Odd", "Methods named oddly.")
        .method(
            Method::new("a b/c")
                .param(
                    Param::of::<serde_json::Value>("value")
                        .required(true)
                        .description("Any value."),
                )
                .returns::<String>()
                .error::<String>(),
        )
        .method(Method::new("a_b_c").notification())
        .method(
            Method::new("page")
                .param(Param::of::<Option<u32>>("from"))
                .param(Param::of::<u32>("count"))
                .returns::<Vec<u32>>(),
        );
    let document = Document::new("Odd", "1").server(service);
    let openrpc = document.openrpc();
    let first = &openrpc["methods"][0];
    assert_eq!(first["params"][0]["required"], true);
    assert_eq!(first["params"][0]["description"], "Any value.");
    assert_eq!(first["x-birpc-error"]["schema"], json!({ "type": "string" }));
    // An `Option` before a required param is required by position (OpenRPC wants required params first),
    // though it may be left out by name.
    let page = &openrpc["methods"][2];
    assert_eq!(page["params"][0]["required"], true);
    assert_eq!(page["params"][1]["required"], true);
    let asyncapi = document.asyncapi();
    let params = &asyncapi["components"]["messages"]["page.request"]["payload"]["properties"]["params"]["oneOf"];
    assert_eq!(params[0]["minItems"], 2);
    assert_eq!(params[1]["required"], json!(["count"]));
    let operations = asyncapi["operations"].as_object().unwrap();
    assert!(operations.contains_key("a_b_c"));
    assert!(operations.contains_key("a_b_c_2"));
    assert_eq!(
        asyncapi["components"]["messages"]["a_b_c.request"]["payload"]["properties"]["method"]["const"],
        "a b/c"
    );
    assert_eq!(
        asyncapi["components"]["messages"]["a_b_c_2.notification"]["payload"]["properties"]["method"]["const"],
        "a_b_c"
    );
}

struct Room;

impl Chat for Room {
    async fn post(&self, _room: String, text: String, _reply_to: Option<u64>) -> Result<u64, ChatError> {
        if text.is_empty() {
            Err(ChatError::EmptyMessage)
        } else {
            Ok(1)
        }
    }
    async fn search(&self, _room: String, _query: Option<String>, _limit: Option<u32>) -> Vec<Message> {
        Vec::new()
    }
    async fn typing(&self, _room: String) {}
    async fn leave(&self, _ctx: &Context, _room: String) {}
    async fn echo(&self, value: serde_json::Value) -> serde_json::Value {
        value
    }
    async fn activity(&self, _room: String) -> Result<ItemStream<Activity, ChatError>, ChatError> {
        Err(ChatError::TooLong { max: 0 })
    }
    async fn count(&self, n: u32) -> ItemStream<u32> {
        ItemStream::new(futures::stream::iter((0..n).map(Ok)))
    }
    async fn paste(&self, _room: String, _lines: Upload<String>) -> Result<u32, ErrorObject> {
        Ok(0)
    }
}

#[tokio::test]
async fn rpc_discover_answers_the_document() {
    let document = document();
    let expected = document.openrpc();
    let (server, client) = birpc::memory::pair(64);
    let _server = Peer::builder()
        .router(Room.into_router().merge(document.router()))
        .spawn(server);
    let client = Peer::builder().spawn(client);
    let answer: Value = client.call("rpc.discover", ()).await.unwrap();
    assert_eq!(answer, expected);
    let by_position: Value = client.call("rpc.discover", [(); 0]).await.unwrap();
    assert_eq!(by_position, expected);
    // It takes no params.
    let refused = client.call::<Value>("rpc.discover", [1]).await.unwrap_err();
    assert_eq!(refused.error_object().map(ErrorObject::code), Some(-32602), "{refused}");
}

/// Node.js, if it runs here.
fn node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_validators_accept_the_documents() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packages = root.join("tests/schemas/node_modules");
    if !node() {
        common::skip_or_fail("validating the documents needs Node.js 20 or later (Debian: apt-get install nodejs)");
        return;
    }
    if !packages.join("@asyncapi/parser").exists() || !packages.join("@open-rpc/schema-utils-js").exists() {
        common::skip_or_fail("validating the documents needs its npm packages: npm ci --prefix tests/schemas");
        return;
    }
    let dir = std::env::temp_dir().join(format!("birpc-openrpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        path
    };
    let document = document();
    let mut files = vec![
        ("openrpc", write("chat.openrpc.json", &document.openrpc())),
        ("asyncapi", write("chat.asyncapi.json", &document.asyncapi())),
    ];

    // The interop server's, as rpc.discover answers it and as --describe prints them.
    let (mut server, addr) = common::interop_server().await;
    let peer = Client::builder().connect(&format!("ws://{addr}")).await.unwrap();
    let discovered: Value = peer.call("rpc.discover", ()).await.unwrap();
    assert_eq!(discovered["info"]["title"], "birpc interop server");
    assert!(method(&discovered, "sum_upload")["params"][0]["x-birpc-upload"].is_object());
    assert!(method(&discovered, "ticks")["x-birpc-stream"].is_object());
    files.push(("openrpc", write("interop.discovered.openrpc.json", &discovered)));
    let _ = server.kill().await;
    let describe = |what: &str| {
        let out = Command::new(common::example("interop_server"))
            .args(["--describe", what])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--describe {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let printed = describe("openrpc");
    assert_eq!(
        printed, discovered,
        "--describe openrpc prints what rpc.discover answers"
    );
    files.push(("asyncapi", write("interop.asyncapi.json", &describe("asyncapi"))));

    let mut command = Command::new("node");
    command.arg(root.join("tests/schemas/validate.mjs"));
    for (kind, path) in &files {
        command.arg(format!("{kind}={}", path.display()));
    }
    let status = common::run_bounded(command, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the validators refused a document ({status})");
}
