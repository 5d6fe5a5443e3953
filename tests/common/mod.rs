//! Helpers shared by the integration tests: a raw WebSocket client that speaks JSON text, a TCP proxy that
//! can cut a connection, and a way to run the examples.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an event before failing (never a sleep standing in for the event).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Waits until `condition` holds, checking it every few milliseconds; fails the test after [`PATIENCE`].
/// For states that have no event of their own to await (a counter reaching a bound, say).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// The resident memory of this process, in bytes (from /proc; 0 where there is none).
pub fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A WebSocket client that sends and receives raw text, to see exactly what a peer puts on the wire.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("connect");
        Self { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.expect("send");
    }

    /// Sends any message, raw frames included.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The socket itself, for tests that must stop reading it or take it apart.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// The next text or binary message, as text.
    pub async fn recv(&mut self) -> String {
        loop {
            let message = within("a message", self.ws.next())
                .await
                .expect("the connection ended")
                .expect("read");
            match message {
                Message::Text(text) => return text.to_string(),
                Message::Binary(bytes) => return String::from_utf8(bytes.to_vec()).expect("UTF-8"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(frame) => panic!("closed: {frame:?}"),
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        let text = self.recv().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Sends `request` and returns the answer.
    pub async fn ask(&mut self, request: &str) -> Value {
        self.send(request).await;
        self.recv_json().await
    }

    /// Sends `request` and returns the answer's exact text.
    pub async fn ask_raw(&mut self, request: &str) -> String {
        self.send(request).await;
        self.recv().await
    }

    /// Proves that nothing was answered to what was sent before: a probe request sent now must be the
    /// next thing to come back, since the peer reads in order and answers what it can at once in order.
    pub async fn expect_no_answer(&mut self) {
        let answer = self
            .ask(r#"{"jsonrpc":"2.0","method":"probe.absent","id":"probe"}"#)
            .await;
        assert_eq!(
            answer["id"], "probe",
            "something was answered before the probe: {answer}"
        );
    }

    /// Waits for the close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match within("the close frame", self.ws.next()).await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the connection failed before closing: {e}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// A TCP proxy between a client and a server that the test can cut abruptly (no close frame, no FIN
/// handshake beyond what dropping the sockets gives).
pub struct Proxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Forwards one connection accepted on a fresh port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut inbound, _) = listener.accept().await.expect("accept");
            let mut outbound = TcpStream::connect(upstream).await.expect("connect upstream");
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
        Self { addr, task }
    }

    /// Cuts the connection: both sockets are dropped.
    pub fn cut(&self) {
        self.task.abort();
    }
}

/// The path of a compiled example, building it if `cargo test` did not.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let path = profile_dir.join("examples").join(name);
    if path.exists() {
        return path;
    }
    // Not built alongside the tests: build it in a target directory of its own, so as not to wait on the
    // lock of the one the tests run from; with every feature, as `cargo test --all-features` would (the
    // examples' `--redis`, say).
    let own_target = profile_dir.join("example-builds");
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--package",
            "birpc-examples",
            "--all-features",
            "--example",
            name,
            "--target-dir",
        ])
        .arg(&own_target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the example {name} failed");
    own_target.join("debug").join("examples").join(name)
}

/// For tests that need a tool this machine may lack: in CI (`CI=true`) a missing tool fails the test;
/// elsewhere the test is skipped with `message`, which says how to install it. The line is written to
/// stderr directly, not through `eprintln!`, which the test harness captures and hides for a test that
/// passes: so `cargo test` shows `SKIPPED: …` among its results.
pub fn skip_or_fail(message: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("in CI, nothing may be skipped: {message}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
}

/// Runs `command` with its output shown, killing it (and failing) if it runs longer than `limit`.
pub fn run_bounded(mut command: std::process::Command, limit: Duration) -> std::process::ExitStatus {
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the interoperability server and returns it with the address from its first line.
pub async fn interop_server() -> (tokio::process::Child, SocketAddr) {
    let (child, addr) = interop_server_with(&[]).await;
    assert_ne!(addr.port(), 0, "the real port is printed");
    (child, addr)
}

/// A `redis-server` of the test's own on a free loopback port (Debian's package; `.ci/run` installs
/// it), without persistence. Dropped, it is killed.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free port; `None` (after [`skip_or_fail`]) where `redis-server` is missing.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { child: None, port };
        if !server.restart().await {
            skip_or_fail("the Redis tests need redis-server (Debian: apt-get install redis-server)");
            return None;
        }
        Some(server)
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) on its port and waits until it answers; `false` when it cannot be started.
    pub async fn restart(&mut self) -> bool {
        let spawned = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = spawned else { return false };
        self.child = Some(child);
        within("redis-server to answer", async {
            loop {
                if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut reply = [0_u8; 7];
                    if stream.write_all(b"PING\r\n").await.is_ok()
                        && stream.read_exact(&mut reply).await.is_ok()
                        && &reply == b"+PONG\r\n"
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        true
    }

    /// Kills it (SIGKILL): everything it held is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the interoperability server with `args` (after `--listen 127.0.0.1:0`) and returns it with its
/// address.
pub async fn interop_server_with(args: &[&str]) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(example("interop_server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start interop_server");
    let stdout = child.stdout.take().expect("stdout");
    let first = within("the first line", tokio::io::BufReader::new(stdout).lines().next_line())
        .await
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    (child, url.parse().unwrap())
}
