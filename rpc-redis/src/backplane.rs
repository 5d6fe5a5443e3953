//! [`RedisBackplane`]: the [`Backplane`] of a hub on Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rpc_core::{Attached, Backplane, BackplaneError, Destination, Event, MAX_NODE, NodeId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::keys::{self, Keys};
use crate::liveness;

/// The most events (messages, node deaths) waiting for the hub; past it the subscription is not read
/// until the hub catches up (Redis then buffers, up to its own pub/sub output limit).
const MAX_EVENTS: usize = 4096;

/// How long to wait before subscribing again after the subscription connection was lost.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// A hub's [`Backplane`] on Redis: pub/sub for messages between nodes, sets for group members, an
/// expiring key per node for liveness. See the [crate](crate) for what lives where and what delivery
/// it gives.
///
/// Cheap to clone; every clone is the same node.
#[derive(Clone)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) client: redis::Client,
    pub(crate) keys: Keys,
    pub(crate) liveness: Duration,
    /// The connection commands go through (reconnects by itself); set by `attach`.
    connection: OnceLock<ConnectionManager>,
    pub(crate) node: OnceLock<NodeId>,
    /// This instance's claim on its node number: the value of its liveness key.
    pub(crate) token: String,
    /// A membership change did not reach Redis: the next heartbeat writes them all again.
    pub(crate) dirty: AtomicBool,
    /// What this node put in group sets, `(id, group)`: written again when the node finds its
    /// registration gone, and taken out when it leaves.
    mirror: Mutex<HashSet<(u64, String)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Sets up a [`RedisBackplane`]: the Redis URL, the hub's name, the liveness time.
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct RedisBackplaneBuilder {
    url: String,
    hub: String,
    liveness: Duration,
}

impl RedisBackplane {
    /// Starts setting up a backplane on the Redis server at `url` (`redis://HOST:PORT/DB`).
    pub fn builder(url: &str) -> RedisBackplaneBuilder {
        RedisBackplaneBuilder {
            url: url.to_owned(),
            hub: "default".to_owned(),
            liveness: Duration::from_secs(3),
        }
    }

    fn connection(&self) -> Result<ConnectionManager, BackplaneError> {
        self.shared.connection.get().cloned().ok_or(BackplaneError::Closed)
    }

    fn node(&self) -> Result<NodeId, BackplaneError> {
        self.shared.node.get().copied().ok_or(BackplaneError::Closed)
    }
}

impl RedisBackplaneBuilder {
    /// The hub's name: nodes with the same name on the same Redis form one hub; its keys and channels
    /// are named `birpc:<name>:…`. Default: `default`.
    pub fn hub(mut self, name: &str) -> Self {
        self.hub = name.to_owned();
        self
    }

    /// How long a node may go without renewing its liveness before the others take it for dead. It
    /// renews every third of it. Default: 3 s; at least 300 ms is used.
    pub fn liveness(mut self, liveness: Duration) -> Self {
        self.liveness = liveness.max(Duration::from_millis(300));
        self
    }

    /// The backplane; it connects when a hub attaches it.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn build(self) -> Result<RedisBackplane, BackplaneError> {
        let client = redis::Client::open(self.url.as_str()).map_err(unavailable)?;
        Ok(RedisBackplane {
            shared: Arc::new(Shared {
                client,
                keys: Keys::new(&format!("birpc:{}", self.hub)),
                liveness: self.liveness,
                connection: OnceLock::new(),
                node: OnceLock::new(),
                token: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
                dirty: AtomicBool::new(false),
                mirror: Mutex::default(),
                tasks: Mutex::default(),
            }),
        })
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> BackplaneError {
    BackplaneError::Unavailable(error.to_string())
}

impl Shared {
    pub(crate) fn mirror(&self) -> MutexGuard<'_, HashSet<(u64, String)>> {
        self.mirror.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn connection(&self) -> Option<ConnectionManager> {
        self.connection.get().cloned()
    }

    /// Registers `node` as live, with every membership it holds (again, after it was taken for dead or a
    /// change was lost), taking out what it no longer holds.
    pub(crate) async fn register(&self, connection: &mut ConnectionManager, node: NodeId) -> redis::RedisResult<()> {
        self.dirty.store(false, Ordering::Relaxed);
        let entries: Vec<(u64, String)> = self.mirror().iter().cloned().collect();
        let held: HashSet<String> = entries.iter().map(|(id, group)| keys::entry(*id, group)).collect();
        let recorded: Vec<String> = connection.smembers(self.keys.entries(node)).await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .pset_ex(self.keys.alive(node), &self.token, millis(self.liveness))
            .sadd(self.keys.nodes(), node);
        for (id, group) in &entries {
            pipe.sadd(self.keys.group(group), id)
                .sadd(self.keys.entries(node), keys::entry(*id, group));
        }
        for stale in recorded.iter().filter(|entry| !held.contains(*entry)) {
            if let Some((id, group)) = keys::parse_entry(stale) {
                pipe.srem(self.keys.group(group), id)
                    .srem(self.keys.entries(node), stale);
            }
        }
        let done = pipe.query_async::<()>(connection).await;
        if done.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        done
    }

    /// Marks the memberships to be written again (a change did not reach Redis).
    pub(crate) fn lost(&self, error: redis::RedisError) -> BackplaneError {
        self.dirty.store(true, Ordering::Relaxed);
        unavailable(error)
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Backplane for RedisBackplane {
    fn attach(&self) -> BoxFuture<'_, Result<Attached, BackplaneError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let mut connection = shared.client.get_connection_manager().await.map_err(unavailable)?;
            // A number no live node holds, claimed with this instance's token (random numbers: even when
            // Redis lost every key, a live node's number is taken again only by a 1 in 2^21 chance).
            let mut node = 0;
            for _ in 0..64 {
                let candidate = fastrand::u32(1..=MAX_NODE);
                let claimed: Option<String> = redis::cmd("SET")
                    .arg(shared.keys.alive(candidate))
                    .arg(&shared.token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(shared.liveness))
                    .query_async(&mut connection)
                    .await
                    .map_err(unavailable)?;
                if claimed.is_some() {
                    node = candidate;
                    break;
                }
            }
            if node == 0 {
                return Err(BackplaneError::Unavailable("no free node number".into()));
            }
            shared.register(&mut connection, node).await.map_err(unavailable)?;
            let (events, receiver) = mpsc::channel(MAX_EVENTS);
            let mut pubsub = shared.client.get_async_pubsub().await.map_err(unavailable)?;
            pubsub
                .subscribe(shared.keys.node_channel(node))
                .await
                .map_err(unavailable)?;
            pubsub.subscribe(shared.keys.all_channel()).await.map_err(unavailable)?;
            if shared.connection.set(connection).is_err() || shared.node.set(node).is_err() {
                return Err(BackplaneError::Unavailable("this backplane is attached already".into()));
            }
            let listening = tokio::spawn(listen(shared.clone(), node, pubsub, events));
            let beating = tokio::spawn(liveness::run(shared.clone(), node));
            shared
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend([listening, beating]);
            tracing::info!(target: "birpc::redis", node, hub = ?shared.keys, "joined the hub on Redis");
            let events = tokio_stream(receiver);
            Ok(Attached { node, events })
        })
    }

    fn publish(&self, to: Destination, message: Bytes) -> BoxFuture<'_, Result<(), BackplaneError>> {
        Box::pin(async move {
            let mut connection = self.connection()?;
            let channel = match to {
                Destination::Node(node) => self.shared.keys.node_channel(node),
                _ => self.shared.keys.all_channel(),
            };
            connection
                .publish::<_, _, ()>(channel, message.as_ref())
                .await
                .map_err(unavailable)
        })
    }

    fn add_member(&self, group: &str, id: u64) -> BoxFuture<'_, Result<(), BackplaneError>> {
        let group = group.to_owned();
        Box::pin(async move {
            let node = self.node()?;
            self.shared.mirror().insert((id, group.clone()));
            let mut connection = self.connection()?;
            redis::pipe()
                .atomic()
                .sadd(self.shared.keys.group(&group), id)
                .sadd(self.shared.keys.entries(node), keys::entry(id, &group))
                .query_async::<()>(&mut connection)
                .await
                .map_err(|error| self.shared.lost(error))
        })
    }

    fn remove_member(&self, group: &str, id: u64) -> BoxFuture<'_, Result<(), BackplaneError>> {
        let group = group.to_owned();
        Box::pin(async move {
            let node = self.node()?;
            self.shared.mirror().remove(&(id, group.clone()));
            let mut connection = self.connection()?;
            redis::pipe()
                .atomic()
                .srem(self.shared.keys.group(&group), id)
                .srem(self.shared.keys.entries(node), keys::entry(id, &group))
                .query_async::<()>(&mut connection)
                .await
                .map_err(|error| self.shared.lost(error))
        })
    }

    fn members(&self, group: &str) -> BoxFuture<'_, Result<Vec<u64>, BackplaneError>> {
        let group = group.to_owned();
        Box::pin(async move {
            let mut connection = self.connection()?;
            connection
                .smembers(self.shared.keys.group(&group))
                .await
                .map_err(unavailable)
        })
    }

    fn is_alive(&self, node: NodeId) -> BoxFuture<'_, Result<bool, BackplaneError>> {
        Box::pin(async move {
            let mut connection = self.connection()?;
            connection
                .exists(self.shared.keys.alive(node))
                .await
                .map_err(unavailable)
        })
    }

    fn detach(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for task in self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                task.abort();
            }
            let (Ok(node), Ok(mut connection)) = (self.node(), self.connection()) else {
                return;
            };
            let entries: Vec<(u64, String)> = self.shared.mirror().drain().collect();
            let keys = &self.shared.keys;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (id, group) in &entries {
                pipe.srem(keys.group(group), id);
            }
            pipe.del(keys.entries(node))
                .srem(keys.nodes(), node)
                .del(keys.alive(node));
            if let Err(error) = pipe.query_async::<()>(&mut connection).await {
                tracing::warn!(target: "birpc::redis", %error, node, "could not leave the hub on Redis cleanly");
            }
        })
    }
}

/// Reads the node's subscription into `events`, subscribing again after the connection is lost
/// (messages published meanwhile are lost: see the crate's delivery notes).
async fn listen(shared: Arc<Shared>, node: NodeId, pubsub: redis::aio::PubSub, events: mpsc::Sender<Event>) {
    let mut pubsub = Some(pubsub);
    loop {
        if let Some(subscription) = pubsub.take() {
            let mut messages = subscription.into_on_message();
            while let Some(message) = messages.next().await {
                let payload = message.get_payload_bytes();
                let event = match keys::parse_node_down(payload) {
                    Some(down) => Event::NodeDown(down),
                    None => Event::Message(Bytes::copy_from_slice(payload)),
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            tracing::warn!(target: "birpc::redis", node, "the subscription to Redis was lost; subscribing again");
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        pubsub = subscribe(&shared, node).await;
    }
}

async fn subscribe(shared: &Shared, node: NodeId) -> Option<redis::aio::PubSub> {
    let mut pubsub = shared.client.get_async_pubsub().await.ok()?;
    pubsub.subscribe(shared.keys.node_channel(node)).await.ok()?;
    pubsub.subscribe(shared.keys.all_channel()).await.ok()?;
    Some(pubsub)
}

/// A stream of what `receiver` gets.
fn tokio_stream(mut receiver: mpsc::Receiver<Event>) -> futures::stream::BoxStream<'static, Event> {
    Box::pin(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}
