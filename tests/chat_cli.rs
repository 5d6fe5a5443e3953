//! The terminal chat example, as a user runs it: a server process and two client processes typing into
//! their terminals. The server calls the clients back through the generated stub of their service.

mod common;

use std::process::Stdio;

use common::{example, within};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running chat_cli process, its terminal split into what we type and what it prints.
struct Terminal {
    _child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
    /// Lines printed but not yet expected: what is printed in an order the test does not fix (a typing
    /// notice and a message, say) is found wherever it is.
    unread: Vec<String>,
    name: &'static str,
}

impl Terminal {
    fn start(name: &'static str, args: &[&str]) -> Self {
        let mut child = Command::new(example("chat_cli"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chat_cli");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            _child: child,
            input,
            output,
            unread: Vec::new(),
            name,
        }
    }

    async fn type_line(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("type");
        self.input.flush().await.expect("flush");
    }

    /// The first printed line containing `text`, among those not expected yet or those printed next.
    async fn expect(&mut self, text: &str) -> String {
        if let Some(index) = self.unread.iter().position(|line| line.contains(text)) {
            return self.unread.remove(index);
        }
        let what = format!("{} to print {text:?}", self.name);
        within(&what, async {
            loop {
                match self.output.next_line().await.expect("read") {
                    Some(line) if line.contains(text) => return line,
                    Some(line) => self.unread.push(line),
                    None => panic!("{} ended before printing {text:?}", self.name),
                }
            }
        })
        .await
    }
}

#[tokio::test]
async fn two_terminals_chat_through_the_server() {
    let mut server = Terminal::start("server", &["server", "--listen", "127.0.0.1:0"]);
    let first = server.expect("listening on ").await;
    let url = first.trim_start_matches("listening on ").to_owned();

    let mut alice = Terminal::start(
        "alice",
        &["client", "--url", &url, "--name", "alice", "--room", "lobby"],
    );
    alice.expect("joined lobby as alice; already here: nobody").await;
    let mut bob = Terminal::start("bob", &["client", "--url", &url, "--name", "bob", "--room", "lobby"]);
    bob.expect("joined lobby as bob; already here: alice").await;
    // The server told alice, through her own service, that bob arrived.
    alice.expect("* bob joined").await;

    alice.type_line("hello bob").await;
    bob.expect("(alice is typing)").await;
    bob.expect("[1] alice: hello bob").await;
    alice.expect("[1] alice: hello bob").await;

    // A roll call: the server asks each client a question and collects the answers.
    bob.type_line("/who").await;
    alice
        .expect("(bob asks whether you are still there: answering yes)")
        .await;
    let mut answers = vec![bob.expect("roll call:").await, bob.expect("roll call:").await];
    answers.sort();
    assert_eq!(
        answers,
        [
            "roll call: alice: yes, alice is here",
            "roll call: bob: yes, bob is here"
        ]
    );

    // The server restarts on the same port: both clients reconnect and join their room again by themselves.
    drop(server);
    alice.expect("disconnected").await;
    bob.expect("reconnecting").await;
    let mut server = Terminal::start("server", &["server", "--listen", url.trim_start_matches("ws://")]);
    server.expect("listening on ").await;
    alice.expect("joined lobby as alice").await;
    bob.expect("joined lobby as bob").await;
    bob.type_line("back again").await;
    alice.expect("bob: back again").await;

    alice.type_line("/quit").await;
    alice.expect("bye").await;
    bob.expect("* alice left").await;
    server.expect("alice left lobby").await;
}
