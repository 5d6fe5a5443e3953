//! OpenRPC documents of a WebSocket endpoint, with JSON Schemas of every param, result and error, and the
//! `rpc.discover` method that serves them; the same description renders as AsyncAPI ([`crate::asyncapi`]).
//!
//! Mark a trait `#[birpc::rpc(openrpc)]` and derive [`JsonSchema`] (with
//! `#[schemars(crate = "birpc::schemars")]`) on the serde types it uses: `<Trait>Methods::openrpc()` then
//! describes the service. A [`Document`] gathers the services the server exports and those its clients
//! export (the server calls them back over each client's connection), and renders an OpenRPC 1.3 document:
//!
//! ```
//! use birpc::openrpc::Document;
//! use birpc::{ItemStream, Upload};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, birpc::JsonSchema)]
//! #[schemars(crate = "birpc::schemars")]
//! enum ChatError {
//!     EmptyMessage,
//! }
//!
//! /// What the server exports.
//! #[birpc::rpc(namespace = "chat", openrpc)]
//! trait Chat {
//!     /// Posts a message; returns its sequence number.
//!     async fn post(&self, text: String, reply_to: Option<u64>) -> Result<u64, ChatError>;
//!     /// The room's messages, as they come.
//!     async fn follow(&self, room: String) -> ItemStream<String>;
//!     /// Posts every line the caller uploads; returns how many.
//!     async fn paste(&self, lines: Upload<String>) -> u64;
//! }
//!
//! /// What each client exports, for the server to call.
//! #[birpc::rpc(namespace = "page", openrpc)]
//! trait Page {
//!     /// Are you still there?
//!     async fn still_there(&self) -> bool;
//! }
//!
//! let document = Document::new("Chat", "1.0.0")
//!     .endpoint("ws://127.0.0.1:8080/rpc")
//!     .server(ChatMethods::openrpc())
//!     .client(PageMethods::openrpc());
//! let openrpc = document.openrpc();
//! assert_eq!(openrpc["openrpc"], "1.3.2");
//! let post = &openrpc["methods"][0];
//! assert_eq!(post["name"], "chat.post");
//! assert_eq!(post["params"][1]["required"], false); // an `Option` may be left out
//! assert_eq!(post["result"]["schema"]["type"], "integer");
//! assert_eq!(post["x-birpc-error"]["schema"]["$ref"], "#/components/schemas/ChatError");
//! assert_eq!(openrpc["methods"][1]["x-birpc-stream"]["item"]["type"], "string");
//! assert_eq!(openrpc["methods"][2]["params"][0]["x-birpc-upload"]["item"]["type"], "string");
//! // The clients' methods are marked: the server calls them.
//! assert_eq!(openrpc["methods"][3]["x-birpc-direction"], "server-to-client");
//! // The same description as AsyncAPI 3.0: both directions of the WebSocket.
//! assert_eq!(document.asyncapi()["asyncapi"], "3.0.0");
//! ```
//!
//! [`Document::router`] exports `rpc.discover` (OpenRPC's service discovery method), answering the
//! document: merge it into the server's router.
//!
//! # What the document says
//!
//! - Each method's params, by position or by name (`paramStructure: "either"`: birpc accepts both). A
//!   param is `required` unless its type decodes from nothing (an `Option`, say: the server takes a missing
//!   param as `null`) and every param after it may be left out too, as OpenRPC wants required params
//!   first.
//! - Its result; none for a notification (OpenRPC's mark of one).
//! - Extensions, declared in the document's `x-extensions` (the OpenRPC Specification Extension format,
//!   so that validators check them):
//!   - `x-birpc-direction` on every method: `"client-to-server"` for the methods the server exports,
//!     `"server-to-client"` for those every client must export for the server to call. Each method is also
//!     tagged with its direction and with its service (the trait's name and documentation).
//!   - `x-birpc-error`: a method's own error type (`Result<T, E>`), `{"name", "schema"}`: the schema of
//!     the `data` of the error object it fails with (code -32000 unless `E` implements
//!     [`RpcError`](crate::RpcError)). OpenRPC's own error objects carry values, not schemas.
//!   - `x-birpc-stream` on a stream method: `{"item": schema}`. The method's result is what the request
//!     is answered with, the stream's id; the items follow as notifications under the method's name,
//!     `{"subscription": id, "result": item}` (`docs/streams.md`).
//!   - `x-birpc-upload` on an upload param: `{"item": schema}`; the param's value is the id of the stream
//!     of items the caller sends.
//!   - `x-birpc-aliases`: a method's other wire names.
//!
//! Schemas follow JSON Schema draft 7, shared ones under `components.schemas` (`$ref`), and describe
//! values as their receiver decodes them (serde's deserialization). Method names must be unique in an
//! OpenRPC document, so a document cannot hold the same wire name twice, even in both directions.

use std::borrow::Cow;
use std::collections::HashSet;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::ReplaceBoolSchemas;
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::{Context, ErrorObject, NoParams, Router};

/// The OpenRPC version documents are written in.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// Where shared schemas live, in both OpenRPC and AsyncAPI documents.
const SCHEMAS: &str = "#/components/schemas/";

/// The JSON Schema of a Rust type, generated when a document is rendered.
#[derive(Clone, Copy)]
pub struct TypeSchema {
    generate: fn(&mut SchemaGenerator) -> Schema,
    name: fn() -> Cow<'static, str>,
}

impl TypeSchema {
    /// The schema of `T`.
    pub fn of<T: JsonSchema + ?Sized>() -> Self {
        Self {
            generate: |generator| generator.subschema_for::<T>(),
            name: T::schema_name,
        }
    }

    /// The type's schema name (`String`, `ChatError`, ...).
    pub fn name(&self) -> Cow<'static, str> {
        (self.name)()
    }
}

impl std::fmt::Debug for TypeSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypeSchema").field(&self.name()).finish()
    }
}

/// One param of a method.
#[derive(Debug, Clone)]
pub struct Param {
    pub(crate) name: String,
    schema: TypeSchema,
    /// Whether it may not be left out by name (by position, no param before a required one may be).
    pub(crate) required: bool,
    pub(crate) upload: bool,
    description: Option<String>,
}

impl Param {
    /// The param `name`, of type `T`: required unless `T` decodes from nothing (as an `Option` does), as
    /// birpc's server decodes a missing param.
    pub fn of<T: JsonSchema + DeserializeOwned>(name: impl Into<String>) -> Self {
        let missing = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
        Self {
            name: name.into(),
            schema: TypeSchema::of::<T>(),
            required: T::deserialize(missing).is_err(),
            upload: false,
            description: None,
        }
    }

    /// The upload param `name` (`Upload<T>`): the id of a stream of `T` items the caller sends while the
    /// call runs.
    pub fn upload<T: JsonSchema>(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            schema: TypeSchema::of::<T>(),
            required: true,
            upload: true,
            description: None,
        }
    }

    /// Says whether the param may be left out (for a method whose handler decides it itself).
    #[must_use]
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// A description of the param.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// One method of a service: built by `<Trait>Methods::openrpc()`, or by hand for methods registered on a
/// [`Router`] directly.
///
/// ```
/// use birpc::openrpc::{Method, Param};
///
/// let subtract = Method::new("subtract")
///     .docs("The difference.")
///     .param(Param::of::<i64>("minuend"))
///     .param(Param::of::<i64>("subtrahend"))
///     .returns::<i64>();
/// # let _ = subtract;
/// ```
#[derive(Debug, Clone)]
pub struct Method {
    name: String,
    aliases: Vec<String>,
    docs: String,
    notification: bool,
    params: Vec<Param>,
    result: TypeSchema,
    stream: bool,
    error: Option<TypeSchema>,
}

impl Method {
    /// The method `name` (its wire name), answering `null` until [`returns`](Self::returns) says otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            aliases: Vec::new(),
            docs: String::new(),
            notification: false,
            params: Vec::new(),
            result: TypeSchema::of::<()>(),
            stream: false,
            error: None,
        }
    }

    /// Its documentation: the first paragraph becomes the summary, the whole the description.
    #[must_use]
    pub fn docs(mut self, docs: impl Into<String>) -> Self {
        self.docs = docs.into();
        self
    }

    /// Another wire name of the method.
    #[must_use]
    pub fn alias(mut self, name: impl Into<String>) -> Self {
        self.aliases.push(name.into());
        self
    }

    /// Adds the next param.
    #[must_use]
    pub fn param(mut self, param: Param) -> Self {
        self.params.push(param);
        self
    }

    /// It answers a `T`.
    #[must_use]
    pub fn returns<T: JsonSchema + ?Sized>(mut self) -> Self {
        self.result = TypeSchema::of::<T>();
        self.stream = false;
        self
    }

    /// It is a stream method: it answers with a stream of `T` items (`docs/streams.md`).
    #[must_use]
    pub fn stream<T: JsonSchema + ?Sized>(mut self) -> Self {
        self.result = TypeSchema::of::<T>();
        self.stream = true;
        self
    }

    /// Its own error type: what the `data` of the error objects it fails with holds.
    #[must_use]
    pub fn error<E: JsonSchema + ?Sized>(mut self) -> Self {
        self.error = Some(TypeSchema::of::<E>());
        self
    }

    /// It is a notification: it gets no answer.
    #[must_use]
    pub fn notification(mut self) -> Self {
        self.notification = true;
        self
    }

    /// Its wire name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A service's methods: made by `<Trait>Methods::openrpc()` for a trait marked `#[birpc::rpc(openrpc)]`,
/// or by hand.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    docs: String,
    methods: Vec<Method>,
}

impl Service {
    /// A service named `name` (the trait's name), documented by `docs`.
    pub fn new(name: impl Into<String>, docs: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            docs: docs.into(),
            methods: Vec::new(),
        }
    }

    /// Adds a method.
    #[must_use]
    pub fn method(mut self, method: Method) -> Self {
        self.methods.push(method);
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its methods, in order.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
}

/// Which side exports a method, and so which sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The server exports it; clients call it.
    ClientToServer,
    /// Every client exports it; the server calls it.
    ServerToClient,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client-to-server",
            Direction::ServerToClient => "server-to-client",
        }
    }

    pub(crate) fn tag(self) -> Value {
        let description = match self {
            Direction::ClientToServer => "Exported by the server: its clients call it.",
            Direction::ServerToClient => {
                "Exported by every client, for the server to call: the server calls it over the client's own \
                 connection, so a client must export it."
            }
        };
        json!({ "name": self.as_str(), "description": description })
    }
}

/// The API of a WebSocket endpoint: the services its server exports and those its clients must export for
/// the server to call. Renders as OpenRPC ([`openrpc`](Self::openrpc)) and AsyncAPI
/// ([`asyncapi`](Self::asyncapi)), and is served by `rpc.discover` ([`router`](Self::router)).
#[derive(Debug, Clone)]
pub struct Document {
    title: String,
    version: String,
    description: Option<String>,
    endpoint: Option<String>,
    services: Vec<(Direction, Service)>,
    names: HashSet<String>,
}

impl Document {
    /// A document titled `title`, of the API's version `version`.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: version.into(),
            description: None,
            endpoint: None,
            services: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// A description of the API.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The endpoint's URL (`ws://host:port/path` or `wss://…`).
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Adds a service the server exports.
    ///
    /// # Panics
    /// When one of its wire names (or aliases) is already in the document: OpenRPC wants method names
    /// unique.
    #[must_use]
    pub fn server(self, service: Service) -> Self {
        self.add(Direction::ClientToServer, service)
    }

    /// Adds a service every client exports, for the server to call over the client's connection.
    ///
    /// # Panics
    /// When one of its wire names (or aliases) is already in the document.
    #[must_use]
    pub fn client(self, service: Service) -> Self {
        self.add(Direction::ServerToClient, service)
    }

    fn add(mut self, direction: Direction, service: Service) -> Self {
        for method in &service.methods {
            for name in std::iter::once(&method.name).chain(&method.aliases) {
                assert!(
                    self.names.insert(name.clone()),
                    "the method `{name}` is described twice: an OpenRPC document names each method once"
                );
            }
        }
        self.services.push((direction, service));
        self
    }

    /// The OpenRPC 1.3 document.
    pub fn openrpc(&self) -> Value {
        let rendered = Rendered::new(self, false);
        let mut document = Map::new();
        document.insert("openrpc".into(), OPENRPC_VERSION.into());
        document.insert("info".into(), self.info());
        if let Some(url) = &self.endpoint {
            document.insert("servers".into(), json!([{ "name": "websocket", "url": url }]));
        }
        let methods: Vec<Value> = rendered.methods.iter().map(openrpc_method).collect();
        document.insert("methods".into(), Value::Array(methods));
        document.insert("components".into(), json!({ "schemas": rendered.schemas }));
        document.insert("x-extensions".into(), extensions());
        Value::Object(document)
    }

    /// The AsyncAPI 3.0 document of the WebSocket endpoint: both directions, with requests, answers,
    /// notifications and streams (see [`crate::asyncapi`]).
    pub fn asyncapi(&self) -> Value {
        crate::asyncapi::render(self)
    }

    /// A router exporting `rpc.discover` (OpenRPC's service discovery method), which answers the OpenRPC
    /// document: merge it into the server's router (`service.into_router().merge(document.router())`).
    /// The document does not list `rpc.discover` itself.
    pub fn router(&self) -> Router {
        let document = serde_json::value::to_raw_value(&self.openrpc());
        Router::new().method("rpc.discover", move |_: Context, _: NoParams| {
            let answer: Result<Box<RawValue>, ErrorObject> = match &document {
                Ok(document) => Ok(document.clone()),
                Err(error) => Err(ErrorObject::internal_error().with_detail(error)),
            };
            async move { answer }
        })
    }

    pub(crate) fn info(&self) -> Value {
        let mut info = json!({ "title": self.title, "version": self.version });
        if let Some(description) = &self.description {
            info["description"] = description.clone().into();
        }
        info
    }

    pub(crate) fn endpoint_url(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    pub(crate) fn title(&self) -> &str {
        &self.title
    }
}

/// A method with its schemas generated.
pub(crate) struct RenderedMethod<'a> {
    pub(crate) method: &'a Method,
    pub(crate) service: &'a Service,
    pub(crate) direction: Direction,
    /// Each param's schema (an upload's: its items').
    pub(crate) params: Vec<(&'a Param, Value)>,
    /// How many params come before the first that may be left out with all that follow.
    pub(crate) required_positional: usize,
    /// The result's schema; a stream method's items'.
    pub(crate) result: Value,
    /// The error type's name and schema.
    pub(crate) error: Option<(String, Value)>,
}

impl RenderedMethod<'_> {
    pub(crate) fn name(&self) -> &str {
        &self.method.name
    }

    pub(crate) fn aliases(&self) -> &[String] {
        &self.method.aliases
    }

    pub(crate) fn docs(&self) -> &str {
        &self.method.docs
    }

    pub(crate) fn notification(&self) -> bool {
        self.method.notification
    }

    pub(crate) fn stream(&self) -> bool {
        self.method.stream
    }

    /// Whether the param at `index` must be given in the positional form.
    pub(crate) fn required(&self, index: usize) -> bool {
        index < self.required_positional
    }

    /// The tags of the method: its service and its direction.
    pub(crate) fn tags(&self) -> Value {
        let mut service = json!({ "name": self.service.name });
        if !self.service.docs.trim().is_empty() {
            service["description"] = self.service.docs.clone().into();
        }
        json!([service, self.direction.tag()])
    }
}

/// Every method of a document with the schemas of its types, and the shared schemas they refer to.
pub(crate) struct Rendered<'a> {
    pub(crate) methods: Vec<RenderedMethod<'a>>,
    pub(crate) schemas: Map<String, Value>,
}

impl<'a> Rendered<'a> {
    /// `asyncapi`: schemas for AsyncAPI, which takes no boolean schemas.
    pub(crate) fn new(document: &'a Document, asyncapi: bool) -> Self {
        let settings = SchemaSettings::draft07().with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        });
        let settings = if asyncapi {
            let mut no_booleans = ReplaceBoolSchemas::default();
            no_booleans.skip_additional_properties = true;
            settings.with_transform(no_booleans)
        } else {
            settings
        };
        let mut generator = settings.into_generator();
        let mut schema_of = |schema: &TypeSchema| {
            let mut schema = (schema.generate)(&mut generator);
            for transform in generator.transforms_mut() {
                transform.transform(&mut schema);
            }
            schema.to_value()
        };
        let mut methods = Vec::new();
        let mut streams = false;
        for (direction, service) in &document.services {
            for method in &service.methods {
                let params: Vec<(&Param, Value)> = method.params.iter().map(|p| (p, schema_of(&p.schema))).collect();
                streams |= method.stream || method.params.iter().any(|p| p.upload);
                methods.push(RenderedMethod {
                    method,
                    service,
                    direction: *direction,
                    required_positional: method
                        .params
                        .iter()
                        .rposition(|p| p.required)
                        .map_or(0, |last| last + 1),
                    params,
                    result: schema_of(&method.result),
                    error: method.error.map(|error| (error.name().into_owned(), schema_of(&error))),
                });
            }
        }
        let mut schemas = generator.take_definitions(true);
        builtin_schemas(&mut schemas, streams);
        Self { methods, schemas }
    }
}

/// `$ref` to a shared schema.
pub(crate) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// birpc's own shared schemas, named `birpc.*` (schemars never puts a dot in a name).
fn builtin_schemas(schemas: &mut Map<String, Value>, streams: bool) {
    if streams {
        schemas.insert(
            "birpc.StreamId".into(),
            json!({
                "description": "A stream's id, chosen by its producer: what a stream method's request is answered \
                                with, and an upload param's value (docs/streams.md).",
                "type": ["integer", "string"],
            }),
        );
    }
}

/// The summary of `docs`: its first paragraph, on one line.
pub(crate) fn summary(docs: &str) -> Option<String> {
    let first: Vec<&str> = docs
        .trim()
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    (!first.is_empty()).then(|| first.join(" "))
}

/// Sets `summary` (the first paragraph of `docs`) and `description` (all of it, when there is more).
pub(crate) fn describe(object: &mut Map<String, Value>, docs: &str) {
    if let Some(summary) = summary(docs) {
        if docs.trim() != summary {
            object.insert("description".into(), docs.trim().into());
        }
        object.insert("summary".into(), summary.into());
    }
}

fn openrpc_method(method: &RenderedMethod<'_>) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), method.name().into());
    describe(&mut object, method.docs());
    object.insert("tags".into(), method.tags());
    object.insert("paramStructure".into(), "either".into());
    let params: Vec<Value> = method
        .params
        .iter()
        .enumerate()
        .map(|(index, (param, schema))| {
            let mut descriptor = json!({ "name": param.name, "required": method.required(index) });
            if param.upload {
                descriptor["schema"] = reference("birpc.StreamId");
                descriptor["description"] = param.description.clone().map_or_else(
                    || "An upload: the id of the stream of items the caller sends while the call runs.".into(),
                    Value::String,
                );
                descriptor["x-birpc-upload"] = json!({ "item": schema });
            } else {
                descriptor["schema"] = schema.clone();
                if let Some(description) = &param.description {
                    descriptor["description"] = description.clone().into();
                }
            }
            descriptor
        })
        .collect();
    object.insert("params".into(), Value::Array(params));
    if method.stream() {
        object.insert(
            "result".into(),
            json!({
                "name": "subscription",
                "description": "The stream's id; its items follow as notifications of this method's name, \
                                {\"subscription\": id, \"result\": item} (see x-birpc-stream).",
                "schema": reference("birpc.StreamId"),
            }),
        );
        object.insert("x-birpc-stream".into(), json!({ "item": method.result }));
    } else if !method.notification() {
        object.insert("result".into(), json!({ "name": "result", "schema": method.result }));
    }
    object.insert("x-birpc-direction".into(), method.direction.as_str().into());
    if !method.aliases().is_empty() {
        object.insert("x-birpc-aliases".into(), json!(method.aliases()));
    }
    if let Some((name, schema)) = &method.error {
        object.insert("x-birpc-error".into(), json!({ "name": name, "schema": schema }));
    }
    Value::Object(object)
}

/// The declarations of birpc's extensions (the OpenRPC Specification Extension format), which validators
/// such as `@open-rpc/schema-utils-js` check the extensions against.
fn extensions() -> Value {
    let schema = json!({ "type": ["object", "boolean"] });
    let declare = |name: &str, on: &str, summary: &str, description: &str, value: Value| {
        json!({
            "openrpcExtension": "0.0.0-development",
            "name": name,
            "version": "1.0.0",
            "restricted": [on],
            "summary": summary,
            "description": description,
            "schema": value,
        })
    };
    json!([
        declare(
            "x-birpc-direction",
            "methodObject",
            "Which side exports the method.",
            "`client-to-server`: the server exports it and its clients call it. `server-to-client`: every client \
             exports it, and the server calls it over the client's own connection.",
            json!({ "type": "string", "enum": ["client-to-server", "server-to-client"] }),
        ),
        declare(
            "x-birpc-error",
            "methodObject",
            "The method's own error type.",
            "`schema` describes the `data` of the error objects the method fails with (code -32000 unless the \
             type chooses another); `name` is the type's name.",
            json!({
                "type": "object",
                "required": ["schema"],
                "properties": { "name": { "type": "string" }, "schema": schema },
            }),
        ),
        declare(
            "x-birpc-stream",
            "methodObject",
            "A stream method.",
            "The request is answered with the stream's id (the result); the producer then sends each item as a \
             notification of the method's name with params `{\"subscription\": id, \"result\": item}`, and ends \
             the stream with `$/stream.end`. `item` is the items' schema. The protocol, with its credit-based \
             flow control: docs/streams.md of birpc.",
            json!({ "type": "object", "required": ["item"], "properties": { "item": schema } }),
        ),
        declare(
            "x-birpc-upload",
            "contentDescriptorObject",
            "An upload param.",
            "The param's value is the id of a stream the caller produces while the call runs: each item a \
             notification of the method's name with params `{\"subscription\": id, \"result\": item}`, after \
             the callee grants credit with `$/stream.credit`. `item` is the items' schema.",
            json!({ "type": "object", "required": ["item"], "properties": { "item": schema } }),
        ),
        declare(
            "x-birpc-aliases",
            "methodObject",
            "Other names of the method.",
            "Other wire names that reach the same method.",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
    ])
}
