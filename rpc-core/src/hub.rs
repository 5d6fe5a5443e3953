//! The connection hub: every live connection by id, named groups, broadcasts, calls to many.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::join_all;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// Connections the notification was queued for.
    pub delivered: usize,
    /// Connections closed because their outgoing queue was full.
    pub closed: Vec<u64>,
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
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `callback` for each connection that joins the hub.
    pub fn on_connect(&self, callback: impl Fn(&PeerHandle) + Send + Sync + 'static) {
        self.inner
            .on_connect
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    /// Calls `callback` for each connection that leaves the hub (after it has left its groups), with the
    /// groups it was in and why it ended.
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

    /// The connection with this id, if it is live.
    pub fn get(&self, id: u64) -> Option<PeerHandle> {
        self.table().connections.get(&id).map(|member| member.peer.clone())
    }

    /// The number of live connections.
    pub fn len(&self) -> usize {
        self.table().connections.len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the live connections.
    pub fn ids(&self) -> Vec<u64> {
        self.table().connections.keys().copied().collect()
    }

    /// Puts connection `id` in `group` (a connection may be in many). `false` when there is no such
    /// connection.
    pub fn join(&self, id: u64, group: &str) -> bool {
        let mut table = self.table();
        let Table { connections, groups } = &mut *table;
        let Some(member) = connections.get_mut(&id) else {
            return false;
        };
        let name: Arc<str> = match groups.get_key_value(group) {
            Some((name, _)) => name.clone(),
            None => Arc::from(group),
        };
        if groups.entry(name.clone()).or_default().insert(id) {
            member.groups.push(name);
        }
        true
    }

    /// Takes connection `id` out of `group`. `false` when it was not in it.
    pub fn leave(&self, id: u64, group: &str) -> bool {
        let mut table = self.table();
        let Some(members) = table.groups.get_mut(group) else {
            return false;
        };
        let was_in = members.remove(&id);
        if members.is_empty() {
            table.groups.remove(group);
        }
        if let Some(member) = table.connections.get_mut(&id) {
            member.groups.retain(|g| &**g != group);
        }
        was_in
    }

    /// The groups connection `id` is in.
    pub fn groups_of(&self, id: u64) -> Vec<String> {
        self.table()
            .connections
            .get(&id)
            .map(|member| member.groups.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default()
    }

    /// The live connections in `group`.
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

    fn everyone(&self) -> Vec<PeerHandle> {
        self.table()
            .connections
            .values()
            .map(|member| member.peer.clone())
            .collect()
    }

    /// Sends a notification to connection `id`, waiting for room as [`PeerHandle::notify`] does.
    ///
    /// # Errors
    /// As [`PeerHandle::notify`]; [`CallError::Disconnected`] when there is no such connection.
    pub async fn notify(&self, id: u64, method: &str, params: impl Serialize) -> Result<(), CallError> {
        let Some(peer) = self.get(id) else {
            return Err(CallError::Disconnected(CloseReason::Transport(
                "no such connection".into(),
            )));
        };
        peer.notify(method, params).await
    }

    /// Sends a notification to every connection in `group`, without waiting; see [`Hub`] for slow
    /// connections.
    pub fn notify_group(&self, group: &str, method: &str, params: impl Serialize) -> Broadcast {
        broadcast(self.members(group), None, method, &params)
    }

    /// Sends a notification to every connection in `group` but `except` (the sender, say).
    pub fn notify_group_except(&self, group: &str, except: u64, method: &str, params: impl Serialize) -> Broadcast {
        broadcast(self.members(group), Some(except), method, &params)
    }

    /// Sends a notification to every live connection.
    pub fn notify_all(&self, method: &str, params: impl Serialize) -> Broadcast {
        broadcast(self.everyone(), None, method, &params)
    }

    /// Calls `method` on every connection in `group` at once and collects each answer, error or timeout
    /// (`timeout` replaces the peers' default for each call). A slow member delays nobody else's answer;
    /// the whole takes as long as the slowest, at most `timeout`.
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
        let calls = self.members(group).into_iter().map(|peer| {
            let call = peer.call::<R>(method, &params);
            let call = if timeout.is_some() { call.timeout(timeout) } else { call };
            async move { (peer.id(), call.await) }
        });
        join_all(calls).await
    }

    /// Runs `call` for every connection in `group` at once (a typed stub's call, say) and collects the
    /// outcomes by connection id.
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
            let id = peer.id();
            let running = call(peer);
            async move { (id, running.await) }
        });
        join_all(calls).await
    }
}

/// Encodes the notification once and queues it for each peer that has room; closes those that have none.
fn broadcast<P: Serialize>(peers: Vec<PeerHandle>, except: Option<u64>, method: &str, params: &P) -> Broadcast {
    let mut report = Broadcast::default();
    let params = (!message::serializes_to_null(params)).then_some(params);
    let frame = match message::encode_call(None, method, params) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::warn!(%error, method, "a broadcast could not be encoded");
            return report;
        }
    };
    for peer in peers.into_iter().filter(|peer| Some(peer.id()) != except) {
        match peer.try_send_frame(frame.clone()) {
            Ok(()) => report.delivered += 1,
            Err(CallError::Full) => {
                tracing::warn!(connection = peer.id(), "closing a connection too slow for a broadcast");
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
