//! # birpc
//!
//! Bidirectional JSON-RPC 2.0 over WebSocket. Two peers share one connection, and either side exports
//! methods and calls the other's: a client calls the server, and the server calls the client back (and
//! awaits the answer) over the same connection, multiplexed by request id.
//!
//! - [`Router`]: the methods one side exports; the same type on both sides.
//! - [`PeerHandle`]: calls, notifications and batches to the other side; [`Context::peer`] gives one to
//!   every handler, so a handler can call back its caller.
//! - [`Server`] and [`Client`]: WebSocket on tokio-tungstenite; [`memory`] connects two peers in one
//!   process; any other [`Transport`] plugs in the same way.
//!
//! ```
//! use birpc::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind("127.0.0.1:0").await?.serve(|_connection| {
//!     Router::new().method("greet", |ctx: Context, (name,): (String,)| async move {
//!         // Call the client back before answering.
//!         let mood: String = ctx.peer().call("mood", ()).await.map_err(|e| ErrorObject::internal_error().with_detail(e))?;
//!         Ok::<_, ErrorObject>(format!("Hello {name}, you seem {mood}"))
//!     })
//! });
//!
//! let client_methods = Router::new().method("mood", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>("cheerful") });
//! let url = format!("ws://{}", server.local_addr());
//! let peer = Client::builder().router(client_methods).connect(&url).await?;
//! let greeting: String = peer.call("greet", ("Ada",)).await?;
//! assert_eq!(greeting, "Hello Ada, you seem cheerful");
//! # server.shutdown().await;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod prelude;

pub use rpc_core::{
    Batch, BatchCall, Call, CallError, CloseCode, CloseFrame, CloseReason, Context, ErrorObject, Inbound, NoParams,
    Outbound, ParamReader, Params, Peer, PeerBuilder, PeerConfig, PeerHandle, RawId, Router, Transport, TransportError,
    code, message,
};
pub use rpc_macros::rpc;
pub use rpc_transport::memory;
pub use rpc_transport::ws::{
    Client, ClientBuilder, ConnectError, ConnectionInfo, Server, ServerBuilder, ServerHandle, WsTransport,
};

/// The items generated code refers to. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use rpc_core;
    pub use serde;
    pub use serde_json;
}

/// The code examples of the README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
