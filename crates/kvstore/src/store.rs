//! The [`KvStore`] trait: the operations the agent needs from a cluster-wide key-value store.
//!
//! Both backends ([`EtcdStore`](crate::EtcdStore) and [`MemoryStore`](crate::MemoryStore)) follow
//! etcd's model: every write bumps one store-wide revision, each key remembers the revision of
//! its last write (`mod_revision`), keys may hang off a lease that deletes them when it expires,
//! and watches can start from any revision that has not been compacted.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::KvError;
use crate::status::StoreStatus;
use crate::types::{Expect, KeyValue, LeaseId};
use crate::watch::Watcher;

/// A cluster-wide key-value store. Held by the agent as `Arc<dyn KvStore>`.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The entry at `key`, if there is one.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError>;

    /// Every entry whose key starts with `prefix`, sorted by key, and the store revision the
    /// listing was taken at. Watch from `revision + 1` to follow changes after the listing.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), KvError>;

    /// Writes `value` at `key`, attached to `lease` (or to no lease). Returns the new revision.
    /// Fails with [`KvError::LeaseNotFound`] when the lease has expired or was revoked.
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<i64, KvError>;

    /// Deletes `key`. Returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;

    /// Deletes every key under `prefix`. Returns how many there were.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError>;

    /// Writes `value` at `key` only if the key does not exist. Returns whether it was written.
    async fn create_only(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<bool, KvError> {
        self.compare_and_swap(key, Expect::Absent, value, lease)
            .await
    }

    /// Writes `value` at `key` only if the key is as `expect`ed, atomically. Returns whether
    /// it was written; of several contenders expecting the same state, exactly one wins.
    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Expect,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<bool, KvError>;

    /// Grants a lease that expires `ttl` after its last keep-alive. etcd counts in whole
    /// seconds, so both backends round `ttl` up to a whole number of seconds (at least one).
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, KvError>;

    /// Renews `lease` for its full TTL. Fails with [`KvError::LeaseNotFound`] once it is gone.
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), KvError>;

    /// Ends `lease` now, deleting every key attached to it.
    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError>;

    /// Forgets history up to and including `revision`: watches can no longer start there.
    async fn compact(&self, revision: i64) -> Result<(), KvError>;

    /// Follows changes under `prefix` from `from_revision` on; with `0` (or less), first a
    /// `Put` for every current entry, then the changes after them. The watcher survives
    /// disconnects and compaction; see [`Watcher`] for the guarantees. Needs a running tokio
    /// runtime.
    fn watch(&self, prefix: &str, from_revision: i64) -> Watcher;

    /// Connectivity as `cilium status` shows it. Never fails: trouble is part of the status.
    async fn status(&self) -> StoreStatus;
}
