//! The client process's side: starting server processes, opening connections, running rounds.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use birpc::prelude::*;
use futures::{StreamExt, TryStreamExt};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{
    BroadcastSummary, GroupCallSummary, HUB_GROUP, Impl, Payload, Result, RoundSummary, check, raise_fd_limit,
    resident_bytes,
};
use crate::serve::{HubMode, birpc_router};
use crate::{load, raw};

/// How many connections are opened at once.
const CONNECT_CONCURRENCY: usize = 64;

/// A server process (this program, run as `bench serve`).
pub(crate) struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    url: String,
}

impl ServerProc {
    /// Starts a server of `imp` on a free loopback port and waits until it listens. `wrapper`, when given,
    /// is a command line the server runs under (a profiler: `valgrind --tool=callgrind`).
    pub(crate) async fn start(imp: Impl, wrapper: Option<&str>) -> Result<ServerProc> {
        ServerProc::start_with(imp, wrapper, &[]).await
    }

    /// Starts a server for the server-to-client scenario (`--s2c`): only such a server keeps a registry of
    /// its connections to call them back, so that the other scenarios measure bare connections.
    pub(crate) async fn start_s2c(imp: Impl, wrapper: Option<&str>) -> Result<ServerProc> {
        ServerProc::start_with(imp, wrapper, &["--s2c".into()]).await
    }

    /// Starts a server as [`start`](Self::start) does, with these arguments after `--listen` (`--hub`).
    pub(crate) async fn start_with(imp: Impl, wrapper: Option<&str>, more: &[String]) -> Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut words = wrapper.unwrap_or_default().split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["serve", "--impl", imp.name(), "--listen", "127.0.0.1:0"])
            .args(more)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stdout = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .map_err(|_| "the server did not start in time")??
            .ok_or("the server exited")?;
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {first:?}"))?
            .to_owned();
        Ok(ServerProc {
            child,
            stdin,
            stdout,
            url,
        })
    }

    /// The `ws://` URL it listens on.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends one command line and returns the answer line.
    pub(crate) async fn command(&mut self, line: &str) -> Result<String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        let answer = tokio::time::timeout(Duration::from_secs(300), self.stdout.next_line())
            .await
            .map_err(|_| "the server did not answer in time")??
            .ok_or("the server exited")?;
        match answer.strip_prefix("error: ") {
            Some(error) => Err(error.to_owned().into()),
            None => Ok(answer),
        }
    }

    /// Runs a server-to-client round: the server calls `conns` clients, `inflight` calls each, made as
    /// `callers` says.
    pub(crate) async fn server_to_client(
        &mut self,
        conns: usize,
        inflight: usize,
        duration: Duration,
        callers: load::Callers,
    ) -> Result<RoundSummary> {
        let answer = self
            .command(&format!(
                "s2c {conns} {inflight} {} {}",
                duration.as_millis(),
                callers.name()
            ))
            .await?;
        Ok(serde_json::from_str(&answer)?)
    }

    /// How many items its `forever` streams have produced so far.
    pub(crate) async fn produced(&mut self) -> Result<u64> {
        Ok(self.command("produced").await?.parse()?)
    }

    /// Closes its stdin (which ends it) and waits for it; kills it if it lingers.
    pub(crate) async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The client side of the memory scenario: this program run as `bench clients --impl NAME --url URL --conns
/// N --settle-ms MS`, a fresh process per implementation and round, so that what it measures is its own
/// (see [`clients_main`]).
pub(crate) struct ClientProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ClientProc {
    /// Starts it; it opens one connection to `url`, waits `settle`, and reports its resident memory, which
    /// [`baseline`](Self::baseline) reads.
    pub(crate) async fn start(imp: Impl, url: &str, conns: usize, settle: Duration) -> Result<ClientProc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["clients", "--impl", imp.name(), "--url", url])
            .args([
                "--conns",
                &conns.to_string(),
                "--settle-ms",
                &settle.as_millis().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(ClientProc { child, stdin, stdout })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its resident bytes with one connection open, once settled.
    pub(crate) async fn baseline(&mut self) -> Result<u64> {
        self.resident("baseline").await
    }

    /// Has it open its idle connections; its resident bytes with them open, once settled.
    pub(crate) async fn open(&mut self) -> Result<u64> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(b"open\n").await?;
        stdin.flush().await?;
        self.resident("opened").await
    }

    /// Reads its next line, `WORD BYTES`.
    async fn resident(&mut self, word: &str) -> Result<u64> {
        let line = tokio::time::timeout(Duration::from_secs(300), self.stdout.next_line())
            .await
            .map_err(|_| "the client process did not answer in time")??
            .ok_or("the client process exited")?;
        let bytes = line
            .strip_prefix(word)
            .ok_or_else(|| format!("the client process said {line:?}"))?;
        Ok(bytes.trim().parse()?)
    }

    /// Closes its stdin (which ends it, and its connections) and waits for it.
    pub(crate) async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `bench clients --impl NAME --url URL --conns N --settle-ms MS`: opens one connection of `NAME` to
/// `URL` (one call made), waits `MS` ms and prints `baseline BYTES` (its `VmRSS`); on the line `open` from
/// stdin it opens `N` more (each makes one call), waits `MS` ms and prints `opened BYTES`; it exits when
/// stdin closes. Nothing else runs in it.
pub(crate) fn clients_main(args: &[String]) -> Result<()> {
    let mut imp = None;
    let mut url = None;
    let mut conns = 0;
    let mut settle = Duration::from_secs(1);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--impl" => imp = Some(Impl::parse(value).ok_or_else(|| format!("unknown implementation {value}"))?),
            "--url" => url = Some(value.clone()),
            "--conns" => conns = value.parse()?,
            "--settle-ms" => settle = Duration::from_millis(value.parse()?),
            _ => return Err(format!("unknown option {arg}").into()),
        }
    }
    let (imp, url) = (imp.ok_or("--impl is required")?, url.ok_or("--url is required")?);
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let say = |line: String| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        let first = Conns::open(imp, &url, 1).await?;
        tokio::time::sleep(settle).await;
        say(format!("baseline {}", resident_bytes("self")?));
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut idle = None;
        while let Some(line) = lines.next_line().await? {
            if line.trim() == "open" && idle.is_none() {
                idle = Some(Conns::open(imp, &url, conns).await?);
                tokio::time::sleep(settle).await;
                say(format!("opened {}", resident_bytes("self")?));
            }
        }
        drop((first, idle));
        Ok::<_, crate::common::BoxError>(())
    })?;
    // Connections still closing need not be waited for.
    std::process::exit(0)
}

/// A `redis-server` of the hub scenario's own: on a free loopback port, keeping nothing on disk.
pub(crate) struct RedisProc {
    child: Child,
    port: u16,
    /// Its version, as `redis-server --version` tells it.
    pub(crate) version: String,
}

impl RedisProc {
    /// Starts `redis-server` (from `PATH`) with `--save "" --appendonly no` and waits until it answers
    /// `PING`; `None` when there is no `redis-server` to run.
    pub(crate) async fn start() -> Result<Option<RedisProc>> {
        let version = match Command::new("redis-server").arg("--version").output().await {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout);
                text.split_whitespace()
                    .find_map(|word| word.strip_prefix("v="))
                    .unwrap_or(text.trim())
                    .to_owned()
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("redis-server --version: {error}").into()),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let ready_by = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(format!("redis-server exited at once ({status})").into());
            }
            if answers_ping(port).await {
                return Ok(Some(RedisProc { child, port, version }));
            }
            if Instant::now() > ready_by {
                return Err("redis-server did not answer in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL its clients use.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills it (nothing it holds is kept) and waits for it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
async fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok() && stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

/// One setup of the hub scenario: its server processes (each with a hub: a plain one, or a node of a hub
/// on Redis), and its clients, spread over them round-robin, every one in [`HUB_GROUP`].
pub(crate) struct HubNodes {
    servers: Vec<ServerProc>,
    clients: Vec<PeerHandle>,
    ticks: Arc<load::Ticks>,
    /// The clients of each server.
    pub(crate) per_node: Vec<usize>,
    /// The number of the next broadcast.
    next_seq: u64,
}

impl HubNodes {
    /// Starts a server per hub of `hubs`, opens `clients` clients (client `i` on server `i % servers`),
    /// each exporting `add`, `echo` and `tick` and joining [`HUB_GROUP`], and waits until every server
    /// counts them all in the group (membership reaches Redis asynchronously). Not timed.
    pub(crate) async fn start(hubs: &[HubMode], clients: usize, wrapper: Option<&str>) -> Result<HubNodes> {
        let mut servers = Vec::new();
        for hub in hubs {
            servers.push(ServerProc::start_with(Impl::Birpc, wrapper, &hub.args()).await?);
        }
        let urls: Vec<String> = servers.iter().map(|server| server.url().to_owned()).collect();
        let ticks = load::Ticks::new(clients);
        let opened: Vec<(PeerHandle, u64)> = futures::stream::iter(0..clients)
            .map(|i| open_hub_client(&urls[i % urls.len()], ticks.clone()))
            .buffered(CONNECT_CONCURRENCY)
            .try_collect()
            .await?;
        let ids: std::collections::BTreeSet<u64> = opened.iter().map(|(_, id)| *id).collect();
        let mut per_node = vec![0; urls.len()];
        for i in 0..clients {
            per_node[i % urls.len()] += 1;
        }
        let clients: Vec<PeerHandle> = opened.into_iter().map(|(peer, _)| peer).collect();
        // Ids are hub-wide only across nodes: each local hub numbers its own connections.
        if hubs.len() > 1 {
            check(ids.len() == clients.len(), "distinct hub-wide ids")?;
        }
        let ready_by = Instant::now() + Duration::from_secs(30);
        for asker in clients.iter().take(urls.len()) {
            loop {
                let members: usize = asker.call("members", (HUB_GROUP,)).await?;
                if members == clients.len() {
                    break;
                }
                if Instant::now() > ready_by {
                    return Err(format!("the group has {members} members of {}", clients.len()).into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(HubNodes {
            servers,
            clients,
            ticks,
            per_node,
            next_seq: 1,
        })
    }

    /// The process ids of its servers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(ServerProc::pid).collect()
    }

    /// Broadcasts to the group one at a time for `duration` (see `load`).
    pub(crate) async fn broadcast_round(&mut self, duration: Duration) -> Result<BroadcastSummary> {
        load::broadcast_round(&self.clients, &self.ticks, &mut self.next_seq, duration).await
    }

    /// Has the first client's server call the whole group, one `call_group` after the other, for
    /// `duration`.
    pub(crate) async fn group_call_round(&self, duration: Duration) -> Result<GroupCallSummary> {
        let caller = self.clients.first().ok_or("no client")?;
        let millis = u64::try_from(duration.as_millis())?;
        let summary: GroupCallSummary = caller
            .call("group_calls", (HUB_GROUP, millis, self.clients.len()))
            .timeout(Some(duration + Duration::from_secs(60)))
            .await?;
        Ok(summary)
    }

    /// Closes its clients and stops its servers.
    pub(crate) async fn stop(self) {
        drop(self.clients);
        for server in self.servers {
            server.stop().await;
        }
    }
}

/// Opens a client of a hub server that answers `add` and `echo`, takes each `tick` notification to
/// `ticks`, and joins [`HUB_GROUP`]; returns it with its hub-wide id.
async fn open_hub_client(url: &str, ticks: Arc<load::Ticks>) -> Result<(PeerHandle, u64)> {
    let router = birpc_router().method("tick", move |_: Context, (seq,): (u64,)| {
        ticks.receive(seq);
        async { Ok::<_, ErrorObject>(()) }
    });
    let peer = Client::builder().router(router).connect(url).await?;
    let id: u64 = peer.call("join", (HUB_GROUP,)).await?;
    Ok((peer, id))
}

/// A raw client connection.
pub(crate) type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open client connections of one implementation, calling the server.
pub(crate) enum Conns {
    Birpc(Vec<PeerHandle>),
    Jsonrpsee(Vec<Arc<WsClient>>),
    Raw(Vec<RawWs>),
}

impl Conns {
    /// Opens `count` connections of `imp` to `url`, and makes one `add` call on each so that both sides
    /// have set the connection up completely. Not timed.
    pub(crate) async fn open(imp: Impl, url: &str, count: usize) -> Result<Conns> {
        Ok(match imp {
            Impl::Birpc => Conns::Birpc(many(count, || open_birpc(url)).await?),
            Impl::Jsonrpsee => Conns::Jsonrpsee(many(count, || open_jsonrpsee(url)).await?),
            Impl::Raw | Impl::RawDefault => Conns::Raw(many(count, || open_raw(imp, url)).await?),
        })
    }

    /// Opens one connection of `imp` to `url` for the stream scenarios, as [`open`](Self::open) does, but
    /// with jsonrpsee's client buffering up to `buffer` items per subscription instead of its default
    /// 1,024: past its buffer, jsonrpsee closes a subscription ("lagged"), and a fast producer fills it
    /// whenever the reading task falls behind the connection's. birpc's client keeps its default window
    /// unless `window` is given (`--stream-window`).
    pub(crate) async fn open_for_streams(imp: Impl, url: &str, buffer: usize, window: Option<u32>) -> Result<Conns> {
        Ok(match (imp, window) {
            (Impl::Jsonrpsee, _) => {
                let client = WsClientBuilder::default()
                    .max_buffer_capacity_per_subscription(buffer.max(1024))
                    .build(url)
                    .await?;
                let sum: i64 = client.request("add", rpc_params![1, 2]).await?;
                check(sum == 3, "add")?;
                Conns::Jsonrpsee(vec![Arc::new(client)])
            }
            (Impl::Birpc, Some(window)) => {
                let peer = Client::builder()
                    .config(PeerConfig::default().stream_window(window))
                    .connect(url)
                    .await?;
                let sum: i64 = peer.call("add", (1, 2)).await?;
                check(sum == 3, "add")?;
                Conns::Birpc(vec![peer])
            }
            _ => Conns::open(imp, url, 1).await?,
        })
    }

    /// Keeps `inflight` calls in flight on every connection for `duration`.
    pub(crate) async fn round(
        &mut self,
        inflight: usize,
        duration: Duration,
        payload: &Payload,
        callers: load::Callers,
    ) -> Result<RoundSummary> {
        match self {
            Conns::Birpc(peers) => load::birpc_round(peers, inflight, duration, payload, callers).await,
            Conns::Jsonrpsee(clients) => load::jsonrpsee_round(clients, inflight, duration, payload, callers).await,
            Conns::Raw(sockets) => {
                let start = Instant::now();
                let deadline = start + duration;
                let mut tasks = JoinSet::new();
                for (index, mut ws) in sockets.drain(..).enumerate() {
                    let payload = payload.clone();
                    tasks.spawn(async move {
                        let outcome = raw::drive(&mut ws, inflight, deadline, &payload).await;
                        (index, ws, outcome)
                    });
                }
                let mut returned = Vec::with_capacity(tasks.len());
                let mut latencies = Vec::with_capacity(tasks.len());
                while let Some(joined) = tasks.join_next().await {
                    let (index, ws, outcome) = joined?;
                    returned.push((index, ws));
                    latencies.push(outcome?);
                }
                let elapsed = start.elapsed();
                returned.sort_by_key(|(index, _)| *index);
                sockets.extend(returned.into_iter().map(|(_, ws)| ws));
                Ok(RoundSummary::from_latencies(latencies, elapsed))
            }
        }
    }
}

impl Conns {
    /// Reads waves of `streams` streams of `items` items at once on the first connection for `duration`
    /// (see `load`). The raw floor has no streams.
    pub(crate) async fn stream_round(&self, streams: usize, items: u64, duration: Duration) -> Result<RoundSummary> {
        let start = Instant::now();
        let deadline = start + duration;
        let read = match self {
            Conns::Birpc(peers) => {
                load::birpc_streams(peers.first().ok_or("no connection")?, streams, items, deadline).await?
            }
            Conns::Jsonrpsee(clients) => {
                load::jsonrpsee_streams(clients.first().ok_or("no connection")?, streams, items, deadline).await?
            }
            Conns::Raw(_) => return Err("the raw floor has no streams".into()),
        };
        Ok(RoundSummary::items(read, start.elapsed()))
    }

    /// Reads `count` items of an endless stream on the first connection, one every `every`, calling `tick`
    /// after each (see `load`).
    pub(crate) async fn slow_read(&self, count: u64, every: Duration, tick: impl FnMut()) -> Result<load::SlowRead> {
        match self {
            Conns::Birpc(peers) => load::birpc_slow(peers.first().ok_or("no connection")?, count, every, tick).await,
            Conns::Jsonrpsee(clients) => {
                load::jsonrpsee_slow(clients.first().ok_or("no connection")?, count, every, tick).await
            }
            Conns::Raw(_) => Err("the raw floor has no streams".into()),
        }
    }
}

/// Open client connections that the server calls (server-to-client scenario).
pub(crate) enum Callees {
    Birpc(Vec<PeerHandle>),
    Raw(Vec<JoinHandle<()>>),
}

impl Callees {
    /// Opens `count` connections of `imp` to `url` whose clients answer `add`; birpc clients register
    /// with the server so that it can call them. Not timed.
    pub(crate) async fn open(imp: Impl, url: &str, count: usize) -> Result<Callees> {
        match imp {
            Impl::Birpc => {
                let peers = many(count, || async {
                    let peer = Client::builder().router(birpc_router()).connect(url).await?;
                    let registered: bool = peer.call("register", ()).await?;
                    check(registered, "register")?;
                    Ok(peer)
                })
                .await?;
                Ok(Callees::Birpc(peers))
            }
            Impl::Raw | Impl::RawDefault => {
                let sockets = many(count, || async {
                    let (ws, _) =
                        tokio_tungstenite::connect_async_with_config(url, Some(raw::config(imp)), true).await?;
                    Ok(ws)
                })
                .await?;
                Ok(Callees::Raw(
                    sockets.into_iter().map(|ws| tokio::spawn(raw::answer(ws))).collect(),
                ))
            }
            Impl::Jsonrpsee => Err("jsonrpsee servers cannot call their clients".into()),
        }
    }

    /// Closes every connection.
    pub(crate) fn close(self) {
        match self {
            Callees::Birpc(peers) => drop(peers),
            Callees::Raw(tasks) => tasks.iter().for_each(JoinHandle::abort),
        }
    }
}

/// Runs `open` `count` times, a few at a time.
async fn many<T, F, Fut>(count: usize, open: F) -> Result<Vec<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    futures::stream::iter(0..count)
        .map(|_| open())
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect()
        .await
}

async fn open_birpc(url: &str) -> Result<PeerHandle> {
    let peer = Client::builder().connect(url).await?;
    let sum: i64 = peer.call("add", (1, 2)).await?;
    check(sum == 3, "add")?;
    Ok(peer)
}

async fn open_jsonrpsee(url: &str) -> Result<Arc<WsClient>> {
    let client = WsClientBuilder::default().build(url).await?;
    let sum: i64 = client.request("add", rpc_params![1, 2]).await?;
    check(sum == 3, "add")?;
    Ok(Arc::new(client))
}

async fn open_raw(imp: Impl, url: &str) -> Result<RawWs> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(raw::config(imp)), true).await?;
    // The first call is sent whatever the deadline; a deadline already passed makes it the only one.
    let latencies = raw::drive(&mut ws, 1, Instant::now(), &Payload::Add).await?;
    check(latencies.len() == 1, "one call")?;
    Ok(ws)
}
