//! What `RUST_LOG=birpc::call=debug,birpc::connection=info` shows of a call's life, on both sides: the
//! connection's span (its id, the other side's address, who dialled), a span per received call
//! (direction, method, id) closed by how it ended and how long it ran, and the caller's events.

use std::io::Write;
use std::sync::{Arc, Mutex};

use birpc::prelude::*;
use tracing_subscriber::EnvFilter;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread: the subscriber set for this test sees every task of it.
#[tokio::test(flavor = "current_thread")]
async fn a_calls_life_is_traced_under_the_birpc_target() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("birpc::call=debug,birpc::connection=info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = Server::bind("127.0.0.1:0").await.unwrap().serve(|_| {
        Router::new()
            .method("add", |_: Context, (a, b): (i64, i64)| async move {
                Ok::<_, ErrorObject>(a + b)
            })
            .method("fail", |_: Context, _: NoParams| async move {
                Err::<(), _>(ErrorObject::new(4000, "no"))
            })
    });
    let client = Client::connect(&format!("ws://{}", server.local_addr())).await.unwrap();
    assert_eq!(client.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert!(client.call::<()>("fail", ()).await.is_err());
    server.shutdown().await;

    let log = captured.text();
    // The server's side: the span of the received call, in the connection's, and its end.
    assert!(
        log.lines().any(|l| l.contains("connection{id=")
            && l.contains(r#"dialled="in"}:call{direction="in" method=add id=1}"#)
            && l.contains("answered elapsed_us=")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(r#"call{direction="in" method=fail id=2}"#)
                && l.contains("code=4000")
                && l.contains("failed")),
        "{log}"
    );
    // The caller's side.
    assert!(
        log.lines()
            .any(|l| l.contains(r#"direction="out" method="add" id=1"#) && l.contains("calling")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(r#"direction="out" method="fail" id=2"#) && l.contains("code=4000")),
        "{log}"
    );
}
