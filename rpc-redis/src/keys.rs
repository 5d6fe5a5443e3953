//! The names of the keys and channels of one hub in Redis, all under its prefix.

use rpc_core::NodeId;

/// The keys of a hub named by `prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The channel of one node.
    pub(crate) fn node_channel(&self, node: NodeId) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The channel of every node.
    pub(crate) fn all_channel(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// The set of a group's members (hub-wide connection ids).
    pub(crate) fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// The set of `id\tgroup` entries a node put in group sets, to take them out when it goes.
    pub(crate) fn entries(&self, node: NodeId) -> String {
        format!("{}:node:{node}:entries", self.prefix)
    }

    /// The set of live nodes' numbers.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's liveness key (it expires unless renewed).
    pub(crate) fn alive(&self, node: NodeId) -> String {
        format!("{}:node:{node}:alive", self.prefix)
    }
}

/// The entry of connection `id` in `group`, as a node's entries set holds it.
pub(crate) fn entry(id: u64, group: &str) -> String {
    format!("{id}\t{group}")
}

/// The connection and group of an entry.
pub(crate) fn parse_entry(entry: &str) -> Option<(u64, &str)> {
    let (id, group) = entry.split_once('\t')?;
    Some((id.parse().ok()?, group))
}

/// The message that tells every node that `node` is dead.
pub(crate) fn node_down(node: NodeId) -> String {
    format!("node-down:{node}")
}

/// The node a node-down message names, if it is one.
pub(crate) fn parse_node_down(payload: &[u8]) -> Option<NodeId> {
    std::str::from_utf8(payload.strip_prefix(b"node-down:")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_node_downs_round_trip() {
        assert_eq!(parse_entry(&entry(42, "room\twith tab")), Some((42, "room\twith tab")));
        assert_eq!(parse_entry("x\tg"), None);
        assert_eq!(parse_node_down(node_down(7).as_bytes()), Some(7));
        assert_eq!(parse_node_down(b"{\"kind\":\"join\"}"), None);
        let keys = Keys::new("birpc:chat");
        assert_eq!(keys.group("lobby"), "birpc:chat:group:lobby");
        assert_eq!(keys.alive(3), "birpc:chat:node:3:alive");
    }
}
