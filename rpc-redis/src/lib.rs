//! A Redis backplane for birpc's [`Hub`](rpc_core::Hub): one hub across many servers (nodes), with
//! groups, broadcasts and typed calls to connections on any node.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use rpc_core::Hub;
//! use rpc_redis::RedisBackplane;
//!
//! let backplane = RedisBackplane::builder("redis://127.0.0.1:6379/").hub("chat").build()?;
//! let hub = Hub::with_backplane(backplane).await?;
//! // Give `hub` to the server as with a hub of one node; `hub.detach().await` when shutting down.
//! # let _ = hub;
//! # Ok(()) }
//! ```
//!
//! # What lives where
//! - **Messages** between nodes (notifications to one connection, a group or everyone; calls and their
//!   answers; joins and leaves asked of another node) go through Redis **pub/sub**: one channel per node
//!   (`<prefix>:node:<n>`) and one for all (`<prefix>:all`). They are meant for the nodes alive at that
//!   moment and are worth nothing later: a notification delivered after its connection has gone, or a
//!   call run after its caller gave up, would be wrong. Redis Streams would keep them for a node that
//!   comes back, and so replay stale calls (run twice, once the caller retried) and late broadcasts;
//!   pub/sub drops them instead, which the caller sees as a timeout. So pub/sub it is, for every kind.
//! - **State** (which connections are in which group, which nodes live) is kept in Redis **keys**: a set
//!   per group (`<prefix>:group:<name>`, hub-wide connection ids), a set per node of what it put there
//!   (`<prefix>:node:<n>:entries`), the set of nodes (`<prefix>:nodes`), a liveness key per node
//!   (`<prefix>:node:<n>:alive`, expiring; its value is the token of the instance that claimed the number).
//!   A node picks its number at random and claims it only if no key holds it.
//!
//! # Delivery, exactly
//! - A message is delivered **at most once**, never twice (nothing is retried or replayed), and in the
//!   order its node sent it.
//! - It **may be lost** when Redis is unreachable (from the sender or the receiver), when the receiving
//!   node's subscription is being re-established after a cut, or when the receiving node dies. Then:
//!   a notification is simply not delivered (the sender's `Broadcast` only reports this node's
//!   deliveries and whether the rest was handed to Redis); a call fails with `CallError::Timeout` after
//!   its timeout plus two seconds, or with `CallError::Disconnected` as soon as its node is found dead.
//! - Membership changes reach Redis in the order they were made. One that fails (Redis away, or
//!   refusing writes) is put right at the next heartbeat that reaches Redis: the node writes every
//!   membership it holds again and takes out those it no longer holds; so is everything when the node
//!   finds its registration gone (Redis restarted empty).
//!
//! # Liveness
//! Each node renews its liveness key every third of the liveness time (default 3 s) and looks for dead
//! nodes as often. A node killed (not shut down) is found dead within the liveness time plus a third of
//! it (4 s by default): its connections are taken out of every group, and every node fails at once the
//! calls waiting on it ([`Event::NodeDown`](rpc_core::Event)). A node that shuts down with
//! `Hub::detach` leaves at once, taking its members out. A node cut off from Redis for longer than the
//! liveness time is taken for dead by the others, and registers again (with its members) when it gets
//! back.

mod backplane;
mod keys;
mod liveness;

pub use backplane::{RedisBackplane, RedisBackplaneBuilder};
