//! The web demo: a chat with rooms and presence, served by one process on one port — the page over HTTP,
//! the RPC endpoint over WebSocket. Open it in two browser tabs.
//!
//! ```text
//! cargo run --example web_chat                      # http://127.0.0.1:8080
//! cargo run --example web_chat -- --listen 127.0.0.1:0
//! cargo run --example web_chat -- --write-bindings  # regenerates static/chat.d.ts and static/chat.js
//! ```
//!
//! The page calls the server (`Chat`), and the server calls the page (`Page`): it pushes messages, presence
//! and typing, and asks every member of a room "are you still there?", collecting who answered. The page's
//! JavaScript uses the TypeScript bindings generated from these two traits.
// `Page` is implemented by the page, in JavaScript; the test build also leaves `main` unused.
#![cfg_attr(test, allow(dead_code))]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use birpc::http;
use birpc::prelude::*;
use birpc::typescript::Module;
use birpc::{Admit, ConnectionInfo, Hub, Reject, TS};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message posted to a room.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Message {
    /// Its number in the room, from 1.
    seq: u64,
    from: String,
    text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    at_ms: u64,
}

/// Someone arriving in or leaving a room.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Presence {
    room: String,
    name: String,
    here: bool,
}

/// What joining a room tells.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Joined {
    room: String,
    /// Who is there, this member included.
    members: Vec<String>,
    /// The latest messages, oldest first.
    history: Vec<Message>,
}

/// One member's answer to a roll call.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct RollCallAnswer {
    name: String,
    /// The member's own answer, or `None` if none came in time.
    answer: Option<String>,
}

/// Why the server refused a request.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
enum ChatError {
    /// Join a room first.
    NotInARoom,
    /// Room names are 1 to 32 letters, digits, `-` or `_`.
    BadRoomName,
    /// Messages are 1 to 2,000 characters.
    BadMessage,
}

impl RpcError for ChatError {
    fn code(&self) -> i64 {
        4000
    }
}

/// What the server exports to pages.
#[birpc::rpc(namespace = "chat", typescript)]
trait Chat {
    /// Joins `room` (leaving the one this page was in): returns who is there and the latest messages.
    async fn join(&self, ctx: &Context, room: String) -> Result<Joined, ChatError>;
    /// Posts a message to the room; returns its sequence number.
    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError>;
    /// Tells the others this member is typing.
    #[rpc(notification)]
    async fn typing(&self, ctx: &Context);
    /// Asks every member of the room "are you still there?" at once, and returns who answered.
    async fn roll_call(&self, ctx: &Context) -> Result<Vec<RollCallAnswer>, ChatError>;
    /// Works for `ms` milliseconds, then answers; for trying out cancellation from the page.
    async fn slow(&self, ms: u64) -> String;
    /// The rooms with people in them, and how many.
    async fn rooms(&self) -> Vec<(String, u32)>;
}

/// What every page exports, for the server to call.
#[birpc::rpc(namespace = "page", typescript)]
#[allow(dead_code, reason = "implemented by the page, in JavaScript; Rust only calls it")]
trait Page {
    /// A message was posted to the page's room.
    #[rpc(notification)]
    async fn message(&self, message: Message);
    /// Someone arrived or left.
    #[rpc(notification)]
    async fn presence(&self, presence: Presence);
    /// Someone is typing.
    #[rpc(notification)]
    async fn typing(&self, name: String);
    /// Are you still there? The page answers in its own words.
    async fn still_there(&self, asked_by: String) -> String;
}

/// Who a connection is, from the admission hook.
struct Member {
    name: String,
}

/// How many messages a room remembers for those who join later.
const HISTORY: usize = 50;

#[derive(Default)]
struct Room {
    next_seq: u64,
    history: VecDeque<Message>,
}

#[derive(Clone)]
struct ChatService {
    hub: Hub,
    rooms: Arc<Mutex<HashMap<String, Room>>>,
}

fn member_name(peer: &PeerHandle) -> String {
    peer.state::<Member>()
        .map_or_else(|| "?".to_owned(), |m| m.name.clone())
}

impl ChatService {
    fn room_of(&self, ctx: &Context) -> Result<String, ChatError> {
        self.hub
            .groups_of(ctx.peer().id())
            .into_iter()
            .next()
            .ok_or(ChatError::NotInARoom)
    }

    fn announce(&self, room: &str, name: &str, here: bool) {
        let presence = Presence {
            room: room.to_owned(),
            name: name.to_owned(),
            here,
        };
        self.hub.notify_group(room, PageMethods::PRESENCE, (presence,));
    }
}

fn valid_room(room: &str) -> bool {
    (1..=32).contains(&room.len()) && room.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[birpc::async_trait]
impl Chat for ChatService {
    async fn join(&self, ctx: &Context, room: String) -> Result<Joined, ChatError> {
        if !valid_room(&room) {
            return Err(ChatError::BadRoomName);
        }
        let (id, name) = (ctx.peer().id(), member_name(ctx.peer()));
        for previous in self.hub.groups_of(id) {
            self.hub.leave(id, &previous);
            self.announce(&previous, &name, false);
        }
        self.hub.join(id, &room);
        self.announce(&room, &name, true);
        let members = self.hub.members(&room).iter().map(member_name).collect();
        let history = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.entry(room.clone()).or_default().history.iter().cloned().collect()
        };
        println!("{name} joined {room}");
        Ok(Joined { room, members, history })
    }

    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError> {
        let room = self.room_of(ctx)?;
        let text = text.trim().to_owned();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(ChatError::BadMessage);
        }
        let message = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let state = rooms.entry(room.clone()).or_default();
            state.next_seq += 1;
            let message = Message {
                seq: state.next_seq,
                from: member_name(ctx.peer()),
                text,
                at_ms: now_ms(),
            };
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(message.clone());
            message
        };
        let seq = message.seq;
        self.hub.notify_group(&room, PageMethods::MESSAGE, (message,));
        Ok(seq)
    }

    async fn typing(&self, ctx: &Context) {
        if let Ok(room) = self.room_of(ctx) {
            let name = member_name(ctx.peer());
            self.hub
                .notify_group_except(&room, ctx.peer().id(), PageMethods::TYPING, (name,));
        }
    }

    async fn roll_call(&self, ctx: &Context) -> Result<Vec<RollCallAnswer>, ChatError> {
        let room = self.room_of(ctx)?;
        let asked_by = member_name(ctx.peer());
        println!("{asked_by} holds a roll call in {room}");
        // Every member at once, each through the typed stub of its page, each with its own timeout.
        let answers = self
            .hub
            .each(&room, |peer| {
                let asked_by = asked_by.clone();
                async move {
                    let name = member_name(&peer);
                    let answer = PageClient::new(peer)
                        .still_there(asked_by)
                        .timeout(Some(Duration::from_secs(5)))
                        .await
                        .ok();
                    RollCallAnswer { name, answer }
                }
            })
            .await;
        let mut answers: Vec<RollCallAnswer> = answers.into_iter().map(|(_, answer)| answer).collect();
        answers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(answers)
    }

    async fn slow(&self, ms: u64) -> String {
        // Dropped at its next await if the page cancels the call.
        struct Cancelled(bool);
        impl Drop for Cancelled {
            fn drop(&mut self) {
                if self.0 {
                    println!("a slow call was cancelled by the page");
                }
            }
        }
        let mut guard = Cancelled(true);
        println!("a slow call started");
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        guard.0 = false;
        format!("done after {ms} ms")
    }

    async fn rooms(&self) -> Vec<(String, u32)> {
        let names: Vec<String> = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut rooms: Vec<(String, u32)> = names
            .into_iter()
            .map(|room| {
                let count = u32::try_from(self.hub.members(&room).len()).unwrap_or(u32::MAX);
                (room, count)
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        rooms.sort();
        rooms
    }
}

/// Admits a page that gives a name (`?name=`, 1 to 24 characters).
async fn admit(request: ConnectionInfo) -> Result<Admit, Reject> {
    match request.query("name").map(|n| n.trim().to_owned()) {
        Some(name) if (1..=24).contains(&name.chars().count()) => Ok(Admit::new().with_state(Member { name })),
        _ => Err(Reject::unauthorized("give a name of 1 to 24 characters: ?name=...")),
    }
}

/// The page and its scripts, built into the binary.
fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", include_str!("static/index.html")),
        "/app.js" => ("text/javascript; charset=utf-8", include_str!("static/app.js")),
        "/style.css" => ("text/css; charset=utf-8", include_str!("static/style.css")),
        "/chat.js" => ("text/javascript; charset=utf-8", include_str!("static/chat.js")),
        "/birpc.js" => ("text/javascript; charset=utf-8", birpc::js::CLIENT),
        _ => return None,
    })
}

fn serve_page(request: &http::Request<()>) -> http::Response<Bytes> {
    let (status, content_type, body) = match asset(request.uri().path()) {
        Some((content_type, body)) => (http::StatusCode::OK, content_type, body),
        None => (http::StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found"),
    };
    let mut response = http::Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    response
}

/// The TypeScript bindings of the two services, for the page.
fn bindings() -> Module {
    Module::new("./birpc.js")
        .service(ChatMethods::typescript())
        .service(PageMethods::typescript())
}

async fn serve(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    let hub = Hub::new();
    let service = ChatService {
        hub: hub.clone(),
        rooms: Arc::default(),
    };
    // Whoever leaves, the room is told.
    hub.on_disconnect({
        let service = service.clone();
        move |departure| {
            let name = member_name(&departure.peer);
            for room in &departure.groups {
                println!("{name} left {room}");
                service.announce(room, &name, false);
            }
        }
    });
    let server = Server::builder()
        .admit(admit)
        .hub(hub)
        .http(serve_page)
        .bind(listen)
        .await?;
    println!("listening on http://{}", server.local_addr());
    let running = server.serve(move |_| service.clone().into_router());
    // Ctrl-C or SIGTERM: the calls in flight are answered, then every connection closes with 1001.
    birpc::shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--write-bindings") {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web_chat/static");
        bindings().write(dir, "chat")?;
        println!("wrote {dir}/chat.d.ts and {dir}/chat.js");
        return Ok(());
    }
    let listen = match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).cloned().ok_or("--listen needs an address")?,
        None => "127.0.0.1:8080".to_owned(),
    };
    serve(&listen).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bindings in the repository are those the services give now.
    #[test]
    fn the_checked_in_bindings_are_current() {
        let module = bindings();
        assert_eq!(
            include_str!("static/chat.d.ts"),
            module.declarations(),
            "run --write-bindings"
        );
        assert_eq!(
            include_str!("static/chat.js"),
            module.javascript(),
            "run --write-bindings"
        );
    }
}
