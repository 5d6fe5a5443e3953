//! AsyncAPI 3.0 documents of a birpc WebSocket endpoint, rendered from the same description as the
//! OpenRPC ones: [`openrpc::Document::asyncapi`](crate::openrpc::Document::asyncapi).
//!
//! AsyncAPI describes the messages of the connection both ways, where OpenRPC describes calls. The
//! document is written from the server's side: `receive` operations are what a client sends to the server,
//! `send` operations what the server sends to a client. The connection is one channel (`rpc`), at the
//! endpoint's path, on which:
//!
//! - each method the server exports is a `receive` operation of its request (the JSON-RPC envelope, with
//!   its params by position or by name), whose reply is its result, its own error (when it has a type of
//!   its own) or any error object; a notification has no reply;
//! - each method the clients export is the same as a `send` operation: the server calls the client;
//! - a stream method adds the operation of its items (notifications of the method's name,
//!   `{"subscription": id, "result": item}`) in the other direction, and an upload param the operation of
//!   its items in the caller's direction;
//! - the messages of the stream protocol (`$/stream.open`, `$/stream.credit`, `$/stream.end`,
//!   `$/stream.cancel`, `docs/streams.md`), in each direction where a stream may flow, and
//!   `$/cancelRequest`, with which a caller withdraws its call.
//!
//! Requests and their answers correlate by the JSON-RPC id (`correlationId` `$message.payload#/id`),
//! stream messages by the stream's id. Schemas are JSON Schema draft 7 without boolean schemas (AsyncAPI's
//! schema format), shared ones under `components.schemas`.
//!
//! ```
//! use birpc::openrpc::Document;
//!
//! #[birpc::rpc(openrpc)]
//! trait Clock {
//!     /// The time, in seconds since the epoch.
//!     async fn now(&self) -> u64;
//! }
//!
//! let asyncapi = Document::new("Clock", "1.0.0").server(ClockMethods::openrpc()).asyncapi();
//! assert_eq!(asyncapi["operations"]["now"]["action"], "receive");
//! assert_eq!(asyncapi["components"]["messages"]["now.request"]["payload"]["properties"]["method"]["const"], "now");
//! ```

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::openrpc::{Direction, Document, Rendered, RenderedMethod, describe, reference};

/// The AsyncAPI version documents are written in.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The one channel: the WebSocket connection.
const CHANNEL: &str = "rpc";

/// Renders `document` as AsyncAPI 3.0; the same as [`Document::asyncapi`].
pub fn render(document: &Document) -> Value {
    let mut rendered = Rendered::new(document, true);
    let mut out = Out::default();
    let mut flows = Flows::default();
    for method in &rendered.methods {
        out.method(method, &mut flows);
    }
    out.protocol(&flows);
    builtin_schemas(&mut rendered.schemas);

    let mut root = Map::new();
    root.insert("asyncapi".into(), ASYNCAPI_VERSION.into());
    let mut info = document.info();
    let note = "Written from the server's side: `receive` operations are what a client sends to the server, `send` \
                operations what the server sends to a client. Either side calls the other over the same \
                WebSocket connection.";
    info["description"] = match info.get("description").and_then(Value::as_str) {
        Some(description) => format!("{description}\n\n{note}").into(),
        None => note.into(),
    };
    root.insert("info".into(), info);
    let mut channel = json!({
        "title": "JSON-RPC 2.0 over WebSocket",
        "description": "One WebSocket connection per client, carrying JSON-RPC 2.0 messages (text frames) both \
                        ways: either side sends requests and notifications, and answers the other's requests, \
                        matched by id.",
        "bindings": { "ws": { "method": "GET", "bindingVersion": "0.1.0" } },
    });
    if let Some(url) = document.endpoint_url() {
        let (protocol, host, path) = split_url(url);
        root.insert(
            "servers".into(),
            json!({ "websocket": { "host": host, "protocol": protocol, "title": document.title() } }),
        );
        channel["address"] = path.into();
    }
    root.insert("defaultContentType".into(), "application/json".into());
    channel["messages"] = Value::Object(out.channel_messages);
    root.insert("channels".into(), json!({ CHANNEL: channel }));
    root.insert("operations".into(), Value::Object(out.operations));
    root.insert(
        "components".into(),
        json!({ "schemas": rendered.schemas, "messages": out.messages }),
    );
    Value::Object(root)
}

/// `ws://host:port/path` -> (`ws`, `host:port`, `/path`).
fn split_url(url: &str) -> (&str, &str, String) {
    let (protocol, rest) = url.split_once("://").unwrap_or(("ws", url));
    let (host, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    (protocol, host, path.to_owned())
}

/// Which ways streams flow, to describe the stream protocol's messages where they travel.
#[derive(Default)]
struct Flows {
    /// Stream methods the server exports: their items go to clients.
    server_downloads: bool,
    /// Stream methods the clients export.
    client_downloads: bool,
    /// Uploads to the server's methods.
    server_uploads: bool,
    /// Uploads to the clients' methods.
    client_uploads: bool,
    /// Requests each way, for `$/cancelRequest`.
    requests_to_server: bool,
    requests_to_client: bool,
}

/// What the server does with the messages of one direction of a call.
fn action(direction: Direction, caller: bool) -> &'static str {
    match (direction, caller) {
        (Direction::ClientToServer, true) | (Direction::ServerToClient, false) => "receive",
        (Direction::ClientToServer, false) | (Direction::ServerToClient, true) => "send",
    }
}

/// The keys of birpc's own messages and operations, kept from the services' methods.
const RESERVED: &[&str] = &[
    "birpc.error",
    "birpc.cancelRequest",
    "birpc.cancelRequest.receive",
    "birpc.cancelRequest.send",
    "birpc.stream.open",
    "birpc.stream.credit",
    "birpc.stream.end",
    "birpc.stream.cancel",
    "birpc.stream.open.receive",
    "birpc.stream.open.send",
    "birpc.stream.credit.receive",
    "birpc.stream.credit.send",
    "birpc.stream.end.receive",
    "birpc.stream.end.send",
    "birpc.stream.cancel.receive",
    "birpc.stream.cancel.send",
];

struct Out {
    messages: Map<String, Value>,
    channel_messages: Map<String, Value>,
    operations: Map<String, Value>,
    /// Every key given out, messages' and operations' (and birpc's own).
    keys: HashSet<String>,
    /// The methods' keys, which their messages' and operations' begin with.
    bases: HashSet<String>,
}

impl Default for Out {
    fn default() -> Self {
        Self {
            messages: Map::new(),
            channel_messages: Map::new(),
            operations: Map::new(),
            keys: RESERVED.iter().map(|key| (*key).to_owned()).collect(),
            bases: HashSet::new(),
        }
    }
}

/// `name` in the characters AsyncAPI allows in keys.
fn clean(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() { "method".to_owned() } else { clean }
}

impl Out {
    /// `wanted`, or `wanted_2`, ...: a key no message or operation has. birpc's own keys are `RESERVED`.
    fn key(&mut self, wanted: &str) -> String {
        let mut key = wanted.to_owned();
        let mut n = 2;
        while self.keys.contains(&key) {
            key = format!("{wanted}_{n}");
            n += 1;
        }
        self.keys.insert(key.clone());
        key
    }

    /// Adds a message under a fresh key made from `wanted`, or under `RESERVED` key `wanted`; returns its key.
    fn message(&mut self, wanted: &str, message: Value) -> String {
        let key = if RESERVED.contains(&wanted) {
            wanted.to_owned()
        } else {
            self.key(wanted)
        };
        self.messages.insert(key.clone(), message);
        self.channel_messages
            .insert(key.clone(), json!({ "$ref": format!("#/components/messages/{key}") }));
        key
    }

    fn operation(
        &mut self,
        wanted: &str,
        action: &str,
        messages: &[&str],
        reply: Option<&[&str]>,
        about: Map<String, Value>,
    ) {
        let key = if RESERVED.contains(&wanted) {
            wanted.to_owned()
        } else {
            self.key(wanted)
        };
        let refs = |keys: &[&str]| -> Vec<Value> {
            keys.iter()
                .map(|key| json!({ "$ref": format!("#/channels/{CHANNEL}/messages/{key}") }))
                .collect()
        };
        let mut operation = about;
        operation.insert("action".into(), action.into());
        operation.insert("channel".into(), json!({ "$ref": format!("#/channels/{CHANNEL}") }));
        operation.insert("messages".into(), refs(messages).into());
        if let Some(reply) = reply {
            operation.insert(
                "reply".into(),
                json!({ "channel": { "$ref": format!("#/channels/{CHANNEL}") }, "messages": refs(reply) }),
            );
        }
        self.operations.insert(key, Value::Object(operation));
    }

    fn method(&mut self, method: &RenderedMethod<'_>, flows: &mut Flows) {
        let name = method.name();
        let wanted = clean(name);
        let mut base = wanted.clone();
        let mut n = 2;
        while self.bases.contains(&base) {
            base = format!("{wanted}_{n}");
            n += 1;
        }
        self.bases.insert(base.clone());
        let direction = method.direction;
        let mut about = Map::new();
        about.insert("title".into(), name.into());
        describe(&mut about, method.docs());
        about.insert("tags".into(), method.tags());
        let method_name = if method.aliases().is_empty() {
            json!({ "const": name })
        } else {
            let mut names = vec![Value::from(name)];
            names.extend(method.aliases().iter().map(|alias| Value::from(alias.as_str())));
            json!({ "enum": names })
        };
        let (params, params_required) = params_schema(method);
        let from = match direction {
            Direction::ClientToServer => "a client to the server",
            Direction::ServerToClient => "the server to a client",
        };

        if method.notification() {
            let mut payload = envelope(&[("method", method_name)], &["method"]);
            add_params(&mut payload, params, params_required);
            let key = self.message(
                &format!("{base}.notification"),
                json!({
                    "name": name,
                    "title": format!("{name} (notification)"),
                    "summary": format!("The notification {name}, from {from}: it gets no answer."),
                    "payload": payload,
                }),
            );
            self.operation(&base, action(direction, true), &[&key], None, about);
            return;
        }

        match direction {
            Direction::ClientToServer => flows.requests_to_server = true,
            Direction::ServerToClient => flows.requests_to_client = true,
        }
        let mut payload = envelope(
            &[("id", reference("birpc.RequestId")), ("method", method_name)],
            &["id", "method"],
        );
        add_params(&mut payload, params, params_required);
        let request = self.message(
            &format!("{base}.request"),
            json!({
                "name": name,
                "title": format!("{name} (request)"),
                "summary": format!("A call of {name}, from {from}."),
                "payload": payload,
                "correlationId": correlation(),
            }),
        );
        let (result_schema, result_summary) = if method.stream() {
            (
                reference("birpc.StreamId"),
                format!("{name} opened its stream: the result is the stream's id, and its items follow."),
            )
        } else {
            (method.result.clone(), format!("The answer of {name}."))
        };
        let result = self.message(
            &format!("{base}.result"),
            json!({
                "name": name,
                "title": format!("{name} (result)"),
                "summary": result_summary,
                "payload": envelope(&[("id", reference("birpc.RequestId")), ("result", result_schema)], &["id", "result"]),
                "correlationId": correlation(),
            }),
        );
        let mut replies = vec![result];
        if let Some((error_name, data)) = &method.error {
            let error = json!({
                "allOf": [reference("birpc.ErrorObject"), { "type": "object", "properties": { "data": data } }],
            });
            let key = self.message(
                &format!("{base}.error"),
                json!({
                    "name": name,
                    "title": format!("{name} (its own error)"),
                    "summary": format!("{name} failed with its own error, a {error_name}, in the error's data."),
                    "payload": envelope(&[("id", reference("birpc.RequestId")), ("error", error)], &["id", "error"]),
                    "correlationId": correlation(),
                }),
            );
            replies.push(key);
        }
        replies.push("birpc.error".to_owned());
        let reply: Vec<&str> = replies.iter().map(String::as_str).collect();
        self.operation(&base, action(direction, true), &[&request], Some(&reply), about);

        if method.stream() {
            match direction {
                Direction::ClientToServer => flows.server_downloads = true,
                Direction::ServerToClient => flows.client_downloads = true,
            }
            let key = self.message(
                &format!("{base}.item"),
                json!({
                    "name": name,
                    "title": format!("{name} (stream item)"),
                    "summary": format!("One item of a stream {name} opened, within the credit its consumer granted."),
                    "payload": item_envelope(name, method.result.clone()),
                    "correlationId": stream_correlation(),
                }),
            );
            let mut about = Map::new();
            about.insert("title".into(), format!("{name} items").into());
            about.insert(
                "summary".into(),
                format!("The items of the streams of {name}, from the method's side to its caller.").into(),
            );
            about.insert("tags".into(), method.tags());
            self.operation(&format!("{base}.items"), action(direction, false), &[&key], None, about);
        }
        for (param, item) in method.params.iter().filter(|(param, _)| param.upload) {
            match direction {
                Direction::ClientToServer => flows.server_uploads = true,
                Direction::ServerToClient => flows.client_uploads = true,
            }
            let param_name = &param.name;
            let key = self.message(
                &format!("{base}.{}.item", clean(param_name)),
                json!({
                    "name": name,
                    "title": format!("{name} (item of the upload {param_name})"),
                    "summary": format!(
                        "One item of the upload {param_name} of a call of {name}, from the caller, within the \
                         credit the method granted."
                    ),
                    "payload": item_envelope(name, item.clone()),
                    "correlationId": stream_correlation(),
                }),
            );
            let mut about = Map::new();
            about.insert("title".into(), format!("{name} upload {param_name}").into());
            about.insert(
                "summary".into(),
                format!("The items the caller of {name} uploads as {param_name}, while the call runs.").into(),
            );
            about.insert("tags".into(), method.tags());
            self.operation(
                &format!("{base}.{}.upload", clean(param_name)),
                action(direction, true),
                &[&key],
                None,
                about,
            );
        }
    }

    /// The messages every call may meet, and those of the stream protocol where streams flow.
    fn protocol(&mut self, flows: &Flows) {
        self.message(
            "birpc.error",
            json!({
                "name": "error",
                "title": "error",
                "summary": "A request failed: any JSON-RPC error object (invalid params, method not found, busy, \
                            ...; id null when the request could not be read).",
                "payload": envelope(
                    &[("id", reference("birpc.RequestId")), ("error", reference("birpc.ErrorObject"))],
                    &["id", "error"],
                ),
                "correlationId": correlation(),
            }),
        );
        let generic = |summary: &str| {
            let mut about = Map::new();
            about.insert("summary".into(), summary.into());
            about.insert(
                "tags".into(),
                json!([{ "name": "birpc", "description": "birpc's own protocol." }]),
            );
            about
        };
        let cancel_request = envelope(
            &[
                ("method", json!({ "const": "$/cancelRequest" })),
                (
                    "params",
                    json!({
                        "type": "object",
                        "required": ["id"],
                        "properties": { "id": reference("birpc.RequestId") },
                    }),
                ),
            ],
            &["method", "params"],
        );
        self.message(
            "birpc.cancelRequest",
            json!({
                "name": "$/cancelRequest",
                "title": "$/cancelRequest",
                "summary": "The caller withdraws its request of that id: a waiting request never runs, a running one \
                            is stopped; either is answered -32800.",
                "payload": cancel_request,
                "correlationId": { "location": "$message.payload#/params/id" },
            }),
        );
        if flows.requests_to_server {
            self.operation(
                "birpc.cancelRequest.receive",
                "receive",
                &["birpc.cancelRequest"],
                None,
                generic("A client withdraws a call to the server."),
            );
        }
        if flows.requests_to_client {
            self.operation(
                "birpc.cancelRequest.send",
                "send",
                &["birpc.cancelRequest"],
                None,
                generic("The server withdraws a call to a client."),
            );
        }

        let produces = flows.server_downloads || flows.client_uploads;
        let consumes = flows.client_downloads || flows.server_uploads;
        if !(produces || consumes) {
            return;
        }
        let stream_params = |properties: Value, required: &[&str]| json!({ "type": "object", "required": required, "properties": properties });
        let notification = |method: &str, params: Value| {
            envelope(
                &[("method", json!({ "const": method })), ("params", params)],
                &["method", "params"],
            )
        };
        let open = notification(
            "$/stream.open",
            stream_params(
                json!({
                    "id": reference("birpc.RequestId"),
                    "window": { "type": "integer", "minimum": 1, "maximum": 2_147_483_647_i64 },
                }),
                &["id", "window"],
            ),
        );
        let credit = notification(
            "$/stream.credit",
            stream_params(
                json!({
                    "subscription": reference("birpc.StreamId"),
                    "credit": { "type": "integer", "minimum": 1, "maximum": 2_147_483_647_i64 },
                }),
                &["subscription", "credit"],
            ),
        );
        let end = notification(
            "$/stream.end",
            stream_params(
                json!({ "subscription": reference("birpc.StreamId"), "error": reference("birpc.ErrorObject") }),
                &["subscription"],
            ),
        );
        let cancel = notification(
            "$/stream.cancel",
            json!({
                "oneOf": [
                    stream_params(json!({ "subscription": reference("birpc.StreamId") }), &["subscription"]),
                    { "type": "array", "items": [reference("birpc.StreamId")], "minItems": 1, "maxItems": 1 },
                ],
            }),
        );
        let messages = [
            (
                "birpc.stream.open",
                "$/stream.open",
                "Sent by a consumer right before the request of that id opens a download: it grants `window` items of \
                 credit to start with.",
                open,
                json!({ "location": "$message.payload#/params/id" }),
            ),
            (
                "birpc.stream.credit",
                "$/stream.credit",
                "The consumer lets the producer send `credit` more items.",
                credit,
                stream_correlation(),
            ),
            (
                "birpc.stream.end",
                "$/stream.end",
                "The producer's stream ended (after its last item), with its error if it failed.",
                end,
                stream_correlation(),
            ),
            (
                "birpc.stream.cancel",
                "$/stream.cancel",
                "The consumer wants no more items (also a request, answered whether the stream was live).",
                cancel,
                json!({ "location": "$message.payload#/params" }),
            ),
        ];
        for (key, name, summary, payload, correlation) in messages {
            self.message(
                key,
                json!({ "name": name, "title": name, "summary": summary, "payload": payload, "correlationId": correlation }),
            );
        }
        if flows.server_downloads {
            self.operation(
                "birpc.stream.open.receive",
                "receive",
                &["birpc.stream.open"],
                None,
                generic("A client announces a download from the server, with its credit."),
            );
        }
        if flows.client_downloads {
            self.operation(
                "birpc.stream.open.send",
                "send",
                &["birpc.stream.open"],
                None,
                generic("The server announces a download from a client, with its credit."),
            );
        }
        if produces {
            self.operation(
                "birpc.stream.credit.receive",
                "receive",
                &["birpc.stream.credit"],
                None,
                generic("A client grants credit to a stream the server produces."),
            );
            self.operation(
                "birpc.stream.end.send",
                "send",
                &["birpc.stream.end"],
                None,
                generic("The server ends a stream it produces."),
            );
            self.operation(
                "birpc.stream.cancel.receive",
                "receive",
                &["birpc.stream.cancel"],
                None,
                generic("A client cancels a stream the server produces."),
            );
        }
        if consumes {
            self.operation(
                "birpc.stream.credit.send",
                "send",
                &["birpc.stream.credit"],
                None,
                generic("The server grants credit to a stream a client produces."),
            );
            self.operation(
                "birpc.stream.end.receive",
                "receive",
                &["birpc.stream.end"],
                None,
                generic("A client ends a stream it produces."),
            );
            self.operation(
                "birpc.stream.cancel.send",
                "send",
                &["birpc.stream.cancel"],
                None,
                generic("The server cancels a stream a client produces."),
            );
        }
    }
}

/// A JSON-RPC 2.0 message: `jsonrpc` and `members`.
fn envelope(members: &[(&str, Value)], required: &[&str]) -> Value {
    let mut properties = Map::new();
    properties.insert("jsonrpc".into(), json!({ "const": "2.0" }));
    for (name, schema) in members {
        properties.insert((*name).to_owned(), schema.clone());
    }
    let mut all = vec!["jsonrpc"];
    all.extend_from_slice(required);
    json!({ "type": "object", "required": all, "properties": properties })
}

fn add_params(payload: &mut Value, params: Value, required: bool) {
    payload["properties"]["params"] = params;
    if required && let Some(list) = payload["required"].as_array_mut() {
        list.push("params".into());
    }
}

/// A stream item: a notification of `method`, `{"subscription": id, "result": item}`.
fn item_envelope(method: &str, item: Value) -> Value {
    envelope(
        &[
            ("method", json!({ "const": method })),
            (
                "params",
                json!({
                    "type": "object",
                    "required": ["subscription", "result"],
                    "properties": { "subscription": reference("birpc.StreamId"), "result": item },
                }),
            ),
        ],
        &["method", "params"],
    )
}

/// The params of a request or notification, by position or by name, and whether they must be there.
fn params_schema(method: &RenderedMethod<'_>) -> (Value, bool) {
    if method.params.is_empty() {
        let none = json!({
            "description": "No params: the member is absent, [] or {}.",
            "oneOf": [{ "type": "array", "maxItems": 0 }, { "type": "object", "maxProperties": 0 }],
        });
        return (none, false);
    }
    let schemas: Vec<(&str, Value, bool)> = method
        .params
        .iter()
        .map(|(param, schema)| {
            let schema = if param.upload {
                reference("birpc.StreamId")
            } else {
                schema.clone()
            };
            (param.name.as_str(), schema, param.required)
        })
        .collect();
    let positional = json!({
        "title": "by position",
        "type": "array",
        "items": schemas.iter().map(|(_, schema, _)| schema.clone()).collect::<Vec<_>>(),
        "additionalItems": false,
        "minItems": method.required_positional,
    });
    let properties: Map<String, Value> = schemas
        .iter()
        .map(|(name, schema, _)| ((*name).to_owned(), schema.clone()))
        .collect();
    let required: Vec<&str> = schemas
        .iter()
        .filter(|(_, _, required)| *required)
        .map(|(name, _, _)| *name)
        .collect();
    let named = json!({
        "title": "by name",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    let any_required = method.required_positional > 0 || !required.is_empty();
    (json!({ "oneOf": [positional, named] }), any_required)
}

fn correlation() -> Value {
    json!({ "description": "The request's id, which its answer echoes.", "location": "$message.payload#/id" })
}

fn stream_correlation() -> Value {
    json!({ "description": "The stream's id.", "location": "$message.payload#/params/subscription" })
}

fn builtin_schemas(schemas: &mut Map<String, Value>) {
    schemas.insert(
        "birpc.RequestId".into(),
        json!({
            "description": "A request's id, which its answer echoes: a string or a number (null only in an error \
                            answering a request that could not be read).",
            "type": ["string", "number", "null"],
        }),
    );
    schemas.insert(
        "birpc.ErrorObject".into(),
        json!({
            "description": "A JSON-RPC 2.0 error object.",
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "integer" },
                "message": { "type": "string" },
                "data": {},
            },
        }),
    );
    schemas.entry("birpc.StreamId").or_insert_with(
        || json!({ "description": "A stream's id, chosen by its producer.", "type": ["integer", "string"] }),
    );
}
