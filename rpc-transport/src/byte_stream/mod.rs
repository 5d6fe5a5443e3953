//! JSON-RPC over byte streams: TCP, Unix sockets, this process's stdin and stdout, a child process's, or
//! any `AsyncRead` and `AsyncWrite`, framed one message a line or with `Content-Length` headers
//! ([`Framing`](crate::framing::Framing)).
//!
//! - `transport`: [`ByteStreamTransport`], the [`Transport`](rpc_core::Transport) over a reader and a
//!   writer, and what a byte stream does for close and ping;
//! - `ends`: the ready-made ones: [`TcpTransport`], [`UnixTransport`], [`StdioTransport`],
//!   [`ChildTransport`];
//! - `server`: [`StreamServer`], which accepts TCP or Unix socket connections and runs a peer for each.
//!
//! Byte streams cannot ping: the heartbeat is off on every connection these clients and servers make
//! (see [`for_byte_streams`]).

mod ends;
mod server;
mod transport;

#[cfg(unix)]
pub use ends::UnixTransport;
pub use ends::{CHILD_EXIT_GRACE, ChildTransport, StdioTransport, TcpTransport};
pub use server::{StreamAddr, StreamConnection, StreamServer, StreamServerBuilder, StreamServerHandle};
pub use transport::{ByteStreamSink, ByteStreamStream, ByteStreamTransport, for_byte_streams};
