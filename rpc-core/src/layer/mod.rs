//! Middleware for the calls a side receives, as tower layers.
//!
//! Every exported method is a tower [`Service`](tower_service::Service) of [`IncomingCall`]s answering
//! with an [`Answer`]; [`Router::layer`](crate::Router::layer) wraps each method of a router in a
//! [`Layer`](tower_layer::Layer), so the calls received go through it before their handler: authorization
//! by method, rate and concurrency limits, timeouts, metrics, logging. Layers from the `tower` crate work
//! as they are; their errors become error objects (see [`Router::layer`](crate::Router::layer)).
//!
//! What the peer does itself stays below the layers and applies first: the connection's limits
//! ([`PeerConfig`](crate::PeerConfig)), -32601 for an unknown method, -32005 when every handler place is
//! taken, cancellation, and catching a handler's panic (-32603).

mod answer;
mod call;
mod service;

pub use self::answer::Answer;
pub use self::call::IncomingCall;
pub use self::service::MethodService;
pub(crate) use self::service::{Layered, LayeredFallback};

/// The error type tower's layers produce: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
