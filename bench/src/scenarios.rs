//! The scenarios, each run for every implementation in the same invocation: six of calls, three of streams
//! (which the raw floor does not run); and the hub scenario, birpc's hub on one node against the same hub
//! across three nodes on Redis.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::client::{Callees, ClientProc, Conns, HubNodes, RedisProc, ServerProc};
use crate::common::{
    BroadcastSummary, CpuReading, GroupCallSummary, Impl, Payload, Result, RoundSummary, median, raise_fd_limit,
    resident_bytes,
};
use crate::load::Callers;
use crate::serve::HubMode;

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
/// The server processes of the hub scenario's second setup.
pub(crate) const HUB_NODES: usize = 3;
/// The name of their hub on Redis.
const HUB_NAME: &str = "bench";

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
    Hub,
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

    /// The hub scenario, run only when named after `--only` (it needs `redis-server`, and takes about a
    /// minute).
    pub(crate) const HUB: [Scenario; 1] = [Scenario::Hub];

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
            Scenario::Hub => "hub",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Scenario> {
        match name {
            "fanin" => Some(Scenario::FanIn),
            "server-to-client" => Some(Scenario::ServerToClient),
            _ => Scenario::ALL
                .into_iter()
                .chain(Scenario::STREAMS)
                .chain(Scenario::HUB)
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
    /// Clients of the hub scenario, in one group, on one server or spread over three.
    pub(crate) hub_clients: usize,
    /// The wait before reading a server's resident memory.
    pub(crate) settle_ms: u64,
    /// The stream window of birpc's client in the stream scenarios; `None`: birpc's default (256).
    pub(crate) stream_window: Option<u32>,
    /// A command line the servers run under (a profiler), if any.
    pub(crate) server_wrapper: Option<String>,
    /// A round during which other programs used more than this share of the machine (0 to 1) is measured
    /// again, up to 4 times in all.
    pub(crate) max_foreign_cpu: f64,
    /// How birpc's and jsonrpsee's clients (birpc's server in s2c) keep several calls in flight on a
    /// connection: pipelined, fan-in and s2c (the others make one call at a time).
    pub(crate) callers: Callers,
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
            hub_clients: 1000,
            settle_ms: 1000,
            stream_window: None,
            server_wrapper: None,
            max_foreign_cpu: 0.10,
            callers: Callers::Unordered,
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
            hub_clients: 60,
            settle_ms: 200,
            stream_window: None,
            server_wrapper: None,
            max_foreign_cpu: 0.10,
            callers: Callers::Unordered,
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_millis(self.warmup_ms)
    }

    fn round(&self) -> Duration {
        Duration::from_millis(self.round_ms)
    }
}

/// One figure of one scenario: its value in each round, per implementation (the hub scenario: per setup,
/// birpc only).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metric {
    pub(crate) scenario: Scenario,
    /// What is measured, with its unit.
    pub(crate) metric: String,
    /// Whether a smaller value is better (latency, memory).
    pub(crate) lower_is_better: bool,
    /// The value of each round.
    pub(crate) rounds: BTreeMap<Impl, Vec<f64>>,
    /// The value of each round per setup of the hub scenario (empty for the others).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) setups: BTreeMap<Setup, Vec<f64>>,
}

impl Metric {
    /// The median over the rounds for `imp`, if it ran.
    pub(crate) fn median(&self, imp: Impl) -> Option<f64> {
        self.rounds.get(&imp).and_then(|values| median(values))
    }

    /// The median over the rounds of hub setup `setup`, if it ran.
    pub(crate) fn setup_median(&self, setup: Setup) -> Option<f64> {
        self.setups.get(&setup).and_then(|values| median(values))
    }
}

/// The setups of the hub scenario, birpc's in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Setup {
    /// One server process with a plain `Hub` (no Redis), every client on it.
    OneNode,
    /// Three server processes, each a node of one hub on Redis (`Hub::with_backplane`), the clients
    /// spread over them round-robin.
    ThreeNodes,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::OneNode => "1 node",
            Setup::ThreeNodes => "3 nodes",
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for Scenario {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// How other programs disturbed a scenario's rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LoadLog {
    /// Rounds measured again because other programs kept the machine too busy during them.
    pub(crate) repeated_rounds: usize,
    /// Rounds kept, after the last attempt, although other programs kept the machine too busy.
    pub(crate) busy_rounds_kept: usize,
    /// Every measurement of every round (the warm-ups excepted), in the order they ran.
    pub(crate) each_round: Vec<RoundLoad>,
}

impl LoadLog {
    /// The rounds kept although other programs kept the machine too busy during them.
    pub(crate) fn kept_busy(&self) -> impl Iterator<Item = &RoundLoad> {
        self.each_round
            .iter()
            .filter(|round| round.outcome == LoadOutcome::KeptAlthoughBusy)
    }
}

/// The load of one measurement of one round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoundLoad {
    /// The implementation (or the hub scenario's setup) measured.
    pub(crate) of: String,
    /// The round, from 0.
    pub(crate) round: usize,
    /// The attempt, from 1 (more than 1 when an earlier one was disturbed).
    pub(crate) attempt: usize,
    /// The share of the machine (0 to 1) other programs used during it.
    pub(crate) share_of_machine: f64,
    /// What was done with it.
    pub(crate) outcome: LoadOutcome,
}

/// What the CPU guard did with a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LoadOutcome {
    /// Kept: the machine was quiet enough.
    Kept,
    /// Thrown away and measured again: other programs used too much of the machine.
    MeasuredAgain,
    /// Kept after the last attempt, although other programs used too much of the machine.
    KeptAlthoughBusy,
    /// Recorded only: the memory scenario reads resident memory, which other programs' CPU use does not
    /// change, so its rounds are not measured again.
    NotGuarded,
}

/// The memory scenario's figures: resident bytes per idle connection in the server process, in the client
/// process, and both together (the sum of the two in each round).
pub(crate) const MEMORY_SERVER: &str = "bytes per idle connection: server";
/// See [`MEMORY_SERVER`].
pub(crate) const MEMORY_CLIENT: &str = "bytes per idle connection: client";
/// See [`MEMORY_SERVER`].
pub(crate) const MEMORY_BOTH: &str = "bytes per idle connection: both ends";

/// One round of the memory scenario for one implementation: resident bytes per idle connection at each end.
#[derive(Debug, Clone, Copy)]
struct Ends {
    server: f64,
    client: f64,
}

/// What the memory scenario used, when it ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemoryNote {
    /// Idle connections opened per implementation and round.
    pub(crate) conns: usize,
    /// Where the two ends ran.
    pub(crate) processes: &'static str,
    /// The open file limit of each process.
    pub(crate) fd_limit: u64,
}

/// What the hub scenario ran on, and what it lost, when it was asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HubNote {
    /// Why it did not run, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) not_run: Option<String>,
    /// Clients, all in one group, in each setup.
    pub(crate) clients: usize,
    /// The version of the `redis-server` the three nodes shared.
    pub(crate) redis: String,
    /// The clients of each server process, per setup.
    pub(crate) clients_per_node: BTreeMap<Setup, Vec<usize>>,
    /// What the measured rounds did, summed, per setup.
    pub(crate) totals: BTreeMap<Setup, HubTotals>,
}

/// The hub scenario's measured rounds of one setup, summed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct HubTotals {
    pub(crate) broadcasts: u64,
    /// Deliveries received while their broadcast was awaited.
    pub(crate) deliveries: u64,
    /// Deliveries not received within 2 s of their broadcast.
    pub(crate) deliveries_missing: u64,
    /// Deliveries received after their broadcast's wait had ended.
    pub(crate) deliveries_late: u64,
    /// Broadcasts their server did not hand to the backplane.
    pub(crate) not_forwarded: u64,
    pub(crate) group_calls: u64,
    /// Member calls answered, and rightly.
    pub(crate) member_calls_answered: u64,
    /// Member calls failed, wrongly answered or missing from a group call's outcomes.
    pub(crate) member_calls_failed: u64,
}

impl HubNote {
    /// One line for the console.
    pub(crate) fn summary(&self) -> String {
        if let Some(why) = &self.not_run {
            return format!("not run: {why}");
        }
        let setups: Vec<String> = self
            .totals
            .iter()
            .map(|(setup, totals)| {
                let spread = self.clients_per_node.get(setup).map_or(String::new(), |per_node| {
                    per_node.iter().map(usize::to_string).collect::<Vec<_>>().join("/")
                });
                format!(
                    "{setup} ({spread} clients): {} broadcasts, {} deliveries missing, {} late, {} not forwarded; \
                     {} group calls, {} member calls answered, {} failed",
                    totals.broadcasts,
                    totals.deliveries_missing,
                    totals.deliveries_late,
                    totals.not_forwarded,
                    totals.group_calls,
                    totals.member_calls_answered,
                    totals.member_calls_failed
                )
            })
            .collect();
        format!(
            "{} clients in one group, redis-server {}; {}",
            self.clients,
            self.redis,
            setups.join("; ")
        )
    }
}

/// Runs a scenario for `impls`; returns its metrics.
pub(crate) async fn run(
    scenario: Scenario,
    impls: &[Impl],
    settings: &Settings,
    memory_note: &mut Option<MemoryNote>,
    hub_note: &mut Option<HubNote>,
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
            let (ends, note) = memory(impls, settings, load).await?;
            *memory_note = Some(note);
            let figure = |name: &str, value: fn(&Ends) -> f64| Metric {
                scenario,
                metric: name.into(),
                lower_is_better: true,
                rounds: ends
                    .iter()
                    .map(|(imp, rounds)| (*imp, rounds.iter().map(value).collect()))
                    .collect(),
                setups: BTreeMap::new(),
            };
            Ok(vec![
                figure(MEMORY_SERVER, |ends| ends.server),
                figure(MEMORY_CLIENT, |ends| ends.client),
                figure(MEMORY_BOTH, |ends| ends.server + ends.client),
            ])
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
        Scenario::Hub => hub(impls, settings, load, hub_note).await,
    }
}

/// The implementations of `impls` that have streams: all but the raw floors.
fn with_streams(impls: &[Impl]) -> Vec<Impl> {
    for imp in impls.iter().filter(|imp| imp.is_raw()) {
        eprintln!("   {imp}: not run (the floor has no streams)");
    }
    impls.iter().copied().filter(|imp| !imp.is_raw()).collect()
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
        setups: BTreeMap::new(),
    }
}

/// A figure of the hub scenario, per setup.
fn setup_metric<T>(
    name: &str,
    lower_is_better: bool,
    rounds: &BTreeMap<Setup, Vec<T>>,
    value: impl Fn(&T) -> f64,
) -> Metric {
    Metric {
        scenario: Scenario::Hub,
        metric: name.into(),
        lower_is_better,
        rounds: BTreeMap::new(),
        setups: rounds
            .iter()
            .map(|(setup, summaries)| (*setup, summaries.iter().map(&value).collect()))
            .collect(),
    }
}

/// Whether the round that started at reading `before` ran on a quiet enough machine, or has been measured
/// often enough; when not, waits a little before it is measured again.
async fn quiet(
    settings: &Settings,
    pids: &[u32],
    before: Option<CpuReading>,
    imp: impl fmt::Display,
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
    let mut record = |outcome| {
        load.each_round.push(RoundLoad {
            of: imp.to_string().trim().to_owned(),
            round,
            attempt: *attempt,
            share_of_machine: share,
            outcome,
        });
    };
    if share <= settings.max_foreign_cpu {
        record(LoadOutcome::Kept);
        return true;
    }
    if *attempt >= MAX_ATTEMPTS {
        record(LoadOutcome::KeptAlthoughBusy);
        eprintln!(
            "   {imp:<9} round {round}: other programs used {:.0}% of the machine; kept after {MAX_ATTEMPTS} attempts",
            share * 100.0
        );
        load.busy_rounds_kept += 1;
        return true;
    }
    record(LoadOutcome::MeasuredAgain);
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
        connections
            .round(inflight, settings.warmup(), payload, settings.callers)
            .await?;
    }
    let mut results: BTreeMap<Impl, Vec<RoundSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let (imp, _, connections) = &mut setups[(round + turn) % impls.len()];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = connections
                    .round(inflight, settings.round(), payload, settings.callers)
                    .await?;
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
            let before = resident_bytes(&pid.to_string())?;
            let mut peak = before;
            let mut failed = None;
            let read = connection
                .slow_read(SLOW_ITEMS, SLOW_EVERY, || match resident_bytes(&pid.to_string()) {
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
        setups: BTreeMap::new(),
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
        let server = ServerProc::start_s2c(imp, settings.server_wrapper.as_deref()).await?;
        let callees = Callees::open(imp, server.url(), conns).await?;
        setups.push((imp, server, callees));
    }
    let pids: Vec<u32> = setups.iter().filter_map(|(_, server, _)| server.pid()).collect();
    for (_, server, _) in &mut setups {
        server
            .server_to_client(conns, FANIN_INFLIGHT, settings.warmup(), settings.callers)
            .await?;
    }
    let mut results: BTreeMap<Impl, Vec<RoundSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let (imp, server, _) = &mut setups[(round + turn) % impls.len()];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = server
                    .server_to_client(conns, FANIN_INFLIGHT, settings.round(), settings.callers)
                    .await?;
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

/// Resident bytes per idle connection at both ends: per implementation and round, a fresh server process and
/// a fresh client process (`bench clients`, see `client`), nothing else in either. Each end's `VmRSS` is read
/// after one connection made one call and `settle_ms` of quiet, then again after `memory_conns` more
/// connections each made one call and `settle_ms` more; per connection: (after − before) / connections. The
/// implementations take turns, each round starting with the next one; both processes end before the next
/// implementation starts. The machine's load is recorded for each round, which is not measured again.
async fn memory(
    impls: &[Impl],
    settings: &Settings,
    load: &mut LoadLog,
) -> Result<(BTreeMap<Impl, Vec<Ends>>, MemoryNote)> {
    let fd_limit = raise_fd_limit();
    let possible = usize::try_from(fd_limit.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
    let conns = settings.memory_conns.min(possible);
    if conns < settings.memory_conns {
        eprintln!(
            "the open file limit is {fd_limit}: too low for {} connections; using {conns}",
            settings.memory_conns
        );
    }
    eprintln!("   {conns} idle connections per implementation and round; server and clients in processes of their own");
    let settle = Duration::from_millis(settings.settle_ms);
    let mut results: BTreeMap<Impl, Vec<Ends>> = BTreeMap::new();
    for round in 0..settings.memory_rounds {
        for turn in 0..impls.len() {
            let imp = impls[(round + turn) % impls.len()];
            let server = ServerProc::start(imp, settings.server_wrapper.as_deref()).await?;
            let server_pid = server.pid().ok_or("the server exited")?.to_string();
            // One connection first, so that what each side sets up once is in the baseline.
            let mut clients = ClientProc::start(imp, server.url(), conns, settle).await?;
            let pids: Vec<u32> = server.pid().into_iter().chain(clients.pid()).collect();
            let cpu = CpuReading::now(&pids);
            let client_before = clients.baseline().await?;
            let server_before = resident_bytes(&server_pid)?;
            let client_after = clients.open().await?;
            let server_after = resident_bytes(&server_pid)?;
            if let Some(share) = cpu
                .zip(CpuReading::now(&pids))
                .map(|(before, now)| now.foreign_share_since(&before))
            {
                load.each_round.push(RoundLoad {
                    of: imp.to_string(),
                    round,
                    attempt: 1,
                    share_of_machine: share,
                    outcome: LoadOutcome::NotGuarded,
                });
            }
            let per_connection = |before: u64, after: u64| after.saturating_sub(before) as f64 / conns as f64;
            let ends = Ends {
                server: per_connection(server_before, server_after),
                client: per_connection(client_before, client_after),
            };
            let mib = |bytes: u64| bytes as f64 / 1048576.0;
            eprintln!(
                "   {imp:<11} round {round}: {:.0} + {:.0} = {:.0} bytes per connection, server + client (server RSS \
                 {:.1} -> {:.1} MiB, client RSS {:.1} -> {:.1} MiB)",
                ends.server,
                ends.client,
                ends.server + ends.client,
                mib(server_before),
                mib(server_after),
                mib(client_before),
                mib(client_after)
            );
            results.entry(imp).or_default().push(ends);
            clients.stop().await;
            server.stop().await;
        }
    }
    let processes = "a fresh server process and a fresh client process per implementation and round";
    Ok((
        results,
        MemoryNote {
            conns,
            processes,
            fd_limit,
        },
    ))
}

/// The hub scenario: birpc's hub with `hub_clients` clients in one group, on one server process with a
/// plain `Hub`, and spread over three server processes whose hubs are nodes of one hub on a `redis-server`
/// of its own. Both setups are up at once and take turns round by round, as the implementations do
/// elsewhere; each turn is a round of broadcasts, then a round of group calls (see `load` and `serve`).
async fn hub(
    impls: &[Impl],
    settings: &Settings,
    load: &mut LoadLog,
    note: &mut Option<HubNote>,
) -> Result<Vec<Metric>> {
    for imp in impls.iter().filter(|imp| **imp != Impl::Birpc) {
        eprintln!("   {imp}: not run (the hub is birpc's)");
    }
    if !impls.contains(&Impl::Birpc) {
        return Ok(Vec::new());
    }
    let Some(redis) = RedisProc::start().await? else {
        let why = "it needs redis-server, which was not found in PATH (Debian: apt-get install redis-server)";
        eprintln!("   the hub scenario cannot run: {why}");
        *note = Some(HubNote {
            not_run: Some(why.into()),
            clients: settings.hub_clients,
            ..HubNote::default()
        });
        return Ok(Vec::new());
    };
    let outcome = hub_rounds(settings, load, &redis, note).await;
    redis.stop().await;
    outcome
}

async fn hub_rounds(
    settings: &Settings,
    load: &mut LoadLog,
    redis: &RedisProc,
    note: &mut Option<HubNote>,
) -> Result<Vec<Metric>> {
    let clients = settings.hub_clients;
    eprintln!(
        "   {clients} clients in one group; 1 node: a plain Hub; {HUB_NODES} nodes: Hub::with_backplane on \
         redis-server {} at {}",
        redis.version,
        redis.url()
    );
    let wrapper = settings.server_wrapper.as_deref();
    let node = HubMode::Redis {
        url: redis.url(),
        name: HUB_NAME.into(),
    };
    let mut setups = vec![
        (
            Setup::OneNode,
            HubNodes::start(&[HubMode::Local], clients, wrapper).await?,
        ),
        (
            Setup::ThreeNodes,
            HubNodes::start(&vec![node; HUB_NODES], clients, wrapper).await?,
        ),
    ];
    let mut pids: Vec<u32> = setups.iter().flat_map(|(_, nodes)| nodes.pids()).collect();
    pids.extend(redis.pid());
    for (_, nodes) in &mut setups {
        nodes.broadcast_round(settings.warmup()).await?;
        nodes.group_call_round(settings.warmup()).await?;
    }
    let mut broadcasts: BTreeMap<Setup, Vec<BroadcastSummary>> = BTreeMap::new();
    let mut group_calls: BTreeMap<Setup, Vec<GroupCallSummary>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for turn in 0..setups.len() {
            let count = setups.len();
            let (setup, nodes) = &mut setups[(round + turn) % count];
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = nodes.broadcast_round(settings.round()).await?;
                if quiet(settings, &pids, before, *setup, round, &mut attempt, load).await {
                    break summary;
                }
            };
            eprintln!(
                "   {setup:<9} round {round}: broadcasts: p50 {:>8.1} µs, p99 {:>8.1} µs, last p50 {:>8.1} µs \
                 ({} broadcasts, {} missing)",
                summary.p50_ns as f64 / 1e3,
                summary.p99_ns as f64 / 1e3,
                summary.last_p50_ns as f64 / 1e3,
                summary.broadcasts,
                summary.missing
            );
            broadcasts.entry(*setup).or_default().push(summary);
            let mut attempt = 1;
            let summary = loop {
                let before = CpuReading::now(&pids);
                let summary = nodes.group_call_round(settings.round()).await?;
                if quiet(settings, &pids, before, *setup, round, &mut attempt, load).await {
                    break summary;
                }
            };
            eprintln!(
                "   {setup:<9} round {round}: group calls: {:>9.0} member calls/s, one group call p50 {:>8.1} µs, \
                 p99 {:>8.1} µs ({} group calls, {} failed member calls)",
                summary.answered_per_sec(),
                summary.p50_ns as f64 / 1e3,
                summary.p99_ns as f64 / 1e3,
                summary.group_calls,
                summary.failed
            );
            group_calls.entry(*setup).or_default().push(summary);
        }
    }
    let mut hub_note = HubNote {
        not_run: None,
        clients,
        redis: redis.version.clone(),
        clients_per_node: setups
            .iter()
            .map(|(setup, nodes)| (*setup, nodes.per_node.clone()))
            .collect(),
        totals: BTreeMap::new(),
    };
    for (setup, rounds) in &broadcasts {
        let totals = hub_note.totals.entry(*setup).or_default();
        for round in rounds {
            totals.broadcasts += round.broadcasts;
            totals.deliveries += round.deliveries;
            totals.deliveries_missing += round.missing;
            totals.deliveries_late += round.late;
            totals.not_forwarded += round.not_forwarded;
        }
    }
    for (setup, rounds) in &group_calls {
        let totals = hub_note.totals.entry(*setup).or_default();
        for round in rounds {
            totals.group_calls += round.group_calls;
            totals.member_calls_answered += round.answered;
            totals.member_calls_failed += round.failed;
        }
    }
    *note = Some(hub_note);
    for (_, nodes) in setups {
        nodes.stop().await;
    }
    let micros = |ns: u64| ns as f64 / 1e3;
    Ok(vec![
        setup_metric("broadcast: p50 latency (µs)", true, &broadcasts, |r| micros(r.p50_ns)),
        setup_metric("broadcast: p99 latency (µs)", true, &broadcasts, |r| micros(r.p99_ns)),
        setup_metric(
            &format!("broadcast: last of {clients}, p50 (µs)"),
            true,
            &broadcasts,
            |r| micros(r.last_p50_ns),
        ),
        setup_metric(
            "group call: member calls/s",
            false,
            &group_calls,
            GroupCallSummary::answered_per_sec,
        ),
        setup_metric(
            &format!("group call of {clients}: p50 (µs)"),
            true,
            &group_calls,
            |r| micros(r.p50_ns),
        ),
    ])
}
