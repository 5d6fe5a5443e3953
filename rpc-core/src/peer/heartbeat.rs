//! When to ping, and when to give the other side up: the heartbeat's decisions, without IO.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::PeerConfig;

/// What the heartbeat decided at one of its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Beat {
    /// The other side was heard from: nothing to do.
    Quiet,
    /// Silence for a whole interval: send a ping.
    Ping,
    /// Silence since the ping, for the whole timeout: the other side is gone.
    Gone,
}

/// The heartbeat of one connection.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Option<Duration>,
    timeout: Duration,
    next: Instant,
    pinged: bool,
}

impl Heartbeat {
    pub(super) fn new(config: &PeerConfig, now: Instant) -> Self {
        let interval = config.heartbeat_interval.filter(|d| !d.is_zero());
        Self {
            interval,
            timeout: config.heartbeat_timeout,
            next: now + interval.unwrap_or_default(),
            pinged: false,
        }
    }

    /// When to call [`beat`](Self::beat) next; `None` when the heartbeat is off.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.interval.map(|_| self.next)
    }

    /// The timeout after a ping.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Decides at the deadline: `heard` tells whether anything arrived since the last one. The other side
    /// is judged by what it sends alone (this side never stops reading).
    pub(super) fn beat(&mut self, heard: bool, now: Instant) -> Beat {
        let interval = self.interval.unwrap_or_default();
        if heard {
            self.pinged = false;
            self.next = now + interval;
            return Beat::Quiet;
        }
        if self.pinged {
            return Beat::Gone;
        }
        self.pinged = true;
        self.next = now + self.timeout;
        Beat::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> (Heartbeat, Instant) {
        let now = Instant::now();
        let config = PeerConfig::default()
            .heartbeat_interval(Some(Duration::from_secs(30)))
            .heartbeat_timeout(Duration::from_secs(10));
        (Heartbeat::new(&config, now), now)
    }

    #[test]
    fn silence_brings_a_ping_then_the_end() {
        let (mut h, now) = heartbeat();
        assert_eq!(h.deadline(), Some(now + Duration::from_secs(30)));
        let t = now + Duration::from_secs(30);
        assert_eq!(h.beat(false, t), Beat::Ping);
        assert_eq!(h.deadline(), Some(t + Duration::from_secs(10)));
        assert_eq!(h.beat(false, t + Duration::from_secs(10)), Beat::Gone);
    }

    #[test]
    fn an_answer_or_any_traffic_keeps_the_connection() {
        let (mut h, now) = heartbeat();
        let t = now + Duration::from_secs(30);
        assert_eq!(h.beat(true, t), Beat::Quiet);
        assert_eq!(h.deadline(), Some(t + Duration::from_secs(30)));
        let t = t + Duration::from_secs(30);
        assert_eq!(h.beat(false, t), Beat::Ping);
        assert_eq!(h.beat(true, t + Duration::from_secs(10)), Beat::Quiet);
    }

    #[test]
    fn it_can_be_turned_off() {
        let config = PeerConfig::default().heartbeat_interval(None);
        assert_eq!(Heartbeat::new(&config, Instant::now()).deadline(), None);
    }
}
