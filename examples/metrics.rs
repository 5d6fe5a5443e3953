//! A server whose metrics a Prometheus scrapes: birpc records its connections and calls through the
//! `metrics` facade, and this server installs the Prometheus recorder and serves its text at `/metrics`,
//! on the port of the RPC endpoint.
//!
//! ```text
//! cargo run --features metrics --example metrics -- --listen 127.0.0.1:9100
//! curl http://127.0.0.1:9100/metrics
//! ```
//!
//! It exports `add(a, b)` and `divide(a, b)` (code 1 when dividing by zero), and each call it receives
//! counts in `birpc_calls_received_total{method, outcome}`; `layer` wraps them in a concurrency limit of
//! 64 with load shedding, so a burst past it counts as `outcome="-32005"`.

#[path = "support/listen.rs"]
mod listen;

use birpc::prelude::*;
use bytes::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

/// The methods of this server.
fn router() -> Router {
    Router::new()
        .method("add", |_: Context, (a, b): (i64, i64)| async move {
            a.checked_add(b).ok_or_else(|| ErrorObject::new(2, "overflow"))
        })
        .method("divide", |_: Context, (a, b): (i64, i64)| async move {
            a.checked_div(b).ok_or_else(|| ErrorObject::new(1, "division by zero"))
        })
        .layer(
            ServiceBuilder::new()
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(64)),
        )
}

/// `GET /metrics`: the Prometheus text exposition format (version 0.0.4); anything else: 404.
fn scrape(handle: &PrometheusHandle, request: &birpc::http::Request<()>) -> birpc::http::Response<Bytes> {
    use birpc::http::{HeaderValue, Response, StatusCode, header};
    if request.uri().path() != "/metrics" {
        let mut response = Response::new(Bytes::from_static(b"not found; try /metrics\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    // Histograms' windows are rolled before each scrape (the recorder's upkeep).
    handle.run_upkeep();
    let mut response = Response::new(Bytes::from(handle.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = match args.as_slice() {
        [] => "127.0.0.1:9100",
        [flag, addr] if flag == "--listen" => addr.as_str(),
        _ => {
            eprintln!("usage: metrics [--listen HOST:PORT]");
            std::process::exit(2);
        }
    };
    let handle = PrometheusBuilder::new().install_recorder()?;
    let server = Server::builder()
        .http(move |request| scrape(&handle, request))
        .bind(listen)
        .await
        .unwrap_or_else(|error| listen::cannot_listen(listen, &error));
    // Watched before the server says it is ready: a signal right after is caught.
    let stop = birpc::shutdown_signal();
    println!("listening on ws://{}", server.local_addr());
    println!("metrics at http://{}/metrics", server.local_addr());
    let routes = router();
    let running = server.serve(move |_| routes.clone());
    stop.await?;
    running.shutdown().await;
    Ok(())
}
