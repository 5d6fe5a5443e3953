//! The interoperability server: a fixed set of methods other JSON-RPC implementations test against.
//!
//! ```text
//! cargo run --example interop_server -- --listen 127.0.0.1:0
//! cargo run --example interop_server -- --listen 'tcp://127.0.0.1:0?framing=content-length'
//! cargo run --example interop_server -- --listen 'stdio?framing=content-length'
//! cargo run --features redis --example interop_server -- --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379/
//! ```
//!
//! `--listen` takes `HOST:PORT` or `ws://HOST:PORT` (WebSocket, the default `127.0.0.1:9000`),
//! `tcp://HOST:PORT` or `unix:PATH` (a byte-stream server), or `stdio` (one connection over stdin and
//! stdout, ending with stdin); byte streams carry one message a line unless the URL ends with
//! `?framing=content-length` (`Content-Length` headers, as the Language Server Protocol). The first line on
//! stdout is `listening on URL`, the real URL (`ws://HOST:PORT` with the real port, `tcp://HOST:PORT`,
//! `unix:PATH`); with `stdio`, stdout is the connection, so that line goes to stderr instead. With `RUST_LOG` set (say
//! `RUST_LOG=birpc::call=debug`) it logs through `tracing` to stderr. With `--redis URL` (and
//! optionally `--hub NAME`, default `interop`, and `--liveness-ms N`, default 3000) its hub spans every
//! interop server on that Redis with the same hub name. Every method takes its params by position or by
//! name:
//!
//! | method | answers |
//! | --- | --- |
//! | `subtract(minuend, subtrahend)` | the difference |
//! | `sum(a, b, c)` | the sum |
//! | `get_data()` | `["hello", 5]` |
//! | `echo(value)` | `value`, exactly as sent |
//! | `sleep(ms)` | `ms`, after that many milliseconds |
//! | `ask_client(method, params)` | what the calling client answers to `method(params)`, its error included |
//! | `notify_client(method, params)` | `null`, after sending the client that notification |
//! | `ticks(count, every_ms)` | a stream (`docs/streams.md`) of the numbers 0 to count-1, one every `every_ms` milliseconds (0: as fast as credit allows) |
//! | `sum_upload(numbers)` | the sum of the items of the upload `numbers` (a stream of integers the caller sends) |
//! | `ask_client_stream(method, params)` | the list of the items of the stream method `method` the calling client exports, or its error unchanged |
//! | `id()` | this connection's hub-wide id |
//! | `join(group)`, `leave(group)` | `true` (`leave`: whether it was in the group) after this connection joins or leaves `group` |
//! | `members(group)` | the hub-wide ids of `group`'s members on every server of the hub |
//! | `notify_group(group, method, params)` | `null`, after sending every member of `group`, on every server, that notification |
//! | `call_group(group, method, params, timeout_ms)` | an object from each member's id to `{"result": …}`, `{"error": {…}}` or `{"timeout": true}` (or `{"gone": "why"}` when its connection or server went away) |
//! | `call_member(id, method, params, timeout_ms)` | what connection `id`, on any server, answers to `method(params)`, its error unchanged |
//! | `close(code, reason)` | nothing: closes the connection with that close code and reason (RFC 6455 section 7.4) |
//! | `rpc.discover()` | the server's OpenRPC document (OpenRPC's service discovery method) |
//!
//! `--describe openrpc` prints that OpenRPC document and exits; `--describe asyncapi` prints the AsyncAPI
//! document of the endpoint. Both are built by hand with `birpc::openrpc`'s builder, since the methods are
//! registered on a `Router` directly.

#[path = "support/listen.rs"]
mod listen;

use std::io::Write;
use std::time::Duration;

use birpc::openrpc::{Document, Method, Param, Service};
use birpc::prelude::*;
use birpc::{CloseCode, Hub, JsonSchema, ListenOptions, Target, UploadId};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Subtract {
    minuend: i64,
    subtrahend: i64,
}

#[derive(Deserialize)]
struct Sum {
    a: i64,
    b: i64,
    c: i64,
}

#[derive(Deserialize)]
struct Echo {
    value: Box<RawValue>,
}

#[derive(Deserialize)]
struct Ticks {
    count: u64,
    every_ms: u64,
}

#[derive(Deserialize)]
struct SumUpload {
    numbers: UploadId,
}

#[derive(Deserialize)]
struct Group {
    group: String,
}

#[derive(Deserialize)]
struct GroupCall {
    group: String,
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct MemberCall {
    id: u64,
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Close {
    code: u16,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

/// A method of the client to call, and the params to call it with (none when absent or null).
#[derive(Deserialize)]
struct Forward {
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

/// The hub methods: groups, broadcasts and calls across every server of the hub.
fn hub_router(hub: &Hub) -> Router {
    Router::new()
        .method("id", {
            let hub = hub.clone();
            move |ctx: Context, _: NoParams| {
                let id = hub.id_of(ctx.peer());
                async move { Ok::<_, ErrorObject>(id) }
            }
        })
        .method("join", {
            let hub = hub.clone();
            move |ctx: Context, p: Group| {
                let joined = hub.join(ctx.peer().id(), &p.group);
                async move { Ok::<_, ErrorObject>(joined) }
            }
        })
        .method("leave", {
            let hub = hub.clone();
            move |ctx: Context, p: Group| {
                let left = hub.leave(ctx.peer().id(), &p.group);
                async move { Ok::<_, ErrorObject>(left) }
            }
        })
        .method("members", {
            let hub = hub.clone();
            move |_: Context, p: Group| {
                let hub = hub.clone();
                async move {
                    let mut ids = hub
                        .member_ids(&p.group)
                        .await
                        .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                    ids.sort_unstable();
                    Ok::<_, ErrorObject>(ids)
                }
            }
        })
        .method("notify_group", {
            let hub = hub.clone();
            move |_: Context, p: GroupNotice| {
                match &p.params {
                    Some(params) => hub.notify_group(&p.group, &p.method, params),
                    None => hub.notify_group(&p.group, &p.method, ()),
                };
                async move { Ok::<_, ErrorObject>(()) }
            }
        })
        .method("call_group", {
            let hub = hub.clone();
            move |_: Context, p: GroupCall| {
                let hub = hub.clone();
                async move {
                    let timeout = p.timeout_ms.map(Duration::from_millis);
                    let outcomes = match &p.params {
                        Some(params) => {
                            hub.call_group::<Box<RawValue>, _>(&p.group, &p.method, params, timeout)
                                .await
                        }
                        None => {
                            hub.call_group::<Box<RawValue>, _>(&p.group, &p.method, (), timeout)
                                .await
                        }
                    };
                    let by_id: serde_json::Map<String, serde_json::Value> = outcomes
                        .into_iter()
                        .map(|(id, outcome)| (id.to_string(), outcome_json(outcome)))
                        .collect();
                    Ok::<_, ErrorObject>(by_id)
                }
            }
        })
        .method("call_member", {
            let hub = hub.clone();
            move |_: Context, p: MemberCall| {
                let hub = hub.clone();
                async move {
                    let timeout = p.timeout_ms.map(Duration::from_millis);
                    let answer = match &p.params {
                        Some(params) => hub.call::<Box<RawValue>, _>(p.id, &p.method, params, timeout).await,
                        None => hub.call::<Box<RawValue>, _>(p.id, &p.method, (), timeout).await,
                    };
                    answer.map_err(|error| match error.error_object() {
                        Some(object) => object.clone(),
                        None => ErrorObject::internal_error().with_detail(error),
                    })
                }
            }
        })
}

/// `{"result": …}`, `{"error": {…}}`, `{"timeout": true}` or `{"gone": "why"}`.
fn outcome_json(outcome: Result<Box<RawValue>, CallError>) -> serde_json::Value {
    match outcome {
        Ok(result) => serde_json::json!({ "result": result }),
        Err(CallError::Timeout(_)) => serde_json::json!({ "timeout": true }),
        Err(error) => match error.error_object() {
            Some(object) => serde_json::json!({ "error": object }),
            None => serde_json::json!({ "gone": error.to_string() }),
        },
    }
}

/// A notification for a group's members.
#[derive(Deserialize)]
struct GroupNotice {
    group: String,
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

fn router() -> Router {
    Router::new()
        .method("subtract", |_: Context, p: Subtract| async move {
            Ok::<_, ErrorObject>(p.minuend - p.subtrahend)
        })
        .method("sum", |_: Context, p: Sum| async move {
            Ok::<_, ErrorObject>(p.a + p.b + p.c)
        })
        .method("get_data", |_: Context, _: NoParams| async {
            Ok::<_, ErrorObject>(("hello", 5))
        })
        .method(
            "echo",
            |_: Context, p: Echo| async move { Ok::<_, ErrorObject>(p.value) },
        )
        .method("sleep", |_: Context, p: Sleep| async move {
            tokio::time::sleep(Duration::from_millis(p.ms)).await;
            Ok::<_, ErrorObject>(p.ms)
        })
        .method("ask_client", |ctx: Context, p: Forward| async move {
            let answer: Result<Box<RawValue>, CallError> = match &p.params {
                Some(params) => ctx.peer().call(&p.method, params).await,
                None => ctx.peer().call(&p.method, ()).await,
            };
            answer.map_err(|error| match error.error_object() {
                // The client's own error, passed on unchanged.
                Some(object) => object.clone(),
                None => ErrorObject::internal_error().with_detail(error),
            })
        })
        .method("notify_client", |ctx: Context, p: Forward| async move {
            let sent = match &p.params {
                Some(params) => ctx.peer().notify(&p.method, params).await,
                None => ctx.peer().notify(&p.method, ()).await,
            };
            sent.map_err(|error| ErrorObject::internal_error().with_detail(error))?;
            Ok::<_, ErrorObject>(())
        })
        .stream("ticks", |_: Context, p: Ticks| async move {
            let every = Duration::from_millis(p.every_ms);
            Ok::<_, ErrorObject>(futures::stream::iter(0..p.count).then(move |n| async move {
                if n > 0 && !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
                Ok::<_, ErrorObject>(n)
            }))
        })
        .method("sum_upload", |ctx: Context, p: SumUpload| async move {
            let mut numbers = ctx.upload::<i64>(p.numbers)?;
            let mut sum = 0_i64;
            while let Some(n) = numbers.next().await {
                let n = n.map_err(ErrorObject::invalid_params)?;
                sum = sum.wrapping_add(n);
            }
            Ok::<_, ErrorObject>(sum)
        })
        .method("ask_client_stream", |ctx: Context, p: Forward| async move {
            let fail = |error: CallError| match error.error_object() {
                Some(object) => object.clone(),
                None => ErrorObject::internal_error().with_detail(error),
            };
            let mut items = match &p.params {
                Some(params) => ctx.peer().subscribe::<Box<RawValue>>(&p.method, params).await,
                None => ctx.peer().subscribe::<Box<RawValue>>(&p.method, ()).await,
            }
            .map_err(fail)?;
            let mut all = Vec::new();
            while let Some(item) = items.next().await {
                all.push(item.map_err(fail)?);
            }
            Ok::<_, ErrorObject>(all)
        })
        .method("close", |ctx: Context, p: Close| async move {
            ctx.peer().close_with(CloseCode(p.code), &p.reason);
            Ok::<_, ErrorObject>(())
        })
}

/// What `call_group` answers for each member.
#[derive(JsonSchema)]
#[schemars(crate = "birpc::schemars", rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "only its schema is used: `call_group` builds its answer as JSON"
)]
enum Outcome {
    /// The member's result.
    Result(Value),
    /// The member's error object.
    Error(Value),
    /// No answer within the timeout.
    Timeout(bool),
    /// Its connection or its server went away: why.
    Gone(String),
}

/// The methods `router` and `hub_router` export, described for `rpc.discover` and `--describe`.
fn document() -> Document {
    let method_param = || Param::of::<String>("method").description("The name of a method of the client.");
    let params_param = || Param::of::<Option<Value>>("params").description("Its params (none when absent or null).");
    let timeout_param = || Param::of::<Option<u64>>("timeout_ms").description("How long to wait, in milliseconds.");
    let group_param = || Param::of::<String>("group");
    let interop = Service::new(
        "Interop",
        "A fixed set of methods other JSON-RPC implementations test against. Every method takes its params by \
         position or by name.",
    )
    .method(
        Method::new("subtract")
            .docs("The difference.")
            .param(Param::of::<i64>("minuend"))
            .param(Param::of::<i64>("subtrahend"))
            .returns::<i64>(),
    )
    .method(
        Method::new("sum")
            .docs("The sum.")
            .param(Param::of::<i64>("a"))
            .param(Param::of::<i64>("b"))
            .param(Param::of::<i64>("c"))
            .returns::<i64>(),
    )
    .method(
        Method::new("get_data")
            .docs("`[\"hello\", 5]`.")
            .returns::<(String, i64)>(),
    )
    .method(
        Method::new("echo")
            .docs("`value`, exactly as sent.")
            .param(Param::of::<Value>("value").required(true))
            .returns::<Value>(),
    )
    .method(
        Method::new("sleep")
            .docs("`ms`, after that many milliseconds.")
            .param(Param::of::<u64>("ms"))
            .returns::<u64>(),
    )
    .method(
        Method::new("ask_client")
            .docs("What the calling client answers to `method(params)`, its error included (unchanged).")
            .param(method_param())
            .param(params_param())
            .returns::<Value>(),
    )
    .method(
        Method::new("notify_client")
            .docs("`null`, after sending the calling client the notification `method(params)`.")
            .param(method_param())
            .param(params_param()),
    )
    .method(
        Method::new("ticks")
            .docs(
                "A stream of the numbers 0 to count-1, one every `every_ms` milliseconds (0: as fast as credit \
                 allows).",
            )
            .param(Param::of::<u64>("count"))
            .param(Param::of::<u64>("every_ms"))
            .stream::<u64>(),
    )
    .method(
        Method::new("sum_upload")
            .docs("The sum of the items of the upload `numbers`.")
            .param(Param::upload::<i64>("numbers"))
            .returns::<i64>(),
    )
    .method(
        Method::new("ask_client_stream")
            .docs(
                "The list of the items of the stream method `method` the calling client exports, or its error \
                 unchanged.",
            )
            .param(method_param())
            .param(params_param())
            .returns::<Vec<Value>>(),
    )
    .method(
        Method::new("close")
            .docs("Closes the connection with that close code and reason (RFC 6455 section 7.4).")
            .param(Param::of::<u16>("code"))
            .param(Param::of::<String>("reason").required(false)),
    );
    let hub = Service::new(
        "Hub",
        "Groups, broadcasts and calls across every interop server of the hub (one server without `--redis`).",
    )
    .method(
        Method::new("id")
            .docs("This connection's hub-wide id.")
            .returns::<u64>(),
    )
    .method(
        Method::new("join")
            .docs("`true`, after this connection joins `group`.")
            .param(group_param())
            .returns::<bool>(),
    )
    .method(
        Method::new("leave")
            .docs("Whether this connection was in `group`, which it leaves.")
            .param(group_param())
            .returns::<bool>(),
    )
    .method(
        Method::new("members")
            .docs("The hub-wide ids of `group`'s members on every server, ascending.")
            .param(group_param())
            .returns::<Vec<u64>>(),
    )
    .method(
        Method::new("notify_group")
            .docs("`null`, after sending every member of `group`, on every server, the notification.")
            .param(group_param())
            .param(method_param())
            .param(params_param()),
    )
    .method(
        Method::new("call_group")
            .docs("Each member's outcome of `method(params)`, by hub-wide id (as a string).")
            .param(group_param())
            .param(method_param())
            .param(params_param())
            .param(timeout_param())
            .returns::<std::collections::BTreeMap<String, Outcome>>(),
    )
    .method(
        Method::new("call_member")
            .docs("What connection `id`, on any server, answers to `method(params)`, its error unchanged.")
            .param(Param::of::<u64>("id"))
            .param(method_param())
            .param(params_param())
            .param(timeout_param())
            .returns::<Value>(),
    );
    Document::new("birpc interop server", env!("CARGO_PKG_VERSION"))
        .description("The interoperability server of birpc (examples/interop_server.rs).")
        .server(interop)
        .server(hub)
}

const USAGE: &str = "usage: interop_server [--listen HOST:PORT|ws://HOST:PORT|tcp://HOST:PORT|unix:PATH|stdio] [--redis URL [--hub NAME] [--liveness-ms N]] [--describe openrpc|asyncapi]";

/// The command line.
struct Options {
    listen: String,
    redis: Option<String>,
    hub: String,
    liveness: Duration,
    /// Print this document (`openrpc` or `asyncapi`) and exit.
    describe: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        listen: "127.0.0.1:9000".to_owned(),
        redis: None,
        hub: "interop".to_owned(),
        liveness: Duration::from_secs(3),
        describe: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}; {USAGE}"));
        match arg.as_str() {
            "--listen" => options.listen = value("an address, such as 127.0.0.1:0 or tcp://127.0.0.1:0")?,
            "--redis" => options.redis = Some(value("a URL, such as redis://127.0.0.1:6379/")?),
            "--hub" => options.hub = value("a name")?,
            "--liveness-ms" => {
                let ms = value("a number of milliseconds")?;
                options.liveness = Duration::from_millis(ms.parse().map_err(|_| format!("bad --liveness-ms {ms:?}"))?);
            }
            "--describe" => match value("openrpc or asyncapi")?.as_str() {
                what @ ("openrpc" | "asyncapi") => options.describe = Some(what.to_owned()),
                other => return Err(format!("--describe takes openrpc or asyncapi, not {other:?}; {USAGE}")),
            },
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(options)
}

/// The hub: of this server alone, or across every interop server on a Redis.
async fn hub(options: &Options) -> Result<Hub, Box<dyn std::error::Error>> {
    let Some(url) = &options.redis else {
        return Ok(Hub::new());
    };
    #[cfg(feature = "redis")]
    {
        let backplane = birpc::redis::RedisBackplane::builder(url)
            .hub(&options.hub)
            .liveness(options.liveness)
            .build()?;
        Ok(Hub::with_backplane(backplane).await?)
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, &options.hub, options.liveness);
        Err("--redis needs the redis feature: cargo run --features redis --example interop_server".into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG=birpc::call=debug` logs each call (its method, id, duration and outcome) to stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let options = match options() {
        Ok(options) => options,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let document = document();
    if let Some(what) = &options.describe {
        let described = if what == "asyncapi" {
            document.asyncapi()
        } else {
            document.openrpc()
        };
        println!("{}", serde_json::to_string_pretty(&described)?);
        return Ok(());
    }
    let hub = hub(&options).await?;
    // `HOST:PORT` alone is a WebSocket address, as it always was.
    let target = match options.listen.parse::<Target>() {
        Ok(target) => target,
        Err(_) if !options.listen.contains("://") && !options.listen.contains(':') => {
            eprintln!(
                "cannot listen on {:?}: expected HOST:PORT or a URL; {USAGE}",
                options.listen
            );
            std::process::exit(2);
        }
        Err(birpc::ParseTargetError::UnknownScheme(_)) => Target::WebSocket(format!("ws://{}", options.listen)),
        Err(error) => {
            eprintln!("{error}; {USAGE}");
            std::process::exit(2);
        }
    };
    let listening = match target.listen(ListenOptions::default().hub(hub.clone())).await {
        Ok(listening) => listening,
        Err(error) => match error.io_error() {
            Some(io) => listen::cannot_listen(&options.listen, io),
            None => {
                eprintln!("{error}");
                std::process::exit(2);
            }
        },
    };
    // Watched from now on, before the line that tells the world this server is ready.
    let stop = birpc::shutdown_signal();
    let stdio = matches!(listening.target(), Target::Stdio { .. });
    if stdio {
        // Stdout is the connection: the line goes to stderr.
        eprintln!("listening on {}", listening.target());
    } else {
        println!("listening on {}", listening.target());
        std::io::stdout().flush()?;
    }
    let routes = router().merge(hub_router(&hub)).merge(document.router());
    let serving = listening.serve(move || routes.clone());
    // Ctrl-C or SIGTERM (or, over stdio, the end of stdin): the calls in flight are answered, then every
    // connection closes (with 1001 on WebSocket), and this server leaves the hub.
    tokio::select! {
        signal = stop => signal?,
        () = serving.closed() => {}
    }
    serving.shutdown().await;
    hub.detach().await;
    if stdio {
        // A read of stdin may still be waiting on its blocking thread, which the runtime would wait for.
        std::process::exit(0);
    }
    Ok(())
}
