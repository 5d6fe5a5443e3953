//! The whole peer over byte streams: TCP and Unix sockets on this machine, both framings, a child process
//! (the interop server over its stdio), calls both ways, batches, notifications, cancellation, streams,
//! the hub, limits and shutdown.

mod common;

use std::time::Duration;

use birpc::byte_stream::{StreamConnection, StreamServer, StreamServerHandle};
use birpc::framing::Framing;
use birpc::prelude::*;
use birpc::{Hub, PeerConfig, Target};
use common::within;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Sends a message when dropped: a handler's end, however it came.
struct OnDrop(mpsc::UnboundedSender<&'static str>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

/// The server's methods: `add`, `ask_back` (calls the client's `whoami` inside the handler), `note` (a
/// notification, reported on `events`), `poke` (notifies the client back), `slow` (never answers; reports
/// its start and its end), `ticks` (a stream), `who` (this connection's id), `join` (into the hub's group
/// `room`).
fn routes(events: mpsc::UnboundedSender<&'static str>, hub: Hub) -> impl Fn(&StreamConnection) -> Router + Clone {
    move |connection| {
        let id = connection.id();
        let (events, notes, hub) = (events.clone(), events.clone(), hub.clone());
        Router::new()
            .method("add", |_: Context, (a, b): (i64, i64)| async move {
                Ok::<_, ErrorObject>(a + b)
            })
            .method("ask_back", |ctx: Context, _: NoParams| async move {
                let name: String = ctx
                    .peer()
                    .call("whoami", ())
                    .await
                    .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                Ok::<_, ErrorObject>(format!("you are {name}"))
            })
            .method("note", move |_: Context, _: NoParams| {
                let _ = notes.send("note");
                async { Ok::<_, ErrorObject>(()) }
            })
            .method("poke", |ctx: Context, _: NoParams| async move {
                ctx.peer()
                    .notify("poked", ("hello",))
                    .await
                    .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                Ok::<_, ErrorObject>(())
            })
            .method("slow", move |_: Context, _: NoParams| {
                let guard = OnDrop(events.clone());
                let _ = events.send("started");
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok::<_, ErrorObject>(())
                }
            })
            .stream("ticks", |_: Context, (count,): (u64,)| async move {
                Ok::<_, ErrorObject>(futures::stream::iter((0..count).map(Ok::<_, ErrorObject>)))
            })
            .method(
                "who",
                move |_: Context, _: NoParams| async move { Ok::<_, ErrorObject>(id) },
            )
            .method("join", move |ctx: Context, _: NoParams| {
                let joined = hub.join(hub.id_of(ctx.peer()), "room");
                async move { Ok::<_, ErrorObject>(joined) }
            })
    }
}

/// The client's methods: `whoami` answers `name`; the notification `poked` is reported on `events`.
fn client_router(name: &'static str, events: mpsc::UnboundedSender<Value>) -> Router {
    Router::new()
        .method("whoami", move |_: Context, _: NoParams| async move {
            Ok::<_, ErrorObject>(name)
        })
        .method("poked", move |_: Context, params: Value| {
            let _ = events.send(params);
            async { Ok::<_, ErrorObject>(()) }
        })
}

struct Running {
    server: StreamServerHandle,
    target: Target,
    events: mpsc::UnboundedReceiver<&'static str>,
    hub: Hub,
}

async fn tcp_server(framing: Framing) -> Running {
    let (tx, events) = mpsc::unbounded_channel();
    let hub = Hub::new();
    let server = StreamServer::builder()
        .framing(framing)
        .hub(hub.clone())
        .bind_tcp("127.0.0.1:0")
        .await
        .expect("bind");
    let target: Target = format!("{}?framing={framing}", server.local_addr())
        .parse()
        .expect("a target");
    Running {
        server: server.serve(routes(tx, hub.clone())),
        target,
        events,
        hub,
    }
}

#[cfg(unix)]
async fn unix_server(framing: Framing, name: &str) -> Running {
    let (tx, events) = mpsc::unbounded_channel();
    let hub = Hub::new();
    let dir = std::env::temp_dir().join(format!("birpc-byte-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let server = StreamServer::builder()
        .framing(framing)
        .hub(hub.clone())
        .bind_unix(&path)
        .expect("bind");
    let target = format!("unix:{}?framing={framing}", path.display())
        .parse()
        .expect("a target");
    Running {
        server: server.serve(routes(tx, hub.clone())),
        target,
        events,
        hub,
    }
}

/// Calls both ways, a batch, notifications both ways, over `running`.
async fn the_peer_works(running: &mut Running) {
    let (tx, mut poked) = mpsc::unbounded_channel();
    let client = within(
        "the connection",
        running.target.connect(client_router("ada", tx), PeerConfig::default()),
    )
    .await
    .expect("connect");
    assert_eq!(client.call::<i64>("add", (2, 3)).await.expect("add"), 5);
    // The server calls the client back inside its handler.
    assert_eq!(
        client.call::<String>("ask_back", ()).await.expect("ask_back"),
        "you are ada"
    );
    // A batch: two calls and a notification in one message.
    let mut batch = client.batch();
    let first = batch.call::<i64>("add", (1, 1)).expect("batch entry");
    let second = batch.call::<i64>("add", (40, 2)).expect("batch entry");
    batch.notify("note", ()).expect("batch entry");
    batch.send().await.expect("send the batch");
    assert_eq!((first.await.expect("first"), second.await.expect("second")), (2, 42));
    assert_eq!(within("the note", running.events.recv()).await, Some("note"));
    // Notifications both ways.
    client.notify("note", ()).await.expect("notify");
    assert_eq!(within("the note", running.events.recv()).await, Some("note"));
    client.call::<()>("poke", ()).await.expect("poke");
    assert_eq!(within("the poke", poked.recv()).await, Some(json!(["hello"])));
    assert!(matches!(
        client.call::<()>("absent", ()).await,
        Err(CallError::MethodNotFound(_))
    ));
    client.close();
    within("the close", client.closed()).await;
    common::eventually("the server to see the close", || running.server.connection_count() == 0).await;
}

#[tokio::test]
async fn the_peer_works_over_tcp_with_lines() {
    let mut running = tcp_server(Framing::Lines).await;
    the_peer_works(&mut running).await;
    running.server.shutdown().await;
}

#[tokio::test]
async fn the_peer_works_over_tcp_with_content_length() {
    let mut running = tcp_server(Framing::ContentLength).await;
    the_peer_works(&mut running).await;
    running.server.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_peer_works_over_unix_sockets_with_both_framings() {
    for (framing, name) in [(Framing::Lines, "lines.sock"), (Framing::ContentLength, "cl.sock")] {
        let mut running = unix_server(framing, name).await;
        the_peer_works(&mut running).await;
        let Target::Unix { path, .. } = running.target.clone() else {
            panic!("a unix target")
        };
        running.server.shutdown().await;
        assert!(!path.exists(), "the socket file is removed at shutdown");
    }
}

#[tokio::test]
async fn a_timed_out_or_dropped_call_sends_the_cancel() {
    let mut running = tcp_server(Framing::Lines).await;
    let client = running
        .target
        .connect(Router::new(), PeerConfig::default())
        .await
        .expect("connect");
    let outcome = client
        .call::<()>("slow", ())
        .timeout(Some(Duration::from_millis(100)))
        .await;
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    assert_eq!(within("the start", running.events.recv()).await, Some("started"));
    assert_eq!(within("the cancellation", running.events.recv()).await, Some("dropped"));
    let call = tokio::spawn(client.call::<()>("slow", ()));
    assert_eq!(within("the start", running.events.recv()).await, Some("started"));
    call.abort();
    assert_eq!(within("the cancellation", running.events.recv()).await, Some("dropped"));
    assert_eq!(client.call::<i64>("add", (1, 2)).await.expect("add"), 3);
    running.server.shutdown().await;
}

#[tokio::test]
async fn streams_flow_over_tcp() {
    let running = tcp_server(Framing::ContentLength).await;
    let client = running
        .target
        .connect(Router::new(), PeerConfig::default())
        .await
        .expect("connect");
    let items = client.subscribe::<u64>("ticks", (500,)).await.expect("subscribe");
    let all: Vec<u64> = within("the stream", items.map(|item| item.expect("an item")).collect()).await;
    assert_eq!(all, (0..500).collect::<Vec<_>>());
    running.server.shutdown().await;
}

#[tokio::test]
async fn the_hub_reaches_tcp_connections() {
    let running = tcp_server(Framing::Lines).await;
    let (tx_a, mut poked_a) = mpsc::unbounded_channel();
    let (tx_b, mut poked_b) = mpsc::unbounded_channel();
    let a = running
        .target
        .connect(client_router("a", tx_a), PeerConfig::default())
        .await
        .expect("connect");
    let b = running
        .target
        .connect(client_router("b", tx_b), PeerConfig::default())
        .await
        .expect("connect");
    assert!(a.call::<bool>("join", ()).await.expect("join"));
    assert!(b.call::<bool>("join", ()).await.expect("join"));
    assert_eq!(running.hub.members("room").len(), 2);
    running.hub.notify_group("room", "poked", ("everyone",));
    assert_eq!(
        within("a's notification", poked_a.recv()).await,
        Some(json!(["everyone"]))
    );
    assert_eq!(
        within("b's notification", poked_b.recv()).await,
        Some(json!(["everyone"]))
    );
    drop(a);
    common::eventually("a to leave the hub", || running.hub.members("room").len() == 1).await;
    running.server.shutdown().await;
    within("b to be closed by the shutdown", b.closed()).await;
}

#[tokio::test]
async fn past_max_connections_a_connection_is_told_and_closed() {
    let server = StreamServer::builder()
        .max_connections(1)
        .bind_tcp("127.0.0.1:0")
        .await
        .expect("bind");
    let target: Target = server.local_addr().to_string().parse().expect("a target");
    let server =
        server.serve(|_| Router::new().method("one", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>(1) }));
    let first = target
        .connect(Router::new(), PeerConfig::default())
        .await
        .expect("connect");
    assert_eq!(first.call::<i32>("one", ()).await.expect("one"), 1);
    let Target::Tcp { addr, .. } = &target else {
        panic!("a tcp target")
    };
    let mut second = tokio::net::TcpStream::connect(addr.as_str()).await.expect("connect");
    let mut lines = BufReader::new(&mut second).lines();
    let refusal = within("the refusal", lines.next_line())
        .await
        .expect("read")
        .expect("a line");
    let refusal: Value = serde_json::from_str(&refusal).expect("JSON");
    assert_eq!(refusal["error"]["code"], -32005);
    assert_eq!(within("the end", lines.next_line()).await.expect("read"), None);
    drop(first);
    common::eventually("the place to free up", || server.connection_count() == 0).await;
    server.shutdown().await;
}

/// `exec:` the interop server with `--listen stdio` (in `framing`), and talk to it.
async fn the_interop_server_as_a_child(framing: Framing) {
    let exe = common::example("interop_server");
    let target: Target = format!("exec:'{}' --listen 'stdio?framing={framing}'", exe.display())
        .parse::<Target>()
        .expect("a target")
        .framing(framing);
    let (tx, mut poked) = mpsc::unbounded_channel();
    let server = target
        .connect(client_router("grace", tx), PeerConfig::default())
        .await
        .expect("spawn");
    assert_eq!(server.call::<i64>("subtract", (42, 23)).await.expect("subtract"), 19);
    // The server calls this side back while answering.
    let answer: String = server
        .call("ask_client", json!({"method": "whoami"}))
        .await
        .expect("ask_client");
    assert_eq!(answer, "grace");
    server
        .call::<()>("notify_client", json!({"method": "poked", "params": [1]}))
        .await
        .expect("notify_client");
    assert_eq!(within("the notification", poked.recv()).await, Some(json!([1])));
    let ticks = server
        .subscribe::<u64>("ticks", json!({"count": 5, "every_ms": 0}))
        .await
        .expect("ticks");
    let all: Vec<u64> = within("the ticks", ticks.map(|t| t.expect("a tick")).collect()).await;
    assert_eq!(all, [0, 1, 2, 3, 4]);
    // Closing the connection closes the child's stdin: it exits, and its stdout ends.
    server.close();
    let reason = within("the close", server.closed()).await;
    assert!(!reason.to_string().is_empty());
}

#[tokio::test]
async fn a_child_process_serves_over_its_stdio_with_lines() {
    the_interop_server_as_a_child(Framing::Lines).await;
}

#[tokio::test]
async fn a_child_process_serves_over_its_stdio_with_content_length() {
    the_interop_server_as_a_child(Framing::ContentLength).await;
}

#[tokio::test]
async fn the_peer_closes_when_the_child_exits() {
    let exe = common::example("interop_server");
    let target: Target = format!("exec:'{}' --listen stdio", exe.display())
        .parse()
        .expect("a target");
    let server = target
        .connect(Router::new(), PeerConfig::default())
        .await
        .expect("spawn");
    // The interop server's `close` ends its connection; with stdio that is the end of the process.
    let _ = server.call::<()>("close", json!({"code": 1000, "reason": "bye"})).await;
    within("the close", server.closed()).await;
    assert!(!server.is_connected());
}

#[tokio::test]
async fn interop_server_prints_the_url_it_listens_on() {
    let exe = common::example("interop_server");
    for (listen, prefix) in [
        ("tcp://127.0.0.1:0", "listening on tcp://127.0.0.1:"),
        (
            "tcp://127.0.0.1:0?framing=content-length",
            "listening on tcp://127.0.0.1:",
        ),
        ("127.0.0.1:0", "listening on ws://127.0.0.1:"),
    ] {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--listen", listen])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start");
        let stdout = child.stdout.take().expect("stdout");
        let first = within("the first line", BufReader::new(stdout).lines().next_line())
            .await
            .expect("read")
            .expect("a line");
        assert!(first.starts_with(prefix), "{listen}: {first}");
        assert!(
            !first.ends_with(":0") && !first.contains(":0?"),
            "the real port: {first}"
        );
        let url = first.trim_start_matches("listening on ");
        let target: Target = url.parse().expect("a target");
        assert_eq!(
            target.framing_of().map(|f| f.to_string()),
            match listen {
                l if l.contains("content-length") => Some("content-length".into()),
                l if l.starts_with("tcp") => Some("lines".into()),
                _ => None,
            }
        );
        let client = target
            .connect(Router::new(), PeerConfig::default())
            .await
            .expect("connect");
        assert_eq!(client.call::<i64>("sum", (1, 2, 3)).await.expect("sum"), 6);
        child.start_kill().expect("kill");
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn a_stdio_server_talks_on_stdout_and_says_where_on_stderr() {
    let exe = common::example("interop_server");
    let mut child = tokio::process::Command::new(&exe)
        .args(["--listen", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let said = within("the stderr line", stderr.next_line()).await.expect("read");
    assert_eq!(said.as_deref(), Some("listening on stdio"));
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"subtract\",\"params\":[5,3],\"id\":1}\n")
        .await
        .expect("write");
    let answer = within("the answer", stdout.next_line())
        .await
        .expect("read")
        .expect("a line");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).expect("JSON"),
        json!({"jsonrpc": "2.0", "result": 2, "id": 1})
    );
    // The end of stdin ends the server.
    drop(stdin);
    let status = within("the exit", child.wait()).await.expect("wait");
    assert!(status.success(), "{status}");
}
