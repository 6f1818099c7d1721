//! A distributed lock on one label set, held in the kvstore under
//! `cilium/state/identities/v1/locks/<labels>` (Cilium's allocator lock prefix), so that
//! allocating, and collecting, the identity of a label set happens on one node at a time.
//!
//! The lock key is created create-only on a lease of its own: a node that dies while holding
//! it releases it when the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use cilium_kvstore::{KvError, KvStore, LeaseId};
use tokio::time::Instant;

/// Where the identity allocator's locks live.
pub const LOCK_PREFIX: &str = "cilium/state/identities/v1/locks/";

const RETRY_FIRST: Duration = Duration::from_millis(2);
const RETRY_MAX: Duration = Duration::from_millis(100);

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The store failed while taking the lock.
    #[error("cannot take identity lock {key:?}")]
    Store {
        key: String,
        #[source]
        source: KvError,
    },
    /// Another node held the lock for longer than we were willing to wait.
    #[error("identity lock {key:?} still held by another node after {waited:?}")]
    Timeout { key: String, waited: Duration },
}

/// How locks are taken.
#[derive(Debug, Clone, Copy)]
pub struct LockConfig {
    /// Lease of a held lock: how long a dead holder blocks others. Cilium uses 25 s.
    pub ttl: Duration,
    /// How long to wait for a lock another node holds.
    pub wait: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            ttl: Duration::from_secs(25),
            wait: Duration::from_secs(30),
        }
    }
}

/// A held lock. Release it with [`unlock`](Self::unlock); a dropped guard leaves the lock to
/// expire with its lease.
pub struct LabelsLock {
    store: Arc<dyn KvStore>,
    key: String,
    lease: LeaseId,
}

impl LabelsLock {
    /// Takes the lock on the label set whose kvstore form is `labels`, waiting while another
    /// node holds it. `holder` is written as the lock's value, for whoever debugs the store.
    pub async fn acquire(
        store: Arc<dyn KvStore>,
        labels: &str,
        holder: &str,
        config: LockConfig,
    ) -> Result<Self, LockError> {
        let key = format!("{LOCK_PREFIX}{labels}");
        let store_error = |source| LockError::Store {
            key: key.clone(),
            source,
        };
        let lease = store.grant_lease(config.ttl).await.map_err(store_error)?;
        let started = Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            match store
                .create_only(&key, holder.as_bytes().to_vec(), Some(lease))
                .await
            {
                Ok(true) => return Ok(LabelsLock { store, key, lease }),
                Ok(false) if started.elapsed() < config.wait => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                outcome => {
                    let error = match outcome {
                        Err(source) => store_error(source),
                        _ => LockError::Timeout {
                            key: key.clone(),
                            waited: started.elapsed(),
                        },
                    };
                    // Best effort: the lease would expire on its own.
                    let _ = store.revoke(lease).await;
                    return Err(error);
                }
            }
        }
    }

    /// Releases the lock (revoking its lease deletes the lock key). A failure only means the
    /// lock stays until its lease expires.
    pub async fn unlock(self) {
        if let Err(error) = self.store.revoke(self.lease).await {
            tracing::warn!(
                key = %self.key,
                error = &error as &dyn std::error::Error,
                "cannot release identity lock; it expires with its lease"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_kvstore::MemoryStore;

    #[tokio::test]
    async fn second_holder_waits_until_the_first_unlocks() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let config = LockConfig {
            ttl: Duration::from_secs(25),
            wait: Duration::from_millis(50),
        };
        let first = LabelsLock::acquire(Arc::clone(&store), "k8s:a=b;", "n1", config)
            .await
            .expect("first lock");
        let held = store
            .get(&format!("{LOCK_PREFIX}k8s:a=b;"))
            .await
            .unwrap()
            .expect("lock key present while held");
        assert_eq!(held.value, b"n1");
        let blocked = LabelsLock::acquire(Arc::clone(&store), "k8s:a=b;", "n2", config).await;
        assert!(
            matches!(blocked, Err(LockError::Timeout { .. })),
            "second holder must time out while the first holds the lock"
        );
        let other = LabelsLock::acquire(Arc::clone(&store), "k8s:c=d;", "n2", config)
            .await
            .expect("a different label set is not blocked");
        other.unlock().await;
        first.unlock().await;
        let second = LabelsLock::acquire(Arc::clone(&store), "k8s:a=b;", "n2", config)
            .await
            .expect("lock free after unlock");
        second.unlock().await;
        let (left, _) = store.list(LOCK_PREFIX).await.unwrap();
        assert!(left.is_empty(), "unlock removes lock keys: {left:?}");
    }
}
