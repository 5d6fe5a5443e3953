//! The scenarios, each run for every implementation in the same invocation: six of calls, three of streams
//! (which the raw floor does not run).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::client::{Callees, Conns, ServerProc};
use crate::common::{CpuReading, Impl, Payload, Result, RoundSummary, median, raise_fd_limit};

/// Calls in flight on the one connection of the pipelined scenario.
const PIPELINED_INFLIGHT: usize = 256;
/// Calls in flight on each connection of the fan-in and server-to-client scenarios.
const FANIN_INFLIGHT: usize = 8;
/// The echo payloads of the large-payload scenario.
const LARGE_PAYLOADS: [(usize, &str); 2] = [(64 << 10, "64 KiB"), (1 << 20, "1 MiB")];
/// File descriptors kept free for everything but the memory scenario's connections.
const SPARE_FDS: u64 = 256;
/// How many times a round is measured at most while other programs keep the machine too busy.
const MAX_ATTEMPTS: usize = 4;
/// The items of each stream of the stream-one scenario, read one stream after the other.
const STREAM_ONE_ITEMS: u64 = 100_000;
/// The streams open at once on the one connection of the stream-many scenario.
const STREAM_MANY_STREAMS: usize = 1000;
/// The items of each of them.
const STREAM_MANY_ITEMS: u64 = 200;
/// The items the slow consumer of the stream-memory scenario reads.
pub(crate) const SLOW_ITEMS: u64 = 2000;
/// How often it reads one.
const SLOW_EVERY: Duration = Duration::from_millis(1);

/// A scenario, as named after `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    Latency,
    Pipelined,
    FanIn,
    ServerToClient,
    Large,
    Memory,
    StreamOne,
    StreamMany,
    StreamMemory,
}

impl Scenario {
    /// The scenarios a run without `--only` runs: those of calls. The stream scenarios ([`STREAMS`]) take
    /// about 1.5 minutes more, and run only when named.
    ///
    /// [`STREAMS`]: Scenario::STREAMS
    pub(crate) const ALL: [Scenario; 6] = [
        Scenario::Latency,
        Scenario::Pipelined,
        Scenario::FanIn,
        Scenario::ServerToClient,
        Scenario::Large,
        Scenario::Memory,
    ];

    /// The stream scenarios, run only when named after `--only`.
    pub(crate) const STREAMS: [Scenario; 3] = [Scenario::StreamOne, Scenario::StreamMany, Scenario::StreamMemory];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Pipelined => "pipelined",
            Scenario::FanIn => "fan-in",
            Scenario::ServerToClient => "s2c",
            Scenario::Large => "large",
            Scenario::Memory => "memory",
            Scenario::StreamOne => "stream-one",
            Scenario::StreamMany => "stream-many",
            Scenario::StreamMemory => "stream-memory",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Scenario> {
        match name {
            "fanin" => Some(Scenario::FanIn),
            "server-to-client" => Some(Scenario::ServerToClient),
            _ => Scenario::ALL
                .into_iter()
                .chain(Scenario::STREAMS)
                .find(|s| s.name() == name),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long and how big.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    /// Measured rounds per scenario (the figure is their median).
    pub(crate) rounds: usize,
    /// The warm-up before the rounds, on the same connections.
    pub(crate) warmup_ms: u64,
    /// The length of each round.
    pub(crate) round_ms: u64,
    /// Connections of the fan-in scenario.
    pub(crate) fanin_conns: usize,
    /// Connections of the server-to-client scenario.
    pub(crate) s2c_conns: usize,
    /// Idle connections asked for in the memory scenario.
    pub(crate) memory_conns: usize,
    /// Rounds of the memory scenario (each with fresh server processes).
    pub(crate) memory_rounds: usize,
    /// The wait before reading a server's resident memory.
    pub(crate) settle_ms: u64,
    /// The stream window of birpc's client in the stream scenarios; `None`: birpc's default (64).
    pub(crate) stream_window: Option<u32>,
    /// A command line the servers run under (a profiler), if any.
    pub(crate) server_wrapper: Option<String>,
    /// A round during which other programs used more than this share of the machine (0 to 1) is measured
    /// again, up to 4 times in all.
    pub(crate) max_foreign_cpu: f64,
}

impl Settings {
    pub(crate) fn full() -> Settings {
        Settings {
            rounds: 5,
            warmup_ms: 1000,
            round_ms: 2000,
            fanin_conns: 1000,
            s2c_conns: 1000,
            memory_conns: 10_000,
            memory_rounds: 3,
            settle_ms: 1000,
            stream_window: None,
            server_wrapper: None,
            max_foreign_cpu: 0.10,
        }
    }

    pub(crate) fn quick() -> Settings {
        Settings {
            rounds: 2,
            warmup_ms: 200,
            round_ms: 300,
            fanin_conns: 50,
            s2c_conns: 50,
            memory_conns: 200,
            memory_rounds: 1,
            settle_ms: 200,
            stream_window: None,
            server_wrapper: None,
            max_foreign_cpu: 0.10,
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_millis(self.warmup_ms)
    }

    fn round(&self) -> Duration {
        Duration::from_millis(self.round_ms)
    }
}

/// One figure of one scenario: its value in each round, per implementation.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metric {
    pub(crate) scenario: Scenario,
    /// What is measured, with its unit.
    pub(crate) metric: String,
    /// Whether a smaller value is better (latency, memory).
    pub(crate) lower_is_better: bool,
    /// The value of each round.
    pub(crate) rounds: BTreeMap<Impl, Vec<f64>>,
}

impl Metric {
    /// The median over the rounds for `imp`, if it ran.
    pub(crate) fn median(&self, imp: Impl) -> Option<f64> {
        self.rounds.get(&imp).and_then(|values| median(values))
    }
}

impl Serialize for Scenario {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// How other programs disturbed a scenario's rounds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct LoadLog {
    /// Rounds measured again because other programs kept the machine too busy during them.
    pub(crate) repeated_rounds: usize,
    /// Rounds kept, after the last attempt, although other programs kept the machine too busy.
    pub(crate) busy_rounds_kept: usize,
}

/// What the memory scenario used, when it ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemoryNote {
    /// Idle connections opened per server.
    pub(crate) conns: usize,
    /// The open file limit of each process.
    pub(crate) fd_limit: u64,
}

/// Runs a scenario for `impls`; returns its metrics.
pub(crate) async fn run(
    scenario: Scenario,
    impls: &[Impl],
    settings: &Settings,
    memory_note: &mut Option<MemoryNote>,
    load: &mut LoadLog,
) -> Result<Vec<Metric>> {
    eprintln!("== {scenario}");
    match scenario {
        Scenario::Latency => {
            let rounds = client_to_server(impls, settings, load, 1, 1, &Payload::Add).await?;
            Ok(vec![
                metric(scenario, "p50 latency (µs)", true, &rounds, |r| r.p50_ns as f64 / 1e3),
                metric(scenario, "p99 latency (µs)", true, &rounds, |r| r.p99_ns as f64 / 1e3),
            ])
        }
        Scenario::Pipelined => {
            let rounds = client_to_server(impls, settings, load, 1, PIPELINED_INFLIGHT, &Payload::Add).await?;
            Ok(vec![metric(
                scenario,
                "calls/s",
                false,
                &rounds,
                RoundSummary::calls_per_sec,
            )])
        }
        Scenario::FanIn => {
            let conns = settings.fanin_conns;
            let rounds = client_to_server(impls, settings, load, conns, FANIN_INFLIGHT, &Payload::Add).await?;
            Ok(vec![
                metric(scenario, "calls/s", false, &rounds, RoundSummary::calls_per_sec),
                metric(scenario, "p99 latency (µs)", true, &rounds, |r| r.p99_ns as f64 / 1e3),
            ])
        }
        Scenario::ServerToClient => {
            let callers: Vec<Impl> = impls.iter().copied().filter(|imp| *imp != Impl::Jsonrpsee).collect();
            let rounds = server_to_client(&callers, settings, load).await?;
            Ok(vec![
                metric(scenario, "calls/s", false, &rounds, RoundSummary::calls_per_sec),
                metric(scenario, "p99 latency (µs)", true, &rounds, |r| r.p99_ns as f64 / 1e3),
            ])
        }
        Scenario::Large => {
            let mut metrics = Vec::new();
            for (size, label) in LARGE_PAYLOADS {
                eprintln!("-- echo of {label}");
                let payload = Payload::echo(size);
                let rounds = client_to_server(impls, settings, load, 1, 1, &payload).await?;
                let bytes = payload.len() as f64;
                metrics.push(metric(scenario, &format!("echo {label}: MB/s"), false, &rounds, |r| {
                    r.calls as f64 * bytes / (r.elapsed_ns as f64 / 1e9) / 1e6
                }));
            }
            Ok(metrics)
        }
        Scenario::Memory => {
            let (values, note) = memory(impls, settings).await?;
            *memory_note = Some(note);
            Ok(vec![Metric {
                scenario,
                metric: "bytes per idle connection".into(),
                lower_is_better: true,
                rounds: values,
            }])
        }
        Scenario::StreamOne | Scenario::StreamMany => {
            let (streams, items) = match scenario {
                Scenario::StreamOne => (1, STREAM_ONE_ITEMS),
                _ => (STREAM_MANY_STREAMS, STREAM_MANY_ITEMS),
            };
            let rounds = streams_rounds(&with_streams(impls), settings, load, streams, items).await?;
            Ok(vec![metric(
                scenario,
                "items/s",
                false,
                &rounds,
                RoundSummary::calls_per_sec,
            )])
        }
        Scenario::StreamMemory => stream_memory(&with_streams(impls), settings).await,
    }
}

/// The implementations of `impls` that have streams: all but the raw floor.
fn with_streams(impls: &[Impl]) -> Vec<Impl> {
    if impls.contains(&Impl::Raw) {
        eprintln!("   raw: not run (the floor has no streams)");
    }
    impls.iter().copied().filter(|imp| *imp != Impl::Raw).collect()
}

fn metric(
    scenario: Scenario,
    name: &str,
    lower_is_better: bool,
    rounds: &BTreeMap<Impl, Vec<RoundSummary>>,
    value: impl Fn(&RoundSummary) -> f64,
) -> Metric {
    Metric {
        scenario,
        metric: name.into(),
        lower_is_better,
        rounds: rounds
            .iter()
            .map(|(imp, summaries)| (*imp, summaries.iter().map(&value).collect()))
            .collect(),
    }
}

/// Whether the round that started at reading `before` ran on a quiet enough machine, or has been measured
/// often enough; when not, waits a little before it is measured again.
async fn quiet(
    settings: &Settings,
    pids: &[u32],
    before: Option<CpuReading>,
    imp: Impl,
    round: usize,
    attempt: &mut usize,
    load: &mut LoadLog,
) -> bool {
    let Some(share) = before
        .zip(CpuReading::now(pids))
        .map(|(before, now)| now.foreign_share_since(&before))
    else {
        return true;
    };
    if share <= settings.max_foreign_cpu {
        return true;
    }
    if *attempt >= MAX_ATTEMPTS {
        eprintln!(
            "   {imp:<9} round {round}: other programs used {:.0}% of the machine; kept after {MAX_ATTEMPTS} attempts",
            share * 100.0
        );
        load.busy_rounds_kept += 1;
        return true;
    }
    eprintln!(
        "   {imp:<9} round {round}: other programs used {:.0}% of the machine; measuring it again",
        share * 100.0
    );
    *attempt += 1;
    load.repeated_rounds += 1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    false
}

fn report_round(imp: Impl, round: usize, summary: &RoundSummary) {
    eprintln!(
        "   {imp:<9} round {round}: {:>9.0} calls/s, p50 {:>8.1} µs, p99 {:>8.1} µs ({} calls)",
        summary.calls_per_sec(),
        summary.p50_ns as f64 / 1e3,
        summary.p99_ns as f64 / 1e3,
        summary.calls
    );
}

/// Client-to-server rounds: a server process per implementation, `conns` connections each with `inflight`
/// calls in flight. The implementations take turns round by round, each round starting with the next one.
async fn client_to_server(
    impls: &[Impl],
    settings: &Settings,
    load: &mut LoadLog,
    conns: usize,
    inflight: usize,
    payload: &Payload,
) -> Result<BTreeMap<Impl, Vec<RoundSummary>>> {
    let mut setups = Vec::new();
    for &imp in impls {
        let server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
        let connections = Conns::open(imp, server.url(), conns).await?;
        setups.push((imp, server, connections));
    }
    let pids: Vec<u32> = setups.iter().filter_map(|(_, server, _)| server.pid()).collect();
    for (_, _, connections) in &mut setups {
        connections.round(inflight, settings.warmup(), payload).await?;
    }
    let mut results: BTreeMap<Impl, Vec<RoundSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let (imp, _, connections) = &mut setups[(round + turn) % impls.len()];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = connections.round(inflight, settings.round(), payload).await?;
                if quiet(settings, &pids, before, *imp, round, &mut attempt, load).await {
                    break summary;
                }
            };
            report_round(*imp, round, &summary);
            results.entry(*imp).or_default().push(summary);
        }
    }
    for (_, server, connections) in setups {
        drop(connections);
        server.stop().await;
    }
    Ok(results)
}

/// Stream rounds: a server process per implementation and one connection to it, reading waves of `streams`
/// streams of `items` items at once (see `load`). The implementations take turns round by round.
async fn streams_rounds(
    impls: &[Impl],
    settings: &Settings,
    load: &mut LoadLog,
    streams: usize,
    items: u64,
) -> Result<BTreeMap<Impl, Vec<RoundSummary>>> {
    eprintln!("   {streams} stream(s) of {items} items at once, again and again");
    let mut setups = Vec::new();
    for &imp in impls {
        let server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
        let buffer = usize::try_from(items).unwrap_or(usize::MAX);
        let connection = Conns::open_for_streams(imp, server.url(), buffer, settings.stream_window).await?;
        setups.push((imp, server, connection));
    }
    let pids: Vec<u32> = setups.iter().filter_map(|(_, server, _)| server.pid()).collect();
    for (_, _, connection) in &setups {
        connection.stream_round(streams, items, settings.warmup()).await?;
    }
    let mut results: BTreeMap<Impl, Vec<RoundSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let (imp, _, connection) = &setups[(round + turn) % setups.len()];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = connection.stream_round(streams, items, settings.round()).await?;
                if quiet(settings, &pids, before, *imp, round, &mut attempt, load).await {
                    break summary;
                }
            };
            eprintln!(
                "   {imp:<9} round {round}: {:>9.0} items/s ({} items in {:.2} s)",
                summary.calls_per_sec(),
                summary.calls,
                summary.elapsed_ns as f64 / 1e9
            );
            results.entry(*imp).or_default().push(summary);
        }
    }
    for (_, server, connection) in setups {
        drop(connection);
        server.stop().await;
    }
    Ok(results)
}

/// A slow consumer: a fresh server process per implementation and round, one connection; after it made
/// one call and `settle_ms` of quiet, the server's resident memory is read, then the client subscribes to
/// an endless stream and reads `SLOW_ITEMS` items, one per `SLOW_EVERY`, while the server's resident memory
/// is read after each item. Figures: the server's growth (highest reading − the one before), the items the
/// consumer got, the items missing between them (gaps), and the items the server produced that the
/// consumer did not get (in flight, buffered, or dropped).
async fn stream_memory(impls: &[Impl], settings: &Settings) -> Result<Vec<Metric>> {
    eprintln!(
        "   an endless stream read at one item per {} ms, {SLOW_ITEMS} items",
        SLOW_EVERY.as_millis()
    );
    let settle = Duration::from_millis(settings.settle_ms);
    let mut growth: BTreeMap<Impl, Vec<f64>> = BTreeMap::new();
    let mut received: BTreeMap<Impl, Vec<f64>> = BTreeMap::new();
    let mut skipped: BTreeMap<Impl, Vec<f64>> = BTreeMap::new();
    let mut undelivered: BTreeMap<Impl, Vec<f64>> = BTreeMap::new();
    for round in 0..settings.memory_rounds {
        for &imp in impls {
            let mut server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
            let pid = server.pid().ok_or("the server exited")?;
            let connection = Conns::open_for_streams(imp, server.url(), 0, settings.stream_window).await?;
            tokio::time::sleep(settle).await;
            let before = resident_bytes(pid)?;
            let mut peak = before;
            let mut failed = None;
            let read = connection
                .slow_read(SLOW_ITEMS, SLOW_EVERY, || match resident_bytes(pid) {
                    Ok(now) => peak = peak.max(now),
                    Err(error) => failed = Some(error),
                })
                .await?;
            if let Some(error) = failed {
                return Err(error);
            }
            let produced = server.produced().await?;
            let grew = peak.saturating_sub(before);
            let not_received = produced.saturating_sub(read.received);
            eprintln!(
                "   {imp:<9} round {round}: server RSS +{:.0} KiB ({:.1} MiB -> {:.1} MiB at most); got {} of \
                 {SLOW_ITEMS} items ({} skipped in gaps){}; the server produced {produced} ({not_received} not \
                 received)",
                grew as f64 / 1024.0,
                before as f64 / 1048576.0,
                peak as f64 / 1048576.0,
                read.received,
                read.skipped,
                if read.cut_short { ", then the stream closed" } else { "" },
            );
            growth.entry(imp).or_default().push(grew as f64 / 1024.0);
            received.entry(imp).or_default().push(read.received as f64);
            skipped.entry(imp).or_default().push(read.skipped as f64);
            undelivered.entry(imp).or_default().push(not_received as f64);
            drop(connection);
            server.stop().await;
        }
    }
    let scenario = Scenario::StreamMemory;
    let figure = |metric: &str, lower_is_better, rounds| Metric {
        scenario,
        metric: metric.into(),
        lower_is_better,
        rounds,
    };
    Ok(vec![
        figure("server RSS growth (KiB)", true, growth),
        figure(&format!("items the consumer got (of {SLOW_ITEMS})"), false, received),
        figure("items skipped (gaps in the sequence)", true, skipped),
        figure("items produced, not received", true, undelivered),
    ])
}

/// Server-to-client rounds: each server calls its `s2c_conns` clients, 8 calls in flight on each.
async fn server_to_client(
    impls: &[Impl],
    settings: &Settings,
    load: &mut LoadLog,
) -> Result<BTreeMap<Impl, Vec<RoundSummary>>> {
    let conns = settings.s2c_conns;
    let mut setups = Vec::new();
    for &imp in impls {
        let server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
        let callees = Callees::open(imp, server.url(), conns).await?;
        setups.push((imp, server, callees));
    }
    let pids: Vec<u32> = setups.iter().filter_map(|(_, server, _)| server.pid()).collect();
    for (_, server, _) in &mut setups {
        server
            .server_to_client(conns, FANIN_INFLIGHT, settings.warmup())
            .await?;
    }
    let mut results: BTreeMap<Impl, Vec<RoundSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let (imp, server, _) = &mut setups[(round + turn) % impls.len()];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = server.server_to_client(conns, FANIN_INFLIGHT, settings.round()).await?;
                if quiet(settings, &pids, before, *imp, round, &mut attempt, load).await {
                    break summary;
                }
            };
            report_round(*imp, round, &summary);
            results.entry(*imp).or_default().push(summary);
        }
    }
    for (_, server, callees) in setups {
        callees.close();
        server.stop().await;
    }
    Ok(results)
}

/// The resident memory of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/PID/status")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Resident bytes per idle connection, server side: a fresh server process per implementation and round,
/// read before and after opening the idle connections.
async fn memory(impls: &[Impl], settings: &Settings) -> Result<(BTreeMap<Impl, Vec<f64>>, MemoryNote)> {
    let fd_limit = raise_fd_limit();
    let possible = usize::try_from(fd_limit.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
    let conns = settings.memory_conns.min(possible);
    if conns < settings.memory_conns {
        eprintln!(
            "the open file limit is {fd_limit}: too low for {} connections; using {conns}",
            settings.memory_conns
        );
    }
    eprintln!("   {conns} idle connections per server");
    let settle = Duration::from_millis(settings.settle_ms);
    let mut results: BTreeMap<Impl, Vec<f64>> = BTreeMap::new();
    for round in 0..settings.memory_rounds {
        for &imp in impls {
            let server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
            let pid = server.pid().ok_or("the server exited")?;
            // One connection first, so that what every server sets up once is in the baseline.
            let first = Conns::open(imp, server.url(), 1).await?;
            tokio::time::sleep(settle).await;
            let before = resident_bytes(pid)?;
            let idle = Conns::open(imp, server.url(), conns).await?;
            tokio::time::sleep(settle).await;
            let after = resident_bytes(pid)?;
            let per_connection = after.saturating_sub(before) as f64 / conns as f64;
            eprintln!(
                "   {imp:<9} round {round}: {:.0} bytes per connection (RSS {:.1} MiB -> {:.1} MiB)",
                per_connection,
                before as f64 / 1048576.0,
                after as f64 / 1048576.0
            );
            results.entry(imp).or_default().push(per_connection);
            drop(idle);
            drop(first);
            server.stop().await;
        }
    }
    Ok((results, MemoryNote { conns, fd_limit }))
}
