//! The resolver's answer cache: positive answers for their TTL (clamped),
//! negative ones (NXDOMAIN, NODATA) and server failures for fixed times,
//! keyed by the
//! normalised name and the record type, bounded in entries. Time is given
//! by the caller, so the cache is plain data and tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::codec::{Record, RecordType};
use crate::DnsError;

/// Shortest time a positive answer is kept (TTL 0 included).
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest time a positive answer is kept, whatever its TTL.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long NXDOMAIN and NODATA are kept.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// How long a failure of every server (timeouts, SERVFAIL) is kept, so
/// that a dead name server is not asked again for each message (RFC 2308
/// §7.1 allows up to five minutes).
pub const FAILURE_TTL: Duration = Duration::from_secs(5);

/// A cached outcome: the records (empty for NODATA) or NXDOMAIN.
pub type Cached = Result<Vec<Record>, DnsError>;

type Key = (String, RecordType);

struct Entry {
    expires: Instant,
    value: Cached,
}

/// A bounded cache. When full, the entry inserted first goes (FIFO): the
/// map and the queue hold the same keys, an entry refreshed in place keeps
/// its place, and an expired entry stays until it is refreshed or pushed
/// out, so both stay within `capacity` without any sweep.
pub struct Cache {
    capacity: usize,
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
}

impl Cache {
    /// A cache of at most `capacity` entries (0: caching off).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The live entry for `name` (normalised) and `rtype` at `now`.
    pub fn get(&self, name: &str, rtype: RecordType, now: Instant) -> Option<Cached> {
        let entry = self.entries.get(&(name.to_owned(), rtype))?;
        (entry.expires > now).then(|| entry.value.clone())
    }

    /// Keeps an answer: records for their `ttl` (seconds, clamped to
    /// [`MIN_TTL`]…[`MAX_TTL`]), empty records and NXDOMAIN for
    /// [`NEGATIVE_TTL`], a temporary failure for [`FAILURE_TTL`]. A
    /// permanent error (a name that cannot be asked) is not kept.
    pub fn insert(&mut self, name: &str, rtype: RecordType, value: Cached, ttl: u32, now: Instant) {
        let keep = match &value {
            Ok(records) if !records.is_empty() => {
                Duration::from_secs(u64::from(ttl)).clamp(MIN_TTL, MAX_TTL)
            }
            Ok(_) | Err(DnsError::NxDomain) => NEGATIVE_TTL,
            Err(DnsError::Temporary(_)) => FAILURE_TTL,
            Err(DnsError::Permanent(_)) => return,
        };
        if self.capacity == 0 {
            return;
        }
        let entry = Entry {
            expires: now + keep,
            value,
        };
        let key = (name.to_owned(), rtype);
        if let Some(old) = self.entries.get_mut(&key) {
            *old = entry;
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, entry);
    }

    /// Entries held, live or expired.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    fn a(last: u8) -> Vec<Record> {
        vec![Record::A(Ipv4Addr::new(192, 0, 2, last))]
    }

    #[test]
    fn entries_live_for_their_clamped_ttl() {
        let t0 = Instant::now();
        let mut cache = Cache::new(10);
        cache.insert("a.example", RecordType::A, Ok(a(1)), 300, t0);
        cache.insert("zero.example", RecordType::A, Ok(a(2)), 0, t0);
        cache.insert("long.example", RecordType::A, Ok(a(3)), u32::MAX, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            cache.get("a.example", RecordType::A, at(299)),
            Some(Ok(a(1)))
        );
        assert_eq!(cache.get("a.example", RecordType::A, at(300)), None);
        assert_eq!(cache.get("a.example", RecordType::Aaaa, at(1)), None);
        assert_eq!(cache.get("zero.example", RecordType::A, t0), Some(Ok(a(2))));
        assert_eq!(cache.get("zero.example", RecordType::A, at(1)), None);
        assert!(cache
            .get("long.example", RecordType::A, at(86_399))
            .is_some());
        assert!(cache
            .get("long.example", RecordType::A, at(86_400))
            .is_none());
    }

    #[test]
    fn negative_answers_are_kept_a_minute_failures_seconds_and_bad_names_not_at_all() {
        let t0 = Instant::now();
        let mut cache = Cache::new(10);
        cache.insert(
            "nx.example",
            RecordType::Mx,
            Err(DnsError::NxDomain),
            9999,
            t0,
        );
        cache.insert("nodata.example", RecordType::Mx, Ok(vec![]), 9999, t0);
        cache.insert(
            "fail.example",
            RecordType::Mx,
            Err(DnsError::Temporary("x".into())),
            9999,
            t0,
        );
        cache.insert(
            "bad..example",
            RecordType::Mx,
            Err(DnsError::Permanent("x".into())),
            9999,
            t0,
        );
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            cache.get("nx.example", RecordType::Mx, at(59)),
            Some(Err(DnsError::NxDomain))
        );
        assert_eq!(
            cache.get("nodata.example", RecordType::Mx, at(59)),
            Some(Ok(vec![]))
        );
        assert_eq!(cache.get("nx.example", RecordType::Mx, at(60)), None);
        assert_eq!(
            cache.get("fail.example", RecordType::Mx, at(4)),
            Some(Err(DnsError::Temporary("x".into())))
        );
        assert_eq!(cache.get("fail.example", RecordType::Mx, at(5)), None);
        assert_eq!(cache.get("bad..example", RecordType::Mx, t0), None);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut cache = Cache::new(3);
        for i in 0..3u8 {
            cache.insert(&format!("h{i}"), RecordType::A, Ok(a(i)), 60, t0);
        }
        // Refreshing h0 in place keeps its (oldest) place.
        cache.insert("h0", RecordType::A, Ok(a(9)), 60, t0);
        assert_eq!(cache.get("h0", RecordType::A, t0), Some(Ok(a(9))));
        cache.insert("h3", RecordType::A, Ok(a(3)), 60, t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("h0", RecordType::A, t0), None);
        for i in 1..4u8 {
            assert_eq!(
                cache.get(&format!("h{i}"), RecordType::A, t0),
                Some(Ok(a(i)))
            );
        }
        for i in 4..100u8 {
            cache.insert(&format!("h{i}"), RecordType::A, Ok(a(i)), 60, t0);
            assert!(cache.len() <= 3);
            assert!(cache.order.len() <= 3);
        }
        let mut off = Cache::new(0);
        off.insert("h", RecordType::A, Ok(a(1)), 60, t0);
        assert!(off.is_empty());
    }
}
