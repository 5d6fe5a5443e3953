//! Transports for birpc: WebSocket (client and server, on tokio-tungstenite and hyper), byte streams (TCP,
//! Unix sockets, stdio, child processes, or any `AsyncRead + AsyncWrite`, one message a line or with
//! `Content-Length` headers), and an in-memory pair. Transports only move frames; the JSON-RPC peer lives in
//! `birpc-core`.
//!
//! - [`ws`]: the WebSocket client, server and endpoint;
//! - [`framing`]: the codecs that cut byte streams into messages;
//! - [`byte_stream`]: the transport over any byte stream, the ready-made ones, and their server;
//! - [`Target`]: any of them named by a URL (`ws://`, `tcp://`, `unix:`, `stdio`, `exec:`), to connect to
//!   or listen on.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// The HTTP types of the server's handler for plain requests, re-exported so that versions match.
pub use http;
/// The in-memory pair, which lives in `birpc-core` (re-exported here where it was first published).
pub use rpc_core::memory;
pub mod byte_stream;
pub mod framing;
mod serving;
mod signal;
mod target;
pub mod ws;

pub use signal::shutdown_signal;
pub use target::{BoxTransport, ListenError, ListenOptions, Listening, ParseTargetError, Serving, Target};
pub use ws::ConnectError;
