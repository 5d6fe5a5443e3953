//! The connection hub: every live connection by id, named groups, broadcasts, calls to many; across
//! several servers through a [`Backplane`].
//!
//! - `backplane`: the trait a hub spans nodes through;
//! - `remote`: the hub's messages between nodes and the calls waiting on other nodes.

mod backplane;
mod remote;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

pub use self::backplane::{Attached, Backplane, BackplaneError, Destination, Event, MAX_NODE, NodeId};
use self::backplane::{hub_id, node_of};
use self::remote::{Envelope, Op, Outcome, Plane, Target, gone};
use crate::call_error::CallError;
use crate::close::{CloseCode, CloseReason};
use crate::message;
use crate::peer::PeerHandle;

/// The close reason of a connection too slow for a broadcast.
pub const SLOW_CONSUMER: &str = "too slow: the outgoing queue was full";

type OnConnect = Arc<dyn Fn(&PeerHandle) + Send + Sync>;
type OnDisconnect = Arc<dyn Fn(&Departure) + Send + Sync>;

/// A connection that left the hub, as its disconnect callbacks see it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Departure {
    /// Its handle (ended; its [`state`](PeerHandle::state) is still readable).
    pub peer: PeerHandle,
    /// The groups it was in.
    pub groups: Vec<String>,
    /// Why it ended.
    pub reason: CloseReason,
}

/// Every live connection of a server (or any set of peers), by [`PeerHandle::id`]: named groups, broadcasts
/// and calls to many. Cheap to clone; reachable from handlers (keep a clone in the service) and from
/// anywhere else (a background task, an HTTP handler).
///
/// Broadcasts never wait: a connection whose outgoing queue is full when a broadcast reaches it is closed
/// with 1008 ([`SLOW_CONSUMER`]) and the broadcast goes on, so one slow client can neither stall the others
/// nor make the server hold more.
///
/// ```
/// use rpc_core::Hub;
///
/// # async fn f(hub: Hub, peer: rpc_core::PeerHandle) {
/// let id = peer.id();
/// hub.join(id, "lobby");
/// let report = hub.notify_group("lobby", "news", ("hello",));
/// assert_eq!(report.closed.len(), 0);
/// let answers = hub.call_group::<bool, _>("lobby", "still_there", (), None).await;
/// # let _ = answers;
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    table: Mutex<Table>,
    on_connect: Mutex<Vec<OnConnect>>,
    on_disconnect: Mutex<Vec<OnDisconnect>>,
    /// The other nodes of the hub, if it spans several.
    plane: Option<Arc<Plane>>,
}

#[derive(Default)]
struct Table {
    connections: FxHashMap<u64, Member>,
    groups: FxHashMap<Arc<str>, FxHashSet<u64>>,
}

struct Member {
    peer: PeerHandle,
    groups: Vec<Arc<str>>,
}

/// What a broadcast did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// Connections of this node the notification was queued for.
    pub delivered: usize,
    /// Connections of this node closed because their outgoing queue was full.
    pub closed: Vec<u64>,
    /// Whether the notification was handed to the backplane for the other nodes (always `false` for a
    /// hub of one node; `false` too when the backplane's outbox was full).
    pub forwarded: bool,
}

/// A connection's place in a [`Hub`]; dropping it (or [`end`](Self::end)) takes the connection out.
#[must_use = "the connection leaves the hub when this is dropped"]
pub struct Registration {
    hub: Hub,
    id: u64,
    ended: bool,
}

impl Registration {
    /// Takes the connection out, telling the disconnect callbacks why it ended.
    pub fn end(mut self, reason: &CloseReason) {
        self.ended = true;
        self.hub.remove(self.id, reason);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.ended {
            self.hub
                .remove(self.id, &CloseReason::Transport("removed from the hub".into()));
        }
    }
}

impl Hub {
    /// An empty hub of one node (this process).
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub spanning every server attached to `backplane` (Redis, say): joins it as a new node.
    ///
    /// Connection ids become hub-wide: see [`id_of`](Self::id_of). Attach before serving.
    ///
    /// # Errors
    /// When the backplane cannot be reached.
    pub async fn with_backplane(backplane: impl Backplane) -> Result<Self, BackplaneError> {
        let backplane: Arc<dyn Backplane> = Arc::new(backplane);
        let Attached { node, mut events } = backplane.attach().await?;
        let (plane, drain) = Plane::new(node, backplane);
        let hub = Hub {
            inner: Arc::new(Inner {
                plane: Some(Arc::new(plane)),
                ..Inner::default()
            }),
        };
        tokio::spawn(drain);
        let weak: Weak<Inner> = Arc::downgrade(&hub.inner);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let Some(inner) = weak.upgrade() else { break };
                Hub { inner }.on_event(event);
            }
        });
        Ok(hub)
    }

    /// This node's number in the hub (0 for a hub of one node).
    pub fn node(&self) -> NodeId {
        self.inner.plane.as_ref().map_or(0, |plane| plane.node)
    }

    /// The hub-wide id of connection `peer` of this node: its [`PeerHandle::id`] for a hub of one node;
    /// the node's number times 2^32 plus it across nodes (exact in JavaScript: below 2^53).
    pub fn id_of(&self, peer: &PeerHandle) -> u64 {
        match &self.inner.plane {
            Some(plane) => hub_id(plane.node, peer.id()),
            None => peer.id(),
        }
    }

    /// The local key (the [`PeerHandle::id`]) of hub-wide id `id` if it is a connection of this node. A
    /// connection's own `PeerHandle::id` is taken for itself too.
    fn local(&self, id: u64) -> Option<u64> {
        match &self.inner.plane {
            None => Some(id),
            Some(plane) => {
                let node = node_of(id);
                (node == 0 || node == plane.node).then_some(id & 0xffff_ffff)
            }
        }
    }

    /// Leaves the backplane cleanly: what this node queued for the others is sent first (at most 5 s),
    /// then its connections leave their groups there. Call it when the server has shut down. Nothing to
    /// do for a hub of one node.
    pub async fn detach(&self) {
        if let Some(plane) = &self.inner.plane {
            plane.flush().await;
            plane.backplane.detach().await;
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `callback` for each connection that joins the hub on this node.
    pub fn on_connect(&self, callback: impl Fn(&PeerHandle) + Send + Sync + 'static) {
        self.inner
            .on_connect
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    /// Calls `callback` for each connection of this node that leaves the hub (after it has left its
    /// groups), with the groups it was in and why it ended.
    pub fn on_disconnect(&self, callback: impl Fn(&Departure) + Send + Sync + 'static) {
        self.inner
            .on_disconnect
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    /// Adds a connection; it leaves the hub (and its groups) when the returned registration is dropped or
    /// ended. A server given the hub does this for every connection.
    pub fn register(&self, peer: PeerHandle) -> Registration {
        let id = peer.id();
        self.table().connections.insert(
            id,
            Member {
                peer: peer.clone(),
                groups: Vec::new(),
            },
        );
        let callbacks = self.inner.on_connect.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for callback in callbacks {
            callback(&peer);
        }
        Registration {
            hub: self.clone(),
            id,
            ended: false,
        }
    }

    /// Adds a connection that leaves the hub by itself when it ends (a task awaits its end).
    pub fn add(&self, peer: PeerHandle) {
        let registration = self.register(peer.clone());
        tokio::spawn(async move {
            let reason = peer.closed().await;
            registration.end(&reason);
        });
    }

    fn remove(&self, id: u64, reason: &CloseReason) {
        let removed = {
            let mut table = self.table();
            let member = table.connections.remove(&id);
            if let Some(member) = &member {
                for group in &member.groups {
                    let empty = table.groups.get_mut(group).is_some_and(|members| {
                        members.remove(&id);
                        members.is_empty()
                    });
                    if empty {
                        table.groups.remove(group);
                    }
                }
            }
            member
        };
        if let Some(member) = removed {
            if let Some(plane) = &self.inner.plane {
                for group in &member.groups {
                    plane.queue(Op::Remove(group.to_string(), hub_id(plane.node, id)));
                }
            }
            let departure = Departure {
                peer: member.peer,
                groups: member.groups.iter().map(|g| g.to_string()).collect(),
                reason: reason.clone(),
            };
            let callbacks = self
                .inner
                .on_disconnect
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for callback in callbacks {
                callback(&departure);
            }
        }
    }

    /// The connection of this node with this id (hub-wide, or its `PeerHandle::id`), if it is live.
    pub fn get(&self, id: u64) -> Option<PeerHandle> {
        let local = self.local(id)?;
        self.table().connections.get(&local).map(|member| member.peer.clone())
    }

    /// The number of live connections on this node.
    pub fn len(&self) -> usize {
        self.table().connections.len()
    }

    /// Whether no connection is live on this node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hub-wide ids of the live connections of this node.
    pub fn ids(&self) -> Vec<u64> {
        let node = self.node();
        self.table()
            .connections
            .keys()
            .map(|&id| if node == 0 { id } else { hub_id(node, id) })
            .collect()
    }

    /// Puts connection `id` in `group` (a connection may be in many), whichever node it is on. `false`
    /// when it is a connection of this node that does not exist; a connection of another node is put in
    /// by that node (`true` once asked; see the crate's delivery notes for what a backplane may lose).
    pub fn join(&self, id: u64, group: &str) -> bool {
        let Some(local) = self.local(id) else {
            return self.ask_owner(
                id,
                Envelope::Join {
                    id,
                    group: group.to_owned(),
                },
            );
        };
        let joined = {
            let mut table = self.table();
            let Table { connections, groups } = &mut *table;
            let Some(member) = connections.get_mut(&local) else {
                return false;
            };
            let name: Arc<str> = match groups.get_key_value(group) {
                Some((name, _)) => name.clone(),
                None => Arc::from(group),
            };
            let joined = groups.entry(name.clone()).or_default().insert(local);
            if joined {
                member.groups.push(name);
            }
            joined
        };
        if joined && let Some(plane) = &self.inner.plane {
            plane.queue(Op::Add(group.to_owned(), hub_id(plane.node, local)));
        }
        true
    }

    /// Takes connection `id` out of `group`, whichever node it is on. `false` when it is a connection of
    /// this node that was not in it.
    pub fn leave(&self, id: u64, group: &str) -> bool {
        let Some(local) = self.local(id) else {
            return self.ask_owner(
                id,
                Envelope::Leave {
                    id,
                    group: group.to_owned(),
                },
            );
        };
        let was_in = {
            let mut table = self.table();
            let Some(members) = table.groups.get_mut(group) else {
                return false;
            };
            let was_in = members.remove(&local);
            if members.is_empty() {
                table.groups.remove(group);
            }
            if let Some(member) = table.connections.get_mut(&local) {
                member.groups.retain(|g| &**g != group);
            }
            was_in
        };
        if was_in && let Some(plane) = &self.inner.plane {
            plane.queue(Op::Remove(group.to_owned(), hub_id(plane.node, local)));
        }
        was_in
    }

    /// Sends `envelope` to the node of connection `id`.
    fn ask_owner(&self, id: u64, envelope: Envelope) -> bool {
        match &self.inner.plane {
            Some(plane) => plane.send(Destination::Node(node_of(id)), &envelope),
            None => false,
        }
    }

    /// The groups connection `id` of this node is in.
    pub fn groups_of(&self, id: u64) -> Vec<String> {
        let Some(local) = self.local(id) else {
            return Vec::new();
        };
        self.table()
            .connections
            .get(&local)
            .map(|member| member.groups.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default()
    }

    /// The live connections of this node in `group`.
    pub fn members(&self, group: &str) -> Vec<PeerHandle> {
        let table = self.table();
        table
            .groups
            .get(group)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| table.connections.get(id))
                    .map(|m| m.peer.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The hub-wide ids of the members of `group` on every node.
    ///
    /// # Errors
    /// When the backplane cannot be reached (a hub of one node never fails).
    pub async fn member_ids(&self, group: &str) -> Result<Vec<u64>, BackplaneError> {
        match &self.inner.plane {
            Some(plane) => plane.backplane.members(group).await,
            None => Ok(self.members(group).iter().map(PeerHandle::id).collect()),
        }
    }

    fn everyone(&self) -> Vec<PeerHandle> {
        self.table()
            .connections
            .values()
            .map(|member| member.peer.clone())
            .collect()
    }

    /// Sends a notification to connection `id`, whichever node it is on. For a connection of this node
    /// it waits for room as [`PeerHandle::notify`] does; for one of another node it returns once the
    /// notification is handed to the backplane (which may lose it: see the crate's delivery notes).
    ///
    /// # Errors
    /// As [`PeerHandle::notify`]; [`CallError::Disconnected`] when there is no such connection here;
    /// [`CallError::Full`] when the backplane's outbox is full.
    pub async fn notify(&self, id: u64, method: &str, params: impl Serialize) -> Result<(), CallError> {
        if self.local(id).is_none() {
            let frame = encode_notification(method, &params).map_err(CallError::Encode)?;
            let envelope = Envelope::Notify {
                from: self.node(),
                target: Target::One(id),
                except: None,
                frame,
            };
            return if self.ask_owner(id, envelope) {
                Ok(())
            } else {
                Err(CallError::Full)
            };
        }
        let Some(peer) = self.get(id) else {
            return Err(gone("no such connection"));
        };
        peer.notify(method, params).await
    }

    /// Sends a notification to every connection in `group`, on every node, without waiting; see [`Hub`]
    /// for slow connections.
    pub fn notify_group(&self, group: &str, method: &str, params: impl Serialize) -> Broadcast {
        self.broadcast(Target::Group(group.to_owned()), None, method, &params)
    }

    /// Sends a notification to every connection in `group` but `except` (the sender, say).
    pub fn notify_group_except(&self, group: &str, except: u64, method: &str, params: impl Serialize) -> Broadcast {
        self.broadcast(Target::Group(group.to_owned()), Some(except), method, &params)
    }

    /// Sends a notification to every live connection, on every node.
    pub fn notify_all(&self, method: &str, params: impl Serialize) -> Broadcast {
        self.broadcast(Target::All, None, method, &params)
    }

    /// Delivers to this node's connections, and hands the notification to the backplane for the others.
    fn broadcast<P: Serialize>(&self, target: Target, except: Option<u64>, method: &str, params: &P) -> Broadcast {
        let frame = match encode_notification(method, params) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(target: "birpc::hub", %error, method, "a broadcast could not be encoded");
                return Broadcast::default();
            }
        };
        let mut report = self.deliver(&target, except, &frame);
        if let Some(plane) = &self.inner.plane {
            // The other nodes know this node's connections by their hub-wide ids only.
            let except = except.map(|id| if node_of(id) == 0 { hub_id(plane.node, id) } else { id });
            report.forwarded = plane.send(
                Destination::Others,
                &Envelope::Notify {
                    from: plane.node,
                    target,
                    except,
                    frame,
                },
            );
        }
        report
    }

    /// Queues an encoded notification for this node's connections that `target` names.
    fn deliver(&self, target: &Target, except: Option<u64>, frame: &str) -> Broadcast {
        let peers = match target {
            Target::One(id) => self.get(*id).into_iter().collect(),
            Target::Group(group) => self.members(group),
            Target::All => self.everyone(),
        };
        let except = except.and_then(|id| self.local(id));
        broadcast(peers, except, frame)
    }

    /// Calls `method` on connection `id`, whichever node it is on, and decodes its answer (`timeout`
    /// replaces the peers' default).
    ///
    /// # Errors
    /// As [`PeerHandle::call`]; [`CallError::Disconnected`] when there is no such connection, or its node
    /// is gone (found within the backplane's liveness time); [`CallError::Timeout`] also when the
    /// backplane lost the call or its answer.
    pub async fn call<R, P>(&self, id: u64, method: &str, params: P, timeout: Option<Duration>) -> Result<R, CallError>
    where
        R: DeserializeOwned + 'static,
        P: Serialize,
    {
        if self.local(id).is_some() {
            let Some(peer) = self.get(id) else {
                return Err(gone("no such connection"));
            };
            let call = peer.call::<R>(method, &params);
            return if timeout.is_some() { call.timeout(timeout) } else { call }.await;
        }
        let Some(plane) = &self.inner.plane else {
            return Err(gone("no such connection"));
        };
        let params = encode_params(&params)?;
        let mut outcomes = plane.call(node_of(id), vec![id], method, params, timeout).await;
        let (_, result) = outcomes.pop().unwrap_or((id, Err(gone("no answer"))));
        result.and_then(|raw| serde_json::from_str(raw.get()).map_err(CallError::Decode))
    }

    /// Calls `method` on every connection in `group`, on every node, at once and collects each answer,
    /// error or timeout by hub-wide id (`timeout` replaces the peers' default for each call). A slow
    /// member delays nobody else's answer; the whole takes as long as the slowest, at most `timeout`
    /// (plus the backplane's round trip for members of other nodes). Members of a node that dies fail
    /// with [`CallError::Disconnected`] as soon as the backplane finds it dead.
    pub async fn call_group<R, P>(
        &self,
        group: &str,
        method: &str,
        params: P,
        timeout: Option<Duration>,
    ) -> Vec<(u64, Result<R, CallError>)>
    where
        R: DeserializeOwned + 'static,
        P: Serialize,
    {
        let local = self.members(group).into_iter().map(|peer| {
            let call = peer.call::<R>(method, &params);
            let call = if timeout.is_some() { call.timeout(timeout) } else { call };
            let id = self.id_of(&peer);
            async move { (id, call.await) }
        });
        let local = join_all(local);
        let Some(plane) = &self.inner.plane else {
            return local.await;
        };
        // This node's members are called while the others are looked up (Redis may be slow, or away).
        let remote = async {
            let mut by_node: FxHashMap<NodeId, Vec<u64>> = FxHashMap::default();
            match plane.backplane.members(group).await {
                Ok(ids) => {
                    for id in ids.into_iter().filter(|&id| node_of(id) != plane.node) {
                        by_node.entry(node_of(id)).or_default().push(id);
                    }
                }
                Err(error) => {
                    tracing::warn!(target: "birpc::hub", %error, group, "the members of other nodes are unknown")
                }
            }
            let encoded = match encode_params(&params) {
                Ok(encoded) => encoded,
                Err(error) => {
                    // Nothing to send: the members of other nodes fail as those of this node do.
                    let message = error.to_string();
                    return by_node
                        .into_values()
                        .flatten()
                        .map(|id| (id, Err(CallError::Encode(serde::ser::Error::custom(&message)))))
                        .collect();
                }
            };
            let calls = by_node
                .into_iter()
                .map(|(node, ids)| plane.call(node, ids, method, encoded.clone(), timeout));
            join_all(calls)
                .await
                .into_iter()
                .flatten()
                .map(|(id, result)| {
                    (
                        id,
                        result.and_then(|raw| serde_json::from_str(raw.get()).map_err(CallError::Decode)),
                    )
                })
                .collect::<Vec<_>>()
        };
        let (mut outcomes, remote) = futures::join!(local, remote);
        outcomes.extend(remote);
        outcomes
    }

    /// Runs `call` for every connection of this node in `group` at once (a typed stub's call, say) and
    /// collects the outcomes by hub-wide id. (Across nodes, use [`call_group`](Self::call_group).)
    ///
    /// ```
    /// # async fn f(hub: rpc_core::Hub) {
    /// use std::time::Duration;
    /// let answers = hub
    ///     .each("lobby", |peer| async move {
    ///         peer.call::<String>("still_there", ()).timeout(Some(Duration::from_secs(5))).await
    ///     })
    ///     .await;
    /// # let _ = answers;
    /// # }
    /// ```
    pub async fn each<F, Fut, T>(&self, group: &str, mut call: F) -> Vec<(u64, T)>
    where
        F: FnMut(PeerHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let calls = self.members(group).into_iter().map(|peer| {
            let id = self.id_of(&peer);
            let running = call(peer);
            async move { (id, running.await) }
        });
        join_all(calls).await
    }

    /// What the backplane brought: another node's request, answers, or a node's death.
    fn on_event(&self, event: Event) {
        let Some(plane) = self.inner.plane.clone() else { return };
        let envelope = match event {
            Event::NodeDown(node) => {
                tracing::info!(target: "birpc::hub", node, "a node of the hub is gone");
                return plane.node_down(node);
            }
            Event::Message(bytes) => match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(envelope) => envelope,
                Err(error) => {
                    tracing::warn!(target: "birpc::hub", %error, "ignored an undecodable message from the backplane");
                    return;
                }
            },
        };
        match envelope {
            Envelope::Notify {
                from,
                target,
                except,
                frame,
            } => {
                if from != plane.node {
                    self.deliver(&target, except, &frame);
                }
            }
            Envelope::Join { id, group } => {
                if self.local(id).is_some() {
                    self.join(id, &group);
                }
            }
            Envelope::Leave { id, group } => {
                if self.local(id).is_some() {
                    self.leave(id, &group);
                }
            }
            Envelope::Call {
                from,
                call,
                ids,
                method,
                params,
                timeout_ms,
            } => {
                let hub = self.clone();
                tokio::spawn(async move {
                    let timeout = timeout_ms.map(Duration::from_millis);
                    let calls = ids.into_iter().map(|id| {
                        let hub = &hub;
                        let method = &method;
                        let params = &params;
                        async move {
                            let result = match hub.get(id) {
                                Some(peer) => {
                                    let call = match params {
                                        Some(params) => peer.call::<Box<RawValue>>(method, params),
                                        None => peer.call::<Box<RawValue>>(method, ()),
                                    };
                                    if timeout.is_some() { call.timeout(timeout) } else { call }.await
                                }
                                None => Err(gone("no such connection")),
                            };
                            (id, Outcome::of(result))
                        }
                    });
                    let outcomes = join_all(calls).await;
                    plane.send(Destination::Node(from), &Envelope::Answers { call, outcomes });
                });
            }
            Envelope::Answers { call, outcomes } => plane.answered(call, outcomes),
        }
    }
}

/// Encodes a notification (params that serialize to `null` are left out).
fn encode_notification<P: Serialize>(method: &str, params: &P) -> Result<String, serde_json::Error> {
    let params = (!message::serializes_to_null(params)).then_some(params);
    message::encode_call(None, method, params)
}

/// Encodes a call's params for another node (`None` for params that serialize to `null`).
fn encode_params<P: Serialize>(params: &P) -> Result<Option<Box<RawValue>>, CallError> {
    if message::serializes_to_null(params) {
        return Ok(None);
    }
    serde_json::value::to_raw_value(params)
        .map(Some)
        .map_err(CallError::Encode)
}

/// Queues an encoded notification for each peer that has room; closes those that have none.
fn broadcast(peers: Vec<PeerHandle>, except: Option<u64>, frame: &str) -> Broadcast {
    let mut report = Broadcast::default();
    for peer in peers.into_iter().filter(|peer| Some(peer.id()) != except) {
        match peer.try_send_frame(frame.to_owned()) {
            Ok(()) => report.delivered += 1,
            Err(CallError::Full) => {
                tracing::warn!(target: "birpc::hub", connection = peer.id(), "closing a connection too slow for a broadcast");
                peer.close_with(CloseCode::POLICY, SLOW_CONSUMER);
                report.closed.push(peer.id());
            }
            // It is ending; its disconnect will be reported on its own.
            Err(_) => {}
        }
    }
    report
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table();
        f.debug_struct("Hub")
            .field("connections", &table.connections.len())
            .field("groups", &table.groups.len())
            .finish()
    }
}
