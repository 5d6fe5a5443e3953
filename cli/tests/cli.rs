//! The `birpc` binary end to end, against a real interop server (`examples/interop_server.rs`) started
//! on a free port. Every child process is killed when its guard drops, a failing test included.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for an event before failing.
const PATIENCE: Duration = Duration::from_secs(30);

const BIRPC: &str = env!("CARGO_BIN_EXE_birpc");

/// A child process, killed and reaped when dropped.
struct Running {
    child: Child,
    /// Its stdout, line by line (for the commands that run until stopped).
    lines: Option<mpsc::Receiver<String>>,
}

impl Running {
    /// The next line of its stdout; fails the test after [`PATIENCE`].
    fn line(&mut self) -> String {
        let lines = self.lines.as_ref().expect("stdout is read line by line");
        lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no line from the child on stdout: {e}"))
    }

    /// The next line, as JSON.
    fn json_line(&mut self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` with its stdout read line by line.
fn start(mut command: Command) -> Running {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, lines: Some(rx) }
}

/// The interop server's binary: built beside the tests (`cargo test --workspace` builds the examples),
/// or else built now in a target directory of its own (so as not to wait on the lock of this one).
fn interop_server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let path = profile_dir.join("examples").join("interop_server");
    if path.exists() {
        return path;
    }
    let own_target = profile_dir.join("example-builds");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "birpc-examples",
            "--example",
            "interop_server",
            "--target-dir",
        ])
        .arg(&own_target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the interop server failed");
    own_target.join("debug").join("examples").join("interop_server")
}

/// A running interop server and its `ws://` URL (from its first line).
fn interop_server() -> (Running, String) {
    let mut command = Command::new(interop_server_binary());
    command.args(["--listen", "127.0.0.1:0"]);
    let mut server = start(command);
    let first = server.line();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (server, url)
}

/// What a finished `birpc` printed, and how it exited.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `birpc ARGS` with `input` on stdin to its end; fails the test if it runs longer than [`PATIENCE`].
fn birpc(args: &[&str], input: &str) -> Finished {
    let child = Command::new(BIRPC)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start birpc");
    let mut running = Running { child, lines: None };
    let mut stdin = running.child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(running.child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(running.child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "birpc {args:?} ran longer than {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Finished {
        code: status.code(),
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// A file in this test's scratch directory holding `text`.
fn scratch_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write the scratch file");
    path
}

#[test]
fn call_by_position_by_name_and_with_pairs() {
    let (_server, url) = interop_server();
    let positional = birpc(&["call", &url, "subtract", "42", "23"], "");
    assert_eq!(
        (positional.code, positional.stdout.as_str()),
        (Some(0), "19\n"),
        "{positional:?}"
    );

    let object = birpc(&["call", &url, "subtract", r#"{"subtrahend": 23, "minuend": 42}"#], "");
    assert_eq!((object.code, object.stdout.as_str()), (Some(0), "19\n"), "{object:?}");

    let array = birpc(&["call", &url, "subtract", "[50, 8]"], "");
    assert_eq!(array.stdout, "42\n", "{array:?}");

    let pairs = birpc(&["call", &url, "sum", "a=1", "b=2", "c:=-3"], "");
    assert_eq!((pairs.code, pairs.stdout.as_str()), (Some(0), "0\n"), "{pairs:?}");

    let strings = birpc(&["call", &url, "echo", "value=hello world"], "");
    assert_eq!(strings.stdout, "\"hello world\"\n", "{strings:?}");

    let pretty = birpc(&["call", "--pretty", &url, "echo", r#"value={"a": [1]}"#], "");
    assert_eq!(pretty.stdout, "{\n  \"a\": [\n    1\n  ]\n}\n", "{pretty:?}");

    let exact = birpc(&["call", &url, "echo", "123456789012345678901234567890"], "");
    assert_eq!(
        exact.stdout, "123456789012345678901234567890\n",
        "compact output is the text as received"
    );
}

#[test]
fn an_error_object_is_printed_and_exits_1() {
    let (_server, url) = interop_server();
    let unknown = birpc(&["call", &url, "no_such_method"], "");
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert_eq!(unknown.json()["code"], -32601);

    let invalid = birpc(&["call", &url, "subtract", "x=1"], "");
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert_eq!(invalid.json()["code"], -32602);
}

#[test]
fn connection_failures_exit_3_and_timeouts_4() {
    // A port nobody listens on: bound, then freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let refused = birpc(&["call", &format!("ws://127.0.0.1:{port}"), "echo", "1"], "");
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(refused.stderr.contains("cannot connect"), "{refused:?}");
    assert!(refused.stdout.is_empty());

    let (_server, url) = interop_server();
    let slow = birpc(&["call", "--timeout", "200ms", &url, "sleep", "10000"], "");
    assert_eq!(slow.code, Some(4), "{slow:?}");
}

#[test]
fn usage_mistakes_exit_2() {
    let mixed = birpc(&["call", "ws://127.0.0.1:1", "f", "a=1", "2"], "");
    assert_eq!(mixed.code, Some(2), "{mixed:?}");
    assert!(mixed.stderr.contains("not both"), "{mixed:?}");

    let scheme = birpc(&["call", "http://127.0.0.1:1", "f"], "");
    assert_eq!(scheme.code, Some(2), "{scheme:?}");
    assert!(scheme.stderr.contains("is not a target"), "{scheme:?}");

    // A malformed WebSocket URL is a usage mistake, not a failed connection.
    let malformed = birpc(&["call", "ws://[::1", "f"], "");
    assert_eq!(malformed.code, Some(2), "{malformed:?}");
    assert!(malformed.stderr.contains("not a WebSocket URL"), "{malformed:?}");

    let missing = birpc(&["call"], "");
    assert_eq!(missing.code, Some(2), "{missing:?}");

    let help = birpc(&["--help"], "");
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Exit codes"), "{help:?}");
}

#[test]
fn notify_sends_and_prints_nothing() {
    let (_server, url) = interop_server();
    let sent = birpc(&["notify", &url, "echo", "1"], "");
    assert_eq!((sent.code, sent.stdout.as_str()), (Some(0), ""), "{sent:?}");
}

#[test]
fn listen_answers_calls_from_a_file_and_prints_what_arrives() {
    let (_server, url) = interop_server();
    let answers = scratch_file(
        "answers.json",
        r#"{"greet": {"result": "hi there"}, "fail": {"error": {"code": 7, "message": "no", "data": [1]}}}"#,
    );
    let answers = answers.to_str().expect("a UTF-8 path");
    let run = |params: &[&str]| {
        let mut command = Command::new(BIRPC);
        command
            .args(["listen", &url, "--answers", answers, "ask_client"])
            .args(params);
        start(command)
    };

    let mut greet = run(&["method=greet", r#"params=["Ada"]"#]);
    let arrived = greet.json_line();
    assert_eq!(arrived["method"], "greet");
    assert_eq!(arrived["params"], json!(["Ada"]));
    assert!(arrived["id"].is_number() || arrived["id"].is_string(), "{arrived}");
    assert_eq!(greet.json_line(), json!({"result": "hi there"}));

    let mut fail = run(&["method=fail"]);
    assert_eq!(fail.json_line()["method"], "fail");
    assert_eq!(
        fail.json_line(),
        json!({"error": {"code": 7, "message": "no", "data": [1]}})
    );

    let mut unknown = run(&["method=other"]);
    assert_eq!(unknown.json_line()["method"], "other");
    assert_eq!(unknown.json_line()["error"]["code"], -32601);

    // A notification arrives without an id.
    let mut command = Command::new(BIRPC);
    command.args(["listen", &url, "notify_client", "method=news", r#"params={"n": 1}"#]);
    let mut told = start(command);
    assert_eq!(told.json_line(), json!({"method": "news", "params": {"n": 1}}));
    assert_eq!(told.json_line(), json!({"result": null}));
}

#[test]
fn listen_answers_calls_with_a_script() {
    let (_server, url) = interop_server();
    let run = |script: &str, method: &str| {
        let mut command = Command::new(BIRPC);
        command.args([
            "listen",
            &url,
            "--script",
            script,
            "ask_client",
            &format!("method={method}"),
        ]);
        command.arg(r#"params=["Ada", 1]"#);
        start(command)
    };
    // The params on stdin, the result on stdout.
    let mut echoed = run("cat", "greet");
    assert_eq!(echoed.json_line()["method"], "greet");
    assert_eq!(echoed.json_line(), json!({"result": ["Ada", 1]}));

    let mut named = run(r#"printf '"%s"' "$BIRPC_METHOD""#, "whoami");
    named.line();
    assert_eq!(named.json_line(), json!({"result": "whoami"}));

    let mut refused = run(r#"echo '{"code": 5, "message": "nope"}'; exit 1"#, "greet");
    refused.line();
    assert_eq!(refused.json_line(), json!({"error": {"code": 5, "message": "nope"}}));
}

#[test]
fn discover_lists_the_methods() {
    let (_server, url) = interop_server();
    let table = birpc(&["discover", &url], "");
    assert_eq!(table.code, Some(0), "{table:?}");
    let row = table
        .stdout
        .lines()
        .find(|line| line.starts_with("subtract "))
        .unwrap_or_else(|| panic!("no row for subtract: {table:?}"));
    assert!(
        row.contains("minuend, subtrahend") && row.contains("The difference."),
        "{row}"
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.starts_with("ticks ") && line.contains("[stream]"))
    );

    let document = birpc(&["discover", "--json", &url], "");
    let document = document.json();
    assert!(document["openrpc"].is_string());
    assert!(
        document["methods"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "echo"))
    );
}

#[test]
fn stream_prints_items_and_stops_after_count() {
    let (_server, url) = interop_server();
    let some = birpc(&["stream", &url, "ticks", "100", "0", "--count", "3"], "");
    assert_eq!((some.code, some.stdout.as_str()), (Some(0), "0\n1\n2\n"), "{some:?}");

    let all = birpc(&["stream", &url, "ticks", "count=2", "every_ms=0"], "");
    assert_eq!((all.code, all.stdout.as_str()), (Some(0), "0\n1\n"), "{all:?}");

    let refused = birpc(&["stream", &url, "no_such_stream"], "");
    assert_eq!(refused.code, Some(1), "{refused:?}");
}

#[test]
fn the_shell_reads_lines_from_a_pipe() {
    let (_server, url) = interop_server();
    let session = birpc(
        &["shell", &url],
        "subtract 42 23\n\
         # a comment\n\
         no_such_method\n\
         !echo 1\n\
         sum a=1 b=2 c=3\n\
         notify_client method=news params='[1]'\n\
         .exit\n\
         subtract 1 1\n",
    );
    assert_eq!(session.code, Some(0), "{session:?}");
    let lines: Vec<&str> = session.stdout.lines().collect();
    assert_eq!(lines[0], "19", "{session:?}");
    assert!(
        lines[1].starts_with("error: ") && lines[1].contains("-32601"),
        "{session:?}"
    );
    assert_eq!(lines[2], "6", "{session:?}");
    // The server's notification and its answer, in either order.
    let mut rest = lines[3..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, [r#"<- {"method":"news","params":[1]}"#, "null"], "{session:?}");
}

/// A running `birpc bridge LISTEN TARGET` and the URL it listens on (from its first line on stderr).
fn bridge(listen: &str, target: &str, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIRPC)
        .args(["bridge", listen, target])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start birpc bridge");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    // Read to its end (the bridge and the programs it spawns write there): a closed pipe would fail them.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("bridge: {line}");
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(PATIENCE).expect("the bridge's first line on stderr");
    let url = first
        .strip_prefix("birpc: listening on ")
        .and_then(|rest| rest.split(", relaying to ").next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (Running { child, lines: None }, url)
}

#[test]
fn bridge_exposes_a_stdio_program_as_a_websocket_endpoint_both_ways() {
    let program = interop_server_binary();
    let target = format!("exec:{} --listen stdio?framing=content-length", program.display());
    let (_bridge, url) = bridge("ws://127.0.0.1:0", &target, &["--framing", "content-length"]);
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    // A call and its error object go through unchanged.
    let called = birpc(&["call", &url, "subtract", "42", "23"], "");
    assert_eq!((called.code, called.json()), (Some(0), json!(19)), "{called:?}");
    let refused = birpc(&["call", &url, "no_such_method"], "");
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert_eq!(refused.json()["code"], -32601, "{refused:?}");

    // The program calls the client back through the bridge.
    let answers = scratch_file("bridge-answers.json", r#"{"greet": {"result": "hi from the browser"}}"#);
    let mut command = Command::new(BIRPC);
    command.args([
        "listen",
        &url,
        "--answers",
        answers.to_str().expect("a UTF-8 path"),
        "ask_client",
        "method=greet",
        r#"params=["Ada"]"#,
    ]);
    let mut listening = start(command);
    let arrived = listening.json_line();
    assert_eq!(
        (arrived["method"].clone(), arrived["params"].clone()),
        (json!("greet"), json!(["Ada"]))
    );
    assert_eq!(listening.json_line(), json!({"result": "hi from the browser"}));
}

#[test]
fn bridge_connects_a_stdio_tool_to_a_websocket_server() {
    let (_server, url) = interop_server();
    let (mut bridge, _) = bridge("stdio", &url, &[]);
    let mut stdin = bridge.child.stdin.take().expect("stdin");
    let stdout = bridge.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ask = |request: &str| {
        writeln!(stdin, "{request}").expect("write to the bridge");
        let line = rx.recv_timeout(PATIENCE).expect("an answer line from the bridge");
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    assert_eq!(
        ask(r#"{"jsonrpc":"2.0","id":"a","method":"subtract","params":{"minuend":42,"subtrahend":23}}"#),
        json!({"jsonrpc": "2.0", "id": "a", "result": 19})
    );
    let missing = ask(r#"{"jsonrpc":"2.0","id":7,"method":"nope"}"#);
    assert_eq!(
        (missing["id"].clone(), missing["error"]["code"].clone()),
        (json!(7), json!(-32601))
    );
    // The end of stdin ends the bridge.
    drop(stdin);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = bridge.child.try_wait().expect("wait") {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the bridge did not end with its stdin");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn call_over_byte_streams_a_child_process_and_tcp() {
    let program = interop_server_binary();
    // A child process spoken to over its stdin and stdout, one message a line and with LSP headers.
    let exec = format!("exec:{} --listen stdio", program.display());
    let lines = birpc(&["call", &exec, "subtract", "42", "23"], "");
    assert_eq!((lines.code, lines.json()), (Some(0), json!(19)), "{lines:?}");
    let exec_lsp = format!("exec:{} --listen stdio?framing=content-length", program.display());
    let headers = birpc(
        &["call", &exec_lsp, "--framing", "content-length", "sum", "1", "2", "4"],
        "",
    );
    assert_eq!((headers.code, headers.json()), (Some(0), json!(7)), "{headers:?}");

    // A TCP server.
    let mut command = Command::new(&program);
    command.args(["--listen", "tcp://127.0.0.1:0"]);
    let mut server = start(command);
    let first = server.line();
    let url = first.strip_prefix("listening on ").expect(&first).to_owned();
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    let tcp = birpc(&["call", &url, "subtract", "minuend=5", "subtrahend=3"], "");
    assert_eq!((tcp.code, tcp.json()), (Some(0), json!(2)), "{tcp:?}");

    // stdout is where the answers go: it cannot be the channel too.
    let stdio = birpc(&["call", "stdio", "subtract"], "");
    assert_eq!(stdio.code, Some(2), "{stdio:?}");
    assert!(stdio.stderr.contains("birpc bridge"), "{stdio:?}");
}

/// An `exec:` program that calls the other side once (`{"jsonrpc": "2.0", "id": 1, "method": "big", "params":
/// [S]}`, S a string of `size` letters), then sends the answer it gets back as the params of a notification
/// `done` (`[N]`, the answer line's length, or `[ANSWER]` when `whole` is set), and waits for its stdin to end.
fn calling_program(size: usize, whole: bool) -> String {
    let reported = if whole { "$answer" } else { "${#answer}" };
    let script = format!(
        r#"printf "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":[\""; head -c {size} /dev/zero | tr "\0" a; printf "\"]}}\n"; read -r answer; printf "{{\"jsonrpc\":\"2.0\",\"method\":\"done\",\"params\":[%s]}}\n" "{reported}"; cat >/dev/null"#
    );
    format!("exec:sh -c '{script}'")
}

#[test]
fn listen_script_gets_params_larger_than_a_pipe_holds_while_its_output_is_read() {
    // `cat` writes back while it reads: params larger than the two pipes' buffers and cat's own must be
    // written while its output is read, or both wait on each other for ever.
    let size = 1_000_000;
    let mut command = Command::new(BIRPC);
    command.args(["listen", &calling_program(size, false), "--script", "cat"]);
    let mut listening = start(command);
    let arrived = listening.json_line();
    assert_eq!(arrived["method"], "big");
    assert_eq!(arrived["params"][0].as_str().map(str::len), Some(size));
    let done = listening.json_line();
    assert_eq!(done["method"], "done", "{done}");
    // The answer: {"jsonrpc":"2.0","id":1,"result":["aaa…"]}, the params echoed whole.
    let length = done["params"][0].as_u64().expect("the answer's length");
    assert!(length > size as u64, "{done}");
}

#[test]
fn listen_script_that_prints_without_end_is_cut_off_at_the_message_limit() {
    // 5 MB on stdout, more than a message may hold (4 MiB), then the script stays, its stdout open.
    let script = r#"head -c 5000000 /dev/zero | tr "\0" a; exec sleep 60"#;
    let mut command = Command::new(BIRPC);
    command.args(["listen", &calling_program(10, true), "--script", script]);
    let mut listening = start(command);
    assert_eq!(listening.json_line()["method"], "big");
    let done = listening.json_line();
    assert_eq!(done["method"], "done", "{done}");
    let answer = &done["params"][0];
    assert_eq!(answer["id"], 1, "{done}");
    assert_eq!(answer["error"]["code"], -32603, "{done}");
    assert!(
        answer["error"]["data"]
            .as_str()
            .is_some_and(|data| data.contains("more than")),
        "{done}"
    );
}

/// Waits for `pid_file` to name a process (written by a program `birpc` spawned), and returns its pid.
fn spawned_pid(pid_file: &std::path::Path) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the spawned program never wrote its pid");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` is gone or a zombie (killed, not yet reaped by whoever inherited it), waiting up
/// to [`PATIENCE`] for it: a killed process takes a moment to die.
fn gone(pid: u32) -> bool {
    let dead = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's name in parentheses.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    };
    let deadline = Instant::now() + PATIENCE;
    while !dead() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Sends `signal` (`INT`, `TERM`) to `child`, waits for it to exit and returns its exit code.
fn signal_and_wait(child: &mut Child, signal: &str) -> Option<i32> {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "birpc did not end on SIG{signal}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_or_sigterm_ends_birpc_and_kills_the_program_it_spawned() {
    // The spawned program ignores both the end of its stdin and SIGINT: only birpc can end it.
    for (command, signal, code) in [
        ("call", "INT", 130),
        ("stream", "TERM", 143),
        ("listen", "TERM", 143),
        ("discover", "INT", 130),
    ] {
        let (mut birpc, spawned) = against_a_program_that_ignores_ctrl_c(command, signal);
        assert_eq!(
            signal_and_wait(&mut birpc, signal),
            Some(code),
            "birpc {command} on SIG{signal}"
        );
        assert!(
            gone(spawned),
            "birpc {command} left its program {spawned} running after SIG{signal}"
        );
    }
}

/// Starts `birpc COMMAND` on a program (an `exec:` target) that ignores SIGINT and never answers; returns
/// the `birpc` process and the program's pid (written to a scratch file named with `tag`).
#[cfg(unix)]
fn against_a_program_that_ignores_ctrl_c(command: &str, tag: &str) -> (std::process::Child, u32) {
    let pid_file = scratch_file(&format!("{command}-{tag}.pid"), "");
    let program = format!(
        r#"exec:sh -c 'trap "" INT; echo $$ > {}; exec sleep 60'"#,
        pid_file.display()
    );
    let mut args = vec![command, &program];
    if command == "call" || command == "stream" {
        args.push("anything");
    }
    let birpc = Command::new(BIRPC)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start birpc");
    (birpc, spawned_pid(&pid_file))
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_ends_a_graceful_close_that_the_other_side_holds_up() {
    // listen and stream close gracefully on Ctrl-C, waiting for the other side to close its end; this
    // program never does, so only a second Ctrl-C ends them before the close times out (5 s).
    for command in ["listen", "stream"] {
        let (mut birpc, spawned) = against_a_program_that_ignores_ctrl_c(command, "twice");
        let started = Instant::now();
        // Ctrl-C again and again: the first starts the close, a later one ends it.
        let code = loop {
            let sent = Command::new("kill")
                .args(["-INT", &birpc.id().to_string()])
                .status()
                .expect("run kill");
            if let Some(status) = birpc.try_wait().expect("wait") {
                break status.code();
            }
            assert!(
                sent.success() && started.elapsed() < PATIENCE,
                "birpc {command} did not end"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "birpc {command} waited out the close ({:?})",
            started.elapsed()
        );
        assert_eq!(code, Some(130), "birpc {command}");
        assert!(gone(spawned), "birpc {command} left its program {spawned} running");
    }
}

#[test]
fn bridge_relays_at_most_100_connections_by_default_and_turns_the_next_away() {
    // Each relayed connection would spawn a program of its own: the server's default of 10,000 would be
    // 10,000 programs. Connections spawn theirs with their first message, so idle ones cost none here.
    let (_bridge, url) = bridge("tcp://127.0.0.1:0", "exec:cat", &[]);
    let addr = url.strip_prefix("tcp://").expect("a tcp URL").to_owned();
    let connect = || std::net::TcpStream::connect(&addr).expect("connect to the bridge");
    let held: Vec<_> = (0..100).map(|_| connect()).collect();
    // Answered at once by the bridge itself (a relayed connection would wait for a message first).
    let mut turned_away = connect();
    turned_away.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let mut answer = String::new();
    turned_away
        .read_to_string(&mut answer)
        .expect("the refusal and the end");
    let refusal: Value = serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    assert_eq!(refusal["error"]["code"], -32005, "{refusal}");
    drop(held);
}

#[cfg(unix)]
#[test]
fn sigterm_ends_a_bridge_on_a_unix_socket_and_removes_its_file() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-bridge.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listen = format!("unix:{}", path.display());
    let (mut bridge, _) = bridge(&listen, "exec:cat", &[]);
    assert!(path.exists(), "the bridge listens on {}", path.display());
    assert_eq!(signal_and_wait(&mut bridge.child, "TERM"), Some(143));
    // Left behind, the file would keep the next bridge from binding the same path.
    assert!(!path.exists(), "{} is still there", path.display());
}

#[test]
fn bridge_answers_a_call_with_an_error_when_its_target_dies_before_answering() {
    // The program reads the call, then exits without an answer.
    let (_bridge, url) = bridge("tcp://127.0.0.1:0", "exec:sh -c 'read -r call; exit 0'", &[]);
    let called = birpc(&["call", &url, "anything", "1"], "");
    assert_eq!(called.code, Some(1), "{called:?}");
    assert_eq!(called.json()["code"], -32603, "{called:?}");
}
