//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use birpc::framing::Framing;
use clap::{Args, Parser, Subcommand};

use crate::failure::EXIT_CODES_HELP;

/// Talk to a JSON-RPC 2.0 endpoint: call its methods, send it notifications, answer its calls, follow
/// its streams, list its methods.
///
/// Params, after the method name: one JSON array or object (`'[1, 2]'`, `'{"a": 1}'`); or `key=value`
/// pairs, by name (the value is JSON when it parses, a string otherwise; `key:=value` takes only JSON); or
/// positional values (`1 2 hello`, each JSON when it parses, a string otherwise).
#[derive(Debug, Parser)]
#[command(name = "birpc", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Call METHOD and print its answer (its result, or its error object with exit code 1).
    #[command(after_help = EXIT_CODES_HELP)]
    Call(CallArgs),
    /// Send METHOD as a notification (no answer comes back).
    #[command(after_help = EXIT_CODES_HELP)]
    Notify(NotifyArgs),
    /// Print every call and notification the other side sends, one JSON line each, and answer its calls
    /// from a file or a script (-32601 otherwise), until the connection ends or Ctrl-C.
    #[command(after_help = LISTEN_HELP)]
    Listen(ListenArgs),
    /// List the methods of the endpoint, from its `rpc.discover` (OpenRPC) document.
    #[command(after_help = EXIT_CODES_HELP)]
    Discover(DiscoverArgs),
    /// Subscribe to the stream method METHOD and print its items as they come, one JSON line each.
    #[command(after_help = EXIT_CODES_HELP)]
    Stream(StreamArgs),
    /// An interactive session: each line is a call `METHOD PARAMS...` (`!METHOD PARAMS...` for a
    /// notification); what the other side sends is printed as it arrives, after `<- `.
    #[command(visible_alias = "i", after_help = SHELL_HELP)]
    Shell(ShellArgs),
    /// Serve LISTEN and relay each of its connections to a connection of its own to TARGET, both ways:
    /// a stdio program as a WebSocket endpoint (`birpc bridge ws://127.0.0.1:9000 'exec:pylsp'`), or a
    /// stdio tool to a WebSocket server (`birpc bridge stdio ws://HOST:PORT`).
    #[command(after_help = BRIDGE_HELP)]
    Bridge(BridgeArgs),
}

/// How `bridge` relays, for its `--help`.
const BRIDGE_HELP: &str = "\
LISTEN: ws://HOST:PORT, tcp://HOST:PORT, unix:PATH or stdio (port 0 picks a free port; the
URL listened on is printed on stderr). TARGET: any endpoint URL, exec:COMMAND LINE included;
each connection of LISTEN gets its own (an exec: target is spawned once per connection).

Requests are called again on the other side and their answers, results or error objects,
come back unchanged; notifications are sent on; a batch goes as its separate calls. The
connection to TARGET opens with the first message of its LISTEN connection, and each end
closes the other. Runs until Ctrl-C, or for stdio until stdin ends.

Exit codes: 0 when done, 2 usage, 3 when LISTEN cannot be listened on.";

/// How `listen` answers, for its `--help`.
const LISTEN_HELP: &str = "\
Answers file: a JSON object from method names to {\"result\": VALUE} or
{\"error\": {\"code\": N, \"message\": TEXT, \"data\": VALUE}}; methods it lacks get -32601.

Script: run by `sh -c` once per call and notification, with the params' JSON on stdin,
BIRPC_METHOD set to the method name and BIRPC_ID to the call's id (unset for a notification).
Exit status 0: stdout is the result's JSON (empty: null). Other status: stdout is the error
object's JSON, or else the error is -32000 \"the script failed\". stderr passes through.

Exit codes: 0 when the connection ends or on Ctrl-C, 1 when the first call's answer is an
error object, 2 usage, 3 when the connection cannot be made.";

/// The interactive mode's commands, for its `--help`.
const SHELL_HELP: &str = "\
Lines: `METHOD PARAMS...` calls, `!METHOD PARAMS...` notifies, words quoted as in a shell;
`.help` lists these, `.exit` or Ctrl-D ends. On a terminal, lines are edited with the usual keys
and kept in a history file: $BIRPC_HISTORY, else $XDG_DATA_HOME/birpc/history, else
~/.birpc_history. With stdin not a terminal, lines are read one by one, each answered before the next.

Exit codes: 0 at the end of input, 2 usage, 3 when the connection cannot be made or ends.";

/// The endpoint, and how long to wait for answers.
#[derive(Debug, Args)]
pub(crate) struct Endpoint {
    /// The endpoint: ws://HOST:PORT/PATH, wss://HOST:PORT/PATH, tcp://HOST:PORT, unix:PATH, stdio, or
    /// exec:COMMAND LINE (a program spawned and spoken to over its stdin and stdout). Byte streams take
    /// ?framing=content-length (LSP headers) or ?framing=lines (the default; one message a line).
    pub(crate) url: String,
    /// How messages are delimited on a byte stream: `lines` or `content-length` (for exec: URLs, which
    /// take no query).
    #[arg(long, value_name = "FRAMING")]
    pub(crate) framing: Option<Framing>,
    /// How long to wait for each answer, in seconds (`1.5`) or with a unit (`500ms`, `2s`, `1m`);
    /// default: as long as the connection lasts.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<Duration>,
}

/// `bridge`.
#[derive(Debug, Args)]
pub(crate) struct BridgeArgs {
    /// Where to listen: ws://HOST:PORT, tcp://HOST:PORT, unix:PATH or stdio.
    pub(crate) listen: String,
    /// Where each connection is relayed to: any endpoint URL, exec:COMMAND LINE included.
    pub(crate) target: String,
    /// How messages are delimited on a byte-stream LISTEN: `lines` or `content-length`.
    #[arg(long, value_name = "FRAMING")]
    pub(crate) listen_framing: Option<Framing>,
    /// How messages are delimited on a byte-stream TARGET (exec: URLs take no query): `lines` or
    /// `content-length`.
    #[arg(long, value_name = "FRAMING")]
    pub(crate) framing: Option<Framing>,
    /// How long a relayed call waits for its answer (`1.5`, `500ms`, `2s`, `1m`); default: as long as
    /// the connection lasts.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<Duration>,
    /// The most LISTEN connections relayed at once; past it a new one is turned away (a -32005 error on a
    /// byte stream, HTTP 503 on WebSocket). Each has a connection of its own to TARGET, an exec: program
    /// spawned for each.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BRIDGE_CONNECTIONS)]
    pub(crate) max_connections: usize,
}

/// The default of `bridge --max-connections`: a program per connection makes a server's own default
/// (10,000) far too many.
pub(crate) const DEFAULT_BRIDGE_CONNECTIONS: usize = 100;

/// How answers are laid out.
#[derive(Debug, Args)]
pub(crate) struct LayoutFlags {
    /// Indent the JSON (the default when stdout is a terminal).
    #[arg(long, conflicts_with = "compact")]
    pub(crate) pretty: bool,
    /// One line of JSON per answer (the default when stdout is not a terminal).
    #[arg(long)]
    pub(crate) compact: bool,
}

/// A method and its params.
#[derive(Debug, Args)]
pub(crate) struct Invocation {
    /// The method's name.
    pub(crate) method: String,
    /// Its params: one JSON array or object, `key=value` pairs, or positional values.
    #[arg(allow_negative_numbers = true)]
    pub(crate) params: Vec<String>,
}

/// `call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    #[command(flatten)]
    pub(crate) invocation: Invocation,
    #[command(flatten)]
    pub(crate) layout: LayoutFlags,
}

/// `notify`.
#[derive(Debug, Args)]
pub(crate) struct NotifyArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    #[command(flatten)]
    pub(crate) invocation: Invocation,
}

/// How the other side's calls are answered.
#[derive(Debug, Args)]
pub(crate) struct ResponderFlags {
    /// Answer from this JSON file: method name to {"result": …} or {"error": {…}}.
    #[arg(long, value_name = "FILE.json", conflicts_with = "script")]
    pub(crate) answers: Option<PathBuf>,
    /// Answer by running this command line once per call (params on stdin, result on stdout).
    #[arg(long, value_name = "COMMAND")]
    pub(crate) script: Option<String>,
}

/// `listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    #[command(flatten)]
    pub(crate) responder: ResponderFlags,
    /// A method to call once connected, for a server that calls back while it answers; its answer is
    /// printed as a line `{"result": …}` or `{"error": …}`.
    pub(crate) method: Option<String>,
    /// Its params.
    #[arg(allow_negative_numbers = true, requires = "method")]
    pub(crate) params: Vec<String>,
}

/// `discover`.
#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    /// Print the OpenRPC document itself instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) layout: LayoutFlags,
}

/// `stream`.
#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    #[command(flatten)]
    pub(crate) invocation: Invocation,
    /// Stop (and unsubscribe) after this many items.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

/// `shell`.
#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    #[command(flatten)]
    pub(crate) responder: ResponderFlags,
    #[command(flatten)]
    pub(crate) layout: LayoutFlags,
}

/// A duration: seconds (`1.5`), or a number with `ms`, `s` or `m`.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s or m")),
    };
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 1.5, 500ms or 2s"))?;
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("soon").is_err());
        assert!(duration("-1").is_err());
        assert!(duration("3h").is_err());
    }

    #[test]
    fn negative_numbers_are_params() {
        let cli = Cli::try_parse_from(["birpc", "call", "ws://h", "subtract", "-1", "2"]).unwrap();
        let Command::Call(call) = cli.command else {
            panic!("not a call")
        };
        assert_eq!(call.invocation.params, ["-1", "2"]);
    }
}
