//! Transports for birpc: WebSocket (client and server, on tokio-tungstenite and hyper) and an in-memory
//! pair. Transports only move frames; the JSON-RPC peer lives in `birpc-core`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// The HTTP types of the server's handler for plain requests, re-exported so that versions match.
pub use http;
/// The in-memory pair, which lives in `birpc-core` (re-exported here where it was first published).
pub use rpc_core::memory;
mod signal;
pub mod ws;

pub use signal::shutdown_signal;
