//! A chat in the terminal: a server, and clients that join a room and talk. The server calls every client
//! back through a generated stub: new messages, someone typing and arrivals as notifications, and "are you
//! still there?" as a request whose answers it collects.
//!
//! ```text
//! cargo run --example chat_cli -- server --listen 127.0.0.1:9001
//! cargo run --example chat_cli -- client --url ws://127.0.0.1:9001 --name alice --room lobby
//! cargo run --example chat_cli -- demo
//! ```
//!
//! A client reads lines from stdin: a line of text is posted to the room, `/who` asks everyone in the room
//! whether they are still there, `/quit` leaves. `demo` runs a server and two scripted clients in one
//! process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use birpc::prelude::*;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Why the server refused a request.
#[derive(Debug, Serialize, Deserialize)]
enum ChatError {
    /// The connection has not joined a room yet.
    NotJoined,
    /// Someone in the room already has that name.
    NameTaken,
    /// Empty messages are not posted.
    Empty,
}

impl RpcError for ChatError {}

/// What the server exports.
#[birpc::rpc(namespace = "chat")]
trait Chat {
    /// Joins `room` as `name`; returns who was already there.
    async fn join(&self, ctx: &Context, room: String, name: String) -> Result<Vec<String>, ChatError>;
    /// Posts to the room; returns the message's sequence number.
    async fn post(&self, text: String) -> Result<u64, ChatError>;
    /// Tells the others this member is typing.
    #[rpc(notification)]
    async fn typing(&self);
    /// Asks every member of the room whether they are still there; returns each answer, or why none came.
    async fn roll_call(&self) -> Result<Vec<String>, ChatError>;
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

struct Member {
    name: String,
    events: ChatClientEventsClient,
}

#[derive(Default)]
struct Room {
    next_seq: u64,
    members: HashMap<u64, Member>,
}

/// Every room, shared by all connections.
#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    /// The stubs of `room`'s members (but `except`), to call outside the lock.
    fn members(&self, room: &str, except: Option<u64>) -> Vec<(String, ChatClientEventsClient)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(room).map_or_else(Vec::new, |r| {
            r.members
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, m)| (m.name.clone(), m.events.clone()))
                .collect()
        })
    }

    fn leave(&self, room: &str, connection: u64) -> Option<String> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let left = rooms.get_mut(room)?.members.remove(&connection)?;
        Some(left.name)
    }
}

/// One connection's session: the router of each connection is built from its own.
struct Session {
    rooms: Arc<Rooms>,
    connection: u64,
    joined: Mutex<Option<(String, String)>>,
}

impl Session {
    fn joined(&self) -> Result<(String, String), ChatError> {
        self.joined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ChatError::NotJoined)
    }
}

/// Sends a notification to each member; one that fails (it just left) does not stop the others.
async fn tell_all<F, Fut>(members: Vec<(String, ChatClientEventsClient)>, send: F)
where
    F: Fn(ChatClientEventsClient) -> Fut,
    Fut: Future<Output = Result<(), CallError>>,
{
    join_all(members.into_iter().map(|(_, events)| send(events))).await;
}

#[birpc::async_trait]
impl Chat for Session {
    async fn join(&self, ctx: &Context, room: String, name: String) -> Result<Vec<String>, ChatError> {
        let present = {
            let mut rooms = self.rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let entry = rooms.entry(room.clone()).or_default();
            if entry.members.values().any(|m| m.name == name) {
                return Err(ChatError::NameTaken);
            }
            let present: Vec<String> = entry.members.values().map(|m| m.name.clone()).collect();
            let events = ChatClientEventsClient::new(ctx.peer().clone());
            entry.members.insert(
                self.connection,
                Member {
                    name: name.clone(),
                    events,
                },
            );
            present
        };
        *self.joined.lock().unwrap_or_else(|p| p.into_inner()) = Some((room.clone(), name.clone()));
        println!("server: {name} joined {room}");
        let others = self.rooms.members(&room, Some(self.connection));
        tell_all(others, |events| {
            let name = name.clone();
            async move { events.presence(name, true).await }
        })
        .await;
        // When the connection ends, the member leaves and the others are told.
        let (rooms, connection, peer) = (self.rooms.clone(), self.connection, ctx.peer().clone());
        tokio::spawn(async move {
            peer.closed().await;
            if let Some(name) = rooms.leave(&room, connection) {
                println!("server: {name} left {room}");
                tell_all(rooms.members(&room, None), |events| {
                    let name = name.clone();
                    async move { events.presence(name, false).await }
                })
                .await;
            }
        });
        Ok(present)
    }

    async fn post(&self, text: String) -> Result<u64, ChatError> {
        let (room, name) = self.joined()?;
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        let seq = {
            let mut rooms = self.rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let room = rooms.get_mut(&room).ok_or(ChatError::NotJoined)?;
            room.next_seq += 1;
            room.next_seq
        };
        tell_all(self.rooms.members(&room, None), |events| {
            let (name, text) = (name.clone(), text.clone());
            async move { events.message(seq, name, text).await }
        })
        .await;
        Ok(seq)
    }

    async fn typing(&self) {
        if let Ok((room, name)) = self.joined() {
            tell_all(self.rooms.members(&room, Some(self.connection)), |events| {
                let name = name.clone();
                async move { events.typing(name).await }
            })
            .await;
        }
    }

    async fn roll_call(&self) -> Result<Vec<String>, ChatError> {
        let (room, name) = self.joined()?;
        // A request to every member at once, each with its own timeout: a slow one delays nobody.
        let answers = join_all(self.rooms.members(&room, None).into_iter().map(|(member, events)| {
            let asked_by = name.clone();
            async move {
                match events.still_there(asked_by).timeout(Some(Duration::from_secs(5))).await {
                    Ok(answer) => format!("{member}: {answer}"),
                    Err(e) => format!("{member}: no answer ({e})"),
                }
            }
        }))
        .await;
        Ok(answers)
    }
}

async fn run_server(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(listen).await?;
    println!("listening on ws://{}", server.local_addr());
    let rooms = Arc::new(Rooms::default());
    let ids = AtomicU64::new(1);
    let running = server.serve(move |_connection| {
        Session {
            rooms: rooms.clone(),
            connection: ids.fetch_add(1, Ordering::Relaxed),
            joined: Mutex::new(None),
        }
        .into_router()
    });
    tokio::signal::ctrl_c().await?;
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

#[birpc::async_trait]
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

/// Connects as `name` and joins `room`.
async fn connect(url: &str, name: &str, room: &str, prefix: &str) -> Result<ChatClient, Box<dyn std::error::Error>> {
    let terminal = Terminal {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
    };
    let peer = Client::builder().router(terminal.into_router()).connect(url).await?;
    let chat = ChatClient::new(peer);
    let present = chat.join(room.to_owned(), name.to_owned()).await?;
    println!("{prefix}joined {room} as {name}; already here: {}", list(&present));
    Ok(chat)
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
    let chat = connect(url, name, room, "").await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            reason = chat.peer().closed() => {
                println!("disconnected: {reason}");
                return Ok(());
            }
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                match command(&chat, &line, "").await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => println!("error: {e}"),
                }
            }
        }
    }
    chat.peer().close();
    chat.peer().closed().await;
    println!("bye");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The demo: a server and two scripted clients in one process.

async fn run_demo() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", server.local_addr());
    let rooms = Arc::new(Rooms::default());
    let ids = AtomicU64::new(1);
    let running = server.serve(move |_| {
        Session {
            rooms: rooms.clone(),
            connection: ids.fetch_add(1, Ordering::Relaxed),
            joined: Mutex::new(None),
        }
        .into_router()
    });
    let alice = connect(&url, "alice", "lobby", "alice | ").await?;
    let bob = connect(&url, "bob", "lobby", "bob   | ").await?;
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

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nobody".to_owned()
    } else {
        names.join(", ")
    }
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
