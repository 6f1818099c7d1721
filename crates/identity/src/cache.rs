//! [`IdentityCache`]: every global identity of the cluster (ID → labels), kept in step with
//! the kvstore's master keys by list + watch, for lookups on the datapath's side and for
//! `cilium identity list/get`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use cilium_kvstore::keys::{self, IDENTITY_ID_PREFIX};
use cilium_kvstore::{KvError, KvStore, WatchEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::labels::Labels;
use crate::numeric::NumericIdentity;

/// The cache could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Listing the identities failed.
    #[error("cannot list identities under {prefix:?}")]
    List {
        prefix: &'static str,
        #[source]
        source: KvError,
    },
}

type IdentityMap = BTreeMap<NumericIdentity, Labels>;

struct Shared {
    identities: RwLock<IdentityMap>,
    /// Bumped after every change, to wake waiters.
    version: watch::Sender<u64>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, IdentityMap> {
        // A writer that panicked leaves a map that is still consistent (each event is one
        // insert or remove), so a poisoned lock is used as is.
        self.identities
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply(&self, event: WatchEvent) {
        let Some(id) = keys::leaf(IDENTITY_ID_PREFIX, event.key()).and_then(|id| id.parse().ok())
        else {
            tracing::warn!(
                key = event.key(),
                "ignoring identity entry with a malformed key"
            );
            return;
        };
        let mut identities = self
            .identities
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            WatchEvent::Put(kv) => {
                let text = String::from_utf8_lossy(&kv.value);
                match Labels::from_kvstore_str(&text) {
                    Ok(labels) => {
                        identities.insert(NumericIdentity(id), labels);
                    }
                    Err(error) => {
                        tracing::warn!(
                            key = %kv.key,
                            error = &error as &dyn std::error::Error,
                            "ignoring identity entry with malformed labels"
                        );
                        return;
                    }
                }
            }
            WatchEvent::Delete { .. } => {
                identities.remove(&NumericIdentity(id));
            }
        }
        drop(identities);
        self.version.send_modify(|v| *v += 1);
    }
}

/// The cluster's global identities, following the kvstore. Dropping it stops following.
pub struct IdentityCache {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl IdentityCache {
    /// Lists the identities in `store` and follows changes from then on (through outages, as
    /// [`Watcher`](cilium_kvstore::Watcher) does). Needs a running tokio runtime.
    pub async fn start(store: Arc<dyn KvStore>) -> Result<Self, CacheError> {
        let (entries, revision) =
            store
                .list(IDENTITY_ID_PREFIX)
                .await
                .map_err(|source| CacheError::List {
                    prefix: IDENTITY_ID_PREFIX,
                    source,
                })?;
        let shared = Arc::new(Shared {
            identities: RwLock::new(BTreeMap::new()),
            version: watch::channel(0).0,
        });
        for kv in entries {
            shared.apply(WatchEvent::Put(kv));
        }
        let mut watcher = store.watch(IDENTITY_ID_PREFIX, revision + 1);
        let follower = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Some(event) = watcher.recv().await {
                follower.apply(event);
            }
        });
        Ok(IdentityCache { shared, task })
    }

    /// The labels of identity `id`.
    pub fn get(&self, id: NumericIdentity) -> Option<Labels> {
        self.shared.read().get(&id).cloned()
    }

    /// The identity whose labels are `labels`.
    pub fn find(&self, labels: &Labels) -> Option<NumericIdentity> {
        self.shared
            .read()
            .iter()
            .find_map(|(id, l)| (l == labels).then_some(*id))
    }

    /// Every identity, by ID.
    pub fn list(&self) -> Vec<(NumericIdentity, Labels)> {
        self.shared
            .read()
            .iter()
            .map(|(id, labels)| (*id, labels.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    /// A receiver that sees a new version after every change to the cached identities.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.read().is_empty()
    }

    /// Waits until `condition` holds for the cached identities (checked now and after every
    /// change). Bound it with a timeout where it may never hold.
    pub async fn wait_until(
        &self,
        mut condition: impl FnMut(&BTreeMap<NumericIdentity, Labels>) -> bool,
    ) {
        let mut changes = self.shared.version.subscribe();
        loop {
            if condition(&self.shared.read()) {
                return;
            }
            if changes.changed().await.is_err() {
                // Cannot happen while `self` holds the sender; nothing more will change.
                return;
            }
        }
    }
}

impl Drop for IdentityCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}
