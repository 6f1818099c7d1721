//! Taking this node's pod CIDR from the cluster pool (Cilium's `cluster-pool` IPAM).
//!
//! Each CIDR in use has a key `cilium/state/podcidrs/v1/<cluster>/<a.b.c.d_len>` naming its
//! node. A node takes the first free CIDR with a create-only write, so of two nodes racing for
//! the same CIDR exactly one wins and the other moves on to the next. The claim then lives on
//! the node's lease with its other keys, so the CIDR returns to the pool when the node leaves.

use std::collections::BTreeSet;

use cilium_ipam::ClusterPool;
use cilium_kvstore::{KvError, KvStore};
use ipnet::Ipv4Net;

const PREFIX: &str = "cilium/state/podcidrs/v1/";

/// Attempts before giving up when other nodes keep winning the race.
const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PodCidrError {
    #[error("the cluster pool {pool} has no free /{mask} left")]
    Exhausted { pool: Ipv4Net, mask: u8 },
    #[error("lost the race for a pod CIDR {attempts} times in a row")]
    Contended { attempts: usize },
    #[error("claiming a pod CIDR in the kvstore")]
    Store(#[from] KvError),
}

/// Prefix of all claims in `cluster`.
pub fn claims_prefix(cluster: &str) -> String {
    format!("{PREFIX}{cluster}/")
}

/// The key claiming `cidr` in `cluster`.
pub fn claim_key(cluster: &str, cidr: Ipv4Net) -> String {
    format!(
        "{}{}_{}",
        claims_prefix(cluster),
        cidr.network(),
        cidr.prefix_len()
    )
}

fn cidr_of(cluster: &str, key: &str) -> Option<Ipv4Net> {
    let leaf = key.strip_prefix(&claims_prefix(cluster))?;
    let (ip, len) = leaf.split_once('_')?;
    Ipv4Net::new(ip.parse().ok()?, len.parse().ok()?).ok()
}

/// Claims a pod CIDR for `node`: the one it already holds, else the first free one.
pub async fn claim(
    store: &dyn KvStore,
    pool: &ClusterPool,
    cluster: &str,
    node: &str,
) -> Result<Ipv4Net, PodCidrError> {
    for _ in 0..MAX_ATTEMPTS {
        let (claims, _) = store.list(&claims_prefix(cluster)).await?;
        if let Some(ours) = claims
            .iter()
            .find(|kv| kv.value == node.as_bytes())
            .and_then(|kv| cidr_of(cluster, &kv.key))
        {
            return Ok(ours);
        }
        let taken: BTreeSet<Ipv4Net> = claims
            .iter()
            .filter_map(|kv| cidr_of(cluster, &kv.key))
            .collect();
        let cidr = pool.first_free(&taken).ok_or(PodCidrError::Exhausted {
            pool: pool.pool(),
            mask: pool.mask(),
        })?;
        if store
            .create_only(&claim_key(cluster, cidr), node.as_bytes().to_vec(), None)
            .await?
        {
            return Ok(cidr);
        }
    }
    Err(PodCidrError::Contended {
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cilium_kvstore::MemoryStore;

    use super::*;

    fn pool() -> ClusterPool {
        ClusterPool::new("10.0.0.0/16".parse().unwrap(), 24).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        let cidr: Ipv4Net = "10.0.3.0/24".parse().unwrap();
        let key = claim_key("default", cidr);
        assert_eq!(key, "cilium/state/podcidrs/v1/default/10.0.3.0_24");
        assert_eq!(cidr_of("default", &key), Some(cidr));
        assert_eq!(cidr_of("other", &key), None);
    }

    #[tokio::test]
    async fn concurrent_nodes_never_share_a_cidr() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                claim(store.as_ref(), &pool(), "default", &format!("node{i}"))
                    .await
                    .unwrap()
            }));
        }
        let mut cidrs = BTreeSet::new();
        for task in tasks {
            assert!(
                cidrs.insert(task.await.unwrap()),
                "a CIDR was handed out twice"
            );
        }
        assert_eq!(cidrs.len(), 8);
    }

    #[tokio::test]
    async fn a_node_gets_its_own_claim_back() {
        let store = MemoryStore::new();
        let first = claim(&store, &pool(), "default", "node1").await.unwrap();
        claim(&store, &pool(), "default", "node2").await.unwrap();
        assert_eq!(
            claim(&store, &pool(), "default", "node1").await.unwrap(),
            first
        );
    }

    #[tokio::test]
    async fn a_full_pool_is_an_error() {
        let store = MemoryStore::new();
        let tiny = ClusterPool::new("10.9.0.0/24".parse().unwrap(), 24).unwrap();
        claim(&store, &tiny, "default", "a").await.unwrap();
        let err = claim(&store, &tiny, "default", "b").await.unwrap_err();
        assert!(matches!(err, PodCidrError::Exhausted { .. }), "{err}");
    }
}
