//! Interop over byte streams with JSON-RPC peers of other languages, both directions each:
//!
//! - `vscode-jsonrpc` (npm; the library of VS Code's language clients) over a child's stdio with
//!   `Content-Length` framing: it spawns the interop server with `--listen stdio?framing=content-length`,
//!   and birpc spawns it with `exec:`;
//! - `jsonrpcserver` and `jsonrpcclient` (PyPI), one message a line: a Python client of the interop server's
//!   `tcp://` address, and a Python server birpc spawns with `exec:`.
//!
//! Their packages are pinned in `tests/foreign/node` and `tests/foreign/python` and installed by `.ci/run`.
//! Where they are missing the tests are skipped with a message saying how to install them, except in CI
//! (`CI=true`), where that fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use birpc::framing::Framing;
use birpc::prelude::*;
use birpc::{PeerConfig, Target};
use common::within;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

fn foreign(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/foreign").join(dir)
}

/// The directory of the Node peer, if its package is installed and Node runs.
fn node_peer() -> Option<PathBuf> {
    let dir = foreign("node");
    let installed = dir.join("node_modules/vscode-jsonrpc/package.json").exists();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        return Some(dir);
    }
    common::skip_or_fail(
        "the vscode-jsonrpc interop tests need Node.js and `npm ci --prefix tests/foreign/node` (see .ci/run)",
    );
    None
}

/// The Python of the venv with the peer's packages, if installed.
fn python() -> Option<PathBuf> {
    let python = foreign("python").join(".venv/bin/python");
    let installed = Command::new(&python)
        .args(["-c", "import jsonrpcserver, jsonrpcclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Some(python);
    }
    common::skip_or_fail(
        "the Python interop tests need a venv in tests/foreign/python/.venv with its requirements.txt \
         (python3 -m venv tests/foreign/python/.venv && tests/foreign/python/.venv/bin/pip install -r \
         tests/foreign/python/requirements.txt; see .ci/run)",
    );
    None
}

/// The methods birpc exports to the foreign servers: `whoami`, and the notification `noted`.
fn router(noted: mpsc::UnboundedSender<Value>) -> Router {
    Router::new()
        .method("whoami", |_: Context, _: NoParams| async {
            Ok::<_, ErrorObject>("rust")
        })
        .method("noted", move |_: Context, params: Value| {
            let _ = noted.send(params);
            async { Ok::<_, ErrorObject>(()) }
        })
}

/// Drives a foreign server: a call, its error object, a call it answers after calling birpc back, and a
/// notification it answers with one.
async fn drive(target: Target, name: &str) {
    let (tx, mut noted) = mpsc::unbounded_channel();
    let server = within("the spawn", target.connect(router(tx), PeerConfig::default()))
        .await
        .expect("spawn the peer");
    assert_eq!(server.call::<i64>("add", (2, 3)).await.expect("add"), 5);
    let Err(CallError::Remote(error)) = server.call::<Value>("fail", ()).await else {
        panic!("fail must answer an error object")
    };
    assert_eq!((error.code(), error.message()), (-32050, "failed on purpose"));
    assert_eq!(
        error.parse_data::<Value>().expect("data").expect("JSON"),
        json!({"n": 1})
    );
    assert_eq!(
        server.call::<String>("ask_back", ()).await.expect("ask_back"),
        format!("{name} asked rust")
    );
    server.notify("note", (7,)).await.expect("notify");
    let told = within("the notification back", noted.recv())
        .await
        .expect("a notification");
    assert!(told.to_string().contains('7'), "{told}");
    server.close();
    within("the close", server.closed()).await;
}

#[test]
fn vscode_jsonrpc_drives_the_interop_server_over_its_stdio() {
    let Some(dir) = node_peer() else { return };
    let mut command = Command::new("node");
    command
        .arg(dir.join("peer.js"))
        .arg("client")
        .arg(common::example("interop_server"));
    let status = common::run_bounded(command, Duration::from_secs(120));
    assert!(status.success(), "the vscode-jsonrpc client failed ({status})");
}

#[tokio::test]
async fn birpc_drives_a_vscode_jsonrpc_server_over_its_stdio() {
    let Some(dir) = node_peer() else { return };
    let target: Target = format!("exec:node '{}' server", dir.join("peer.js").display())
        .parse::<Target>()
        .expect("a target")
        .framing(Framing::ContentLength);
    drive(target, "node").await;
}

#[tokio::test]
async fn a_python_client_drives_the_interop_server_over_tcp() {
    let Some(python) = python() else { return };
    let mut server = tokio::process::Command::new(common::example("interop_server"))
        .args(["--listen", "tcp://127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start interop_server");
    let stdout = server.stdout.take().expect("stdout");
    let first = within("the first line", tokio::io::BufReader::new(stdout).lines().next_line())
        .await
        .expect("read")
        .expect("a line");
    let addr = first.strip_prefix("listening on tcp://").expect("a tcp:// URL");
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let mut command = Command::new(python);
    command
        .arg(foreign("python").join("peer.py"))
        .args(["client", host, port]);
    let status = tokio::task::spawn_blocking(move || common::run_bounded(command, Duration::from_secs(120)))
        .await
        .expect("the client's thread");
    assert!(status.success(), "the Python client failed ({status})");
}

#[tokio::test]
async fn birpc_drives_a_python_server_over_its_stdio() {
    let Some(python) = python() else { return };
    let target: Target = format!(
        "exec:'{}' '{}' server",
        python.display(),
        foreign("python").join("peer.py").display()
    )
    .parse()
    .expect("a target");
    drive(target, "python").await;
}
