//! A producer's credit: how many more items its consumer has room for (HTTP/2's stream window, RFC 9113
//! section 6.9, counted in items).

use std::sync::Mutex;

use tokio::sync::Notify;

use super::wire::MAX_CREDIT;

/// The credit of one stream this side produces, shared by its producing task (which uses it) and the
/// connection's driver (which adds the consumer's grants).
pub(crate) struct Credit {
    /// Items the consumer has room for; `None`: the consumer grants no credit (a peer that does not speak
    /// the protocol's flow control), and the producer is held back by the outgoing queue alone.
    left: Mutex<Option<u64>>,
    granted: Notify,
}

impl Credit {
    /// Credit of `initial` items, or none kept (`None`).
    pub(crate) fn new(initial: Option<u64>) -> Self {
        Self {
            left: Mutex::new(initial.map(|n| n.min(MAX_CREDIT))),
            granted: Notify::new(),
        }
    }

    fn left(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.left.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `credit` items (capped at 2^31 − 1 in all) and wakes the producer.
    pub(crate) fn grant(&self, credit: u64) {
        if let Some(left) = self.left().as_mut() {
            *left = left.saturating_add(credit).min(MAX_CREDIT);
        }
        self.granted.notify_one();
    }

    /// Uses credit for one item if there is some now.
    pub(crate) fn try_take(&self) -> bool {
        match self.left().as_mut() {
            None => true,
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            Some(_) => false,
        }
    }

    /// Waits until there is credit for one item, and uses it.
    pub(crate) async fn take(&self) {
        loop {
            let granted = self.granted.notified();
            {
                let mut left = self.left();
                match left.as_mut() {
                    None => return,
                    Some(left) if *left > 0 => {
                        *left -= 1;
                        return;
                    }
                    Some(_) => {}
                }
            }
            granted.await;
        }
    }

    /// The items the consumer has room for now (`None`: not counted).
    #[cfg(test)]
    pub(crate) fn available(&self) -> Option<u64> {
        *self.left()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn credit_is_used_one_item_at_a_time_and_granted_back() {
        let credit = Credit::new(Some(2));
        assert!(credit.take().now_or_never().is_some());
        assert!(credit.take().now_or_never().is_some());
        let mut waiting = Box::pin(credit.take());
        assert!((&mut waiting).now_or_never().is_none());
        credit.grant(1);
        assert!(waiting.now_or_never().is_some());
        assert_eq!(credit.available(), Some(0));
        credit.grant(u64::MAX);
        assert_eq!(credit.available(), Some(MAX_CREDIT));
    }

    #[test]
    fn without_flow_control_nothing_waits() {
        let credit = Credit::new(None);
        for _ in 0..1000 {
            assert!(credit.take().now_or_never().is_some());
        }
    }
}
