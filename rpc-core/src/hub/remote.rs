//! The hub's protocol between nodes: what one node asks of another through the backplane (notify,
//! join, leave, call), the answers, and the calls waiting for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::backplane::{Backplane, Destination, NodeId};
use crate::call_error::CallError;
use crate::close::CloseReason;
use crate::error_object::ErrorObject;

/// The most operations waiting for the backplane. Past it a broadcast is not forwarded to other nodes
/// (its report says so) and a membership change is left to the backplane's resynchronisation.
pub(crate) const MAX_OUTBOX: usize = 16 * 1024;

/// How long past a remote call's own timeout its node is given to answer (the bus's round trip).
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The timeout of a remote call made without one: the peers' default (`PeerConfig::call_timeout`). The
/// node calls with its own default; this side waits no longer than this (and the grace) for the answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A message from one node of a hub to another. (Externally tagged: the raw params and results inside
/// cannot go through serde's buffering of internally tagged enums.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// Deliver an encoded notification to local connections.
    Notify {
        from: NodeId,
        target: Target,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<u64>,
        frame: String,
    },
    /// Put a local connection in a group.
    Join { id: u64, group: String },
    /// Take a local connection out of a group.
    Leave { id: u64, group: String },
    /// Call `method` on each of these local connections and answer with every outcome.
    Call {
        from: NodeId,
        call: u64,
        ids: Vec<u64>,
        method: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<Box<RawValue>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// The outcomes of a [`Envelope::Call`].
    Answers { call: u64, outcomes: Vec<(u64, Outcome)> },
}

/// Whom a notification is for, on the node that receives it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Target {
    One(u64),
    Group(String),
    All,
}

/// How one call of a remote node ended.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The answer's result.
    Result(Box<RawValue>),
    /// The answer's error object.
    Error(ErrorObject),
    /// No answer within the timeout.
    Timeout(u64),
    /// The call failed on that node without an answer (the connection ended, say).
    Failed(String),
}

impl Outcome {
    /// The outcome of a call made on this node, to send back.
    pub(crate) fn of(result: Result<Box<RawValue>, CallError>) -> Self {
        match result {
            Ok(value) => Outcome::Result(value),
            Err(CallError::Timeout(limit)) => Outcome::Timeout(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)),
            Err(error) => match error.error_object() {
                Some(object) => Outcome::Error(object.clone()),
                None => Outcome::Failed(error.to_string()),
            },
        }
    }

    /// The call's result, as the caller on this node sees it.
    pub(crate) fn into_result(self) -> Result<Box<RawValue>, CallError> {
        match self {
            Outcome::Result(value) => Ok(value),
            Outcome::Error(error) => Err(CallError::from_error_object(error)),
            Outcome::Timeout(ms) => Err(CallError::Timeout(Duration::from_millis(ms))),
            Outcome::Failed(reason) => Err(gone(reason)),
        }
    }
}

/// The error of a call whose connection (or node) is gone.
pub(crate) fn gone(reason: impl Into<String>) -> CallError {
    CallError::Disconnected(CloseReason::Transport(Arc::from(reason.into())))
}

/// An operation for the backplane, carried out in order by the outbox task.
pub(crate) enum Op {
    Publish(Destination, Bytes),
    Add(String, u64),
    Remove(String, u64),
    /// Everything queued before has been carried out.
    Flushed(oneshot::Sender<()>),
}

/// How long [`Plane::flush`] waits for the operations queued before it.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// A call of this node waiting for another node's answers.
struct Waiting {
    node: NodeId,
    answers: oneshot::Sender<Vec<(u64, Outcome)>>,
}

/// This node's side of the backplane: its number, the outbox, the calls waiting on other nodes.
pub(crate) struct Plane {
    pub(crate) node: NodeId,
    pub(crate) backplane: Arc<dyn Backplane>,
    outbox: mpsc::Sender<Op>,
    waiting: Mutex<FxHashMap<u64, Waiting>>,
    next_call: AtomicU64,
}

impl Plane {
    /// The plane of `node`, and the outbox's task (run it).
    pub(crate) fn new(node: NodeId, backplane: Arc<dyn Backplane>) -> (Self, impl Future<Output = ()> + Send) {
        let (outbox, mut ops) = mpsc::channel::<Op>(MAX_OUTBOX);
        let worker = backplane.clone();
        let drain = async move {
            while let Some(op) = ops.recv().await {
                let done = match op {
                    Op::Publish(to, message) => worker.publish(to, message).await,
                    Op::Add(group, id) => worker.add_member(&group, id).await,
                    Op::Remove(group, id) => worker.remove_member(&group, id).await,
                    Op::Flushed(done) => {
                        let _ = done.send(());
                        Ok(())
                    }
                };
                if let Err(error) = done {
                    tracing::warn!(target: "birpc::hub", %error, "a hub operation did not reach the backplane");
                }
            }
        };
        let plane = Self {
            node,
            backplane,
            outbox,
            waiting: Mutex::default(),
            next_call: AtomicU64::new(1),
        };
        (plane, drain)
    }

    fn waiting(&self) -> MutexGuard<'_, FxHashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `op` for the backplane; `false` when the outbox is full (or closed).
    pub(crate) fn queue(&self, op: Op) -> bool {
        match self.outbox.try_send(op) {
            Ok(()) => true,
            Err(_) => {
                tracing::warn!(target: "birpc::hub", "the hub's outbox to the backplane is full: an operation was dropped");
                false
            }
        }
    }

    /// Waits (at most 5 s) until every operation queued so far has reached the backplane: a node
    /// leaving sends what it owes first (the departures of its last connections, say).
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.outbox.send(Op::Flushed(done)).await.is_ok() {
            let _ = tokio::time::timeout(FLUSH_LIMIT, flushed).await;
        }
    }

    /// Queues `envelope` for `to`.
    pub(crate) fn send(&self, to: Destination, envelope: &Envelope) -> bool {
        match serde_json::to_vec(envelope) {
            Ok(bytes) => self.queue(Op::Publish(to, Bytes::from(bytes))),
            Err(error) => {
                tracing::warn!(target: "birpc::hub", %error, "a hub message could not be encoded");
                false
            }
        }
    }

    /// Calls `method` on connections `ids` of node `node`, and waits for their outcomes (at most
    /// `timeout` and the bus's round trip; the ids not answered by then time out).
    pub(crate) async fn call(
        &self,
        node: NodeId,
        ids: Vec<u64>,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Option<Duration>,
    ) -> Vec<(u64, Result<Box<RawValue>, CallError>)> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (answers, answered) = oneshot::channel();
        self.waiting().insert(call, Waiting { node, answers });
        /// Forgets the call however the wait ends.
        struct Forget<'a>(&'a Plane, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.waiting().remove(&self.1);
            }
        }
        let _forget = Forget(self, call);
        let envelope = Envelope::Call {
            from: self.node,
            call,
            ids: ids.clone(),
            method: method.to_owned(),
            params,
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        if !self.send(Destination::Node(node), &envelope) {
            return ids.into_iter().map(|id| (id, Err(CallError::Full))).collect();
        }
        let limit = timeout.unwrap_or(DEFAULT_TIMEOUT) + ANSWER_GRACE;
        // A node that is not alive (gone before, or never there) answers nothing: fail at once.
        let dead = async {
            match self.backplane.is_alive(node).await {
                Ok(false) => {}
                _ => std::future::pending::<()>().await,
            }
        };
        // `Err(None)`: no answer in time; `Err(Some(why))`: the node is gone.
        let answers = tokio::select! {
            outcome = tokio::time::timeout(limit, answered) => match outcome {
                Ok(Ok(answers)) => Ok(answers),
                // The node died (its waiting calls were dropped).
                Ok(Err(_)) => Err(Some(format!("node {node} of the hub is gone"))),
                Err(_) => Err(None),
            },
            () = dead => Err(Some(format!("node {node} of the hub is not alive"))),
        };
        match answers {
            Ok(answers) => {
                let mut outcomes: FxHashMap<u64, Outcome> = answers.into_iter().collect();
                ids.into_iter()
                    .map(|id| {
                        let result = outcomes
                            .remove(&id)
                            .map_or_else(|| Err(gone("no answer for this connection")), Outcome::into_result);
                        (id, result)
                    })
                    .collect()
            }
            Err(why) => ids
                .into_iter()
                .map(|id| {
                    let error = match &why {
                        Some(why) => gone(why.clone()),
                        None => CallError::Timeout(limit),
                    };
                    (id, Err(error))
                })
                .collect(),
        }
    }

    /// Another node answered call `call`.
    pub(crate) fn answered(&self, call: u64, outcomes: Vec<(u64, Outcome)>) {
        if let Some(waiting) = self.waiting().remove(&call) {
            let _ = waiting.answers.send(outcomes);
        }
    }

    /// Node `node` died: every call waiting on it fails at once.
    pub(crate) fn node_down(&self, node: NodeId) {
        self.waiting().retain(|_, waiting| waiting.node != node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_with_raw_values_round_trip() {
        let call = Envelope::Call {
            from: 1,
            call: 7,
            ids: vec![(2 << 32) | 5],
            method: "whoami".into(),
            params: Some(RawValue::from_string("[1,{\"a\":2}]".into()).unwrap()),
            timeout_ms: Some(500),
        };
        let bytes = serde_json::to_vec(&call).unwrap();
        match serde_json::from_slice::<Envelope>(&bytes).unwrap() {
            Envelope::Call {
                params: Some(params),
                ids,
                ..
            } => {
                assert_eq!(params.get(), "[1,{\"a\":2}]");
                assert_eq!(ids, [(2 << 32) | 5]);
            }
            other => panic!("{other:?}"),
        }
        let answers = Envelope::Answers {
            call: 7,
            outcomes: vec![
                (1, Outcome::Result(RawValue::from_string("\"n0\"".into()).unwrap())),
                (2, Outcome::Error(ErrorObject::new(5, "no"))),
                (3, Outcome::Timeout(500)),
                (4, Outcome::Failed("gone".into())),
            ],
        };
        let bytes = serde_json::to_vec(&answers).unwrap();
        let Envelope::Answers { outcomes, .. } = serde_json::from_slice::<Envelope>(&bytes).unwrap() else {
            panic!("not answers");
        };
        let results: Vec<_> = outcomes.into_iter().map(|(id, o)| (id, o.into_result())).collect();
        assert!(matches!(&results[0].1, Ok(v) if v.get() == "\"n0\""));
        assert!(matches!(&results[1].1, Err(CallError::Remote(e)) if e.code() == 5));
        assert!(matches!(&results[2].1, Err(CallError::Timeout(t)) if t.as_millis() == 500));
        assert!(matches!(&results[3].1, Err(CallError::Disconnected(_))));
    }
}
