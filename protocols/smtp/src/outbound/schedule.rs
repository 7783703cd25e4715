//! When a queued message is tried again, and when it is given up: the
//! retry back-off (doubling from a first delay up to a ceiling), the
//! message's lifetime, and the one-time delay notice. Pure arithmetic on
//! unix seconds, so that it is tested without a clock.

/// The retry rules of the outbound queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Seconds before the first retry.
    pub initial: u64,
    /// The longest wait between two attempts.
    pub max: u64,
    /// Seconds a message may stay queued before it is bounced.
    pub lifetime: u64,
    /// Seconds of waiting after which the sender is told once (0: never).
    pub delay_notice: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            initial: 300,
            max: 4 * 3600,
            lifetime: 5 * 24 * 3600,
            delay_notice: 4 * 3600,
        }
    }
}

fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Schedule {
    /// Seconds to wait after the `attempts`-th failed attempt (1 = the
    /// first): `initial`, then doubled each time, never above `max`.
    pub fn backoff(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(32);
        self.initial
            .saturating_mul(1u64 << doublings)
            .min(self.max)
            .max(1)
    }

    /// When to try a message that arrived at `created` again, after its
    /// `attempts`-th failure at `now`; never past its expiry, so that the
    /// last attempt happens at the deadline rather than long after.
    pub fn next_attempt(&self, created: i64, attempts: u32, now: i64) -> i64 {
        now.saturating_add(secs(self.backoff(attempts)))
            .min(self.expires(created).max(now + 1))
    }

    /// When a message that arrived at `created` is given up.
    pub fn expires(&self, created: i64) -> i64 {
        created.saturating_add(secs(self.lifetime))
    }

    /// Whether a message that arrived at `created` has waited long enough
    /// at `now` for the sender to be told it is delayed.
    pub fn delay_notice_due(&self, created: i64, now: i64) -> bool {
        self.delay_notice > 0 && now.saturating_sub(created) >= secs(self.delay_notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let s = Schedule {
            initial: 60,
            max: 1000,
            lifetime: 10_000,
            delay_notice: 0,
        };
        let waits: Vec<u64> = (1..=6).map(|n| s.backoff(n)).collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 960, 1000]);
        assert_eq!(s.backoff(u32::MAX), 1000);
    }

    #[test]
    fn the_last_retry_is_at_the_deadline() {
        let s = Schedule {
            initial: 600,
            max: 3600,
            lifetime: 1000,
            delay_notice: 0,
        };
        assert_eq!(s.next_attempt(0, 1, 100), 700);
        assert_eq!(s.next_attempt(0, 2, 700), 1000);
        assert!(!s.delay_notice_due(0, 1_000_000));
    }

    proptest! {
        #[test]
        fn retries_move_forward_and_stay_bounded(
            initial in 1u64..100_000,
            extra in 0u64..100_000,
            lifetime in 1u64..10_000_000,
            attempts in 0u32..100,
            created in 0i64..2_000_000_000,
            waited in 0i64..20_000_000,
        ) {
            let s = Schedule { initial, max: initial + extra, lifetime, delay_notice: 1 };
            let now = created + waited;
            let next = s.next_attempt(created, attempts, now);
            prop_assert!(next > now);
            prop_assert!(next <= now + (initial + extra) as i64);
            prop_assert!(next <= s.expires(created).max(now + 1));
        }
    }
}
