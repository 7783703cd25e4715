//! Failed logins counted per account and per client address over a sliding
//! window, sans-IO (the caller passes the time): past the limit, further
//! attempts are refused until the window has passed, whether the password
//! is right or not. Memory is bounded: the oldest entries go first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most tracked accounts or addresses, each.
pub const MAX_TRACKED: usize = 100_000;

/// How many failures, over how long.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures per account within `window` before it is locked out.
    pub per_account: u32,
    /// Failures per client address within `window` before it is refused.
    pub per_address: u32,
    /// The sliding window (and so the longest lockout).
    pub window: Duration,
}

#[derive(Debug)]
struct Counter<K> {
    failures: HashMap<K, Vec<Instant>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new() -> Self {
        Self {
            failures: HashMap::new(),
        }
    }

    fn recent(&mut self, key: &K, now: Instant, window: Duration) -> &mut Vec<Instant> {
        let times = self.failures.entry(key.clone()).or_default();
        times.retain(|t| now.duration_since(*t) < window);
        times
    }

    /// When `key` may try again, if it is over `limit` now.
    fn blocked_until(
        &mut self,
        key: &K,
        now: Instant,
        window: Duration,
        limit: u32,
    ) -> Option<Instant> {
        let times = self.recent(key, now, window);
        let over = times.len() >= limit as usize;
        let until = times.first().map(|first| *first + window);
        if times.is_empty() {
            self.failures.remove(key);
        }
        if over {
            until
        } else {
            None
        }
    }

    fn fail(&mut self, key: &K, now: Instant, window: Duration) {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(key) {
            self.evict(now, window);
        }
        self.recent(key, now, window).push(now);
    }

    /// Drops expired entries; if none expired, the entry with the oldest
    /// newest failure.
    fn evict(&mut self, now: Instant, window: Duration) {
        self.failures.retain(|_, times| {
            times
                .last()
                .is_some_and(|t| now.duration_since(*t) < window)
        });
        if self.failures.len() >= MAX_TRACKED {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, times)| times.last().copied())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.failures.remove(&k);
            }
        }
    }

    fn clear(&mut self, key: &K) {
        self.failures.remove(key);
    }

    fn len(&self) -> usize {
        self.failures.len()
    }
}

/// The failure counters of the directory's shard.
#[derive(Debug)]
pub struct Lockout {
    policy: Policy,
    accounts: Counter<String>,
    addresses: Counter<IpAddr>,
}

/// Why an attempt is refused before its password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for this account.
    Account { retry_after: Duration },
    /// Too many failures from this address.
    Address { retry_after: Duration },
}

impl Lockout {
    /// Empty counters under `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            accounts: Counter::new(),
            addresses: Counter::new(),
        }
    }

    /// Whether `account` may try from `ip` now.
    pub fn check(&mut self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let p = self.policy;
        if let Some(until) = self
            .addresses
            .blocked_until(&ip, now, p.window, p.per_address)
        {
            return Err(Refusal::Address {
                retry_after: until.saturating_duration_since(now),
            });
        }
        if let Some(until) =
            self.accounts
                .blocked_until(&account.to_string(), now, p.window, p.per_account)
        {
            return Err(Refusal::Account {
                retry_after: until.saturating_duration_since(now),
            });
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub fn failed(&mut self, account: &str, ip: IpAddr, now: Instant) {
        let window = self.policy.window;
        self.accounts.fail(&account.to_string(), now, window);
        self.addresses.fail(&ip, now, window);
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&mut self, account: &str) {
        self.accounts.clear(&account.to_string());
    }

    /// Accounts and addresses tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.accounts.len(), self.addresses.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            per_account: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_account_is_locked_out_for_the_rest_of_the_window() {
        let mut l = Lockout::new(policy());
        let t0 = Instant::now();
        let ip: IpAddr = [192, 0, 2, 1].into();
        for i in 0..3 {
            assert_eq!(l.check("a@x.org", ip, t0), Ok(()), "attempt {i}");
            l.failed("a@x.org", ip, t0 + Duration::from_secs(i));
        }
        let at = t0 + Duration::from_secs(10);
        assert_eq!(
            l.check("a@x.org", ip, at),
            Err(Refusal::Account {
                retry_after: Duration::from_secs(50)
            })
        );
        assert_eq!(
            l.check("b@x.org", ip, at),
            Ok(()),
            "another account is not affected"
        );
        assert_eq!(
            l.check("a@x.org", ip, t0 + Duration::from_secs(61)),
            Ok(()),
            "window passed"
        );
    }

    #[test]
    fn an_address_is_refused_across_accounts_and_success_clears_the_account() {
        let mut l = Lockout::new(policy());
        let t0 = Instant::now();
        let ip: IpAddr = [192, 0, 2, 9].into();
        for i in 0..5 {
            l.failed(&format!("user{i}@x.org"), ip, t0);
        }
        assert!(matches!(
            l.check("new@x.org", ip, t0),
            Err(Refusal::Address { .. })
        ));
        let other: IpAddr = [192, 0, 2, 10].into();
        l.failed("c@x.org", other, t0);
        l.failed("c@x.org", other, t0);
        l.succeeded("c@x.org");
        l.failed("c@x.org", other, t0);
        assert_eq!(
            l.check("c@x.org", other, t0),
            Ok(()),
            "success reset the count"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut l = Lockout::new(policy());
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            l.failed("a@x.org", ip, t0);
        }
        assert!(l.tracked().1 <= MAX_TRACKED);
    }
}
