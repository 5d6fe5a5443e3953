//! TypeScript bindings of services declared with `#[birpc::rpc(typescript)]`, for birpc's JavaScript client.
//!
//! For each service, a module gets the TypeScript interface of its methods, a typed client factory over
//! the JavaScript client (`chatClient(client)`), the interface of handlers for a page that implements the
//! service (`ChatHandlers`, exported with `exposeChat(client, handlers)`), the wire names, and the
//! declarations of every serde type the methods use (from [`ts_rs`]'s `#[derive(TS)]`). It is written as
//! a `.d.ts` file (the types) and a `.js` file (the factories), so a page needs no build step and a
//! TypeScript project gets the types.
//!
//! ```
//! use birpc::typescript::Module;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, birpc::TS)]
//! #[ts(crate = "birpc::ts_rs")]
//! struct Hit {
//!     text: String,
//! }
//!
//! #[birpc::rpc(typescript)]
//! trait Search {
//!     /// Finds up to `limit` hits.
//!     async fn search(&self, query: String, limit: Option<u32>) -> Vec<Hit>;
//! }
//!
//! let module = Module::new("./birpc.js").service(SearchMethods::typescript());
//! let declarations = module.declarations();
//! assert!(declarations.contains("export type Hit = { text: string, };"));
//! assert!(declarations.contains("search(query: string, limit?: number | null, options?: CallOptions): Promise<Array<Hit>>;"));
//! assert!(module.javascript().contains("export function searchClient(client)"));
//! // module.write("web/", "search")? writes web/search.d.ts and web/search.js
//! ```
//!
//! Stream methods and uploads (`docs/streams.md`) get the JavaScript client's stream types, both for
//! calling them and for a page that implements them:
//!
//! ```
//! use birpc::typescript::Module;
//! use birpc::{ItemStream, Upload};
//!
//! #[birpc::rpc(typescript)]
//! trait Meter {
//!     async fn readings(&self, sensor: String) -> ItemStream<f64>;
//!     async fn mean(&self, samples: Upload<f64>) -> f64;
//! }
//!
//! let module = Module::new("./birpc.js").service(MeterMethods::typescript());
//! let types = module.declarations();
//! assert!(types.contains("readings(sensor: string, options?: StreamOptions): ItemStream<number>;"));
//! assert!(types.contains("mean(samples: AsyncIterable<number> | Iterable<number>, options?: CallOptions): Promise<number>;"));
//! assert!(types.contains("readings(sensor: string, context: HandlerContext): AsyncIterable<number> | Iterable<number>;"));
//! assert!(types.contains("mean(samples: AsyncIterable<number>, context: HandlerContext): number | PromiseLike<number>;"));
//! let code = module.javascript();
//! assert!(code.contains(r#"readings: (a0, options) => client.stream("readings", [a0], options),"#));
//! assert!(code.contains(r#"mean: (a0, options) => client.call("mean", [client.upload(a0)], options),"#));
//! assert!(code.contains(r#"client.exposeStream("readings", readings);"#));
//! assert!(code.contains("client.receiveUpload(params[0])"));
//! ```

use std::any::TypeId;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use ts_rs::{Config, TS, TypeVisitor};

/// How types are rendered: 64-bit integers as `number`, since `JSON.parse` makes every number a `number`
/// (exact up to 2^53).
fn config() -> Config {
    Config::new().with_large_int("number")
}

/// The TypeScript name of `T`.
pub fn type_of<T: TS + ?Sized>() -> String {
    T::name(&config())
}

/// One param of a method.
#[derive(Debug, Clone)]
pub struct Param {
    name: &'static str,
    ty: String,
    option: bool,
    /// An upload: `ty` is the type of its items.
    upload: bool,
}

impl Param {
    /// The param `name`, of Rust type `T`.
    pub fn of<T: TS + ?Sized>(name: &'static str) -> Self {
        Self {
            name,
            ty: type_of::<T>(),
            option: T::IS_OPTION,
            upload: false,
        }
    }

    /// The upload param `name`, a stream of `T` items the caller sends.
    pub fn upload<T: TS + ?Sized>(name: &'static str) -> Self {
        Self {
            name,
            ty: type_of::<T>(),
            option: false,
            upload: true,
        }
    }

    /// Its TypeScript type where a caller passes it.
    fn caller_type(&self) -> String {
        if self.upload {
            format!("AsyncIterable<{0}> | Iterable<{0}>", self.ty)
        } else {
            self.ty.clone()
        }
    }
}

/// One method of a service (built by generated code).
#[derive(Debug, Clone)]
pub struct Method {
    /// The wire name.
    pub name: &'static str,
    /// Other wire names of the method.
    pub aliases: &'static [&'static str],
    /// The Rust name, used in the bindings.
    pub ident: &'static str,
    /// Whether it is a notification.
    pub notification: bool,
    /// Whether the typed client sends params by name.
    pub named: bool,
    /// The params in order.
    pub params: Vec<Param>,
    /// The TypeScript type of the result; for a stream method, of its items.
    pub result: String,
    /// Whether it is a stream method (a download of `result` items).
    pub stream: bool,
    /// The TypeScript type of the method's own error, carried in an error's `data`.
    pub error: Option<String>,
    /// The documentation comment.
    pub docs: &'static str,
}

/// A service's methods and the declarations of the types they use; made by
/// `<Trait>Methods::typescript()`.
#[derive(Debug, Clone)]
pub struct Service {
    name: &'static str,
    docs: &'static str,
    methods: Vec<Method>,
    declarations: Vec<String>,
    declared: HashSet<TypeId>,
}

impl Service {
    /// A service named `name` (the Rust trait's name).
    pub fn new(name: &'static str, docs: &'static str) -> Self {
        Self {
            name,
            docs,
            methods: Vec::new(),
            declarations: Vec::new(),
            declared: HashSet::new(),
        }
    }

    /// Adds a method.
    pub fn method(&mut self, method: Method) {
        self.methods.push(method);
    }

    /// Declares `T` (if it is a type of its own, such as a struct deriving `TS`) and every type it uses.
    pub fn declare<T: TS + ?Sized + 'static>(&mut self) {
        let cfg = config();
        let mut collector = Collector {
            cfg: &cfg,
            declared: &mut self.declared,
            declarations: &mut self.declarations,
        };
        collector.visit::<T>();
    }
}

/// Collects the declarations of the types a service uses, each once.
struct Collector<'a> {
    cfg: &'a Config,
    declared: &'a mut HashSet<TypeId>,
    declarations: &'a mut Vec<String>,
}

impl TypeVisitor for Collector<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if !self.declared.insert(TypeId::of::<T>()) {
            return;
        }
        // Only types of their own have a declaration (and a place to be exported to).
        if T::output_path().is_some() {
            self.declarations.push(format!("export {}", T::decl(self.cfg)));
        }
        T::visit_dependencies(self);
        T::visit_generics(self);
    }
}

/// A module of TypeScript bindings for one or more services, rendered as a `.d.ts` and a `.js` file.
#[derive(Debug, Clone)]
pub struct Module {
    client: String,
    services: Vec<Service>,
}

impl Module {
    /// A module whose files import the JavaScript client from `client` (`"./birpc.js"`, say).
    pub fn new(client: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            services: Vec::new(),
        }
    }

    /// Adds a service.
    #[must_use]
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    fn header(&self) -> String {
        let names: Vec<&str> = self.services.iter().map(|s| s.name).collect();
        format!(
            "// Generated by birpc from the Rust services {}. Do not edit: regenerate it.\n",
            names.join(", ")
        )
    }

    /// The TypeScript declarations: data types, service interfaces, handler interfaces, factories.
    pub fn declarations(&self) -> String {
        let mut out = self.header();
        let _ = writeln!(
            out,
            "import type {{ CallOptions, Client, HandlerContext, ItemStream, StreamOptions }} from {};\n",
            quote(&self.client)
        );
        // In a stable order (TypeScript needs none): the order ts-rs visits a type's dependencies in can
        // change from one build to the next.
        let mut declarations: Vec<&str> = self
            .services
            .iter()
            .flat_map(|s| &s.declarations)
            .map(String::as_str)
            .collect();
        declarations.sort_unstable();
        declarations.dedup();
        for declaration in declarations {
            let _ = writeln!(out, "{declaration}\n");
        }
        for service in &self.services {
            declare_service(&mut out, service);
        }
        out
    }

    /// The JavaScript implementation of the factories (an ES module, no build step).
    pub fn javascript(&self) -> String {
        let mut out = self.header();
        for service in &self.services {
            implement_service(&mut out, service);
        }
        out
    }

    /// Writes `<stem>.d.ts` and `<stem>.js` into `dir`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write(&self, dir: impl AsRef<Path>, stem: &str) -> io::Result<()> {
        let dir = dir.as_ref();
        std::fs::write(dir.join(format!("{stem}.d.ts")), self.declarations())?;
        std::fs::write(dir.join(format!("{stem}.js")), self.javascript())
    }
}

fn declare_service(out: &mut String, service: &Service) {
    let name = service.name;
    let lower = lower_first(name);
    let _ = writeln!(out, "{}export interface {name} {{", doc_comment(service.docs, ""));
    for method in &service.methods {
        let mut docs = method.docs.to_owned();
        if let Some(error) = &method.error {
            let note = format!("Fails with an `RpcError` whose `data` is a `{error}` when the method does.");
            docs = if docs.is_empty() {
                note
            } else {
                format!("{docs}\n\n{note}")
            };
        }
        let result = if method.notification {
            "void".to_owned()
        } else {
            method.result.clone()
        };
        let params = signature_params(method);
        let (options, returns) = if method.stream {
            ("StreamOptions", format!("ItemStream<{result}>"))
        } else {
            ("CallOptions", format!("Promise<{result}>"))
        };
        let _ = writeln!(
            out,
            "{}  {}({params}options?: {options}): {returns};",
            doc_comment(&docs, "  "),
            method.ident
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(out, "/** A typed client of {name} over a birpc client. */");
    let _ = writeln!(out, "export declare function {lower}Client(client: Client): {name};\n");

    let _ = writeln!(
        out,
        "/** The methods of {name}, implemented on this side, for the other side to call. */"
    );
    let _ = writeln!(out, "export interface {name}Handlers {{");
    for method in &service.methods {
        let result = if method.notification {
            "void".to_owned()
        } else {
            method.result.clone()
        };
        let returns = if method.stream {
            format!("AsyncIterable<{result}> | Iterable<{result}>")
        } else {
            format!("{result} | PromiseLike<{result}>")
        };
        let _ = writeln!(
            out,
            "{}  {}({}context: HandlerContext): {returns};",
            doc_comment(method.docs, "  "),
            method.ident,
            handler_params(method)
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "/** Exports `handlers` on `client`: the other side calls them, with params by position or by name. */"
    );
    let _ = writeln!(
        out,
        "export declare function expose{name}(client: Client, handlers: {name}Handlers): void;\n"
    );
    let _ = writeln!(out, "/** The wire names of {name}'s methods. */");
    let _ = writeln!(out, "export declare const {name}Methods: {{");
    for method in &service.methods {
        let _ = writeln!(out, "  readonly {}: {};", method.ident, quote(method.name));
    }
    out.push_str("};\n\n");
}

fn implement_service(out: &mut String, service: &Service) {
    let name = service.name;
    let lower = lower_first(name);
    let _ = writeln!(out, "\n/** A typed client of {name} over a birpc client. */");
    let _ = writeln!(out, "export function {lower}Client(client) {{\n  return {{");
    for method in &service.methods {
        let args: Vec<String> = (0..method.params.len()).map(|i| format!("a{i}")).collect();
        // An upload's items go as a stream of this side; its id takes the param's place.
        let values: Vec<String> = method
            .params
            .iter()
            .zip(&args)
            .map(|(p, a)| {
                if p.upload {
                    format!("client.upload({a})")
                } else {
                    a.clone()
                }
            })
            .collect();
        let params = if method.params.is_empty() {
            "undefined".to_owned()
        } else if method.named {
            let fields: Vec<String> = method
                .params
                .iter()
                .zip(&values)
                .map(|(p, a)| format!("{}: {a}", quote(p.name)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        } else {
            format!("[{}]", values.join(", "))
        };
        let verb = if method.notification {
            "notify"
        } else if method.stream {
            "stream"
        } else {
            "call"
        };
        let mut all = args.clone();
        all.push("options".to_owned());
        let _ = writeln!(
            out,
            "    {}: ({}) => client.{verb}({}, {params}, options),",
            method.ident,
            all.join(", "),
            quote(method.name)
        );
    }
    out.push_str("  };\n}\n");
    let _ = writeln!(
        out,
        "\n/** Exports `handlers` on `client`: the other side calls them, with params by position or by name. */"
    );
    let _ = writeln!(out, "export function expose{name}(client, handlers) {{");
    for method in &service.methods {
        // An upload param carries the caller's stream id: the handler gets the stream.
        let receive = |p: &Param, arg: String| {
            if p.upload {
                format!("client.receiveUpload({arg})")
            } else {
                arg
            }
        };
        let positional: Vec<String> = method
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| receive(p, format!("params[{i}]")))
            .collect();
        let named: Vec<String> = method
            .params
            .iter()
            .map(|p| receive(p, format!("params?.[{}]", quote(p.name))))
            .collect();
        let call = |args: &[String]| {
            let mut args = args.to_vec();
            args.push("context".to_owned());
            format!("handlers.{}({})", method.ident, args.join(", "))
        };
        let _ = writeln!(
            out,
            "  const {} = (params, context) => Array.isArray(params) ? {} : {};",
            identifier(method.ident),
            call(&positional),
            call(&named)
        );
        let expose = if method.stream { "exposeStream" } else { "expose" };
        for name in std::iter::once(&method.name).chain(method.aliases) {
            let _ = writeln!(out, "  client.{expose}({}, {});", quote(name), identifier(method.ident));
        }
    }
    out.push_str("}\n");
    let _ = writeln!(out, "\n/** The wire names of {name}'s methods. */");
    let _ = writeln!(out, "export const {name}Methods = Object.freeze({{");
    for method in &service.methods {
        let _ = writeln!(out, "  {}: {},", method.ident, quote(method.name));
    }
    out.push_str("});\n");
}

/// The params of a client method, each followed by `, `: trailing `Option`s may be left out.
fn signature_params(method: &Method) -> String {
    let optional_from = method.params.iter().rposition(|p| !p.option).map_or(0, |last| last + 1);
    method
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mark = if i >= optional_from { "?" } else { "" };
            format!("{}{mark}: {}, ", identifier(p.name), p.caller_type())
        })
        .collect()
}

/// The params of a handler, each followed by `, `.
fn handler_params(method: &Method) -> String {
    method
        .params
        .iter()
        .map(|p| {
            if p.upload {
                format!("{}: AsyncIterable<{}>, ", identifier(p.name), p.ty)
            } else {
                format!("{}: {}, ", identifier(p.name), p.ty)
            }
        })
        .collect()
}

/// `name`, or `name_` when it is a word JavaScript reserves.
fn identifier(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "arguments",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "eval",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "implements",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
    ];
    if RESERVED.contains(&name) {
        format!("{name}_")
    } else {
        name.to_owned()
    }
}

/// A JavaScript string literal.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `Chat` -> `chat`, `ChatClientEvents` -> `chatClientEvents`.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A JSDoc comment holding `docs`, indented, or nothing when there are none.
fn doc_comment(docs: &str, indent: &str) -> String {
    if docs.trim().is_empty() {
        return String::new();
    }
    let mut out = format!("{indent}/**\n");
    for line in docs.replace("*/", "*\\/").lines() {
        let _ = writeln!(out, "{indent} * {line}");
    }
    let _ = writeln!(out, "{indent} */");
    out.replace(" * \n", " *\n")
}
