//! Brute-force throttling: failed authentications counted per account and per peer, in the database so every kernel sharing it sees them.
//!
//! A counter is a fixed window opened by its first failure. When a window holds
//! `max_failures` failures, each further failure in it (the one that reached the
//! limit included) refuses attempts on that counter for `throttle_pause_secs`;
//! refused attempts are not checked and not counted. A window that has run out
//! starts again from one failure.

use std::net::{IpAddr, SocketAddr};

use super::AuthError;
use super::config::AuthSettings;
use super::store::Tx;

/// One counter's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FailureCount {
    /// When the window's first failure happened, ms.
    pub(super) window_start: u64,
    pub(super) failures: u32,
    /// Attempts are refused until then, ms (0: never blocked).
    pub(super) blocked_until: u64,
}

/// The thresholds from the site settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct ThrottlePolicy {
    max_failures: u32,
    window_ms: u64,
    pause_ms: u64,
}

impl ThrottlePolicy {
    pub(super) fn new(settings: &AuthSettings) -> Self {
        ThrottlePolicy {
            max_failures: settings.max_failures,
            window_ms: settings.failure_window_secs.saturating_mul(1000),
            pause_ms: settings.throttle_pause_secs.saturating_mul(1000),
        }
    }

    /// Whole seconds (at least 1) still to wait before `count` allows an attempt at `now`.
    fn retry_after(&self, count: &FailureCount, now: u64) -> Option<u32> {
        let wait_ms = count.blocked_until.checked_sub(now).filter(|&ms| ms > 0)?;
        Some(u32::try_from(wait_ms.div_ceil(1000)).unwrap_or(u32::MAX))
    }

    /// The counter after one more failure at `now`. A pause already running is never
    /// shortened, even when its window has run out.
    fn after_failure(&self, count: Option<FailureCount>, now: u64) -> FailureCount {
        let open = count.filter(|count| now < count.window_start.saturating_add(self.window_ms));
        let failures = open.map_or(1, |count| count.failures.saturating_add(1));
        let pause = if failures >= self.max_failures {
            now.saturating_add(self.pause_ms)
        } else {
            0
        };
        FailureCount {
            window_start: open.map_or(now, |count| count.window_start),
            failures,
            blocked_until: pause.max(count.map_or(0, |count| count.blocked_until)),
        }
    }

    /// The longest wait any of `subjects` imposes at `now`, if one is blocked.
    pub(super) fn blocked(
        &self,
        tx: &dyn Tx,
        subjects: &[String],
        now: u64,
    ) -> Result<Option<u32>, AuthError> {
        let mut longest = None;
        for subject in subjects {
            if let Some(count) = tx.failure_count(subject)? {
                longest = longest.max(self.retry_after(&count, now));
            }
        }
        Ok(longest)
    }

    /// Counts one failure against each of `subjects`.
    pub(super) fn record_failure(
        &self,
        tx: &dyn Tx,
        subjects: &[String],
        now: u64,
    ) -> Result<(), AuthError> {
        for subject in subjects {
            let next = self.after_failure(tx.failure_count(subject)?, now);
            tx.put_failure_count(subject, &next)?;
        }
        Ok(())
    }

    /// Drops counters whose window has run out and that block nothing.
    pub(super) fn purge(&self, tx: &dyn Tx, now: u64) -> Result<u64, AuthError> {
        tx.purge_failure_counts(now.saturating_sub(self.window_ms), now)
    }
}

/// The counter of an existing account.
pub(super) fn account_subject(account_id: &str) -> String {
    format!("account:{account_id}")
}

/// The counter of a login or email that names no account, so that unknown names
/// are throttled exactly like known ones.
pub(super) fn name_subject(name: &str) -> String {
    format!("name:{}", name.to_ascii_lowercase())
}

/// The counter of a peer: its IP address without the port (each connection has a
/// new port). `None` when there is no peer, as for calls from the CLI.
pub(super) fn peer_subject(peer: &str) -> Option<String> {
    let peer = peer.trim();
    if peer.is_empty() {
        return None;
    }
    let ip = peer
        .parse::<SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| peer.parse::<IpAddr>());
    Some(match ip {
        Ok(ip) => format!("peer:{}", ip.to_canonical()),
        Err(_) => format!("peer:{}", super::audit::printable(peer, 128)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy::new(&AuthSettings::default())
    }

    fn failures(n: u32, every_ms: u64) -> Option<FailureCount> {
        let policy = policy();
        (0..u64::from(n)).fold(None, |count, i| {
            Some(policy.after_failure(count, i * every_ms))
        })
    }

    #[test]
    fn four_failures_block_nothing() {
        let count = failures(4, 1000).expect("counted");
        assert_eq!(policy().retry_after(&count, 4000), None);
    }

    #[test]
    fn the_fifth_failure_in_the_window_blocks_for_the_pause() {
        let count = failures(5, 1000).expect("counted");
        assert_eq!(count.blocked_until, 4000 + 2000);
        assert_eq!(policy().retry_after(&count, 4000), Some(2));
        assert_eq!(policy().retry_after(&count, 5001), Some(1));
        assert_eq!(policy().retry_after(&count, 6000), None);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_block() {
        let count = failures(20, 61_000).expect("counted");
        assert_eq!(count.failures, 1);
        assert_eq!(count.blocked_until, 0);
    }

    #[test]
    fn a_new_window_keeps_a_pause_that_is_still_running() {
        let policy = ThrottlePolicy::new(&AuthSettings {
            failure_window_secs: 1,
            throttle_pause_secs: 600,
            ..AuthSettings::default()
        });
        let blocked = (0..5).fold(None, |count, i| Some(policy.after_failure(count, i * 100)));
        let later = policy.after_failure(blocked, 5_000);
        assert_eq!(later.failures, 1);
        assert_eq!(policy.retry_after(&later, 5_000), Some(596));
    }

    #[test]
    fn peers_are_counted_by_address_without_port() {
        assert_eq!(peer_subject("10.0.0.1:5555"), Some("peer:10.0.0.1".into()));
        assert_eq!(peer_subject("10.0.0.1"), Some("peer:10.0.0.1".into()));
        assert_eq!(peer_subject("[::1]:80"), Some("peer:::1".into()));
        assert_eq!(
            peer_subject("[::ffff:10.0.0.1]:80"),
            Some("peer:10.0.0.1".into())
        );
        assert_eq!(peer_subject(""), None);
    }
}
