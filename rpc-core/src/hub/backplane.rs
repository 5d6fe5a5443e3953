//! What a [`Hub`](super::Hub) needs to span several servers (nodes): a bus between nodes and a store of
//! group members. The single-process hub has none; the `birpc-redis` crate provides one on Redis.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// The number of a node of a hub, unique among its live nodes: 1 to 2^21 − 1 (0 is a hub without a
/// backplane). A hub-wide connection id is the node's number times 2^32 plus the connection's
/// [`PeerHandle::id`](crate::PeerHandle::id), so that ids stay exact in JavaScript (below 2^53).
pub type NodeId = u32;

/// The largest node number (2^21 − 1).
pub const MAX_NODE: NodeId = (1 << 21) - 1;

/// Where a message between nodes goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// One node.
    Node(NodeId),
    /// Every other node of the hub.
    Others,
}

/// What a backplane hands its node.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A message another node sent to this one (or to all): opaque bytes the hub encoded.
    Message(Bytes),
    /// Node `NodeId` was found dead (it stopped renewing its liveness): its connections have been taken
    /// out of every group, and calls waiting on it fail at once.
    NodeDown(NodeId),
}

/// A node's place in the hub: its number and the events for it, until the backplane stops.
pub struct Attached {
    /// This node's number.
    pub node: NodeId,
    /// Messages for this node, and the deaths of other nodes, in the order the backplane learns of them.
    pub events: BoxStream<'static, Event>,
}

/// Why a backplane operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The shared store or bus (Redis, say) could not be reached or refused the operation.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// The backplane is shut down.
    #[error("the backplane is shut down")]
    Closed,
}

/// A bus between the nodes of a hub and a store of group members, shared by every node.
///
/// Implementations deliver messages at most once, in the order each node sent them, and may lose them
/// when the bus fails (a hub documents what that means for each kind of message). They keep each node's
/// liveness: a node that stops (killed, cut off) is found dead within a documented time, its members are
/// taken out of every group, and every other node gets [`Event::NodeDown`].
pub trait Backplane: Send + Sync + 'static {
    /// Joins the hub as a new node.
    fn attach(&self) -> BoxFuture<'_, Result<Attached, BackplaneError>>;

    /// Sends `message` to `to`.
    fn publish(&self, to: Destination, message: Bytes) -> BoxFuture<'_, Result<(), BackplaneError>>;

    /// Records connection `id` (hub-wide) as a member of `group`.
    fn add_member(&self, group: &str, id: u64) -> BoxFuture<'_, Result<(), BackplaneError>>;

    /// Takes connection `id` out of `group`.
    fn remove_member(&self, group: &str, id: u64) -> BoxFuture<'_, Result<(), BackplaneError>>;

    /// The members of `group`, on every node.
    fn members(&self, group: &str) -> BoxFuture<'_, Result<Vec<u64>, BackplaneError>>;

    /// Whether node `node` is alive.
    fn is_alive(&self, node: NodeId) -> BoxFuture<'_, Result<bool, BackplaneError>>;

    /// Leaves the hub cleanly: this node's members leave their groups, and the node its registration.
    fn detach(&self) -> BoxFuture<'_, ()>;
}

/// The node of a hub-wide connection id.
pub(crate) fn node_of(id: u64) -> NodeId {
    (id >> 32) as NodeId
}

/// The hub-wide id of local connection `local` on `node`.
pub(crate) fn hub_id(node: NodeId, local: u64) -> u64 {
    (u64::from(node) << 32) | (local & 0xffff_ffff)
}
