//! The service of the macro issue, with every attribute, implemented and served.

use birpc::{Context, RpcError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum ChatError {
    NoSuchRoom,
}

impl RpcError for ChatError {}

#[derive(Debug, Serialize, Deserialize)]
pub struct Hit {
    pub text: String,
}

#[birpc::rpc(namespace = "chat")]
pub trait Chat {
    /// Posts a message; returns its sequence number.
    async fn post(&self, room: String, text: String) -> Result<u64, ChatError>;
    #[rpc(name = "join_room", aliases = ["enter"])]
    async fn join(&self, ctx: &birpc::Context, room: String) -> Vec<String>;
    #[rpc(notification)]
    async fn typing(&self, room: String);
    #[rpc(params = "named")]
    async fn search(&self, query: String, limit: Option<u32>) -> Vec<Hit>;
}

struct Rooms;

impl Chat for Rooms {
    async fn post(&self, _room: String, _text: String) -> Result<u64, ChatError> {
        Err(ChatError::NoSuchRoom)
    }
    async fn join(&self, _ctx: &Context, room: String) -> Vec<String> {
        vec![room]
    }
    async fn typing(&self, _room: String) {}
    async fn search(&self, _query: String, _limit: Option<u32>) -> Vec<Hit> {
        Vec::new()
    }
}

fn main() {
    let router = Rooms.into_router();
    assert!(router.contains("chat.post") && router.contains("chat.join_room") && router.contains("chat.enter"));
    let shared = std::sync::Arc::new(Rooms);
    let _ = shared.into_router();
    assert_eq!(ChatMethods::JOIN, "chat.join_room");
    assert_eq!(ChatMethods::all().len(), 4);
    let _: fn(birpc::PeerHandle) -> ChatClient = ChatClient::new;
}
