//! The birpc benchmark: the same scenarios for birpc, jsonrpsee 0.26 and two raw tokio-tungstenite floors
//! (birpc's WebSocket buffer sizes, tungstenite's defaults), in one invocation, with a table of the figures and their ratios on stdout and the same data as JSON.
//!
//! ```text
//! cargo run --release -p birpc-bench -- [--json PATH] [--only LIST] [--impls LIST] [--quick]
//!                                       [--rounds N] [--seconds S] [--conns N] [--memory-conns N]
//!                                       [--stream-window N] [--max-foreign PCT] [--callers MODE]
//!                                       [--wrap-server CMD]
//! ```
//!
//! Every server runs in a process of its own (this program, re-run as `bench serve --impl NAME --listen
//! ADDR`); the clients run in this process, on their own tokio runtime, but for the memory scenario's, which
//! run in a process of their own (`bench clients`). See `bench/README.md`.

mod client;
mod common;
mod load;
mod raw;
mod report;
mod scenarios;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::common::{CpuReading, Impl, Result, raise_fd_limit};
use crate::load::Callers;
use crate::scenarios::{Scenario, Settings};
use crate::serve::HubMode;

const USAGE: &str = "\
usage: bench [options]

  --json PATH          where to write the results as JSON (default: bench/results.json)
  --only LIST          run only these scenarios, comma-separated:
                       latency,pipelined,fan-in,s2c,large,memory (default: these six),
                       stream-one,stream-many,stream-memory,hub (only when named; hub needs redis-server)
  --impls LIST         run only these implementations: birpc,jsonrpsee,raw,raw-default (default: all);
                       raw is the floor with birpc's WebSocket buffers, raw-default with tungstenite's
  --quick              a short smoke run: 2 rounds of 0.3 s, 50 connections, 200 idle connections
  --rounds N           measured rounds per scenario (default 5)
  --seconds S          length of each round in seconds (default 2)
  --conns N            connections of the fan-in and server-to-client scenarios, and clients of the hub
                       scenario (default 1000)
  --memory-conns N     idle connections of the memory scenario (default 10000)
  --stream-window N    birpc client's stream window in the stream scenarios (default: birpc's, 256)
  --max-foreign PCT    measure a round again (4 attempts at most) when other programs used more than
                       PCT percent of the machine during it (default 10)
  --callers MODE       how birpc's and jsonrpsee's clients keep several calls in flight on a connection
                       (pipelined, fan-in, s2c): unordered, one task per connection and its calls as futures
                       of a FuturesUnordered (default); tasks, one task per call in flight
  --wrap-server CMD    run each server process under CMD, split at spaces (for profiling:
                       \"valgrind --tool=callgrind --callgrind-out-file=/tmp/server.%p\")
";

/// What the command line asked for.
struct Options {
    json: PathBuf,
    scenarios: Vec<Scenario>,
    impls: Vec<Impl>,
    settings: Settings,
}

fn list<T>(value: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    value
        .split(',')
        .filter(|item| !item.is_empty())
        .map(|item| parse(item.trim()).ok_or_else(|| format!("unknown name {item:?}").into()))
        .collect()
}

fn parse_options(args: &[String]) -> Result<Options> {
    let quick = args.iter().any(|arg| arg == "--quick");
    let mut options = Options {
        json: PathBuf::from("bench/results.json"),
        scenarios: Scenario::ALL.to_vec(),
        impls: Impl::ALL.to_vec(),
        settings: if quick { Settings::quick() } else { Settings::full() },
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--quick" {
            continue;
        }
        if arg == "--help" || arg == "-h" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let settings = &mut options.settings;
        match arg.as_str() {
            "--json" => options.json = PathBuf::from(value),
            "--only" => options.scenarios = list(value, Scenario::parse)?,
            "--impls" => options.impls = list(value, Impl::parse)?,
            "--rounds" => settings.rounds = value.parse::<usize>()?.max(1),
            "--seconds" => settings.round_ms = Duration::from_secs_f64(value.parse()?).as_millis().try_into()?,
            "--conns" => {
                settings.fanin_conns = value.parse()?;
                settings.s2c_conns = settings.fanin_conns;
                settings.hub_clients = settings.fanin_conns;
            }
            "--memory-conns" => settings.memory_conns = value.parse()?,
            "--stream-window" => settings.stream_window = Some(value.parse()?),
            "--max-foreign" => settings.max_foreign_cpu = value.parse::<f64>()? / 100.0,
            "--callers" => {
                settings.callers =
                    Callers::parse(value).ok_or_else(|| format!("unknown --callers {value:?}: unordered or tasks"))?;
            }
            "--wrap-server" => settings.server_wrapper = Some(value.clone()),
            _ => return Err(format!("unknown option {arg}\n\n{USAGE}").into()),
        }
    }
    options.scenarios.sort();
    options.scenarios.dedup();
    options.impls.sort();
    options.impls.dedup();
    if options.impls.is_empty() {
        return Err("no implementation to run".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("serve") => serve_main(&args[1..]),
        Some("clients") => client::clients_main(&args[1..]),
        _ => parse_options(&args).and_then(bench_main),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `bench serve --impl NAME --listen ADDR [--s2c] [--hub local|REDIS_URL] [--hub-name NAME]`.
fn serve_main(args: &[String]) -> Result<()> {
    let mut imp = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut hub = None;
    let mut hub_name = "bench".to_owned();
    let mut s2c = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--s2c" {
            s2c = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--impl" => imp = Some(Impl::parse(value).ok_or_else(|| format!("unknown implementation {value}"))?),
            "--listen" => listen.clone_from(value),
            "--hub" => hub = Some(value.clone()),
            "--hub-name" => hub_name.clone_from(value),
            _ => return Err(format!("unknown option {arg}").into()),
        }
    }
    let hub = hub.map(|hub| match hub.as_str() {
        "local" => HubMode::Local,
        _ => HubMode::Redis {
            url: hub,
            name: hub_name,
        },
    });
    serve::main(imp.ok_or("--impl is required")?, &listen, hub, s2c)
}

fn bench_main(options: Options) -> Result<()> {
    // The work tree as the run starts (the binary was built from it just before, by `cargo run`).
    let revision = report::revision();
    let fd_limit = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let settings = options.settings.clone();
    eprintln!(
        "bench: {} rounds of {} ms after a {} ms warm-up; implementations: {}; open file limit {fd_limit}",
        settings.rounds,
        settings.round_ms,
        settings.warmup_ms,
        options
            .impls
            .iter()
            .map(|imp| imp.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut metrics = Vec::new();
    let mut memory_note = None;
    let mut hub_note = None;
    let mut foreign_cpu = Vec::new();
    runtime.block_on(async {
        for &scenario in &options.scenarios {
            let before = CpuReading::now(&[]);
            let mut load = scenarios::LoadLog::default();
            let outcome = scenarios::run(
                scenario,
                &options.impls,
                &settings,
                &mut memory_note,
                &mut hub_note,
                &mut load,
            );
            metrics.extend(outcome.await?);
            if let Some((before, after)) = before.zip(CpuReading::now(&[])) {
                let share = after.foreign_share_since(&before);
                eprintln!("   other programs used {:.0}% of the machine meanwhile", share * 100.0);
                foreign_cpu.push(report::ForeignCpu {
                    scenario,
                    share_of_machine: share,
                    rounds: load,
                });
            }
        }
        Ok::<_, common::BoxError>(())
    })?;
    let mut rows = report::rows(&metrics);
    for row in &mut rows {
        row.busy_rounds_kept = foreign_cpu
            .iter()
            .filter(|foreign| foreign.scenario == row.scenario)
            .map(|foreign| foreign.rounds.busy_rounds_kept)
            .sum();
    }
    let table = report::table(&rows);
    let busy_notes = report::busy_notes(&foreign_cpu, settings.max_foreign_cpu);
    let report = report::Report {
        date: report::now_utc(),
        revision,
        machine: report::Machine::this(),
        settings,
        memory: memory_note,
        hub: hub_note,
        foreign_cpu,
        rows,
        metrics,
    };
    println!(
        "\n{} on {} cores ({}), birpc at {}\n",
        report.date, report.machine.cores, report.machine.cpu, report.revision
    );
    print!("{table}");
    if report.settings.callers != Callers::Unordered {
        println!(
            "\ncalls in flight made by: {} (--callers; pipelined, fan-in and s2c)",
            report.settings.callers.name()
        );
    }
    if !busy_notes.is_empty() {
        print!("\n{busy_notes}");
    }
    if let Some(memory) = &report.memory {
        println!(
            "\nmemory: {} idle connections per implementation and round, {}",
            memory.conns, memory.processes
        );
    }
    if let Some(hub) = &report.hub {
        println!("\nhub: {}", hub.summary());
    }
    let busiest = report
        .foreign_cpu
        .iter()
        .max_by(|a, b| a.share_of_machine.total_cmp(&b.share_of_machine));
    if let Some(busiest) = busiest {
        let repeated: usize = report.foreign_cpu.iter().map(|f| f.rounds.repeated_rounds).sum();
        let kept: usize = report.foreign_cpu.iter().map(|f| f.rounds.busy_rounds_kept).sum();
        println!(
            "other programs used up to {:.0}% of the machine during a scenario ({}); {repeated} rounds were \
             measured again, {kept} kept although other programs used more than {:.0}% of the machine",
            busiest.share_of_machine * 100.0,
            busiest.scenario,
            report.settings.max_foreign_cpu * 100.0
        );
    }
    report::write_json(&report, &options.json)?;
    println!("\nwritten to {}", options.json.display());
    // Client tasks of connections still closing need not be waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
