//! # birpc
//!
//! Bidirectional JSON-RPC 2.0 over WebSocket. Two peers share one connection, and either side exports
//! methods and calls the other's: a client calls the server, and the server calls the client back (and
//! awaits the answer) over the same connection, multiplexed by request id.
//!
//! - [`rpc`]: declare a service as an annotated trait; get the trait to implement, a [`Router`] from any
//!   implementation, and a typed client stub.
//! - [`Router`]: the methods one side exports; the same type on both sides.
//! - [`PeerHandle`]: calls, notifications and batches to the other side; [`Context::peer`] gives one to
//!   every handler, so a handler can call back its caller.
//! - [`Server`] and [`Client`]: WebSocket on tokio-tungstenite; [`Endpoint`] mounts the server's side in
//!   an axum or hyper app instead (`RpcUpgrade`, feature `axum`); [`memory`] connects two peers in one
//!   process; any other [`Transport`] plugs in the same way.
//!
//! ## Services
//!
//! ```
//! use birpc::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! pub enum CalcError {
//!     DivisionByZero,
//! }
//!
//! /// What the server exports.
//! #[birpc::rpc(namespace = "calc")]
//! pub trait Calculator {
//!     /// Divides `a` by `b`.
//!     async fn divide(&self, a: i64, b: i64) -> Result<i64, CalcError>;
//!     /// Asks the caller for a number, and doubles it.
//!     async fn double_yours(&self, ctx: &Context) -> i64;
//! }
//!
//! /// What the client exports, for the server to call.
//! #[birpc::rpc]
//! pub trait Caller {
//!     async fn pick(&self) -> i64;
//! }
//!
//! struct Calc;
//!
//! impl Calculator for Calc {
//!     async fn divide(&self, a: i64, b: i64) -> Result<i64, CalcError> {
//!         a.checked_div(b).ok_or(CalcError::DivisionByZero)
//!     }
//!     async fn double_yours(&self, ctx: &Context) -> i64 {
//!         // A typed stub of the caller's service, over the caller's own connection.
//!         let caller = CallerClient::new(ctx.peer().clone());
//!         caller.pick().await.map_or(0, |n| n * 2)
//!     }
//! }
//!
//! struct Picker;
//!
//! impl Caller for Picker {
//!     async fn pick(&self) -> i64 {
//!         21
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind("127.0.0.1:0").await?.serve(|_connection| Calc.into_router());
//! let peer = Client::builder()
//!     .router(Picker.into_router())
//!     .connect(&format!("ws://{}", server.local_addr()))
//!     .await?;
//!
//! let calc = CalculatorClient::new(peer);
//! assert_eq!(calc.divide(7, 2).await?, 3);
//! assert!(matches!(calc.divide(1, 0).await, Err(CallError::Application(CalcError::DivisionByZero))));
//! assert_eq!(calc.double_yours().await?, 42);
//! assert_eq!(CalculatorMethods::DIVIDE, "calc.divide");
//! # server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ### What `#[rpc]` generates
//!
//! For a trait `T`:
//! - the trait itself, its `async fn`s declared as returning `impl Future + Send` (implement them with
//!   plain `async fn`: no attribute on the `impl`; a handler's future must be `Send`), with
//!   `T::into_router(self) -> Router`; `Arc<U>` implements `T` when `U` does. The [`Router`] is the
//!   type-erased form: choose an implementation at run time by choosing its router;
//! - `TClient`, built from any [`PeerHandle`], with one method per trait method taking the same arguments
//!   (without the context) and returning a future of `Result<R, CallError<E>>`, where `E` is the method's
//!   own error type; set a per-call timeout with `.timeout(...)` before awaiting. Notifications return once
//!   queued;
//! - `TMethods`, with a constant holding each method's wire name and `TMethods::all()` describing every
//!   method ([`MethodInfo`]: names, params, result and error types, docs).
//!
//! The server side accepts params by position and by name for every method, whatever the client sends;
//! trailing `Option` params may be left out in both forms. A `&Context` parameter is never on the wire.
//!
//! ### Attributes
//!
//! - On the trait: `namespace = "chat"` prefixes every wire name (`chat.post`); `crate = "path"` names the
//!   `birpc` crate when it is re-exported under another path; `typescript` adds `TMethods::typescript()`,
//!   from which [`typescript::Module`] writes TypeScript bindings for the JavaScript client (the types of
//!   params, results and errors must derive [`TS`], with `#[ts(crate = "birpc::ts_rs")]`); `openrpc` adds
//!   `TMethods::openrpc()`, from which an [`openrpc::Document`] renders OpenRPC and AsyncAPI documents
//!   with the JSON Schemas of every param, result and error (their types must derive [`JsonSchema`], with
//!   `#[schemars(crate = "birpc::schemars")]`), and serves `rpc.discover`.
//! - On a method: `name = "..."` sets its wire name; `aliases = ["...", ...]` adds other names;
//!   `notification` makes it a notification (it cannot return a value); `params = "named"` makes the typed
//!   client send params as an object (default `"positional"`, an array).
//!
//! ### Errors
//!
//! A method returning `Result<T, E>` sends `E` serialized as the error object's `data`, and the typed client
//! gives back the same `E` as [`CallError::Application`]. The code and message default to -32000 and the
//! enum variant's name; implement [`RpcError`] to choose them. A method may also return
//! `Result<T, ErrorObject>` to send error objects of its own making.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub mod js;
pub mod prelude;

pub use rpc_core::{Attached, Backplane, BackplaneError, Destination, Event, MAX_NODE, NodeId};
pub use rpc_core::{
    Batch, BatchCall, Broadcast, Call, CallError, CloseCode, CloseFrame, CloseReason, Context, Departure, Duplex,
    ErrorObject, Extensions, Hub, Inbound, ItemStream, Joined, MethodInfo, NoParams, Outbound, OutgoingUpload,
    ParamInfo, ParamReader, Params, ParamsStyle, Peer, PeerBuilder, PeerConfig, PeerHandle, PeerStats, RawId,
    Registration, Relay, Router, RpcError, SLOW_CONSUMER, Subscribe, Subscription, Transport, TransportError,
    TypedCall, Upload, UploadId, WhileDown, code, layer, message,
};
#[doc(hidden)]
pub use rpc_macros::async_trait;
pub use rpc_macros::rpc;
pub mod asyncapi;
pub mod openrpc;
/// The library JSON Schemas come from: derive [`JsonSchema`] (with `#[schemars(crate = "birpc::schemars")]`)
/// on the serde types of `#[rpc(openrpc)]` services.
pub use schemars::{self, JsonSchema};
/// A hub across many servers on Redis: [`RedisBackplane`](redis::RedisBackplane) (feature `redis`).
#[cfg(feature = "redis")]
pub mod redis {
    pub use rpc_redis::{RedisBackplane, RedisBackplaneBuilder};
}
/// The web framework an [`Endpoint`] mounts in with `RpcUpgrade` (feature `axum`), re-exported so that
/// versions match.
#[cfg(feature = "axum")]
pub use axum;
/// JSON-RPC over byte streams (TCP, Unix sockets, stdio, child processes): the transport, its ready-made
/// ends and the server.
pub use rpc_transport::byte_stream;
/// Cutting byte streams into messages: lines or `Content-Length` headers.
pub use rpc_transport::framing;
#[cfg(feature = "axum")]
pub use rpc_transport::ws::RpcUpgrade;
pub use rpc_transport::ws::{
    Admit, Client, ClientBuilder, ClientEvent, ConnectError, ConnectionInfo, Endpoint, Reconnect, ReconnectingClient,
    Reject, SUBPROTOCOL, Server, ServerBuilder, ServerHandle, UpgradeRejection, WsTransport,
};
pub use rpc_transport::{BoxTransport, ListenError, ListenOptions, Listening, ParseTargetError, Serving, Target};
pub use rpc_transport::{http, memory, shutdown_signal};
/// The TLS library `wss://` runs on, re-exported so that its configurations match birpc's version.
#[cfg(feature = "tls")]
pub use rustls;
/// The library TypeScript types come from: derive [`TS`] (with `#[ts(crate = "birpc::ts_rs")]`) on the
/// serde types of `#[rpc(typescript)]` services.
pub use ts_rs::{self, TS};
pub mod typescript;

/// The code examples of the README, compiled and run as doctests when the features `axum` and `redis` are
/// on (some examples use them; the README's test command turns every feature on).
#[cfg(all(doctest, feature = "axum", feature = "redis"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
