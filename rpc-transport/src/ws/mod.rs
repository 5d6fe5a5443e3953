//! JSON-RPC over WebSocket: the [`Client`] that dials (once, or again and again with
//! [`ClientBuilder::reconnecting`]), the [`Server`] that accepts (with admission, origins, subprotocols and
//! an HTTP handler on the same port), and [`WsTransport`], which turns any tokio-tungstenite stream into a
//! [`Transport`](rpc_core::Transport). TLS (`wss://`) comes with the `tls` feature.

mod admission;
mod client;
mod config;
mod dial;
mod reconnect;
mod server;
mod socket;

pub use admission::{Admit, Reject, SUBPROTOCOL};
pub use client::{Client, ClientBuilder, ConnectError};
pub use reconnect::{ClientEvent, Reconnect, ReconnectingClient};
pub use server::{ConnectionInfo, Server, ServerBuilder, ServerHandle};
pub use socket::{WsSink, WsStream, WsTransport};
