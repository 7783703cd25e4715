//! [`ShardCache`]: what one shard keeps in memory about message bodies, by
//! body hash (bodies never change, and a body delivered to many mailboxes
//! is one entry), bounded by a weight (entries, or bytes); the oldest
//! entries go first. The summaries FETCH reads ([`super::summaries`]) and
//! the headers SEARCH reads ([`super::search`]) are kept in one each.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// A bounded cache by body hash (see the module).
pub struct ShardCache<V> {
    capacity: usize,
    weigh: fn(&V) -> usize,
    used: Cell<usize>,
    entries: RefCell<HashMap<[u8; 32], Entry<V>>>,
    order: RefCell<VecDeque<[u8; 32]>>,
}

struct Entry<V> {
    value: Rc<V>,
    weight: usize,
}

impl<V> ShardCache<V> {
    /// A cache holding at most `capacity` of weight, each entry weighing
    /// what `weigh` says (an entry heavier than the whole is not kept).
    pub fn new(capacity: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            capacity,
            weigh,
            used: Cell::new(0),
            entries: RefCell::default(),
            order: RefCell::default(),
        }
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<Rc<V>> {
        self.entries.borrow().get(hash).map(|e| e.value.clone())
    }

    /// Keeps `value` for `hash` (evicting the oldest entries as needed);
    /// an entry already kept for `hash` stays as it is.
    pub fn insert(&self, hash: [u8; 32], value: V) -> Rc<V> {
        let weight = (self.weigh)(&value);
        let value = Rc::new(value);
        if weight > self.capacity {
            return value;
        }
        let mut entries = self.entries.borrow_mut();
        if entries.contains_key(&hash) {
            return value;
        }
        entries.insert(
            hash,
            Entry {
                value: value.clone(),
                weight,
            },
        );
        let mut order = self.order.borrow_mut();
        order.push_back(hash);
        let mut used = self.used.get() + weight;
        while used > self.capacity {
            let Some(old) = order.pop_front() else {
                break;
            };
            if let Some(gone) = entries.remove(&old) {
                used -= gone.weight;
            }
        }
        self.used.set(used);
        value
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_weight_and_drops_the_oldest() {
        let cache: ShardCache<Vec<u8>> = ShardCache::new(10, Vec::len);
        cache.insert([1; 32], vec![0; 4]);
        cache.insert([2; 32], vec![0; 4]);
        assert_eq!(cache.len(), 2);
        cache.insert([3; 32], vec![0; 4]);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&[1; 32]).is_none(), "the oldest went");
        assert!(cache.get(&[2; 32]).is_some() && cache.get(&[3; 32]).is_some());
        // Too heavy for the whole cache: handed back, not kept.
        assert_eq!(cache.insert([4; 32], vec![0; 11]).len(), 11);
        assert!(cache.get(&[4; 32]).is_none());
        assert_eq!(cache.len(), 2);
        // Kept already: the entry stays.
        cache.insert([3; 32], vec![9; 1]);
        assert_eq!(cache.get(&[3; 32]).map(|v| v.len()), Some(4));
        // Nothing kept at capacity 0.
        let none: ShardCache<Vec<u8>> = ShardCache::new(0, |_| 1);
        none.insert([1; 32], Vec::new());
        assert_eq!(none.len(), 0);
    }
}
