//! The lab's address plan, in one place: the underlay subnet, each node's underlay address,
//! etcd's address and ports, and the cluster pool the agents take their pod CIDRs from.
//!
//! Node k (1-based) gets underlay address 172.18.0.(10+k)/24; etcd sits at 172.18.0.2. Pod
//! CIDRs are not planned here: each agent claims the next free /24 of 10.0.0.0/8 from the
//! cluster pool in the kvstore, as Cilium's cluster-pool IPAM does.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::names::NodeName;

/// Prefix length of the underlay subnet 172.18.0.0/24.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;

/// Most nodes one lab can have (their underlay addresses fit the /24 after etcd's).
pub const MAX_NODES: u8 = 64;

/// etcd's address on the underlay.
pub const ETCD_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);

/// etcd's client port.
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// etcd's peer port (one member; nobody connects to it).
pub const ETCD_PEER_PORT: u16 = 2380;

/// Port of each agent's Hubble server on its underlay address (Cilium's 4244).
pub const HUBBLE_PORT: u16 = 4244;

/// Port of the lab's Hubble relay, next to etcd (Cilium's 4245).
pub const RELAY_PORT: u16 = 4245;

/// The range the cluster pool hands node pod CIDRs out of.
pub const CLUSTER_POOL: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8);

/// Prefix length of each node's pod CIDR from the cluster pool.
pub const POD_CIDR_PREFIX_LEN: u8 = 24;

/// Default lease TTL, in seconds, of the agents' kvstore entries: how long a node that died
/// stays known to the others. Cilium's own default is 15 minutes; a lab wants to see a dead
/// node go quickly.
pub const DEFAULT_LEASE_TTL_SECS: u32 = 20;

/// The node's address on the underlay.
pub fn underlay_ip(node: NodeName) -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, 10 + node.index())
}

/// The URL agents reach etcd at.
pub fn etcd_client_url() -> String {
    format!("http://{ETCD_IP}:{ETCD_CLIENT_PORT}")
}

/// The URL etcd's single member announces to itself.
pub fn etcd_peer_url() -> String {
    format!("http://{ETCD_IP}:{ETCD_PEER_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_etcd_get_distinct_underlay_addresses() {
        assert_eq!(underlay_ip(NodeName::new(1)), Ipv4Addr::new(172, 18, 0, 11));
        let last = underlay_ip(NodeName::new(MAX_NODES));
        assert_eq!(last, Ipv4Addr::new(172, 18, 0, 74));
        let underlay = Ipv4Net::new(Ipv4Addr::new(172, 18, 0, 0), UNDERLAY_PREFIX_LEN).unwrap();
        assert!(underlay.contains(&ETCD_IP) && underlay.contains(&last));
        assert!((1..=MAX_NODES).all(|k| underlay_ip(NodeName::new(k)) != ETCD_IP));
    }

    #[test]
    fn etcd_urls_name_its_underlay_address() {
        assert_eq!(etcd_client_url(), "http://172.18.0.2:2379");
        assert_eq!(etcd_peer_url(), "http://172.18.0.2:2380");
    }

    #[test]
    fn the_pool_holds_more_pod_cidrs_than_nodes() {
        assert_eq!(CLUSTER_POOL.to_string(), "10.0.0.0/8");
        let cidrs = 1u32 << (POD_CIDR_PREFIX_LEN - CLUSTER_POOL.prefix_len());
        assert!(cidrs >= u32::from(MAX_NODES));
    }
}
