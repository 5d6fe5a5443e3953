//! JSON-RPC over WebSocket: the [`Client`] that dials (once, or again and again with
//! [`ClientBuilder::reconnecting`]), the [`Endpoint`] that accepts (with admission, origins, subprotocols,
//! limits and a hub), mounted in any hyper or axum app (the `RpcUpgrade` extractor, feature `axum`) or
//! behind birpc's own listener, the [`Server`] (with an HTTP handler on the same port), and [`WsTransport`],
//! which turns any tokio-tungstenite stream into a [`Transport`](rpc_core::Transport). TLS (`wss://`) comes
//! with the `tls` feature.

mod admission;
mod client;
mod config;
pub(crate) mod dial;
mod reconnect;
mod server;
mod socket;

pub use admission::{Admit, Reject, SUBPROTOCOL};
pub use client::{Client, ClientBuilder, ConnectError};
pub use reconnect::{ClientEvent, Reconnect, ReconnectingClient};
#[cfg(feature = "axum")]
pub use server::RpcUpgrade;
pub use server::{ConnectionInfo, Endpoint, Server, ServerBuilder, ServerHandle, UpgradeRejection};
pub use socket::WsTransport;
