//! Messages per sender per minute: a shard's counters of MAIL commands
//! accepted, by sender (the logged-in user on submission, the client's
//! address on MX), over a sliding minute (two fixed windows, the previous
//! one weighted by how much of it still overlaps). Sans-IO: the caller
//! passes the time. Counters are per shard, so a sender spread over `n`
//! shards may send up to `n` times the limit; the table is bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The window the limits count over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Senders tracked per shard before stale ones are swept.
const MAX_SENDERS: usize = 100_000;

/// One sender's counts.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// The start of the current window.
    since: Instant,
    current: u32,
    previous: u32,
}

/// A shard's counters with a per-minute limit (0 = no limit).
#[derive(Debug)]
pub struct SenderRate {
    per_minute: u32,
    senders: RefCell<HashMap<String, Counts>>,
}

impl SenderRate {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            senders: RefCell::default(),
        }
    }

    /// Counts one message from `sender` at `now`, unless that would go
    /// over the limit: then nothing is counted and `false` comes back.
    pub fn admit(&self, sender: &str, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut senders = self.senders.borrow_mut();
        if senders.len() >= MAX_SENDERS && !senders.contains_key(sender) {
            senders.retain(|_, c| now.saturating_duration_since(c.since) < 2 * WINDOW);
        }
        let counts = senders.entry(sender.to_string()).or_insert(Counts {
            since: now,
            current: 0,
            previous: 0,
        });
        let elapsed = now.saturating_duration_since(counts.since);
        if elapsed >= 2 * WINDOW {
            *counts = Counts {
                since: now,
                current: 0,
                previous: 0,
            };
        } else if elapsed >= WINDOW {
            *counts = Counts {
                since: counts.since + WINDOW,
                current: 0,
                previous: counts.current,
            };
        }
        let into = now.saturating_duration_since(counts.since).as_secs_f64();
        let overlap = 1.0 - (into / WINDOW.as_secs_f64()).min(1.0);
        let estimate = f64::from(counts.previous) * overlap + f64::from(counts.current);
        if estimate + 1.0 > f64::from(self.per_minute) {
            return false;
        }
        counts.current += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_limit_holds_within_a_minute_and_frees_up_after() {
        let rate = SenderRate::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rate.admit("alice", t0));
        }
        assert!(!rate.admit("alice", t0 + Duration::from_secs(30)));
        assert!(rate.admit("bob", t0), "another sender has its own count");
        // Two minutes on, the old counts no longer weigh.
        assert!(rate.admit("alice", t0 + Duration::from_secs(121)));
    }

    #[test]
    fn no_limit_admits_everything() {
        let rate = SenderRate::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| rate.admit("x", t0)));
    }

    proptest! {
        /// However the messages are spread in time, no 60-second span
        /// starting at a window's start admits more than the limit, and
        /// a sender who waits a whole window is admitted again.
        #[test]
        fn never_more_than_the_limit_in_a_window(
            limit in 1u32..20,
            gaps in proptest::collection::vec(0u64..5_000, 1..300),
        ) {
            let rate = SenderRate::new(limit);
            let t0 = Instant::now();
            let mut at = Duration::ZERO;
            let mut admitted: Vec<Duration> = Vec::new();
            for gap in gaps {
                at += Duration::from_millis(gap);
                if rate.admit("s", t0 + at) {
                    admitted.push(at);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let within = admitted[i..].iter().take_while(|t| **t < *start + WINDOW).count();
                prop_assert!(within as u32 <= 2 * limit, "{within} in a minute, limit {limit}");
            }
            prop_assert!(rate.admit("s", t0 + at + 2 * WINDOW));
        }
    }
}
