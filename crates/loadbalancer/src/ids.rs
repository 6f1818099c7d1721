//! Stable numeric IDs for keys (backend addresses, frontend addresses): a key keeps its
//! ID for as long as it is in use, and a released ID is handed out again only after every
//! other free ID has been, so that datapath state naming an old ID (conntrack entries)
//! is unlikely to meet a new owner.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Allocates IDs in `min..=max` to keys.
#[derive(Debug, Clone)]
pub(crate) struct IdAllocator<K> {
    by_key: HashMap<K, u32>,
    in_use: HashSet<u32>,
    /// Where the search for a free ID starts.
    next: u32,
    min: u32,
    max: u32,
}

impl<K: Hash + Eq + Clone> IdAllocator<K> {
    pub(crate) fn new(min: u32, max: u32) -> Self {
        IdAllocator {
            by_key: HashMap::new(),
            in_use: HashSet::new(),
            next: min,
            min,
            max,
        }
    }

    /// The ID of `key`, allocating one if it has none; `None` when every ID is taken.
    pub(crate) fn get_or_allocate(&mut self, key: &K) -> Option<u32> {
        if let Some(id) = self.by_key.get(key) {
            return Some(*id);
        }
        let span = u64::from(self.max - self.min) + 1;
        for _ in 0..span {
            let candidate = self.next;
            self.next = if candidate == self.max {
                self.min
            } else {
                candidate + 1
            };
            if self.in_use.insert(candidate) {
                self.by_key.insert(key.clone(), candidate);
                return Some(candidate);
            }
        }
        None
    }

    /// Records that `key` already has `id` (read back from the datapath after a restart);
    /// new IDs continue after the highest restored one. Returns false, changing nothing,
    /// when the key or the ID is already known or the ID is out of range.
    pub(crate) fn restore(&mut self, key: K, id: u32) -> bool {
        if !(self.min..=self.max).contains(&id)
            || self.by_key.contains_key(&key)
            || !self.in_use.insert(id)
        {
            return false;
        }
        self.by_key.insert(key, id);
        if self.next <= id {
            self.next = if id == self.max { self.min } else { id + 1 };
        }
        true
    }

    /// Releases the IDs of the keys `keep` rejects.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let in_use = &mut self.in_use;
        self.by_key.retain(|key, id| {
            let kept = keep(key);
            if !kept {
                in_use.remove(id);
            }
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use super::IdAllocator;

    #[test]
    fn keys_keep_their_ids() {
        let mut ids = IdAllocator::new(1, 100);
        let a = ids.get_or_allocate(&"a");
        let b = ids.get_or_allocate(&"b");
        assert_eq!((a, b), (Some(1), Some(2)));
        assert_eq!(ids.get_or_allocate(&"a"), Some(1));
    }

    #[test]
    fn released_ids_come_back_only_after_the_others() {
        let mut ids = IdAllocator::new(1, 3);
        assert_eq!(ids.get_or_allocate(&"a"), Some(1));
        ids.retain(|k| *k != "a");
        assert_eq!(ids.get_or_allocate(&"b"), Some(2));
        assert_eq!(ids.get_or_allocate(&"c"), Some(3));
        assert_eq!(
            ids.get_or_allocate(&"d"),
            Some(1),
            "wraps around to the released ID"
        );
        assert_eq!(ids.get_or_allocate(&"e"), None, "all three taken");
    }

    #[test]
    fn restored_ids_are_kept_and_skipped() {
        let mut ids = IdAllocator::new(1, 10);
        assert!(ids.restore("x", 4));
        assert!(!ids.restore("y", 4), "ID taken");
        assert!(!ids.restore("x", 5), "key known");
        assert!(!ids.restore("z", 11), "out of range");
        assert_eq!(ids.get_or_allocate(&"x"), Some(4));
        assert_eq!(
            ids.get_or_allocate(&"n"),
            Some(5),
            "continues after the restored IDs"
        );
    }
}
