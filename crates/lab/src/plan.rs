//! The lab's address plan, in one place: the underlay subnet and each node's underlay address
//! and pod CIDR.
//!
//! Node k (1-based) gets underlay address 172.18.0.(10+k)/24 and pod CIDR 10.0.k.0/24. When
//! cluster-pool IPAM through the kvstore arrives, only [`pod_cidr`] changes.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::names::NodeName;

/// Prefix length of the underlay subnet 172.18.0.0/24.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;

/// Most nodes one lab can have (the underlay /24 and the 10.0.k.0/24 plan both fit).
pub const MAX_NODES: u8 = 64;

/// The node's address on the underlay.
pub fn underlay_ip(node: NodeName) -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, 10 + node.index())
}

/// The range the node's agent allocates pod addresses from.
pub fn pod_cidr(node: NodeName) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 0, node.index(), 0), 24).expect("24 is a valid IPv4 prefix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_addresses_and_ranges() {
        assert_eq!(underlay_ip(NodeName::new(1)), Ipv4Addr::new(172, 18, 0, 11));
        assert_eq!(pod_cidr(NodeName::new(1)).to_string(), "10.0.1.0/24");
        let last = NodeName::new(MAX_NODES);
        assert_eq!(underlay_ip(last), Ipv4Addr::new(172, 18, 0, 74));
        assert_eq!(pod_cidr(last).to_string(), "10.0.64.0/24");
    }
}
