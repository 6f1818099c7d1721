//! The cluster pool: the range pod CIDRs are carved from, one per node (Cilium's
//! `cluster-pool` IPAM mode; default 10.0.0.0/8 in /24s).
//!
//! Pure: it only says which CIDRs exist and which is the first free one; claiming one so that
//! two nodes never get the same is the kvstore's compare-and-swap, done by the agent.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

/// Cilium's default cluster pool.
pub const DEFAULT_CLUSTER_POOL: &str = "10.0.0.0/8";
/// Cilium's default per-node mask size.
pub const DEFAULT_NODE_MASK: u8 = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterPoolError {
    #[error("node mask /{mask} must be between the pool's /{pool_prefix} and /30")]
    BadMask { mask: u8, pool_prefix: u8 },
}

/// A pool of node pod CIDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPool {
    pool: Ipv4Net,
    mask: u8,
}

impl ClusterPool {
    pub fn new(pool: Ipv4Net, mask: u8) -> Result<Self, ClusterPoolError> {
        let pool = pool.trunc();
        if mask < pool.prefix_len() || mask > 30 {
            return Err(ClusterPoolError::BadMask {
                mask,
                pool_prefix: pool.prefix_len(),
            });
        }
        Ok(Self { pool, mask })
    }

    pub fn pool(&self) -> Ipv4Net {
        self.pool
    }

    pub fn mask(&self) -> u8 {
        self.mask
    }

    /// Whether `cidr` is one of this pool's node CIDRs.
    pub fn is_node_cidr(&self, cidr: Ipv4Net) -> bool {
        cidr.prefix_len() == self.mask && self.pool.contains(&cidr) && cidr.trunc() == cidr
    }

    /// The lowest node CIDR not in `taken`.
    pub fn first_free(&self, taken: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
        self.pool
            .subnets(self.mask)
            .expect("mask validated in new")
            .find(|cidr| !taken.contains(cidr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_cidrs_in_order_passing_over_taken_ones() {
        let pool = ClusterPool::new(net(DEFAULT_CLUSTER_POOL), DEFAULT_NODE_MASK).unwrap();
        let mut taken = BTreeSet::new();
        assert_eq!(pool.first_free(&taken), Some(net("10.0.0.0/24")));
        taken.insert(net("10.0.0.0/24"));
        taken.insert(net("10.0.2.0/24"));
        assert_eq!(pool.first_free(&taken), Some(net("10.0.1.0/24")));
        taken.insert(net("10.0.1.0/24"));
        assert_eq!(pool.first_free(&taken), Some(net("10.0.3.0/24")));
    }

    #[test]
    fn a_full_pool_has_nothing_free() {
        let pool = ClusterPool::new(net("10.1.0.0/23"), 24).unwrap();
        let taken: BTreeSet<_> = [net("10.1.0.0/24"), net("10.1.1.0/24")].into();
        assert_eq!(pool.first_free(&taken), None);
    }

    #[test]
    fn node_cidrs_are_recognised() {
        let pool = ClusterPool::new(net("10.0.0.0/8"), 24).unwrap();
        assert!(pool.is_node_cidr(net("10.4.7.0/24")));
        assert!(!pool.is_node_cidr(net("10.4.7.0/25")));
        assert!(!pool.is_node_cidr(net("11.0.0.0/24")));
    }

    #[test]
    fn bad_masks_are_refused() {
        assert!(ClusterPool::new(net("10.0.0.0/16"), 8).is_err());
        assert!(ClusterPool::new(net("10.0.0.0/16"), 31).is_err());
    }
}
