//! The web demo in a real browser: runs the Node tests of `tests/browser/` — Chromium driven by
//! playwright-core through two pages of the `web_chat` example, on one server and on two servers sharing
//! a hub on Redis, and `tsc` over the page's script — and passes when they do.
//!
//! They need Node, Chromium (`/usr/bin/chromium`, or `$BIRPC_CHROMIUM`) and the packages of
//! `tests/browser/package-lock.json`; the two-server test also needs `redis-server` (on the `PATH`, or
//! `$BIRPC_REDIS_SERVER`) and a `web_chat` built with the `redis` feature (`cargo test --all-features`
//! builds it so). Where one is missing the test says what to install and passes, except on CI
//! (`CI=true`), where it fails.
#![cfg(unix)]

mod common;

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// The longest the Node tests may take, all of them, before they are killed and the test fails. Each of
/// them has its own, much shorter, timeouts: this only keeps a wedged browser from hanging the suite.
const LIMIT: Duration = Duration::from_secs(600);

/// Something the browser tests need that is not there, and how to get it.
struct Missing {
    what: String,
    install: &'static str,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("BIRPC_CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn node_runs() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Says something even when the test's output is captured: a skipped browser test should be seen.
fn tell(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Runs `node --test` on `paths` (relative to the repository's root) with the example's binary, streaming
/// its output; fails if a test fails or if they take longer than [`LIMIT`].
fn run_node_tests(paths: &[&str]) {
    let server = common::example("web_chat");
    let mut command = Command::new("node");
    command
        .arg("--test")
        .args(paths)
        .current_dir(root())
        .env("BIRPC_WEB_CHAT", &server)
        // Its own process group, so that on timeout the browser and the server go with it.
        .process_group(0);
    let mut child = command.spawn().expect("start node --test");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    match finished.recv_timeout(LIMIT) {
        Ok(status) => {
            let status = status.expect("wait for node --test");
            assert!(
                status.success(),
                "the browser tests failed ({status}): see their output above"
            );
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            panic!("the browser tests took longer than {LIMIT:?}: killed");
        }
    }
}

#[test]
fn the_web_chat_page_works_in_chromium_and_type_checks() {
    let modules = root().join("tests/browser/node_modules");
    let mut missing = Vec::new();
    if !node_runs() {
        missing.push(Missing {
            what: "node (Node.js 20 or later)".to_owned(),
            install: "apt-get install nodejs npm",
        });
    }
    let absent: Vec<&str> = ["playwright-core", "typescript"]
        .into_iter()
        .filter(|package| !modules.join(package).join("package.json").exists())
        .collect();
    if !absent.is_empty() {
        missing.push(Missing {
            what: format!("the packages {} in tests/browser/node_modules", absent.join(" and ")),
            install: "npm ci --prefix tests/browser",
        });
    }
    let browser = chromium();
    let no_browser = !browser.exists();
    if no_browser {
        missing.push(Missing {
            what: format!("Chromium at {} (or set BIRPC_CHROMIUM)", browser.display()),
            install: "apt-get install chromium",
        });
    }

    if !missing.is_empty() {
        let mut list = String::new();
        for item in &missing {
            list.push_str(&format!("\n  - {}: install it with `{}`", item.what, item.install));
        }
        assert!(
            !on_ci(),
            "the browser tests cannot run on CI, something is missing:{list}"
        );
        if missing.len() > 1 || !no_browser {
            tell(&format!(
                "SKIPPED the browser tests and the page's type check (tests/browser/):{list}"
            ));
            return;
        }
        // Only the browser is missing: the page is still type-checked.
        tell(&format!(
            "SKIPPED the browser tests (tests/browser/web_chat.test.mjs):{list}"
        ));
        run_node_tests(&["tests/browser/typecheck.test.mjs"]);
        return;
    }
    run_node_tests(&["tests/browser/"]);
}
