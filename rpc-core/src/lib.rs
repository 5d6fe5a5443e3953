//! The transport-independent core of birpc: JSON-RPC 2.0 messages, the symmetric [`Peer`] with its
//! [`PeerHandle`], the [`Router`] of exported methods and the per-call [`Context`].
//!
//! Nothing here knows of sockets or WebSocket: a peer drives any [`Transport`], a stream and a sink of
//! frames. Most programs use this crate through the `birpc` facade.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod call_error;
mod close;
mod config;
mod context;
mod error_object;
mod extensions;
mod hub;
mod id;
pub mod layer;
pub mod memory;
pub mod message;
mod method_info;
pub(crate) mod metrics;
mod params;
pub(crate) mod peer;
mod router;
mod stream;
mod transport;
mod typed_error;

pub use call_error::CallError;
pub use close::{CloseCode, CloseFrame, CloseReason};
pub use config::PeerConfig;
pub use context::Context;
pub use error_object::{ErrorObject, code};
pub use extensions::Extensions;
pub use hub::{
    Attached, Backplane, BackplaneError, Broadcast, Departure, Destination, Event, Hub, MAX_NODE, NodeId, Registration,
    SLOW_CONSUMER,
};
pub use id::RawId;
pub use method_info::{MethodInfo, ParamInfo, ParamsStyle};
pub use params::{NoParams, ParamReader, Params};
pub use peer::{Batch, BatchCall, Call, Peer, PeerBuilder, PeerHandle, PeerStats, Relay, WhileDown};
pub use router::Router;
pub use stream::{ItemStream, OutgoingUpload, Subscribe, Subscription, Upload, UploadId};
pub use transport::{Duplex, Inbound, Joined, Outbound, Transport, TransportError};
#[doc(hidden)]
pub use typed_error::support;
pub use typed_error::{RpcError, TypedCall};
