//! A chat in the terminal: a server, and clients that sign in with a name, join a room and talk.
//!
//! ```text
//! cargo run --example chat_cli -- server --listen 127.0.0.1:9001
//! cargo run --example chat_cli -- client --url ws://127.0.0.1:9001 --name alice --room lobby
//! cargo run --example chat_cli -- demo
//! ```
//!
//! The server admits a connection at the WebSocket upgrade only with a name (`?name=...`), which every
//! handler then reads from the connection's state. Rooms are groups of a [`Hub`]: messages, typing and
//! arrivals are broadcast to a room; "are you still there?" is a request the server sends to every member of
//! a room at once, through the generated stub of the clients' `ChatClientEvents` service, collecting each
//! answer. Clients reconnect by themselves (and join their room again) when the server restarts.
//!
//! A client reads lines from stdin: a line of text is posted to the room, `/who` holds a roll call, `/quit`
//! leaves. `demo` runs a server and two scripted clients in one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use birpc::prelude::*;
use birpc::{Admit, ClientEvent, ConnectionInfo, Hub, Reconnect, Reject};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Why the server refused a request.
#[derive(Debug, Serialize, Deserialize)]
enum ChatError {
    /// The connection has not joined a room yet.
    NotJoined,
    /// Empty messages are not posted.
    Empty,
}

impl RpcError for ChatError {}

/// What the server exports.
#[birpc::rpc(namespace = "chat")]
trait Chat {
    /// Joins `room` (leaving the previous one); returns who was already there.
    async fn join(&self, ctx: &Context, room: String) -> Vec<String>;
    /// Posts to the room; returns the message's sequence number.
    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError>;
    /// Tells the others this member is typing.
    #[rpc(notification)]
    async fn typing(&self, ctx: &Context);
    /// Asks every member of the room whether they are still there; returns each answer, or why none came.
    async fn roll_call(&self, ctx: &Context) -> Result<Vec<String>, ChatError>;
}

/// What every client exports, for the server to call.
#[birpc::rpc(namespace = "events")]
trait ChatClientEvents {
    /// A message was posted to the room.
    #[rpc(notification)]
    async fn message(&self, seq: u64, from: String, text: String);
    /// Someone is typing.
    #[rpc(notification)]
    async fn typing(&self, who: String);
    /// Someone joined or left.
    #[rpc(notification)]
    async fn presence(&self, who: String, here: bool);
    /// Are you still there? Answers with a word from the member.
    async fn still_there(&self, asked_by: String) -> String;
}

// ---------------------------------------------------------------------------------------------------------
// The server.

/// Who a connection is: set by the admission hook.
struct User {
    name: String,
}

/// The server's service: one for all connections; who calls comes from the connection's state.
#[derive(Clone)]
struct ChatService {
    hub: Hub,
    sequences: Arc<Mutex<HashMap<String, u64>>>,
}

fn name(peer: &PeerHandle) -> String {
    peer.state::<User>()
        .map_or_else(|| "?".to_owned(), |user| user.name.clone())
}

impl ChatService {
    /// The caller's name and the room it is in.
    fn whereabouts(&self, ctx: &Context) -> Result<(String, String), ChatError> {
        let room = self
            .hub
            .groups_of(ctx.peer().id())
            .into_iter()
            .next()
            .ok_or(ChatError::NotJoined)?;
        Ok((name(ctx.peer()), room))
    }
}

impl Chat for ChatService {
    async fn join(&self, ctx: &Context, room: String) -> Vec<String> {
        let (id, me) = (ctx.peer().id(), name(ctx.peer()));
        for previous in self.hub.groups_of(id) {
            self.hub.leave(id, &previous);
            self.hub
                .notify_group(&previous, ChatClientEventsMethods::PRESENCE, (&me, false));
        }
        let present: Vec<String> = self.hub.members(&room).iter().map(name).collect();
        self.hub.join(id, &room);
        self.hub
            .notify_group_except(&room, id, ChatClientEventsMethods::PRESENCE, (&me, true));
        println!("server: {me} joined {room}");
        present
    }

    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError> {
        let (me, room) = self.whereabouts(ctx)?;
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        let seq = {
            let mut sequences = self.sequences.lock().unwrap_or_else(|p| p.into_inner());
            let seq = sequences.entry(room.clone()).or_default();
            *seq += 1;
            *seq
        };
        self.hub
            .notify_group(&room, ChatClientEventsMethods::MESSAGE, (seq, me, text));
        Ok(seq)
    }

    async fn typing(&self, ctx: &Context) {
        if let Ok((me, room)) = self.whereabouts(ctx) {
            self.hub
                .notify_group_except(&room, ctx.peer().id(), ChatClientEventsMethods::TYPING, (me,));
        }
    }

    async fn roll_call(&self, ctx: &Context) -> Result<Vec<String>, ChatError> {
        let (me, room) = self.whereabouts(ctx)?;
        // A request to every member at once, each with its own timeout: a slow one delays nobody.
        let answers = self
            .hub
            .each(&room, |peer| {
                let (member, asked_by) = (name(&peer), me.clone());
                async move {
                    let events = ChatClientEventsClient::new(peer);
                    match events.still_there(asked_by).timeout(Some(Duration::from_secs(5))).await {
                        Ok(answer) => format!("{member}: {answer}"),
                        Err(e) => format!("{member}: no answer ({e})"),
                    }
                }
            })
            .await;
        let mut answers: Vec<String> = answers.into_iter().map(|(_, answer)| answer).collect();
        answers.sort();
        Ok(answers)
    }
}

/// Admits a connection that says who it is (`?name=...`, up to 32 characters).
async fn admit(request: ConnectionInfo) -> Result<Admit, Reject> {
    match request.query("name") {
        Some(name) if !name.trim().is_empty() && name.chars().count() <= 32 => Ok(Admit::new().with_state(User {
            name: name.trim().to_owned(),
        })),
        _ => Err(Reject::unauthorized("say who you are: ?name=...")),
    }
}

/// Binds and starts a chat server.
async fn start_server(listen: &str) -> std::io::Result<birpc::ServerHandle> {
    let hub = Hub::new();
    // Whoever leaves, the rooms they were in are told.
    hub.on_disconnect({
        let hub = hub.clone();
        move |departure| {
            let who = name(&departure.peer);
            for room in &departure.groups {
                println!("server: {who} left {room}");
                hub.notify_group(room, ChatClientEventsMethods::PRESENCE, (&who, false));
            }
        }
    });
    let service = ChatService {
        hub: hub.clone(),
        sequences: Arc::default(),
    };
    let server = Server::builder().admit(admit).hub(hub).bind(listen).await?;
    println!("listening on ws://{}", server.local_addr());
    Ok(server.serve(move |_| service.clone().into_router()))
}

async fn run_server(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Watched before the server says it is ready: a signal right after is caught.
    let stop = birpc::shutdown_signal();
    let running = start_server(listen).await?;
    // Ctrl-C or SIGTERM: the calls in flight are answered, then every connection closes with 1001.
    stop.await?;
    running.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The terminal client.

/// Prints what the server tells this client; `prefix` names the client when several share a terminal.
struct Terminal {
    name: String,
    prefix: String,
}

impl ChatClientEvents for Terminal {
    async fn message(&self, seq: u64, from: String, text: String) {
        println!("{}[{seq}] {from}: {text}", self.prefix);
    }

    async fn typing(&self, who: String) {
        println!("{}({who} is typing)", self.prefix);
    }

    async fn presence(&self, who: String, here: bool) {
        println!("{}* {who} {}", self.prefix, if here { "joined" } else { "left" });
    }

    async fn still_there(&self, asked_by: String) -> String {
        println!(
            "{}({asked_by} asks whether you are still there: answering yes)",
            self.prefix
        );
        format!("yes, {} is here", self.name)
    }
}

fn terminal(name: &str, prefix: &str) -> Router {
    Terminal {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
    }
    .into_router()
}

/// Joins `room` and says so.
async fn join(chat: &ChatClient, room: &str, name: &str, prefix: &str) -> Result<(), CallError> {
    let present = chat.join(room.to_owned()).await?;
    let present = if present.is_empty() {
        "nobody".to_owned()
    } else {
        present.join(", ")
    };
    println!("{prefix}joined {room} as {name}; already here: {present}");
    Ok(())
}

/// Runs one command line of the user.
async fn command(chat: &ChatClient, line: &str, prefix: &str) -> Result<bool, CallError<ChatError>> {
    match line.trim() {
        "/quit" => return Ok(false),
        "/who" => {
            for answer in chat.roll_call().await? {
                println!("{prefix}roll call: {answer}");
            }
        }
        "" => {}
        text => {
            chat.typing().await.map_err(CallError::into_typed)?;
            chat.post(text.to_owned()).await?;
        }
    }
    Ok(true)
}

async fn run_client(url: &str, name: &str, room: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder()
        .router(terminal(name, ""))
        .query("name", name)
        .reconnect(Reconnect::default().delays(Duration::from_millis(100), Duration::from_secs(5)))
        .reconnecting(url)?;
    let chat = ChatClient::new(client.peer().clone());
    // On every (re)connection, join the room again: a new connection starts in no room.
    let mut events = client.events();
    let watcher = {
        let (chat, room, name) = (chat.clone(), room.to_owned(), name.to_owned());
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    ClientEvent::Connected { .. } => {
                        if let Err(e) = join(&chat, &room, &name, "").await {
                            println!("could not join {room}: {e}");
                        }
                    }
                    ClientEvent::Disconnected { reason } => println!("disconnected: {reason}"),
                    ClientEvent::Reconnecting { attempt, delay, .. } => {
                        println!("reconnecting (attempt {attempt}) in {} ms", delay.as_millis());
                    }
                    ClientEvent::Stopped { reason } => {
                        println!("stopped: {reason}");
                        break;
                    }
                    _ => {}
                }
            }
        })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        match command(&chat, &line, "").await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => println!("error: {e}"),
        }
    }
    client.close();
    client.closed().await;
    let _ = watcher.await;
    println!("bye");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The demo: a server and two scripted clients in one process.

async fn demo_client(url: &str, name: &str, prefix: &str) -> Result<ChatClient, Box<dyn std::error::Error>> {
    let peer = Client::builder()
        .router(terminal(name, prefix))
        .query("name", name)
        .connect(url)
        .await?;
    let chat = ChatClient::new(peer);
    join(&chat, "lobby", name, prefix).await?;
    Ok(chat)
}

async fn run_demo() -> Result<(), Box<dyn std::error::Error>> {
    let running = start_server("127.0.0.1:0").await?;
    let url = format!("ws://{}", running.local_addr());
    let alice = demo_client(&url, "alice", "alice | ").await?;
    let bob = demo_client(&url, "bob", "bob   | ").await?;
    command(&bob, "hi alice", "bob   | ").await?;
    command(&alice, "hello bob", "alice | ").await?;
    command(&bob, "/who", "bob   | ").await?;
    alice.peer().close();
    alice.peer().closed().await;
    command(&bob, "anyone?", "bob   | ").await?;
    bob.peer().close();
    bob.peer().closed().await;
    running.shutdown().await;
    Ok(())
}

const USAGE: &str = "usage: chat_cli server [--listen HOST:PORT]
       chat_cli client --url ws://HOST:PORT --name NAME [--room ROOM]
       chat_cli demo";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |key: &str| {
        args.iter()
            .position(|a| a == key)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("server") => run_server(&option("--listen").unwrap_or_else(|| "127.0.0.1:9001".into())).await,
        Some("client") => {
            let (Some(url), Some(name)) = (option("--url"), option("--name")) else {
                eprintln!("{USAGE}");
                std::process::exit(2);
            };
            run_client(&url, &name, &option("--room").unwrap_or_else(|| "lobby".into())).await
        }
        Some("demo") => run_demo().await,
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
