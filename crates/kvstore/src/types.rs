//! Values that cross the [`KvStore`](crate::KvStore) interface: entries, leases, watch events
//! and compare-and-swap expectations.

use std::fmt;

/// Identifies a lease. Keys attached to a lease are deleted when the lease expires or is
/// revoked, so a node that dies takes its entries with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // etcd prints lease IDs in hex; do the same so they can be matched with etcd's logs.
        write!(f, "{:x}", self.0)
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Store revision of the last write to this key.
    pub mod_revision: i64,
    /// Lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or its value changed.
    Put(KeyValue),
    /// The key was deleted (explicitly, by its lease expiring, or — in a resync after
    /// compaction — it vanished while the watcher could not see the history).
    Delete { key: String, mod_revision: i64 },
}

impl WatchEvent {
    /// The key this event is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The store revision at which the change happened.
    pub fn revision(&self) -> i64 {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// What [`compare_and_swap`](crate::KvStore::compare_and_swap) expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist.
    Absent,
    /// The key exists and was last written at this revision.
    ModRevision(i64),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Absent => write!(f, "absent"),
            Expect::ModRevision(rev) => write!(f, "mod_revision={rev}"),
        }
    }
}

/// `ttl` in whole seconds, rounded up, at least one: the granularity etcd grants leases in.
pub(crate) fn lease_seconds(ttl: std::time::Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}
