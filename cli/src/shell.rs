//! `birpc shell`: an interactive session where each line is a call.
//!
//! On a terminal, lines are edited with rustyline and kept in a history file; otherwise stdin is read
//! line by line, each line answered before the next is read (so a script can pipe a session in).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use birpc::PeerHandle;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use serde_json::value::RawValue;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::args::ShellArgs;
use crate::connect::hang_up;
use crate::failure::Failure;
use crate::output::{self, Layout};
use crate::params;
use crate::responder::{Print, Responder, to_stdout};

/// What the lines may be, for `.help`.
const HELP: &str = "\
METHOD PARAMS...    call METHOD and print its answer
!METHOD PARAMS...   send METHOD as a notification
.help               this list
.exit               end (Ctrl-D too)
PARAMS: one JSON array or object, key=value pairs (key:=json), or positional values,
quoted as in a shell. What the other side sends is printed after `<- `.";

/// What arrived from the other side is printed after this.
const ARRIVED: &str = "<- ";

/// Connects and runs the session until the input ends, `.exit`, or the connection ends.
pub(crate) async fn shell(args: ShellArgs) -> Result<(), Failure> {
    let layout = Layout::choose(args.layout.pretty, args.layout.compact);
    let responder = Responder::from_options(args.responder.answers.as_deref(), args.responder.script.as_deref())?;
    if std::io::stdin().is_terminal() {
        interactive(&args, responder, layout).await
    } else {
        let peer = args.endpoint.open(responder.into_router(to_stdout(ARRIVED))).await?;
        let outcome = piped(&peer, layout).await;
        hang_up(&peer).await;
        outcome
    }
}

/// Reads stdin line by line.
async fn piped(peer: &PeerHandle, layout: Layout) -> Result<(), Failure> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?
    {
        if run_line(peer, &line, layout).await? == Flow::Exit {
            break;
        }
    }
    Ok(())
}

/// A line read on the terminal, with the way to say it is done and whether to prompt again (so the prompt
/// comes after the answer).
type Entered = (String, oneshot::Sender<bool>);

/// Runs the line editor on a thread of its own, and each line it gives on this task.
async fn interactive(args: &ShellArgs, responder: Responder, layout: Layout) -> Result<(), Failure> {
    let mut editor = DefaultEditor::new().map_err(|e| Failure::Usage(format!("cannot start the line editor: {e}")))?;
    // While the prompt is up, what arrives is printed above it by the editor; otherwise (a call is
    // waiting for its answer) straight on stdout.
    let prompting = Arc::new(AtomicBool::new(false));
    let print: Print = match editor.create_external_printer() {
        Ok(printer) => {
            let printer = Mutex::new(printer);
            let prompting = prompting.clone();
            let direct = to_stdout(ARRIVED);
            Arc::new(move |line: &str| {
                let Ok(mut printer) = printer.lock() else {
                    return direct(line);
                };
                if !prompting.load(Ordering::SeqCst) || printer.print(format!("{ARRIVED}{line}")).is_err() {
                    direct(line);
                }
            })
        }
        Err(_) => to_stdout(ARRIVED),
    };
    let peer = args.endpoint.open(responder.into_router(print)).await?;
    eprintln!(
        "connected to {}; .help lists the commands, Ctrl-D ends",
        args.endpoint.url
    );
    let (entered, mut lines) = mpsc::channel::<Entered>(1);
    let history = history_file();
    let editing = std::thread::spawn(move || edit(editor, history.as_deref(), &entered, &prompting));
    let mut outcome = Ok(());
    loop {
        let next = tokio::select! {
            next = lines.recv() => next,
            reason = peer.closed() => {
                // The editor is blocked in its prompt until Enter or Ctrl-D; the process ends without it.
                return Err(Failure::Connection(format!("the connection ended: {reason}")));
            }
        };
        let Some((line, done)) = next else { break };
        let flow = run_line(&peer, &line, layout).await;
        // The editor waits for this before its next prompt; gone, it has ended.
        let _ = done.send(matches!(flow, Ok(Flow::Continue)));
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => break,
            Err(failure) => {
                outcome = Err(failure);
                break;
            }
        }
    }
    drop(lines);
    hang_up(&peer).await;
    // The editor has been told not to prompt again; it saves the history and ends. A panic there is only
    // reported.
    if editing.join().is_err() {
        eprintln!("birpc: the line editor failed");
    }
    outcome
}

/// The line editor's loop: reads lines and hands them over one at a time, keeping history.
fn edit(
    mut editor: DefaultEditor,
    history: Option<&std::path::Path>,
    entered: &mpsc::Sender<Entered>,
    prompting: &AtomicBool,
) {
    if let Some(path) = history {
        // No history yet is the usual first run.
        let _ = editor.load_history(path);
    }
    loop {
        prompting.store(true, Ordering::SeqCst);
        let read = editor.readline("> ");
        prompting.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    // A line the history refuses (a repeat) is still run.
                    let _ = editor.add_history_entry(line.as_str());
                }
                let (done, answered) = oneshot::channel();
                if entered.blocking_send((line, done)).is_err() {
                    break;
                }
                // Wait for the answer to be printed, and whether the session goes on.
                if answered.blocking_recv() != Ok(true) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("birpc: cannot read the line: {error}");
                break;
            }
        }
    }
    if let Some(path) = history {
        if let Some(dir) = path.parent() {
            // Saving fails below with the reason.
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(error) = editor.save_history(path) {
            eprintln!("birpc: cannot save the history to {}: {error}", path.display());
        }
    }
}

/// Where the history is kept: `$BIRPC_HISTORY`, else `$XDG_DATA_HOME/birpc/history`, else
/// `~/.birpc_history`; none without a home.
fn history_file() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    var("BIRPC_HISTORY")
        .or_else(|| var("XDG_DATA_HOME").map(|dir| dir.join("birpc").join("history")))
        .or_else(|| var("HOME").map(|home| home.join(".birpc_history")))
}

/// Whether the session goes on after a line.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// What a line asks for.
#[derive(Debug)]
enum Line {
    /// Nothing (blank, or a `#` comment).
    Nothing,
    Help,
    Exit,
    Call {
        method: String,
        params: params::CallParams,
    },
    Notify {
        method: String,
        params: params::CallParams,
    },
}

/// Reads one line.
fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.trim();
    match line {
        "" => return Ok(Line::Nothing),
        ".help" => return Ok(Line::Help),
        ".exit" | ".quit" => return Ok(Line::Exit),
        _ if line.starts_with('#') => return Ok(Line::Nothing),
        _ if line.starts_with('.') => return Err(format!("unknown command {line:?}; .help lists them")),
        _ => {}
    }
    let (notify, line) = match line.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let Some((method, words)) = words.split_first() else {
        return Err("a method name is missing after !".to_owned());
    };
    let params = params::parse(words).map_err(|e| e.to_string())?;
    let method = method.clone();
    Ok(if notify {
        Line::Notify { method, params }
    } else {
        Line::Call { method, params }
    })
}

/// Runs one line: a call's answer or error object is printed on stdout (an error after `error: `), a
/// mistake in the line on stderr. Only the end of the connection ends the session with a failure.
async fn run_line(peer: &PeerHandle, line: &str, layout: Layout) -> Result<Flow, Failure> {
    let parsed = match parse_line(line) {
        Ok(parsed) => parsed,
        Err(mistake) => {
            eprintln!("birpc: {mistake}");
            return Ok(Flow::Continue);
        }
    };
    match parsed {
        Line::Nothing => {}
        Line::Help => output::print_line(HELP)?,
        Line::Exit => return Ok(Flow::Exit),
        Line::Call { method, params } => match peer.call::<Box<RawValue>>(&method, &params).await {
            Ok(result) => output::print(layout, &result)?,
            Err(error) => settle(error, layout)?,
        },
        Line::Notify { method, params } => {
            if let Err(error) = peer.notify(&method, &params).await {
                settle(error, layout)?;
            }
        }
    }
    Ok(Flow::Continue)
}

/// A failed call of the session: its error object printed, a timeout or a mistake told, a lost
/// connection the end.
fn settle(error: birpc::CallError, layout: Layout) -> Result<(), Failure> {
    match Failure::from(error) {
        Failure::ErrorObject(object) => Ok(output::print_line(&format!(
            "error: {}",
            layout.render(&output::raw(&object))
        ))?),
        failure @ (Failure::Timeout(_) | Failure::Usage(_)) => {
            eprintln!("birpc: {failure}");
            Ok(())
        }
        failure => Err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as text: `call METHOD PARAMS`, `notify …`, or the command.
    fn read(line: &str) -> String {
        let params = |p: &params::CallParams| p.as_ref().map_or("-".to_owned(), |p| p.get().to_owned());
        match parse_line(line) {
            Ok(Line::Nothing) => "nothing".into(),
            Ok(Line::Help) => "help".into(),
            Ok(Line::Exit) => "exit".into(),
            Ok(Line::Call { method, params: p }) => format!("call {method} {}", params(&p)),
            Ok(Line::Notify { method, params: p }) => format!("notify {method} {}", params(&p)),
            Err(mistake) => format!("mistake: {mistake}"),
        }
    }

    #[test]
    fn lines() {
        assert_eq!(read("  "), "nothing");
        assert_eq!(read("# a comment"), "nothing");
        assert_eq!(read(".help"), "help");
        assert_eq!(read(".exit"), "exit");
        assert!(read(".nope").starts_with("mistake"));
        assert_eq!(read("add 1 2"), "call add [1,2]");
        assert_eq!(
            read(r#"echo value='{"a": "b c"}'"#),
            r#"call echo {"value":{"a": "b c"}}"#
        );
        assert_eq!(read("get_data"), "call get_data -");
        assert_eq!(read("!hello \"two words\""), r#"notify hello ["two words"]"#);
        assert!(read("echo 'open").starts_with("mistake"));
        assert!(read("!").starts_with("mistake"));
        assert!(read("f a=1 2").starts_with("mistake"));
    }
}
