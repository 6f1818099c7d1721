//! [`NumericIdentity`]: the 32-bit security identity carried in BPF maps, packet marks and
//! the VXLAN VNI, with Cilium's numbers and bit layout (cilium-facts §2.2, §2.3):
//! bits 0–15 the identity, bits 16–23 the cluster ID, bit 24 the local-scope flag.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A security identity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NumericIdentity(pub u32);

/// Where the cluster ID sits.
pub const CLUSTER_ID_SHIFT: u32 = 16;
/// Marks identities that are only meaningful on one node (CIDR and FQDN identities).
pub const LOCAL_IDENTITY_FLAG: u32 = 1 << 24;
/// The scope byte of an identity.
pub const SCOPE_MASK: u32 = 0xFF00_0000;

impl NumericIdentity {
    /// No identity: not yet known, or invalid.
    pub const UNKNOWN: Self = Self(0);
    /// The local host, including hostNetwork pods.
    pub const HOST: Self = Self(1);
    /// Anything outside the cluster.
    pub const WORLD: Self = Self(2);
    /// Endpoints Cilium does not manage.
    pub const UNMANAGED: Self = Self(3);
    /// The cilium-health endpoint.
    pub const HEALTH: Self = Self(4);
    /// Endpoints whose labels are not resolved yet.
    pub const INIT: Self = Self(5);
    /// Every other node of the cluster.
    pub const REMOTE_NODE: Self = Self(6);
    /// The Kubernetes API server.
    pub const KUBE_APISERVER: Self = Self(7);
    /// The Envoy ingress (L7 load balancer) source.
    pub const INGRESS: Self = Self(8);
    /// IPv4 outside the cluster (dual stack only).
    pub const WORLD_IPV4: Self = Self(9);
    /// IPv6 outside the cluster (dual stack only).
    pub const WORLD_IPV6: Self = Self(10);
    /// Start of the user-reserved range (128–255).
    pub const USER_RESERVED: Self = Self(128);
    /// First identity the global allocator hands out in cluster 0.
    pub const MIN_GLOBAL: Self = Self(256);
    /// First local-scope (CIDR/FQDN) identity.
    pub const MIN_LOCAL: Self = Self(LOCAL_IDENTITY_FLAG | 1);
    /// Last local-scope identity.
    pub const MAX_LOCAL: Self = Self(LOCAL_IDENTITY_FLAG | 0x00FF_FFFF);

    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// One of Cilium's reserved identities (1–10).
    pub fn is_reserved(self) -> bool {
        crate::reserved::ReservedIdentity::from_id(self).is_some()
    }

    /// Only meaningful on this node (scope byte 0x01): never to be sent over a tunnel, whose
    /// 24-bit VNI would drop the scope.
    pub fn is_local_scope(self) -> bool {
        self.0 & SCOPE_MASK == LOCAL_IDENTITY_FLAG
    }

    /// The cluster the identity was allocated in (bits 16–23).
    pub fn cluster_id(self) -> u8 {
        // The mask keeps one byte, so the cast cannot lose anything.
        ((self.0 >> CLUSTER_ID_SHIFT) & 0xFF) as u8
    }

    /// The identities the global allocator of cluster `cluster_id` hands out: 256–65535 for
    /// cluster 0, `c<<16 ..= (c<<16) | 0xFFFF` for cluster `c`.
    pub fn global_range(cluster_id: u8) -> RangeInclusive<u32> {
        let base = u32::from(cluster_id) << CLUSTER_ID_SHIFT;
        let first = if cluster_id == 0 {
            Self::MIN_GLOBAL.0
        } else {
            base
        };
        first..=base | 0xFFFF
    }
}

impl fmt::Display for NumericIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for NumericIdentity {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(NumericIdentity)
    }
}

impl From<u32> for NumericIdentity {
    fn from(id: u32) -> Self {
        NumericIdentity(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_numbers_are_ciliums() {
        assert_eq!(NumericIdentity::HOST.as_u32(), 1);
        assert_eq!(NumericIdentity::WORLD.as_u32(), 2);
        assert_eq!(NumericIdentity::REMOTE_NODE.as_u32(), 6);
        assert_eq!(NumericIdentity::WORLD_IPV6.as_u32(), 10);
        assert!(NumericIdentity::HOST.is_reserved());
        assert!(!NumericIdentity::UNKNOWN.is_reserved());
        assert!(!NumericIdentity(256).is_reserved());
    }

    #[test]
    fn bit_layout() {
        assert_eq!(NumericIdentity::MIN_LOCAL.as_u32(), 16_777_217);
        assert!(NumericIdentity::MIN_LOCAL.is_local_scope());
        assert!(!NumericIdentity(256).is_local_scope());
        assert!(!NumericIdentity(0x0200_0001).is_local_scope());
        assert_eq!(NumericIdentity(65538).cluster_id(), 1);
        assert_eq!(NumericIdentity(300).cluster_id(), 0);
        assert_eq!(NumericIdentity::global_range(0), 256..=65535);
        assert_eq!(NumericIdentity::global_range(1), 65536..=131071);
        assert_eq!(NumericIdentity::global_range(255), 0xFF_0000..=0xFF_FFFF);
    }

    #[test]
    fn prints_and_parses_as_a_number() {
        assert_eq!(NumericIdentity(256).to_string(), "256");
        assert_eq!(
            "65538".parse::<NumericIdentity>(),
            Ok(NumericIdentity(65538))
        );
        assert_eq!(serde_json::to_string(&NumericIdentity(7)).unwrap(), "7");
    }
}
