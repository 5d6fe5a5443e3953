//! JSON-RPC over WebSocket: the [`Client`] that dials, the [`Server`] that accepts, and [`WsTransport`],
//! which turns any tokio-tungstenite stream into a [`Transport`](rpc_core::Transport).

mod client;
mod config;
mod server;
mod socket;

pub use client::{Client, ClientBuilder, ConnectError};
pub use server::{ConnectionInfo, Server, ServerBuilder, ServerHandle};
pub use socket::{WsSink, WsStream, WsTransport};
