//! The interoperability server: a fixed set of methods other JSON-RPC implementations test against.
//!
//! ```text
//! cargo run --example interop_server -- --listen 127.0.0.1:0
//! ```
//!
//! The first line on stdout is `listening on ws://HOST:PORT` (the real port). Every method takes its params
//! by position or by name:
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
//! | `close(code, reason)` | nothing: closes the connection with that close code and reason (RFC 6455 section 7.4) |

use std::io::Write;
use std::time::Duration;

use birpc::prelude::*;
use birpc::{CloseCode, UploadId};
use futures::StreamExt;
use serde::Deserialize;
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

fn listen_address() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9000".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address, such as 127.0.0.1:0")?,
            "--help" | "-h" => return Err("usage: interop_server [--listen HOST:PORT]".into()),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: interop_server [--listen HOST:PORT]"
                ));
            }
        }
    }
    Ok(listen)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = match listen_address() {
        Ok(listen) => listen,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let server = Server::bind(&listen).await?;
    println!("listening on ws://{}", server.local_addr());
    std::io::stdout().flush()?;
    let running = server.serve(|_| router());
    // Ctrl-C or SIGTERM: the calls in flight are answered, then every connection closes with 1001.
    birpc::shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}
