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
//! | `close(code, reason)` | nothing: closes the connection with that close code and reason (RFC 6455 section 7.4) |

use std::io::Write;
use std::time::Duration;

use birpc::CloseCode;
use birpc::prelude::*;
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
