//! When to ping, and when to give the other side up: the heartbeat's decisions, without IO.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::PeerConfig;

/// What the heartbeat decided at one of its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Beat {
    /// The other side was heard from recently enough: nothing to do.
    Quiet,
    /// Silence for a whole interval: send a ping.
    Ping,
    /// Silence since the ping, for the whole timeout: the other side is gone.
    Gone,
}

/// The heartbeat of one connection. The other side is judged only by what it sends (this side never
/// stops reading): silent for `interval`, it is pinged; silent `timeout` longer, it is gone.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Option<Duration>,
    timeout: Duration,
    next: Instant,
    pinged_at: Option<Instant>,
}

impl Heartbeat {
    pub(super) fn new(config: &PeerConfig, now: Instant) -> Self {
        let interval = config.heartbeat_interval.filter(|d| !d.is_zero());
        Self {
            interval,
            timeout: config.heartbeat_timeout,
            next: now + interval.unwrap_or_default(),
            pinged_at: None,
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

    /// Decides at the deadline, given when the other side was last heard from.
    pub(super) fn beat(&mut self, last_heard: Instant, now: Instant) -> Beat {
        let interval = self.interval.unwrap_or_default();
        let heard_since_ping = self.pinged_at.is_some_and(|pinged| last_heard >= pinged);
        if heard_since_ping || (self.pinged_at.is_none() && now < last_heard + interval) {
            self.pinged_at = None;
            self.next = (last_heard + interval).max(now);
            return Beat::Quiet;
        }
        if self.pinged_at.is_some() {
            return Beat::Gone;
        }
        self.pinged_at = Some(now);
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

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn silence_brings_a_ping_then_the_end() {
        let (mut h, now) = heartbeat();
        assert_eq!(h.deadline(), Some(now + secs(30)));
        let t = now + secs(30);
        assert_eq!(h.beat(now, t), Beat::Ping);
        assert_eq!(h.deadline(), Some(t + secs(10)));
        assert_eq!(h.beat(now, t + secs(10)), Beat::Gone);
    }

    #[test]
    fn silence_is_counted_from_the_last_thing_heard() {
        let (mut h, now) = heartbeat();
        // Heard at 5 s: the next look is at 35 s, and silence from then on is found at 35 + 10 s.
        assert_eq!(h.beat(now + secs(5), now + secs(30)), Beat::Quiet);
        assert_eq!(h.deadline(), Some(now + secs(35)));
        assert_eq!(h.beat(now + secs(5), now + secs(35)), Beat::Ping);
        assert_eq!(h.beat(now + secs(5), now + secs(45)), Beat::Gone);
    }

    #[test]
    fn an_answer_to_the_ping_keeps_the_connection() {
        let (mut h, now) = heartbeat();
        let t = now + secs(30);
        assert_eq!(h.beat(now, t), Beat::Ping);
        assert_eq!(h.beat(t + secs(1), t + secs(10)), Beat::Quiet);
        assert_eq!(h.deadline(), Some(t + secs(31)));
    }

    #[test]
    fn it_can_be_turned_off() {
        let config = PeerConfig::default().heartbeat_interval(None);
        assert_eq!(Heartbeat::new(&config, Instant::now()).deadline(), None);
    }
}
