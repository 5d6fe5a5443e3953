//! The results table, the targets, and the JSON file.

use std::path::Path;

use serde::Serialize;

use crate::common::{Impl, Result};
use crate::scenarios::{
    HUB_NODES, HubNote, LoadLog, MEMORY_BOTH, MEMORY_SERVER, MemoryNote, Metric, SLOW_ITEMS, Scenario, Settings, Setup,
};

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) scenario: Scenario,
    pub(crate) metric: String,
    pub(crate) birpc: Option<f64>,
    pub(crate) jsonrpsee: Option<f64>,
    /// The floor with birpc's WebSocket buffer sizes.
    pub(crate) raw: Option<f64>,
    /// The floor with tungstenite's default buffers.
    pub(crate) raw_default: Option<f64>,
    pub(crate) birpc_over_jsonrpsee: Option<f64>,
    pub(crate) birpc_over_raw: Option<f64>,
    pub(crate) birpc_over_raw_default: Option<f64>,
    /// The target, in words; empty when the figure has none.
    pub(crate) target: String,
    /// Whether the target is met; `None` when it has none or it could not be judged.
    pub(crate) met: Option<bool>,
    /// How the target was judged, when it is not by the two ratio columns alone.
    pub(crate) note: String,
    /// Rounds of this scenario kept although other programs used more of the machine than allowed
    /// (`--max-foreign`); their loads are in `foreign_cpu`.
    pub(crate) busy_rounds_kept: usize,
    /// The hub scenario (birpc only): the figure on one node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) one_node: Option<f64>,
    /// The hub scenario: the figure across three nodes on Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) three_nodes: Option<f64>,
    /// The hub scenario: three nodes / one node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) three_nodes_over_one_node: Option<f64>,
}

impl Row {
    /// Whether it compares the hub scenario's setups rather than implementations.
    fn by_setup(&self) -> bool {
        self.scenario == Scenario::Hub
    }
}

/// Everything the JSON file holds.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) date: String,
    /// `git describe --always --dirty` of the work tree the benchmark ran from.
    pub(crate) revision: String,
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) memory: Option<MemoryNote>,
    /// What the hub scenario ran on, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hub: Option<HubNote>,
    /// How busy other programs kept the machine during each scenario.
    pub(crate) foreign_cpu: Vec<ForeignCpu>,
    pub(crate) rows: Vec<Row>,
    pub(crate) metrics: Vec<Metric>,
}

/// The share of the machine (0 to 1) that other programs used during a scenario.
#[derive(Debug, Serialize)]
pub(crate) struct ForeignCpu {
    pub(crate) scenario: Scenario,
    pub(crate) share_of_machine: f64,
    /// Rounds measured again, or kept all the same, because other programs were busy during them, and the
    /// load of every round.
    pub(crate) rounds: LoadLog,
}

/// Where it ran.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) kernel: String,
}

impl Machine {
    pub(crate) fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            kernel,
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// The rows of the table, with each target judged.
pub(crate) fn rows(metrics: &[Metric]) -> Vec<Row> {
    let find = |scenario: Scenario, name: &str| {
        metrics
            .iter()
            .find(|m| m.scenario == scenario && m.metric == name)
            .and_then(|m| m.median(Impl::Birpc))
    };
    let fanin_birpc = find(Scenario::FanIn, "calls/s");
    metrics
        .iter()
        .map(|m| {
            let birpc = m.median(Impl::Birpc);
            let jsonrpsee = m.median(Impl::Jsonrpsee);
            let raw = m.median(Impl::Raw);
            let raw_default = m.median(Impl::RawDefault);
            let over_jsonrpsee = ratio(birpc, jsonrpsee);
            let over_raw = ratio(birpc, raw);
            let one_node = m.setup_median(Setup::OneNode);
            let three_nodes = m.setup_median(Setup::ThreeNodes);
            let (target, met, note) = match (m.scenario, m.metric.as_str()) {
                (Scenario::Latency, _) => (
                    "≤ 1.00× jsonrpsee".into(),
                    over_jsonrpsee.map(|r| r <= 1.0),
                    String::new(),
                ),
                (Scenario::Pipelined | Scenario::FanIn, "calls/s") => (
                    "≥ 2× jsonrpsee and ≥ 0.8× raw".into(),
                    over_jsonrpsee.zip(over_raw).map(|(j, r)| j >= 2.0 && r >= 0.8),
                    String::new(),
                ),
                (Scenario::ServerToClient, "calls/s") => {
                    let s2c_over_c2s = ratio(birpc, fanin_birpc);
                    (
                        "≥ 0.9× birpc fan-in calls/s".into(),
                        s2c_over_c2s.map(|r| r >= 0.9),
                        s2c_over_c2s.map_or("fan-in not run".into(), |r| format!("s2c/c2s = {r:.2}")),
                    )
                }
                (Scenario::Memory, MEMORY_SERVER) => (
                    "≤ 0.5× jsonrpsee".into(),
                    over_jsonrpsee.map(|r| r <= 0.5),
                    String::new(),
                ),
                (Scenario::Memory, MEMORY_BOTH) => ("≤ 1.00× raw".into(), over_raw.map(|r| r <= 1.0), String::new()),
                (Scenario::StreamOne | Scenario::StreamMany, "items/s") => {
                    ("≥ 2× jsonrpsee".into(), over_jsonrpsee.map(|r| r >= 2.0), String::new())
                }
                (Scenario::StreamMemory, metric) if metric.starts_with("items the consumer got") => {
                    let all = SLOW_ITEMS as f64;
                    let dropped = jsonrpsee.map(|j| j < all);
                    (
                        "birpc: every item".into(),
                        birpc.map(|b| b >= all),
                        match dropped {
                            Some(true) => "jsonrpsee's subscription closed early".into(),
                            Some(false) => "jsonrpsee got every item too".into(),
                            None => String::new(),
                        },
                    )
                }
                _ => (String::new(), None, String::new()),
            };
            Row {
                scenario: m.scenario,
                metric: m.metric.clone(),
                birpc,
                jsonrpsee,
                raw,
                raw_default,
                birpc_over_jsonrpsee: over_jsonrpsee,
                birpc_over_raw: over_raw,
                birpc_over_raw_default: ratio(birpc, raw_default),
                target,
                met,
                note,
                busy_rounds_kept: 0,
                one_node,
                three_nodes,
                three_nodes_over_one_node: ratio(three_nodes, one_node),
            }
        })
        .collect()
}

fn value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}×"))
}

/// The table, as Markdown (readable as plain text too); the hub scenario's rows, which compare its two
/// setups instead of the implementations, in a table of their own after it.
pub(crate) fn table(rows: &[Row]) -> String {
    let (by_setup, by_impl): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|row| row.by_setup());
    let mut out = String::new();
    if !by_impl.is_empty() || by_setup.is_empty() {
        out.push_str(&impl_table(&by_impl));
    }
    if !by_setup.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&setup_table(&by_setup));
    }
    out
}

/// The rows that compare implementations; the columns of the floor with tungstenite's default buffers only
/// when it ran. A scenario with rounds kept although the machine was busy is marked `*`.
fn impl_table(rows: &[&Row]) -> String {
    let with_default = rows.iter().any(|row| row.raw_default.is_some());
    let mut header = vec!["scenario", "metric", "birpc", "jsonrpsee", "raw"];
    let mut numeric = vec![false, false, true, true, true];
    if with_default {
        header.push("raw-default");
        numeric.push(true);
    }
    header.extend(["birpc/jsonrpsee", "birpc/raw"]);
    numeric.extend([true, true]);
    if with_default {
        header.push("birpc/raw-default");
        numeric.push(true);
    }
    header.extend(["target", "met?"]);
    numeric.extend([false, false]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let met = match (row.met, row.note.is_empty()) {
                (Some(true), _) => "yes",
                (Some(false), _) => "NO",
                (None, true) => "",
                (None, false) => "n/a",
            };
            let met = if row.note.is_empty() {
                met.to_owned()
            } else {
                format!("{met} ({})", row.note)
            };
            let scenario = if row.busy_rounds_kept > 0 {
                format!("{}*", row.scenario)
            } else {
                row.scenario.to_string()
            };
            let mut line = vec![
                scenario,
                row.metric.clone(),
                value(row.birpc),
                value(row.jsonrpsee),
                value(row.raw),
            ];
            if with_default {
                line.push(value(row.raw_default));
            }
            line.extend([times(row.birpc_over_jsonrpsee), times(row.birpc_over_raw)]);
            if with_default {
                line.push(times(row.birpc_over_raw_default));
            }
            line.extend([row.target.clone(), met]);
            line
        })
        .collect();
    markdown(&header, &numeric, &cells)
}

/// The lines under the table for the scenarios marked `*`: which rounds were kept although other programs
/// used more than `max_share` of the machine, and how much they used.
pub(crate) fn busy_notes(foreign: &[ForeignCpu], max_share: f64) -> String {
    let mut out = String::new();
    for scenario in foreign {
        let kept: Vec<String> = scenario
            .rounds
            .kept_busy()
            .map(|round| {
                format!(
                    "{} round {} ({:.0}%)",
                    round.of,
                    round.round,
                    round.share_of_machine * 100.0
                )
            })
            .collect();
        if !kept.is_empty() {
            out.push_str(&format!(
                "* {}: kept although other programs used more than {:.0}% of the machine: {}\n",
                scenario.scenario,
                max_share * 100.0,
                kept.join(", ")
            ));
        }
    }
    out
}

/// The hub scenario's rows: birpc on one node and across three.
fn setup_table(rows: &[&Row]) -> String {
    let three = format!("birpc, {HUB_NODES} nodes");
    let over = format!("{HUB_NODES} nodes / 1 node");
    let header = ["scenario", "metric", "birpc, 1 node", &three, &over];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.scenario.to_string(),
                row.metric.clone(),
                value(row.one_node),
                value(row.three_nodes),
                times(row.three_nodes_over_one_node),
            ]
        })
        .collect();
    markdown(&header, &[false, false, true, true, true], &cells)
}

/// A Markdown table of `cells` under `header`, the `numeric` columns aligned right.
fn markdown(header: &[&str], numeric: &[bool], cells: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_line = |line: &[String]| {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .zip(numeric)
            .map(|((cell, width), right)| {
                let pad = " ".repeat(width - cell.chars().count());
                if *right {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    out.push_str(&format_line(&header));
    out.push('\n');
    let rule: Vec<String> = widths
        .iter()
        .zip(numeric)
        .map(|(width, right)| {
            if *right {
                format!("{}:", "-".repeat(width - 1))
            } else {
                "-".repeat(*width)
            }
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for line in cells {
        out.push_str(&format_line(line));
        out.push('\n');
    }
    out
}

/// Writes the report as pretty JSON.
pub(crate) fn write_json(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(())
}

/// The revision of the work tree: `git describe --always --dirty`, or `unknown`.
pub(crate) fn revision() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The date of a day counted from 1970-01-01 (days before it are not needed here).
fn civil_from_days(mut days: i64) -> (i64, u32, u32) {
    let leap = |year: i64| (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let mut year = 1970;
    loop {
        let length = if leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if leap(year) { 29 } else { 28 };
    let lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 1;
    for length in lengths {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    (year, month, u32::try_from(days + 1).unwrap_or(1))
}
