//! The web demo: a chat with rooms and presence, served by one process on one port — the page over HTTP,
//! the RPC endpoint over WebSocket. Open it in two browser tabs.
//!
//! ```text
//! cargo run --example web_chat                      # http://127.0.0.1:8080
//! cargo run --example web_chat -- --listen 127.0.0.1:0
//! cargo run --example web_chat -- --write-bindings  # regenerates static/chat.d.ts and static/chat.js
//! cargo run --features redis --example web_chat -- --listen 127.0.0.1:8081 --redis redis://127.0.0.1:6379/
//! ```
//!
//! With `--redis URL` (and optionally `--hub NAME`, default `web_chat`) its hub spans every web_chat on that
//! Redis with the same hub name: run it on two ports, and pages on either chat together, see each other
//! in their rooms and answer each other's roll calls. A room's history (the messages a page finds when it
//! joins) and its live activity (its figures) are those of the server the page is on. Without `--redis`
//! it is one process, with no Redis.
//!
//! The page calls the server (`Chat`), and the server calls the page (`Page`): it pushes messages, presence
//! and typing, and asks every member of a room "are you still there?", collecting who answered. Two streams
//! run over the same connection: the room's live activity, which the server streams to the page while it
//! is in the room (`Chat::activity`), and text files, which the page uploads in chunks for the server to
//! post to the room (`Chat::share`). The page's JavaScript uses the TypeScript bindings generated from
//! these two traits.
// `Page` is implemented by the page, in JavaScript; the test build also leaves `main` unused.
#![cfg_attr(test, allow(dead_code))]

#[path = "../support/listen.rs"]
mod listen;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use birpc::http;
use birpc::prelude::*;
use birpc::typescript::Module;
use birpc::{Admit, ConnectionInfo, Hub, Reject, TS};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// A message posted to a room.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Message {
    /// Its id, unique in the hub and exact in JavaScript: the number of the server that took it (0 when the
    /// demo runs as one process) times 2^32, plus its number in the room on that server, from 1.
    id: u64,
    from: String,
    text: String,
    /// When the server received it, in milliseconds since the Unix epoch (never before the room's previous
    /// message on that server).
    at_ms: u64,
    /// The file it shares, if it is a shared file.
    // Inline: ts-rs orders the declarations of nested types differently from one build to the next, and the
    // checked-in bindings must not change.
    #[ts(inline)]
    attachment: Option<Attachment>,
}

/// A text file shared to a room (the whole of it went through the server, which keeps only this).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Attachment {
    name: String,
    /// Its size in bytes, as UTF-8.
    bytes: u64,
    lines: u64,
    /// Its first line that is not blank, cut at 120 characters.
    preview: String,
}

/// What happened in a room, as its live activity tells.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
#[serde(tag = "kind")]
enum Happening {
    /// How the room is when the activity starts: its first item.
    Now,
    /// A page of `name` arrived.
    Joined { name: String },
    /// A page of `name` left (for another room, or for good).
    Left { name: String },
    /// `name` posted the room's message number `seq` on this server.
    Posted { name: String, seq: u64 },
    /// `name` shared the file `file`, of `bytes` bytes.
    Shared { name: String, file: String, bytes: u64 },
}

/// An item of a room's live activity: what happened, and the room's figures right after. Both are those
/// of the server the page is on: what happens through the others is not in it.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(crate = "birpc::ts_rs")]
struct Activity {
    what: Happening,
    /// The pages in the room on this server (a member with two tabs open counts twice).
    members: u32,
    /// The messages posted to the room through this server since it started.
    messages: u64,
    /// When, in milliseconds since the Unix epoch.
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
    /// The number of the server the page is on, in the hub (0 when the demo runs as one process): the ids
    /// of the messages it takes start at this times 2^32, plus 1.
    node: u32,
    /// Who is there, on every server, this member included.
    members: Vec<String>,
    /// The latest messages this server took, oldest first.
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
    /// File names are 1 to 100 characters, none of them a control character.
    BadFileName,
    /// Files are at most 1 MiB.
    FileTooLarge,
    /// The file could not be read, or its upload broke off.
    BadFile,
    /// This page is sharing another file: one at a time.
    AlreadySharing,
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
    /// Posts a message to the room; returns its id.
    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError>;
    /// Tells the others this member is typing.
    #[rpc(notification)]
    async fn typing(&self, ctx: &Context);
    /// Asks every member of the room "are you still there?" at once, and returns who answered.
    async fn roll_call(&self, ctx: &Context) -> Result<Vec<RollCallAnswer>, ChatError>;
    /// Works for `ms` milliseconds, then answers; for trying out cancellation from the page.
    async fn slow(&self, ms: u64) -> String;
    /// The rooms used through this server that have people in them, and how many (on every server).
    async fn rooms(&self) -> Vec<(String, u32)>;
    /// The live activity of the room this page is in: how it is now, then an item whenever someone joins,
    /// leaves, posts or shares a file. It ends once this page leaves the room (cancel it before).
    async fn activity(&self, ctx: &Context) -> Result<ItemStream<Activity, ChatError>, ChatError>;
    /// Shares a text file with the room: the page uploads its text in chunks, the server posts it as a
    /// message once the whole is in, and returns the message's id. At most 1 MiB.
    async fn share(&self, ctx: &Context, name: String, chunks: Upload<String>) -> Result<u64, ChatError>;
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
    /// Whose page is this? Asked by a server of the pages on the other servers, whose names only their
    /// own server knows.
    async fn name(&self) -> String;
}

/// Who a connection is, from the admission hook.
struct Member {
    name: String,
    /// Whether a file of this connection is being shared.
    sharing: AtomicBool,
}

/// How many messages a room remembers for those who join later.
const HISTORY: usize = 50;
/// How many activity items of a room wait for its slowest watcher; one that falls further behind skips
/// the oldest (each item carries the room's figures, so the next one is right all the same).
const ACTIVITY_BACKLOG: usize = 32;
/// How long a roll call waits for each page's answer.
const ROLL_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server waits for the name of a page on another server.
const NAME_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest file a page may share, in bytes.
const MAX_FILE: usize = 1 << 20;
/// How much of a shared file's first line the message shows, in characters.
const PREVIEW_CHARS: usize = 120;

/// The limits of each connection: a page needs one activity stream and one upload at a time, and an
/// upload holds at most `stream_window` chunks of at most `max_message_size` bytes before the handler
/// takes them.
fn connection_limits() -> PeerConfig {
    PeerConfig::default()
        .max_streams(8)
        .stream_window(8)
        .max_message_size(1 << 20)
}

struct Room {
    /// The number of the room's latest message on this server.
    next_seq: u64,
    /// When the room's latest message on this server was taken.
    last_at_ms: u64,
    history: VecDeque<Message>,
    /// What happens in the room, for the activity streams watching it (a bounded backlog).
    activity: broadcast::Sender<Event>,
}

impl Default for Room {
    fn default() -> Self {
        Self {
            next_seq: 0,
            last_at_ms: 0,
            history: VecDeque::new(),
            activity: broadcast::channel(ACTIVITY_BACKLOG).0,
        }
    }
}

/// An activity item, and the connection whose doing it is.
#[derive(Clone)]
struct Event {
    by: u64,
    activity: Activity,
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

    /// Tells the pages in `room` (and the activity streams watching it) that connection `by` arrived or left.
    fn announce(&self, room: &str, by: u64, name: &str, here: bool) {
        let presence = Presence {
            room: room.to_owned(),
            name: name.to_owned(),
            here,
        };
        self.hub.notify_group(room, PageMethods::PRESENCE, (presence,));
        let what = if here {
            Happening::Joined { name: name.to_owned() }
        } else {
            Happening::Left { name: name.to_owned() }
        };
        self.happened(room, by, what);
    }

    /// Tells the activity streams watching `room` what connection `by` did.
    fn happened(&self, room: &str, by: u64, what: Happening) {
        // The hub is asked before the rooms are locked, never while.
        let members = u32::try_from(self.hub.members(room).len()).unwrap_or(u32::MAX);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let state = rooms.entry(room.to_owned()).or_default();
        let activity = Activity {
            what,
            members,
            messages: state.next_seq,
            at_ms: now_ms(),
        };
        // Fails when no page watches the room, which is fine.
        let _ = state.activity.send(Event { by, activity });
    }

    /// Posts a message to `room` and sends it to the pages there, on every server.
    fn publish(&self, room: &str, from: String, text: String, attachment: Option<Attachment>) -> Message {
        let node = u64::from(self.hub.node());
        let message = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let state = rooms.entry(room.to_owned()).or_default();
            state.next_seq += 1;
            // The pages order messages by time, then id: this server's stay in the order it took them.
            state.last_at_ms = now_ms().max(state.last_at_ms);
            let message = Message {
                id: (node << 32) | state.next_seq,
                from,
                text,
                at_ms: state.last_at_ms,
                attachment,
            };
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(message.clone());
            message
        };
        self.hub.notify_group(room, PageMethods::MESSAGE, (message.clone(),));
        message
    }

    /// The hub-wide ids of the members of `room` on the other servers of the hub (none when the demo runs
    /// as one process).
    async fn others_in(&self, room: &str) -> Vec<u64> {
        let node = u64::from(self.hub.node());
        if node == 0 {
            return Vec::new();
        }
        match self.hub.member_ids(room).await {
            // A hub-wide id is its server's number times 2^32 plus the connection's own id.
            Ok(ids) => ids.into_iter().filter(|id| id >> 32 != node).collect(),
            Err(error) => {
                eprintln!("the members of {room} on the other servers are unknown: {error}");
                Vec::new()
            }
        }
    }

    /// The names of the members of `room` on the other servers, by hub-wide id. Only its own server knows
    /// a page's name, so each of those pages is asked (`Page::name`), all at once; one that does not
    /// answer in time is left out.
    async fn names_of_others(&self, room: &str) -> HashMap<u64, String> {
        let asked = self.others_in(room).await.into_iter().map(|id| async move {
            let name = self
                .hub
                .call::<String, _>(id, PageMethods::NAME, (), Some(NAME_TIMEOUT))
                .await;
            (id, name)
        });
        futures::future::join_all(asked)
            .await
            .into_iter()
            .filter_map(|(id, name)| Some((id, name.ok()?)))
            .collect()
    }
}

/// A message's number in its room on the server that took it.
fn seq_of(message: &Message) -> u64 {
    message.id & 0xffff_ffff
}

/// One file a connection is sharing; dropping it lets the connection share another.
struct Sharing(Arc<Member>);

impl Sharing {
    fn start(member: Arc<Member>) -> Result<Self, ChatError> {
        if member.sharing.swap(true, Ordering::AcqRel) {
            return Err(ChatError::AlreadySharing);
        }
        Ok(Self(member))
    }
}

impl Drop for Sharing {
    fn drop(&mut self) {
        self.0.sharing.store(false, Ordering::Release);
    }
}

/// Says when an activity stream stops: the page cancelled it or disconnected, or (`left`) the server ended
/// it when the page left the room without cancelling it first.
struct Watching {
    name: String,
    room: String,
    left: bool,
}

impl Drop for Watching {
    fn drop(&mut self) {
        if self.left {
            println!(
                "{}'s activity of {} ended: the page left the room",
                self.name, self.room
            );
        } else {
            println!("{} stopped watching {}", self.name, self.room);
        }
    }
}

/// What the message about a shared file tells of it.
fn describe_file(name: String, text: &str) -> Attachment {
    let bytes = u64::try_from(text.len()).unwrap_or(u64::MAX);
    let lines = text.lines().count();
    let first = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    let mut preview: String = first.chars().take(PREVIEW_CHARS).collect();
    if preview.len() < first.len() {
        preview.push('…');
    }
    Attachment {
        name,
        bytes,
        lines: u64::try_from(lines).unwrap_or(u64::MAX),
        preview,
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

impl Chat for ChatService {
    async fn join(&self, ctx: &Context, room: String) -> Result<Joined, ChatError> {
        if !valid_room(&room) {
            return Err(ChatError::BadRoomName);
        }
        let (id, name) = (ctx.peer().id(), member_name(ctx.peer()));
        for previous in self.hub.groups_of(id) {
            self.hub.leave(id, &previous);
            self.announce(&previous, id, &name, false);
        }
        self.hub.join(id, &room);
        self.announce(&room, id, &name, true);
        // Those on this server by their handles; those on the others by asking their pages.
        let mut members: Vec<String> = self.hub.members(&room).iter().map(member_name).collect();
        members.extend(self.names_of_others(&room).await.into_values());
        let history = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.entry(room.clone()).or_default().history.iter().cloned().collect()
        };
        println!("{name} joined {room}");
        Ok(Joined {
            room,
            node: self.hub.node(),
            members,
            history,
        })
    }

    async fn post(&self, ctx: &Context, text: String) -> Result<u64, ChatError> {
        let room = self.room_of(ctx)?;
        let text = text.trim().to_owned();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(ChatError::BadMessage);
        }
        let name = member_name(ctx.peer());
        let message = self.publish(&room, name.clone(), text, None);
        let seq = seq_of(&message);
        self.happened(&room, ctx.peer().id(), Happening::Posted { name, seq });
        Ok(message.id)
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
        // The names of this server's members from their handles, of the others' from their pages.
        let here: HashMap<u64, String> = self
            .hub
            .members(&room)
            .iter()
            .map(|peer| (self.hub.id_of(peer), member_name(peer)))
            .collect();
        // Every member at once, on every server, each with its own timeout; the names meanwhile.
        let (answers, others) = futures::join!(
            self.hub
                .call_group::<String, _>(&room, PageMethods::STILL_THERE, (asked_by,), Some(ROLL_CALL_TIMEOUT)),
            self.names_of_others(&room),
        );
        let mut answers: Vec<RollCallAnswer> = answers
            .into_iter()
            .map(|(id, answer)| {
                let name = here
                    .get(&id)
                    .or_else(|| others.get(&id))
                    .cloned()
                    // One that joined meanwhile, on this server.
                    .or_else(|| self.hub.get(id).map(|peer| member_name(&peer)))
                    .unwrap_or_else(|| "?".to_owned());
                RollCallAnswer {
                    name,
                    answer: answer.ok(),
                }
            })
            .collect();
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
        let counted = names.into_iter().map(|room| async move {
            let count = self.hub.members(&room).len() + self.others_in(&room).await.len();
            (room, u32::try_from(count).unwrap_or(u32::MAX))
        });
        let mut rooms: Vec<(String, u32)> = futures::future::join_all(counted)
            .await
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect();
        rooms.sort();
        rooms
    }

    async fn activity(&self, ctx: &Context) -> Result<ItemStream<Activity, ChatError>, ChatError> {
        let room = self.room_of(ctx)?;
        let (me, name) = (ctx.peer().id(), member_name(ctx.peer()));
        let members = u32::try_from(self.hub.members(&room).len()).unwrap_or(u32::MAX);
        // Subscribed before the figures are read: nothing that happens after them is missed.
        let (events, now) = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let state = rooms.entry(room.clone()).or_default();
            let now = Activity {
                what: Happening::Now,
                members,
                messages: state.next_seq,
                at_ms: now_ms(),
            };
            (state.activity.subscribe(), now)
        };
        println!("{name} watches {room}");
        let watching = Watching {
            name,
            room,
            left: false,
        };
        // Polled only while the page grants credit: a page that stops reading holds up nobody, and
        // skips what it missed once it reads again.
        let feed = futures::stream::unfold(Some((events, watching)), move |state| async move {
            let (mut events, mut watching) = state?;
            loop {
                match events.recv().await {
                    Ok(Event { by, activity }) => {
                        // This page leaving the room is the last item.
                        if by == me && matches!(activity.what, Happening::Left { .. }) {
                            watching.left = true;
                            return Some((Ok(activity), None));
                        }
                        return Some((Ok(activity), Some((events, watching))));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(ItemStream::new(
            futures::stream::once(async move { Ok(now) }).chain(feed),
        ))
    }

    async fn share(&self, ctx: &Context, name: String, mut chunks: Upload<String>) -> Result<u64, ChatError> {
        let room = self.room_of(ctx)?;
        let file = name.trim().to_owned();
        if !(1..=100).contains(&file.chars().count()) || file.chars().any(char::is_control) {
            return Err(ChatError::BadFileName);
        }
        let member = ctx.peer().state::<Member>().ok_or(ChatError::NotInARoom)?;
        let from = member.name.clone();
        let _sharing = Sharing::start(member)?;
        let (mut text, mut count) = (String::new(), 0_u32);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| ChatError::BadFile)?;
            if text.len() + chunk.len() > MAX_FILE {
                // Returning drops the upload: the page is told to stop sending (`$/stream.cancel`).
                println!("{from}'s file {file} was refused: over {MAX_FILE} bytes");
                return Err(ChatError::FileTooLarge);
            }
            text.push_str(&chunk);
            count += 1;
        }
        let attachment = describe_file(file.clone(), &text);
        let bytes = attachment.bytes;
        println!("{from} shared {file} ({bytes} bytes in {count} chunks) in {room}");
        let message = self.publish(
            &room,
            from.clone(),
            format!("📎 {file} ({bytes} bytes)"),
            Some(attachment),
        );
        let what = Happening::Shared {
            name: from,
            file,
            bytes,
        };
        self.happened(&room, ctx.peer().id(), what);
        Ok(message.id)
    }
}

/// Admits a page that gives a name (`?name=`, 1 to 24 characters).
async fn admit(request: ConnectionInfo) -> Result<Admit, Reject> {
    match request.query("name").map(|n| n.trim().to_owned()) {
        Some(name) if (1..=24).contains(&name.chars().count()) => Ok(Admit::new().with_state(Member {
            name,
            sharing: AtomicBool::new(false),
        })),
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

const USAGE: &str = "usage: web_chat [--listen HOST:PORT] [--redis URL [--hub NAME]] | web_chat --write-bindings";

/// The command line.
struct Options {
    listen: String,
    redis: Option<String>,
    hub: String,
    write_bindings: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut args = args.iter();
    let mut options = Options {
        listen: "127.0.0.1:8080".to_owned(),
        redis: None,
        hub: "web_chat".to_owned(),
        write_bindings: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().cloned().ok_or(format!("{arg} needs {what}; {USAGE}"));
        match arg.as_str() {
            "--listen" => options.listen = value("an address, such as 127.0.0.1:0")?,
            "--redis" => options.redis = Some(value("a URL, such as redis://127.0.0.1:6379/")?),
            "--hub" => options.hub = value("a name")?,
            "--write-bindings" => options.write_bindings = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(options)
}

/// The hub: of this process alone, or across every web_chat on a Redis with the same hub name.
async fn hub(options: &Options, args: &[String]) -> Result<Hub, String> {
    let Some(url) = &options.redis else {
        return Ok(Hub::new());
    };
    #[cfg(feature = "redis")]
    {
        let _ = args;
        let backplane = birpc::redis::RedisBackplane::builder(url)
            .hub(&options.hub)
            .build()
            .map_err(|error| format!("bad --redis {url:?}: {error}"))?;
        Hub::with_backplane(backplane)
            .await
            .map_err(|error| format!("could not join the hub {:?} on {url}: {error}", options.hub))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        Err(format!(
            "--redis needs the redis feature: cargo run --features redis --example web_chat -- {}",
            args.join(" ")
        ))
    }
}

async fn serve(listen: &str, hub: Hub) -> Result<(), Box<dyn std::error::Error>> {
    let service = ChatService {
        hub: hub.clone(),
        rooms: Arc::default(),
    };
    // Whoever leaves, the room is told (on every server).
    hub.on_disconnect({
        let service = service.clone();
        move |departure| {
            let name = member_name(&departure.peer);
            for room in &departure.groups {
                println!("{name} left {room}");
                service.announce(room, departure.peer.id(), &name, false);
            }
        }
    });
    let server = Server::builder()
        .config(connection_limits())
        .admit(admit)
        .hub(hub.clone())
        .http(serve_page)
        .bind(listen)
        .await
        .unwrap_or_else(|error| listen::cannot_listen(listen, &error));
    // Watched before the server says it is ready: a signal right after is caught.
    let stop = birpc::shutdown_signal();
    println!("listening on http://{}", server.local_addr());
    if hub.node() != 0 {
        println!("node {} of the hub", hub.node());
    }
    let running = server.serve(move |_| service.clone().into_router());
    // Ctrl-C or SIGTERM: the calls in flight are answered, then every connection closes with 1001, and
    // this server leaves the hub.
    stop.await?;
    running.shutdown().await;
    hub.detach().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match options(&args) {
        Ok(options) => options,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if options.write_bindings {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/web_chat/static");
        bindings().write(dir, "chat")?;
        println!("wrote {dir}/chat.d.ts and {dir}/chat.js");
        return Ok(());
    }
    let hub = match hub(&options, &args).await {
        Ok(hub) => hub,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    serve(&options.listen, hub).await
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
