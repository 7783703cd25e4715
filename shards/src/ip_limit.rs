//! Connections per client address on one shard. SO_REUSEPORT spreads one
//! client's connections over every shard, so each shard enforces its share
//! of the appliance-wide limit (rounded up): no counter is shared between
//! shards.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

/// Counts live connections per address on this shard.
#[derive(Clone)]
pub struct IpLimiter {
    per_shard: u32,
    live: Rc<RefCell<HashMap<IpAddr, u32>>>,
}

/// Held for as long as the connection lives.
pub struct IpGuard {
    ip: IpAddr,
    live: Rc<RefCell<HashMap<IpAddr, u32>>>,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut live = self.live.borrow_mut();
        if let Some(n) = live.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.ip);
            }
        }
    }
}

impl IpLimiter {
    /// This shard's share of `limit` connections per address over `shards`
    /// shards (0 = no limit).
    pub fn new(limit: u32, shards: usize) -> Self {
        let shards = shards.max(1) as u32;
        Self {
            per_shard: if limit == 0 {
                u32::MAX
            } else {
                limit.div_ceil(shards)
            },
            live: Rc::default(),
        }
    }

    /// Admits one more connection from `ip`, or `None` over the limit.
    pub fn try_enter(&self, ip: IpAddr) -> Option<IpGuard> {
        let mut live = self.live.borrow_mut();
        let n = live.entry(ip).or_insert(0);
        if *n >= self.per_shard {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ip,
            live: self.live.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_admits_its_share_per_address() {
        let limiter = IpLimiter::new(5, 2); // 3 per shard
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let held: Vec<_> = (0..3)
            .map(|_| limiter.try_enter(a).expect("within limit"))
            .collect();
        assert!(limiter.try_enter(a).is_none());
        assert!(
            limiter.try_enter(b).is_some(),
            "another address is not affected"
        );
        drop(held);
        assert!(limiter.try_enter(a).is_some(), "released on drop");
        assert!(IpLimiter::new(0, 4).try_enter(a).is_some());
    }
}
