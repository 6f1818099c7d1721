//! [`LeasedKeys`]: the entries one agent owns (its node entry, its pods' IP entries), kept on
//! one lease so they vanish when the agent dies, and written back when they were lost while
//! the agent lives.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::error::KvError;
use crate::store::KvStore;
use crate::types::LeaseId;

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Keys owned by this process, all attached to one lease that a background task keeps alive
/// (renewing every third of the TTL).
///
/// When the store is unreachable, writes are remembered and retried with backoff. When the
/// lease is found gone (revoked, or expired during a long outage), the task grants a new lease
/// and writes every owned key again. So the store converges to what this process owns as soon
/// as it is reachable, and a process that dies leaves its keys to expire with the lease.
///
/// Needs a running tokio runtime. Dropping it stops renewing (the keys expire after the TTL);
/// [`close`](Self::close) removes them at once.
pub struct LeasedKeys {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    store: Arc<dyn KvStore>,
    ttl: Duration,
    owned: Mutex<Owned>,
    wake: Notify,
}

/// What this process owns, and what of it the store does not have yet.
#[derive(Default)]
struct Owned {
    lease: Option<LeaseId>,
    values: BTreeMap<String, Vec<u8>>,
    unwritten: BTreeSet<String>,
    undeleted: BTreeSet<String>,
}

impl Owned {
    /// The lease is gone, and with it every key in the store: all must be written again.
    fn lose_lease(&mut self) {
        self.lease = None;
        self.unwritten = self.values.keys().cloned().collect();
    }
}

impl LeasedKeys {
    /// Starts owning keys in `store` on a lease of `ttl` (Cilium uses
    /// [`keys::LEASE_TTL`](crate::keys::LEASE_TTL), 15 minutes). The lease is granted with the
    /// first key.
    pub fn new(store: Arc<dyn KvStore>, ttl: Duration) -> Self {
        let shared = Arc::new(Shared {
            store,
            ttl,
            owned: Mutex::new(Owned::default()),
            wake: Notify::new(),
        });
        let task = tokio::spawn(maintain(Arc::clone(&shared)));
        LeasedKeys { shared, task }
    }

    /// Owns `key` with `value` and writes it now. On error the key stays owned and the write
    /// is retried in the background until it succeeds. While the store is unreachable this
    /// waits for up to a couple of request timeouts: callers on a path that must not stall
    /// (anything forwarding traffic) should not await it there.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let mut owned = self.shared.owned.lock().await;
        owned.undeleted.remove(key);
        owned.values.insert(key.to_owned(), value);
        owned.unwritten.insert(key.to_owned());
        self.shared.sync_or_wake(&mut owned).await
    }

    /// Stops owning `key` and deletes it now. On error the delete is retried in the
    /// background.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let mut owned = self.shared.owned.lock().await;
        owned.values.remove(key);
        owned.unwritten.remove(key);
        owned.undeleted.insert(key.to_owned());
        self.shared.sync_or_wake(&mut owned).await
    }

    /// The lease the keys are on now, if one is granted.
    pub async fn lease(&self) -> Option<LeaseId> {
        self.shared.owned.lock().await.lease
    }

    /// Every owned key is in the store on the current lease, and every disowned one is gone.
    pub async fn is_synced(&self) -> bool {
        let owned = self.shared.owned.lock().await;
        owned.unwritten.is_empty()
            && owned.undeleted.is_empty()
            && (owned.values.is_empty() || owned.lease.is_some())
    }

    /// Stops renewing and revokes the lease, deleting every owned key now.
    pub async fn close(self) -> Result<(), KvError> {
        self.task.abort();
        let mut owned = self.shared.owned.lock().await;
        match owned.lease.take() {
            Some(lease) => match self.shared.store.revoke(lease).await {
                Err(error) if !error.is_lease_not_found() => Err(error),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for LeasedKeys {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    /// Syncs now; on failure leaves the rest to the background task.
    async fn sync_or_wake(&self, owned: &mut Owned) -> Result<(), KvError> {
        let result = self.sync(owned).await;
        if result.is_err() {
            self.wake.notify_one();
        }
        result
    }

    /// Brings the store in line with `owned`; when the lease turns out to be gone, grants a
    /// new one and writes everything again, once.
    async fn sync(&self, owned: &mut Owned) -> Result<(), KvError> {
        match self.sync_once(owned).await {
            Err(error) if error.is_lease_not_found() => {
                tracing::info!(
                    keys = owned.values.len(),
                    "kvstore lease gone; granting a new one and writing owned keys again"
                );
                owned.lose_lease();
                self.sync_once(owned).await
            }
            other => other,
        }
    }

    async fn sync_once(&self, owned: &mut Owned) -> Result<(), KvError> {
        while let Some(key) = owned.undeleted.first().cloned() {
            self.store.delete(&key).await?;
            owned.undeleted.remove(&key);
        }
        if owned.unwritten.is_empty() {
            return Ok(());
        }
        let lease = match owned.lease {
            Some(lease) => lease,
            None => {
                let lease = self.store.grant_lease(self.ttl).await?;
                owned.lease = Some(lease);
                lease
            }
        };
        while let Some(key) = owned.unwritten.first().cloned() {
            let value = owned.values.get(&key).cloned().unwrap_or_default();
            self.store.put(&key, value, Some(lease)).await?;
            owned.unwritten.remove(&key);
        }
        Ok(())
    }

    /// Renews the lease and finishes pending writes.
    async fn renew(&self) -> Result<(), KvError> {
        let mut owned = self.owned.lock().await;
        if let Some(lease) = owned.lease {
            match self.store.keep_alive(lease).await {
                Ok(()) => {}
                Err(error) if error.is_lease_not_found() => {
                    tracing::info!(
                        lease = %lease,
                        keys = owned.values.len(),
                        "kvstore lease expired; granting a new one and writing owned keys again"
                    );
                    owned.lose_lease();
                }
                Err(error) => return Err(error),
            }
        }
        self.sync(&mut owned).await
    }
}

/// Renews every third of the TTL while things work; retries with backoff while they do not.
async fn maintain(shared: Arc<Shared>) {
    let renew_every = shared.ttl / 3;
    let mut retry = None::<Duration>;
    loop {
        let pause = retry.unwrap_or(renew_every);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shared.wake.notified() => {}
        }
        match shared.renew().await {
            Ok(()) => retry = None,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "cannot renew kvstore lease or write owned keys; retrying"
                );
                retry = Some(retry.map_or(RETRY_FIRST, |r| (r * 2).min(RETRY_MAX)));
            }
        }
    }
}
