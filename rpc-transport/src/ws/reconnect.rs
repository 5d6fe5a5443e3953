//! A client that reconnects by itself, with exponential backoff and jitter.

use std::time::Duration;

use rpc_core::{CloseFrame, CloseReason, Peer, PeerHandle, Relay, Router, WhileDown};
use tokio::sync::{broadcast, watch};

use super::dial::Dialer;
use super::socket::WsTransport;

/// How a [`ReconnectingClient`] reconnects, with documented defaults.
///
/// After a connection ends (or an attempt fails), attempt `n` (from 1) waits
/// `min(initial_delay × factor^(n-1), max_delay)`, shortened by a random fraction of up to `jitter` so that
/// many clients of a restarted server do not all come back at once. The count starts again after every
/// successful connection. A refusal that cannot change (HTTP 4xx but 408 and 429) stops the client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reconnect {
    /// Whether to reconnect at all. Default: `true`; with `false`, the client stops when its first
    /// connection ends.
    pub enabled: bool,
    /// The first delay. Default: 250 ms.
    pub initial_delay: Duration,
    /// The longest delay. Default: 30 s.
    pub max_delay: Duration,
    /// How much each delay grows. Default: 2.
    pub factor: f64,
    /// The largest fraction by which a delay is randomly shortened, from 0 to 1. Default: 0.5.
    pub jitter: f64,
    /// How many attempts in a row may fail before the client gives up. Default: `None`, never.
    pub max_attempts: Option<u32>,
    /// What calls do while no connection is up. Default: [`WhileDown::Wait`] (for the next connection,
    /// within their timeout).
    pub while_down: WhileDown,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
            while_down: WhileDown::Wait,
        }
    }
}

impl Reconnect {
    /// No reconnecting: the client stops when its connection ends.
    pub fn never() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets [`initial_delay`](Self::initial_delay) and [`max_delay`](Self::max_delay).
    pub fn delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, max: Option<u32>) -> Self {
        self.max_attempts = max;
        self
    }

    /// Sets [`while_down`](Self::while_down).
    pub fn while_down(mut self, while_down: WhileDown) -> Self {
        self.while_down = while_down;
        self
    }

    /// The delay before attempt `attempt` (from 1), for a random number `random` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_delay.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let shortened = capped * (1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(shortened).unwrap_or(self.max_delay)
    }
}

/// What happens to a [`ReconnectingClient`]'s connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection is up, after `attempt` failed attempts (0: at the first try).
    Connected {
        /// The failed attempts before this one.
        attempt: u32,
    },
    /// The connection ended (its calls in flight failed with a disconnect error).
    Disconnected {
        /// Why.
        reason: CloseReason,
    },
    /// The client waits `delay` before attempt `attempt`.
    Reconnecting {
        /// The attempt about to be made, from 1.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the last attempt failed, if it did (else the connection ended).
        error: Option<String>,
    },
    /// The client has stopped for good: it was closed, or gave up.
    Stopped {
        /// Why.
        reason: CloseReason,
    },
}

/// A client that reconnects by itself; made by [`ClientBuilder::reconnecting`](super::ClientBuilder::reconnecting).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use rpc_transport::ws::{Client, ClientEvent, Reconnect};
///
/// let client = Client::builder().reconnect(Reconnect::default()).reconnecting("ws://127.0.0.1:9000")?;
/// let mut events = client.events();
/// client.connected().await?;
/// let sum: i64 = client.peer().call("add", (1, 2)).await?;
/// while let Ok(event) = events.recv().await {
///     if let ClientEvent::Reconnecting { attempt, delay, .. } = event {
///         println!("reconnecting (attempt {attempt}) in {delay:?}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReconnectingClient {
    handle: PeerHandle,
    relay: Relay,
    events: broadcast::Sender<ClientEvent>,
    /// Subscribed before the client started: given to the first caller of `events`, so that it sees every
    /// event from the start.
    first_events: std::sync::Mutex<Option<broadcast::Receiver<ClientEvent>>>,
    up: watch::Receiver<bool>,
}

/// How many events a slow reader of [`ReconnectingClient::events`] may fall behind before missing some.
const EVENT_BACKLOG: usize = 64;

impl ReconnectingClient {
    pub(crate) fn start(url: String, router: Router, dialer: Dialer, policy: Reconnect) -> Self {
        let relay = Relay::new(dialer.config.clone(), policy.while_down);
        let handle = relay.handle(true);
        let (events, first_events) = broadcast::channel(EVENT_BACKLOG);
        let (up_tx, up) = watch::channel(false);
        tokio::spawn(supervise(
            url,
            router,
            dialer,
            policy,
            relay.clone(),
            events.clone(),
            up_tx,
        ));
        Self {
            handle,
            relay,
            events,
            first_events: std::sync::Mutex::new(Some(first_events)),
            up,
        }
    }

    /// The handle that follows the client's connections: calls go to the connection up when they are
    /// sent. Build typed stubs on it; they keep working across reconnections. Dropping this client and
    /// every clone of this handle stops the client.
    pub fn peer(&self) -> &PeerHandle {
        &self.handle
    }

    /// Connection events: from the start for the first caller, from now on for later ones. A reader that
    /// falls more than 64 events behind misses the oldest.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        let first = self.first_events.lock().unwrap_or_else(|p| p.into_inner()).take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Waits until a connection is up.
    ///
    /// # Errors
    /// The reason the client stopped, if it stops first.
    pub async fn connected(&self) -> Result<(), CloseReason> {
        let mut up = self.up.clone();
        tokio::select! {
            up = up.wait_for(|up| *up) => match up {
                Ok(_) => Ok(()),
                Err(_) => Err(self.handle.closed().await),
            },
            reason = self.handle.closed() => Err(reason),
        }
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.up.borrow()
    }

    /// Stops the client: no more reconnecting; the current connection closes normally.
    pub fn close(&self) {
        self.handle.close();
    }

    /// Waits until the client has stopped for good and tells why.
    pub async fn closed(&self) -> CloseReason {
        self.handle.closed().await
    }

    /// Whether the client has been told to stop.
    pub fn is_stopped(&self) -> bool {
        self.relay.is_stopped()
    }
}

/// Keeps the relay connected until it is told to stop or the policy gives up.
async fn supervise(
    url: String,
    router: Router,
    dialer: Dialer,
    policy: Reconnect,
    relay: Relay,
    events: broadcast::Sender<ClientEvent>,
    up: watch::Sender<bool>,
) {
    let stopped = |frame: CloseFrame| CloseReason::Local(frame);
    let mut attempt: u32 = 0;
    let reason = loop {
        let dialed = tokio::select! {
            dialed = dialer.dial(&url) => dialed,
            frame = relay.stopped() => break stopped(frame),
        };
        let error = match dialed {
            Ok(socket) => {
                let peer = relay.attach(Peer::builder().router(router.clone()), WsTransport::new(socket));
                up.send_replace(true);
                // Told once the relay follows the new connection: a call made in answer goes over it.
                let _ = events.send(ClientEvent::Connected { attempt });
                attempt = 0;
                let reason = peer.run().await;
                up.send_replace(false);
                let _ = events.send(ClientEvent::Disconnected { reason: reason.clone() });
                if relay.is_stopped() || !policy.enabled {
                    break reason;
                }
                None
            }
            Err(error) if error.is_permanent() || !policy.enabled => {
                break CloseReason::Transport(format!("could not connect: {error}").into());
            }
            Err(error) => Some(error.to_string()),
        };
        attempt += 1;
        if policy.max_attempts.is_some_and(|max| attempt > max) {
            let last = error.unwrap_or_default();
            break CloseReason::Transport(format!("gave up after {} attempts: {last}", attempt - 1).into());
        }
        let delay = policy.delay(attempt, fastrand::f64());
        let _ = events.send(ClientEvent::Reconnecting { attempt, delay, error });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            frame = relay.stopped() => break stopped(frame),
        }
    };
    relay.finish(reason.clone());
    let _ = events.send(ClientEvent::Stopped { reason });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_jitter_only_shortens_them() {
        let policy = Reconnect::default().delays(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(policy.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(policy.delay(4, 0.0), Duration::from_millis(800));
        assert_eq!(policy.delay(5, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(50, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(1, 0.999_999).as_millis(), 50);
        let steady = policy.jitter(0.0);
        assert_eq!(steady.delay(3, 0.7), Duration::from_millis(400));
    }
}
