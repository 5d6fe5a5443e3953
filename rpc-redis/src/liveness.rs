//! A node's liveness: it renews its key, registers again when it finds itself taken for dead, and
//! takes dead nodes out of the hub.

use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rpc_core::NodeId;

use crate::backplane::{Shared, millis};
use crate::keys;

/// Every third of the liveness time: renew, check the registration, reap the dead. Runs until aborted
/// (the node detaches) or the process ends.
pub(crate) async fn run(shared: Arc<Shared>, node: NodeId) {
    let period = shared.liveness / 3;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(mut connection) = shared.connection() else {
            return;
        };
        if let Err(error) = beat(&shared, &mut connection, node).await {
            tracing::warn!(target: "birpc::redis", %error, node, "could not renew this node's liveness on Redis");
        }
        if let Err(error) = reap(&shared, &mut connection, node).await {
            tracing::warn!(target: "birpc::redis", %error, node, "could not look for dead nodes on Redis");
        }
    }
}

/// Renews this node's liveness; registers it again (with all its members) if it was taken for dead or
/// Redis lost it.
async fn beat(shared: &Shared, connection: &mut ConnectionManager, node: NodeId) -> redis::RedisResult<()> {
    // Renewed only while the key is this instance's (or gone): never over another node's claim.
    let renewed: i64 = redis::Script::new(RENEW)
        .key(shared.keys.alive(node))
        .arg(&shared.token)
        .arg(millis(shared.liveness))
        .invoke_async(connection)
        .await?;
    if renewed == 0 {
        tracing::error!(target: "birpc::redis", node, "another instance holds this node's number: not renewing it");
        return Ok(());
    }
    let registered: bool = connection.sismember(shared.keys.nodes(), node).await?;
    if !registered {
        tracing::warn!(target: "birpc::redis", node, "this node was taken for dead (or Redis lost it): registering again");
        shared.register(connection, node).await
    } else if shared.dirty.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!(target: "birpc::redis", node, "a membership change was lost: writing them all again");
        shared.register(connection, node).await
    } else {
        Ok(())
    }
}

/// Sets the liveness key `KEYS[1]` to this instance's token `ARGV[1]` for `ARGV[2]` ms if it holds that
/// token or nothing; 1 if so, 0 if another instance holds it.
const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Takes every dead node (registered, its liveness key expired) out of the hub: its members leave their
/// groups, and every node is told. Of several nodes reaping at once, the one that takes the dead node
/// out of the set of nodes does the rest.
async fn reap(shared: &Shared, connection: &mut ConnectionManager, node: NodeId) -> redis::RedisResult<()> {
    let nodes: Vec<NodeId> = connection.smembers(shared.keys.nodes()).await?;
    for other in nodes.into_iter().filter(|&other| other != node) {
        let alive: bool = connection.exists(shared.keys.alive(other)).await?;
        if alive {
            continue;
        }
        let removed: u32 = connection.srem(shared.keys.nodes(), other).await?;
        if removed == 0 {
            continue;
        }
        let entries: Vec<String> = connection.smembers(shared.keys.entries(other)).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for entry in &entries {
            if let Some((id, group)) = keys::parse_entry(entry) {
                pipe.srem(shared.keys.group(group), id);
            }
        }
        pipe.del(shared.keys.entries(other))
            .publish(shared.keys.all_channel(), keys::node_down(other));
        pipe.query_async::<()>(connection).await?;
        tracing::info!(target: "birpc::redis", node = other, members = entries.len(), "took a dead node out of the hub");
    }
    Ok(())
}
