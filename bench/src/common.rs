//! What the client and server sides share: the implementations, the payloads, the per-round summary and the
//! statistics.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Any error of the harness; it only ever gets printed.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The result type of the harness.
pub(crate) type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The implementations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Impl {
    /// This project: `birpc::Client` and `birpc::Server`.
    Birpc,
    /// jsonrpsee 0.26: its WebSocket client and server.
    Jsonrpsee,
    /// tokio-tungstenite with serde_json and no JSON-RPC library: the floor, with birpc's WebSocket buffer
    /// sizes (2 KiB read, 8 KiB write).
    Raw,
    /// The same floor with tungstenite's default buffers (128 KiB read, 128 KiB write).
    RawDefault,
}

impl Impl {
    /// Every implementation, in table order.
    pub(crate) const ALL: [Impl; 4] = [Impl::Birpc, Impl::Jsonrpsee, Impl::Raw, Impl::RawDefault];

    /// The name used on the command line and in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Birpc => "birpc",
            Impl::Jsonrpsee => "jsonrpsee",
            Impl::Raw => "raw",
            Impl::RawDefault => "raw-default",
        }
    }

    /// Whether it is one of the two raw floors (JSON-RPC by hand on tokio-tungstenite).
    pub(crate) fn is_raw(self) -> bool {
        matches!(self, Impl::Raw | Impl::RawDefault)
    }

    /// The implementation called `name`.
    pub(crate) fn parse(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|imp| imp.name() == name)
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each call sends.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// `add(n, 1)`, answered `n + 1`.
    Add,
    /// `echo(text)`, answered `text`.
    Echo(Arc<str>),
}

impl Payload {
    /// An echo of `len` bytes of ASCII text (nothing to escape in JSON).
    pub(crate) fn echo(len: usize) -> Payload {
        let text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        Payload::Echo(text.into())
    }

    /// The bytes of payload one call carries each way (0 for `add`).
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Add => 0,
            Payload::Echo(text) => text.len(),
        }
    }
}

/// One measured round: how many calls completed, in how long, and their latency percentiles (for the
/// stream scenarios: how many items were read, in how long).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct RoundSummary {
    /// Calls completed.
    pub(crate) calls: u64,
    /// From the first call sent to the last answer received.
    pub(crate) elapsed_ns: u64,
    /// Median call latency.
    pub(crate) p50_ns: u64,
    /// 99th percentile call latency.
    pub(crate) p99_ns: u64,
}

impl RoundSummary {
    /// Summarizes the latencies (in nanoseconds) of every call of a round that lasted `elapsed`.
    pub(crate) fn from_latencies(latencies: Vec<Vec<u64>>, elapsed: Duration) -> RoundSummary {
        let mut all: Vec<u64> = latencies.into_iter().flatten().collect();
        all.sort_unstable();
        RoundSummary {
            calls: all.len() as u64,
            elapsed_ns: nanos(elapsed),
            p50_ns: percentile(&all, 0.50),
            p99_ns: percentile(&all, 0.99),
        }
    }

    /// A round of the stream scenarios: `items` items read in `elapsed` (in `calls`; no latencies).
    pub(crate) fn items(items: u64, elapsed: Duration) -> RoundSummary {
        RoundSummary {
            calls: items,
            elapsed_ns: nanos(elapsed),
            p50_ns: 0,
            p99_ns: 0,
        }
    }

    /// Completed calls per second (items per second in the stream scenarios).
    pub(crate) fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }
}

/// The group every client of the hub scenario joins.
pub(crate) const HUB_GROUP: &str = "bench";

/// What a hub server answers to `tick`: what its `Hub::notify_group` reported.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct TickReport {
    /// Connections of that server the notification was queued for.
    pub(crate) delivered: usize,
    /// Connections of that server closed as too slow for it.
    pub(crate) closed: usize,
    /// Whether it was handed to the backplane for the other servers.
    pub(crate) forwarded: bool,
}

/// A round of broadcasts of the hub scenario, one at a time: the latency of each delivery (from the
/// trigger's call to a client's receipt), and of each broadcast's last delivery.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct BroadcastSummary {
    /// Broadcasts triggered.
    pub(crate) broadcasts: u64,
    /// Deliveries received while their broadcast was awaited.
    pub(crate) deliveries: u64,
    /// Deliveries not received within the wait (lost, or late).
    pub(crate) missing: u64,
    /// Deliveries received after their broadcast's wait had ended.
    pub(crate) late: u64,
    /// Broadcasts the trigger's server did not hand to the backplane (its outbox was full).
    pub(crate) not_forwarded: u64,
    /// From the first trigger to the last broadcast's end.
    pub(crate) elapsed_ns: u64,
    /// Median delivery latency.
    pub(crate) p50_ns: u64,
    /// 99th percentile delivery latency.
    pub(crate) p99_ns: u64,
    /// Median latency of a broadcast's last delivery (every client has it).
    pub(crate) last_p50_ns: u64,
}

/// A round of group calls of the hub scenario, timed in the server that makes them: `Hub::call_group`
/// on the whole group, one after the other.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct GroupCallSummary {
    /// `call_group`s made.
    pub(crate) group_calls: u64,
    /// Member calls answered, and rightly.
    pub(crate) answered: u64,
    /// Member calls that failed (an error, a timeout, a wrong answer), or members missing from an outcome.
    pub(crate) failed: u64,
    /// From the first group call to the last one's end.
    pub(crate) elapsed_ns: u64,
    /// Median duration of one group call.
    pub(crate) p50_ns: u64,
    /// 99th percentile duration of one group call.
    pub(crate) p99_ns: u64,
}

impl GroupCallSummary {
    /// Member calls answered per second.
    pub(crate) fn answered_per_sec(&self) -> f64 {
        self.answered as f64 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }
}

/// `duration` in nanoseconds.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since `start`.
pub(crate) fn since(start: Instant) -> u64 {
    nanos(start.elapsed())
}

/// The `q` quantile (0..=1) of sorted values, by the nearest-rank method; 0 for no values.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the mean of the middle two for an even count); `None` for no values.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Raises this process's soft limit of open files to its hard limit; returns the limit now in force.
pub(crate) fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            eprintln!("could not raise the open file limit: {error}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The resident memory of process `pid` (`"self"` for this one), in bytes: `VmRSS` of `/proc/PID/status`.
pub(crate) fn resident_bytes(pid: &str) -> Result<u64> {
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

/// Fails with `what` unless `ok`.
pub(crate) fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong answer: {what}").into())
    }
}

/// CPU time, in clock ticks, used by the whole machine and by this process with its waited-for children:
/// the difference between two readings tells how much of the machine other programs used meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuReading {
    machine_busy: u64,
    machine_total: u64,
    own: u64,
}

impl CpuReading {
    /// Reads `/proc/stat`, `/proc/self/stat` and the stat files of the live child processes `children`;
    /// `None` where they cannot be read.
    pub(crate) fn now(children: &[u32]) -> Option<CpuReading> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        let total: u64 = ticks.iter().take(8).sum();
        let mut own = process_ticks("self", true)?;
        for child in children {
            own += process_ticks(&child.to_string(), false).unwrap_or(0);
        }
        Some(CpuReading {
            machine_busy: total - idle,
            machine_total: total,
            own,
        })
    }

    /// The share of the machine (0..=1) busy with other programs since `earlier`.
    pub(crate) fn foreign_share_since(&self, earlier: &CpuReading) -> f64 {
        let total = self.machine_total.saturating_sub(earlier.machine_total).max(1);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let own = self.own.saturating_sub(earlier.own);
        busy.saturating_sub(own) as f64 / total as f64
    }
}

/// The CPU ticks process `pid` used (user and system), with those of its waited-for children if asked.
fn process_ticks(pid: &str, with_children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces; the list starts at
    // field 3, so utime, stime, cutime and cstime (fields 14 to 17) are at 11 to 14.
    let fields: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let end = if with_children { 15 } else { 13 };
    Some(fields.get(11..end)?.iter().sum())
}
