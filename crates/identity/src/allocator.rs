//! [`IdentityAllocator`]: one numeric identity per label set, cluster-wide, through the
//! kvstore with Cilium's layout (cilium-facts §2.5):
//! - master key `cilium/state/identities/v1/id/<id>` → the labels' kvstore form (no lease);
//! - slave key `cilium/state/identities/v1/value/<labels>/<node>` → `<id>`, one per node using
//!   the identity, on the node's lease (so a dead node's claims expire).
//!
//! Allocating and collecting the identity of a label set take that set's lock
//! ([`LabelsLock`]), so two nodes allocating the same labels agree on one ID, and the
//! collector never deletes a master key a node is about to claim. Different label sets race
//! for free IDs with create-only writes, so they never share one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use cilium_kvstore::keys::{self, IDENTITY_ID_PREFIX, IDENTITY_VALUE_PREFIX};
use cilium_kvstore::{KvError, KvStore, LeasedKeys};
use tokio::sync::Mutex;

use crate::label::LabelError;
use crate::labels::Labels;
use crate::lock::{LabelsLock, LockConfig, LockError};
use crate::numeric::NumericIdentity;
use crate::reserved::ReservedIdentity;

/// An allocation, release, lookup or collection that failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// An empty label set has no identity.
    #[error("cannot allocate an identity for an empty label set")]
    EmptyLabels,
    /// The label set's lock could not be taken.
    #[error("cannot lock label set {labels:?}")]
    Lock {
        labels: String,
        #[source]
        source: LockError,
    },
    /// A store operation failed.
    #[error("identity allocator: cannot {action} {key:?}")]
    Store {
        action: &'static str,
        key: String,
        #[source]
        source: KvError,
    },
    /// Every ID of the cluster's range is taken.
    #[error("no free identity left in cluster {cluster_id}'s range {first}..={last}")]
    Exhausted {
        cluster_id: u8,
        first: u32,
        last: u32,
    },
    /// `release` of labels this node holds no identity for.
    #[error("label set {labels:?} holds no identity on this node")]
    NotHeld { labels: String },
    /// A master key whose value does not parse as labels.
    #[error("identity entry {key:?} does not hold valid labels")]
    CorruptEntry {
        key: String,
        #[source]
        source: LabelError,
    },
}

/// Who allocates, and from which range.
#[derive(Debug, Clone)]
pub struct AllocatorConfig {
    /// This node's name: the last segment of its slave keys.
    pub node: String,
    /// The cluster's ID (0–255): picks the range of IDs ([`NumericIdentity::global_range`]).
    pub cluster_id: u8,
    /// How label-set locks are taken.
    pub lock: LockConfig,
}

impl AllocatorConfig {
    /// Node `node` in cluster 0, default lock timings.
    pub fn new(node: impl Into<String>) -> Self {
        AllocatorConfig {
            node: node.into(),
            cluster_id: 0,
            lock: LockConfig::default(),
        }
    }
}

/// What one [`gc_once`](IdentityAllocator::gc_once) round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Identities of the cluster's range still in use.
    pub alive: usize,
    /// Identities deleted because no node uses them any more.
    pub deleted: usize,
}

/// An identity this node uses, and how many times.
struct Held {
    id: NumericIdentity,
    refs: usize,
}

/// Allocates global identities for one node. Shared by the node's endpoints (`&self`
/// methods); allocations and releases on one node are serialised.
pub struct IdentityAllocator {
    store: Arc<dyn KvStore>,
    slaves: Arc<LeasedKeys>,
    config: AllocatorConfig,
    range: RangeInclusive<u32>,
    /// By the labels' kvstore form.
    held: Mutex<HashMap<String, Held>>,
}

/// What a search for a label set's identity found.
enum Search {
    Found(NumericIdentity),
    /// Not allocated; these IDs of the range are taken.
    Absent(BTreeSet<u32>),
}

impl IdentityAllocator {
    /// An allocator writing this node's slave keys through `slaves` (usually the agent's
    /// [`LeasedKeys`], on a [`keys::LEASE_TTL`] lease).
    pub fn new(store: Arc<dyn KvStore>, slaves: Arc<LeasedKeys>, config: AllocatorConfig) -> Self {
        let range = NumericIdentity::global_range(config.cluster_id);
        IdentityAllocator {
            store,
            slaves,
            config,
            range,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The identity of `labels`, taking a reference on it for this node. Reserved label sets
    /// get their reserved number (not reference-counted); any other set gets the ID the
    /// cluster already uses for it, or the lowest free ID of the cluster's range.
    pub async fn allocate(&self, labels: &Labels) -> Result<NumericIdentity, AllocatorError> {
        if let Some(reserved) = ReservedIdentity::from_labels(labels) {
            return Ok(reserved.id());
        }
        if labels.is_empty() {
            return Err(AllocatorError::EmptyLabels);
        }
        let key = labels.to_kvstore_string();
        let mut held = self.held.lock().await;
        if let Some(entry) = held.get_mut(&key) {
            entry.refs += 1;
            return Ok(entry.id);
        }
        let lock = self.lock(&key).await?;
        let claimed = self.claim(&key).await;
        lock.unlock().await;
        let id = claimed?;
        tracing::debug!(identity = %id, labels = %labels, "allocated identity");
        held.insert(key, Held { id, refs: 1 });
        Ok(id)
    }

    /// Drops one reference on the identity of `labels`. Returns whether it was this node's
    /// last: then the node's slave key is deleted (if the store is unreachable, the reference
    /// is dropped anyway and the delete retried in the background), and the identity is
    /// collected once no node uses it. Reserved label sets return `false`.
    pub async fn release(&self, labels: &Labels) -> Result<bool, AllocatorError> {
        if ReservedIdentity::from_labels(labels).is_some() {
            return Ok(false);
        }
        let key = labels.to_kvstore_string();
        let mut held = self.held.lock().await;
        let Some(entry) = held.get_mut(&key) else {
            return Err(AllocatorError::NotHeld { labels: key });
        };
        entry.refs -= 1;
        if entry.refs > 0 {
            return Ok(false);
        }
        held.remove(&key);
        let slave = keys::identity_value(&key, &self.config.node);
        self.slaves
            .delete(&slave)
            .await
            .map_err(|source| AllocatorError::Store {
                action: "delete slave key",
                key: slave,
                source,
            })?;
        Ok(true)
    }

    /// The labels of identity `id`: a reserved identity's labels, or what the kvstore holds
    /// for a global one. Local-scope identities are not in the kvstore (`None`).
    pub async fn lookup(&self, id: NumericIdentity) -> Result<Option<Labels>, AllocatorError> {
        if let Some(reserved) = ReservedIdentity::from_id(id) {
            return Ok(Some(reserved.labels()));
        }
        let key = keys::identity_id(id.as_u32());
        let Some(entry) = self.get(&key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&entry);
        Labels::from_kvstore_str(&text)
            .map(Some)
            .map_err(|source| AllocatorError::CorruptEntry { key, source })
    }

    /// One garbage-collection round over the cluster's range (the operator's job in Cilium;
    /// any one node may run it): deletes every master key that no node's slave key claims.
    pub async fn gc_once(&self) -> Result<GcStats, AllocatorError> {
        let (masters, _) = self.list(IDENTITY_ID_PREFIX).await?;
        let (slaves, _) = self.list(IDENTITY_VALUE_PREFIX).await?;
        let in_use: HashSet<&str> = slaves
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(IDENTITY_VALUE_PREFIX))
            .filter_map(|rest| rest.rsplit_once('/').map(|(labels, _node)| labels))
            .collect();
        let mut stats = GcStats::default();
        for master in &masters {
            let Some(id) = master_id(&master.key) else {
                continue;
            };
            if !self.range.contains(&id) {
                continue;
            }
            let Ok(labels) = std::str::from_utf8(&master.value) else {
                tracing::warn!(key = %master.key, "identity entry is not UTF-8; leaving it");
                continue;
            };
            if in_use.contains(labels) || !self.collect(&master.key, labels).await? {
                stats.alive += 1;
            } else {
                stats.deleted += 1;
            }
        }
        Ok(stats)
    }

    /// Deletes master key `key` of `labels` if, under the labels' lock, no node claims it.
    /// Returns whether it was deleted.
    async fn collect(&self, key: &str, labels: &str) -> Result<bool, AllocatorError> {
        let lock = self.lock(labels).await?;
        let collected = async {
            if self.claimed_id(labels).await?.is_some() {
                return Ok(false);
            }
            // Still the same labels? (The ID may have been collected and reused since the
            // listing; nobody can reuse it while this master key exists.)
            if self.get(key).await?.as_deref() != Some(labels.as_bytes()) {
                return Ok(false);
            }
            self.store
                .delete(key)
                .await
                .map_err(|source| AllocatorError::Store {
                    action: "delete unused identity",
                    key: key.to_owned(),
                    source,
                })?;
            tracing::info!(key, labels, "deleted unused identity");
            Ok(true)
        }
        .await;
        lock.unlock().await;
        collected
    }

    /// Under the labels' lock: finds or creates the identity of `labels` and writes this
    /// node's slave key.
    async fn claim(&self, labels: &str) -> Result<NumericIdentity, AllocatorError> {
        let id = match self.search(labels).await? {
            Search::Found(id) => id,
            Search::Absent(taken) => self.create(labels, taken).await?,
        };
        let slave = keys::identity_value(labels, &self.config.node);
        if let Err(source) = self.slaves.put(&slave, id.to_string().into_bytes()).await {
            // Do not leave a claim behind that nobody will release; the delete is retried in
            // the background if the store stays unreachable.
            let _ = self.slaves.delete(&slave).await;
            return Err(AllocatorError::Store {
                action: "write slave key",
                key: slave,
                source,
            });
        }
        Ok(id)
    }

    /// The identity the cluster uses for `labels`: one a node claims (its master key
    /// re-created if it went missing), else a master key holding `labels`.
    async fn search(&self, labels: &str) -> Result<Search, AllocatorError> {
        if let Some(id) = self.claimed_id(labels).await? {
            let master = keys::identity_id(id.as_u32());
            match self.get(&master).await? {
                Some(value) if value == labels.as_bytes() => return Ok(Search::Found(id)),
                Some(_) => {
                    tracing::warn!(identity = %id, labels, "slave key names an identity of other labels; ignoring it");
                }
                None => {
                    if self.create_master(&master, labels).await? {
                        tracing::warn!(identity = %id, labels, "re-created missing identity master key");
                        return Ok(Search::Found(id));
                    }
                }
            }
        }
        let (masters, _) = self.list(IDENTITY_ID_PREFIX).await?;
        let mut taken = BTreeSet::new();
        for master in &masters {
            let Some(id) = master_id(&master.key) else {
                continue;
            };
            if master.value == labels.as_bytes() && self.range.contains(&id) {
                return Ok(Search::Found(NumericIdentity(id)));
            }
            taken.insert(id);
        }
        Ok(Search::Absent(taken))
    }

    /// The ID some node's slave key gives `labels`, if any.
    async fn claimed_id(&self, labels: &str) -> Result<Option<NumericIdentity>, AllocatorError> {
        let prefix = keys::identity_value_prefix(labels);
        let (claims, _) = self.list(&prefix).await?;
        Ok(claims
            .iter()
            .filter(|kv| keys::leaf(&prefix, &kv.key).is_some())
            .find_map(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok()))
    }

    /// Creates a master key for `labels` at the lowest ID of the range not in `taken` (nor
    /// taken by another node meanwhile).
    async fn create(
        &self,
        labels: &str,
        mut taken: BTreeSet<u32>,
    ) -> Result<NumericIdentity, AllocatorError> {
        let mut candidates = self.range.clone();
        loop {
            let Some(id) = candidates.by_ref().find(|id| !taken.contains(id)) else {
                return Err(AllocatorError::Exhausted {
                    cluster_id: self.config.cluster_id,
                    first: *self.range.start(),
                    last: *self.range.end(),
                });
            };
            if self.create_master(&keys::identity_id(id), labels).await? {
                return Ok(NumericIdentity(id));
            }
            taken.insert(id);
        }
    }

    async fn create_master(&self, key: &str, labels: &str) -> Result<bool, AllocatorError> {
        self.store
            .create_only(key, labels.as_bytes().to_vec(), None)
            .await
            .map_err(|source| AllocatorError::Store {
                action: "create identity",
                key: key.to_owned(),
                source,
            })
    }

    async fn lock(&self, labels: &str) -> Result<LabelsLock, AllocatorError> {
        LabelsLock::acquire(
            Arc::clone(&self.store),
            labels,
            &self.config.node,
            self.config.lock,
        )
        .await
        .map_err(|source| AllocatorError::Lock {
            labels: labels.to_owned(),
            source,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AllocatorError> {
        self.store
            .get(key)
            .await
            .map(|entry| entry.map(|kv| kv.value))
            .map_err(|source| AllocatorError::Store {
                action: "read",
                key: key.to_owned(),
                source,
            })
    }

    async fn list(
        &self,
        prefix: &str,
    ) -> Result<(Vec<cilium_kvstore::KeyValue>, i64), AllocatorError> {
        self.store
            .list(prefix)
            .await
            .map_err(|source| AllocatorError::Store {
                action: "list",
                key: prefix.to_owned(),
                source,
            })
    }
}

/// The ID of master key `key`, if it is one.
fn master_id(key: &str) -> Option<u32> {
    keys::leaf(IDENTITY_ID_PREFIX, key)?.parse().ok()
}
