//! The JavaScript client's own tests (clients/js/test), run under Node against the Rust interop server.
//!
//! Without Node they are skipped with a message saying how to install it, except in CI (`CI=true`), where
//! a missing Node fails the run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `node` runs here, and whether it needs a flag for its WebSocket.
fn node() -> Option<Vec<&'static str>> {
    let has_websocket = Command::new("node")
        .args(["-e", "process.exit(typeof WebSocket === 'function' ? 0 : 3)"])
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match has_websocket.code() {
        Some(0) => Some(Vec::new()),
        // Node 20 has it behind a flag.
        Some(3) => Some(vec!["--experimental-websocket"]),
        _ => None,
    }
}

#[test]
fn the_javascript_client_passes_its_tests_against_the_rust_server() {
    let Some(flags) = node() else {
        common::skip_or_fail("the JavaScript client's tests need Node.js 20 or later (Debian: apt-get install nodejs)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("node");
    command
        .args(&flags)
        .args(["--test", "clients/js/test/"])
        .current_dir(root)
        .env("BIRPC_INTEROP_SERVER", common::example("interop_server"));
    let status = common::run_bounded(command, Duration::from_secs(600));
    assert!(status.success(), "the JavaScript client's tests failed ({status})");
}
