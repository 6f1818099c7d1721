//! Rust mirrors of the service load-balancing maps of `bpf/lib/lb.h` (Cilium's
//! `cilium_lb4_services_v2`, `cilium_lb4_backends_v3`, `cilium_lb4_reverse_nat`,
//! `cilium_lb4_maglev`, `cilium_lb4_affinity`, `cilium_lb_affinity_match`, and socket LB's
//! `cilium_lb4_reverse_sk`): their names,
//! default sizes, flag values and key/value layouts.
//!
//! Every mirror is `#[repr(C)]` (`packed` where the C struct is), names its C struct, and
//! has a layout test; `lb.h` asserts the same sizes and offsets with `_Static_assert`, and
//! a test here compiles it so that both sides are checked even before a program includes
//! it. Constructors take host-order values and store them the way the datapath reads
//! them: addresses and ports in network order, the reverse-NAT index in network order
//! everywhere it appears (so a value read from one map keys the next), backend IDs, slots,
//! counts and timeouts in host order.

use std::net::Ipv4Addr;

/// Services map: frontend and slot → [`Lb4Service`].
pub const LB4_SERVICES_MAP: &str = "cilium_lb4_services_v2";
/// Backends map: backend ID (`u32`) → [`Lb4Backend`].
pub const LB4_BACKENDS_MAP: &str = "cilium_lb4_backends_v3";
/// Reverse-NAT map: reverse-NAT index (`u16`, network order) → [`Lb4ReverseNat`].
pub const LB4_REVERSE_NAT_MAP: &str = "cilium_lb4_reverse_nat";
/// Maglev outer map (hash of maps): reverse-NAT index (`u16`, network order) → inner array
/// map whose single entry (key 0) is the frontend's lookup table.
pub const LB4_MAGLEV_MAP: &str = "cilium_lb4_maglev";
/// Session-affinity map (LRU): [`Lb4AffinityKey`] → [`LbAffinityVal`].
pub const LB4_AFFINITY_MAP: &str = "cilium_lb4_affinity";
/// Affinity validity map: [`LbAffinityMatch`] → `u8` (present while the backend may still
/// be chosen for the service by affinity).
pub const LB_AFFINITY_MATCH_MAP: &str = "cilium_lb_affinity_match";
/// Socket-LB reverse map (LRU, `bpf/bpf_sock.c`): [`Lb4SockRevKey`] → [`Lb4SockRevEntry`].
pub const LB4_REVERSE_SK_MAP: &str = "cilium_lb4_reverse_sk";
/// `LB_SOCK_REV_NAT_MAP_MAX_ENTRIES`: capacity of [`LB4_REVERSE_SK_MAP`].
pub const LB_SOCK_REV_NAT_MAP_MAX_ENTRIES: u32 = 65_536;

/// `LB_SERVICE_MAP_MAX_ENTRIES`: capacity of [`LB4_SERVICES_MAP`].
pub const LB_SERVICE_MAP_MAX_ENTRIES: u32 = 65_536;
/// `LB_BACKENDS_MAP_MAX_ENTRIES`: capacity of [`LB4_BACKENDS_MAP`].
pub const LB_BACKENDS_MAP_MAX_ENTRIES: u32 = 65_536;
/// `LB_REV_NAT_MAP_MAX_ENTRIES`: capacity of [`LB4_REVERSE_NAT_MAP`].
pub const LB_REV_NAT_MAP_MAX_ENTRIES: u32 = 65_536;
/// `LB_AFFINITY_MAP_MAX_ENTRIES`: capacity of [`LB4_AFFINITY_MAP`] and
/// [`LB_AFFINITY_MATCH_MAP`].
pub const LB_AFFINITY_MAP_MAX_ENTRIES: u32 = 65_536;
/// `LB_MAGLEV_MAP_MAX_ENTRIES`: capacity of [`LB4_MAGLEV_MAP`].
pub const LB_MAGLEV_MAP_MAX_ENTRIES: u32 = 65_536;
/// `LB_MAGLEV_LUT_SIZE`: the Maglev table size M the C code is compiled with (Cilium's
/// default); an inner map's value is `M` backend IDs.
pub const LB_MAGLEV_LUT_SIZE: usize = 16_381;

/// `LB_LOOKUP_SCOPE_EXT`: the default lookup scope.
pub const LB_LOOKUP_SCOPE_EXT: u8 = 0;
/// `LB_LOOKUP_SCOPE_INT`: the scope of in-cluster traffic when a frontend has two.
pub const LB_LOOKUP_SCOPE_INT: u8 = 1;

/// `SVC_FLAG_EXTERNAL_IP` (`flags`): an externalIPs frontend.
pub const SVC_FLAG_EXTERNAL_IP: u8 = 1 << 0;
/// `SVC_FLAG_NODEPORT` (`flags`): a NodePort frontend.
pub const SVC_FLAG_NODEPORT: u8 = 1 << 1;
/// `SVC_FLAG_EXT_LOCAL_SCOPE` (`flags`): externalTrafficPolicy=Local.
pub const SVC_FLAG_EXT_LOCAL_SCOPE: u8 = 1 << 2;
/// `SVC_FLAG_HOSTPORT` (`flags`): a hostPort frontend.
pub const SVC_FLAG_HOSTPORT: u8 = 1 << 3;
/// `SVC_FLAG_AFFINITY` (`flags`): sessionAffinity=ClientIP.
pub const SVC_FLAG_AFFINITY: u8 = 1 << 4;
/// `SVC_FLAG_LOADBALANCER` (`flags`): a LoadBalancer frontend.
pub const SVC_FLAG_LOADBALANCER: u8 = 1 << 5;
/// `SVC_FLAG_ROUTABLE` (`flags`): reachable from outside the node.
pub const SVC_FLAG_ROUTABLE: u8 = 1 << 6;
/// `SVC_FLAG_SOURCE_RANGE` (`flags`): loadBalancerSourceRanges apply.
pub const SVC_FLAG_SOURCE_RANGE: u8 = 1 << 7;

/// `SVC_FLAG_LOCALREDIRECT` (`flags2`): local redirect policy.
pub const SVC_FLAG_LOCALREDIRECT: u8 = 1 << 0;
/// `SVC_FLAG_NAT_46X64` (`flags2`): NAT46/64 service.
pub const SVC_FLAG_NAT_46X64: u8 = 1 << 1;
/// `SVC_FLAG_L7LOADBALANCER` (`flags2`): L7 proxy load balancing.
pub const SVC_FLAG_L7LOADBALANCER: u8 = 1 << 2;
/// `SVC_FLAG_LOOPBACK` (`flags2`): hostPort on a loopback address.
pub const SVC_FLAG_LOOPBACK: u8 = 1 << 3;
/// `SVC_FLAG_INT_LOCAL_SCOPE` (`flags2`): internalTrafficPolicy=Local.
pub const SVC_FLAG_INT_LOCAL_SCOPE: u8 = 1 << 4;
/// `SVC_FLAG_TWO_SCOPES` (`flags2`): an [`LB_LOOKUP_SCOPE_INT`] entry exists too.
pub const SVC_FLAG_TWO_SCOPES: u8 = 1 << 5;

/// `BE_STATE_ACTIVE`: the backend takes new connections.
pub const BE_STATE_ACTIVE: u8 = 0;
/// `BE_STATE_TERMINATING`: existing connections only.
pub const BE_STATE_TERMINATING: u8 = 1;
/// `BE_STATE_QUARANTINED`: failed health checks.
pub const BE_STATE_QUARANTINED: u8 = 2;
/// `BE_STATE_MAINTENANCE`: taken out by an operator.
pub const BE_STATE_MAINTENANCE: u8 = 3;

/// `LB_SELECTION_RANDOM`: a random backend slot.
pub const LB_SELECTION_RANDOM: u8 = 1;
/// `LB_SELECTION_MAGLEV`: the frontend's Maglev table.
pub const LB_SELECTION_MAGLEV: u8 = 2;
/// `LB_SELECTION_FIRST`: always the first slot.
pub const LB_SELECTION_FIRST: u8 = 3;

/// `LB_ALGORITHM_SHIFT`: a master entry keeps its selection algorithm in the top byte of
/// `affinity_timeout`.
pub const LB_ALGORITHM_SHIFT: u32 = 24;
/// `AFFINITY_TIMEOUT_MASK`: the seconds of a master entry's `affinity_timeout`.
pub const AFFINITY_TIMEOUT_MASK: u32 = (1 << LB_ALGORITHM_SHIFT) - 1;

/// `struct lb4_key` (`bpf/lib/lb.h`): key of [`LB4_SERVICES_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Lb4Key {
    /// Frontend address (network order).
    pub address: [u8; 4],
    /// Frontend port (network order).
    pub dport: u16,
    /// 0 for the master entry, 1..=count for backend slots.
    pub backend_slot: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`LB_LOOKUP_SCOPE_EXT`] or [`LB_LOOKUP_SCOPE_INT`].
    pub scope: u8,
    /// Padding.
    pub pad: [u8; 2],
}

impl Lb4Key {
    /// The key of `slot` of the frontend `address:port` (`proto`) in `scope`.
    pub fn new(address: Ipv4Addr, port: u16, proto: u8, scope: u8, slot: u16) -> Self {
        Self {
            address: address.octets(),
            dport: port.to_be(),
            backend_slot: slot,
            proto,
            scope,
            pad: [0; 2],
        }
    }

    /// The frontend address.
    pub fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// The frontend port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.dport)
    }
}

/// `struct lb4_service` (`bpf/lib/lb.h`): value of [`LB4_SERVICES_MAP`], a master entry
/// (slot 0) or a backend slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4Service {
    /// `union { backend_id | affinity_timeout | l7_lb_proxy_port }`: a slot's backend ID,
    /// or a master's `algorithm << LB_ALGORITHM_SHIFT | affinity timeout (s)`.
    pub backend_id: u32,
    /// Master: number of backend slots; 0 in slots.
    pub count: u16,
    /// Reverse-NAT index (network order).
    pub rev_nat_index: u16,
    /// `SVC_FLAG_*` of the first set.
    pub flags: u8,
    /// `SVC_FLAG_*` of the second set.
    pub flags2: u8,
    /// Padding.
    pub pad: [u8; 2],
}

impl Lb4Service {
    /// A master entry: `count` slots, `algorithm` (`LB_SELECTION_*`, 0 for the datapath's
    /// default) and the affinity timeout in seconds (0 without affinity; at most
    /// [`AFFINITY_TIMEOUT_MASK`]).
    pub fn master(
        count: u16,
        rev_nat_index: u16,
        flags: u8,
        flags2: u8,
        algorithm: u8,
        affinity_timeout: u32,
    ) -> Self {
        Self {
            backend_id: (u32::from(algorithm) << LB_ALGORITHM_SHIFT)
                | (affinity_timeout & AFFINITY_TIMEOUT_MASK),
            count,
            rev_nat_index: rev_nat_index.to_be(),
            flags,
            flags2,
            pad: [0; 2],
        }
    }

    /// A backend slot pointing at `backend_id`, with its frontend's index and flags.
    pub fn slot(backend_id: u32, rev_nat_index: u16, flags: u8, flags2: u8) -> Self {
        Self {
            backend_id,
            count: 0,
            rev_nat_index: rev_nat_index.to_be(),
            flags,
            flags2,
            pad: [0; 2],
        }
    }

    /// The reverse-NAT index in host order.
    pub fn rev_nat_index(&self) -> u16 {
        u16::from_be(self.rev_nat_index)
    }

    /// A master's selection algorithm (`LB_SELECTION_*`, 0 for the datapath's default).
    pub fn algorithm(&self) -> u8 {
        (self.backend_id >> LB_ALGORITHM_SHIFT) as u8
    }

    /// A master's affinity timeout in seconds (0 without affinity).
    pub fn affinity_timeout(&self) -> u32 {
        self.backend_id & AFFINITY_TIMEOUT_MASK
    }
}

/// `struct lb4_backend` (`bpf/lib/lb.h`): value of [`LB4_BACKENDS_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4Backend {
    /// Backend address (network order).
    pub address: [u8; 4],
    /// Backend port (network order).
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// `BE_STATE_*`.
    pub flags: u8,
    /// Cluster of the backend (0 = this cluster).
    pub cluster_id: u8,
    /// Padding.
    pub pad: [u8; 3],
}

impl Lb4Backend {
    /// A backend of this cluster in `state` (`BE_STATE_*`).
    pub fn new(address: Ipv4Addr, port: u16, proto: u8, state: u8) -> Self {
        Self {
            address: address.octets(),
            port: port.to_be(),
            proto,
            flags: state,
            cluster_id: 0,
            pad: [0; 3],
        }
    }

    /// The backend address.
    pub fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// The backend port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// `struct lb4_reverse_nat` (`bpf/lib/lb.h`, packed): value of [`LB4_REVERSE_NAT_MAP`].
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4ReverseNat {
    /// Frontend address (network order).
    pub address: [u8; 4],
    /// Frontend port (network order).
    pub port: u16,
}

impl Lb4ReverseNat {
    /// The frontend replies must appear to come from.
    pub fn new(address: Ipv4Addr, port: u16) -> Self {
        Self {
            address: address.octets(),
            port: port.to_be(),
        }
    }

    /// The frontend address.
    pub fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// The frontend port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// `struct lb4_affinity_key` (`bpf/lib/lb.h`, packed): key of [`LB4_AFFINITY_MAP`].
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4AffinityKey {
    /// `union lb4_affinity_client_id { u32 client_ip | u64 client_cookie }`, as bytes: an
    /// address takes the first four (network order), a cookie all eight (host order).
    pub client_id: [u8; 8],
    /// Reverse-NAT index (network order).
    pub rev_nat_id: u16,
    /// Bit 0: `netns_cookie` (the client is a network namespace cookie).
    pub netns_cookie: u8,
    /// Padding.
    pub pad1: u8,
    /// Padding.
    pub pad2: u32,
}

impl Lb4AffinityKey {
    /// The key of a client address for the frontend with `rev_nat_index`.
    pub fn client_ip(ip: Ipv4Addr, rev_nat_index: u16) -> Self {
        let mut client_id = [0; 8];
        client_id[..4].copy_from_slice(&ip.octets());
        Self {
            client_id,
            rev_nat_id: rev_nat_index.to_be(),
            ..Self::default()
        }
    }

    /// The key of a client network namespace (socket-LB) for the frontend with
    /// `rev_nat_index`.
    pub fn netns_cookie(cookie: u64, rev_nat_index: u16) -> Self {
        Self {
            client_id: cookie.to_ne_bytes(),
            rev_nat_id: rev_nat_index.to_be(),
            netns_cookie: 1,
            ..Self::default()
        }
    }
}

/// `struct lb_affinity_val` (`bpf/lib/lb.h`, packed): value of [`LB4_AFFINITY_MAP`].
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbAffinityVal {
    /// When the entry was last used, in CLOCK_MONOTONIC seconds (`bpf_now_sec()`).
    pub last_used: u64,
    /// The backend chosen.
    pub backend_id: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct lb_affinity_match` (`bpf/lib/lb.h`, packed): key of [`LB_AFFINITY_MATCH_MAP`].
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbAffinityMatch {
    /// A backend of the frontend's slots.
    pub backend_id: u32,
    /// Reverse-NAT index of the frontend (network order).
    pub rev_nat_id: u16,
    /// Padding.
    pub pad: u16,
}

impl LbAffinityMatch {
    /// The entry saying `backend_id` may be chosen by affinity for `rev_nat_index`.
    pub fn new(backend_id: u32, rev_nat_index: u16) -> Self {
        Self {
            backend_id,
            rev_nat_id: rev_nat_index.to_be(),
            pad: 0,
        }
    }
}

/// `struct lb4_sock_rev_key` (`bpf/lib/lb.h`): key of [`LB4_REVERSE_SK_MAP`], a socket and
/// the backend socket LB sent it to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4SockRevKey {
    /// The socket's cookie (`bpf_get_socket_cookie`).
    pub cookie: u64,
    /// Backend address (network order).
    pub address: [u8; 4],
    /// Backend port (network order).
    pub port: u16,
    /// Padding.
    pub pad: u16,
}

/// `struct lb4_sock_rev_entry` (`bpf/lib/lb.h`): value of [`LB4_REVERSE_SK_MAP`], the
/// frontend the application asked for.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lb4SockRevEntry {
    /// Frontend address (network order).
    pub address: [u8; 4],
    /// Frontend port (network order).
    pub port: u16,
    /// Reverse-NAT index of the frontend (network order).
    pub rev_nat_index: u16,
}

impl Lb4SockRevEntry {
    /// The frontend address.
    pub fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// The frontend port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// The value of a Maglev inner map's single entry (`__u32[LB_MAGLEV_LUT_SIZE]` in
/// `bpf/lib/lb.h`): backend IDs indexed by flow hash modulo [`LB_MAGLEV_LUT_SIZE`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevInner {
    /// The lookup table.
    pub backend_ids: [u32; LB_MAGLEV_LUT_SIZE],
}

impl MaglevInner {
    /// The inner value for a table of exactly [`LB_MAGLEV_LUT_SIZE`] backend IDs; `None`
    /// for a table of another size (the C code is compiled for one size).
    pub fn from_table(table: &[u32]) -> Option<Self> {
        Some(Self {
            backend_ids: table.try_into().ok()?,
        })
    }
}

// SAFETY: plain `repr(C)` data without padding bytes the kernel could see uninitialised
// (every padding is an explicit field), valid for any bit pattern.
unsafe impl aya::Pod for Lb4Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Service {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Backend {}
// SAFETY: as above (packed).
unsafe impl aya::Pod for Lb4ReverseNat {}
// SAFETY: as above (packed).
unsafe impl aya::Pod for Lb4AffinityKey {}
// SAFETY: as above (packed).
unsafe impl aya::Pod for LbAffinityVal {}
// SAFETY: as above (packed).
unsafe impl aya::Pod for LbAffinityMatch {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4SockRevKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4SockRevEntry {}
// SAFETY: an array of `u32`.
unsafe impl aya::Pod for MaglevInner {}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    #[test]
    fn lb4_key_matches_c() {
        assert_eq!(size_of::<Lb4Key>(), 12);
        assert_eq!(offset_of!(Lb4Key, address), 0);
        assert_eq!(offset_of!(Lb4Key, dport), 4);
        assert_eq!(offset_of!(Lb4Key, backend_slot), 6);
        assert_eq!(offset_of!(Lb4Key, proto), 8);
        assert_eq!(offset_of!(Lb4Key, scope), 9);
        assert_eq!(offset_of!(Lb4Key, pad), 10);
    }

    #[test]
    fn lb4_service_matches_c() {
        assert_eq!(size_of::<Lb4Service>(), 12);
        assert_eq!(offset_of!(Lb4Service, backend_id), 0);
        assert_eq!(offset_of!(Lb4Service, count), 4);
        assert_eq!(offset_of!(Lb4Service, rev_nat_index), 6);
        assert_eq!(offset_of!(Lb4Service, flags), 8);
        assert_eq!(offset_of!(Lb4Service, flags2), 9);
        assert_eq!(offset_of!(Lb4Service, pad), 10);
    }

    #[test]
    fn lb4_backend_matches_c() {
        assert_eq!(size_of::<Lb4Backend>(), 12);
        assert_eq!(offset_of!(Lb4Backend, port), 4);
        assert_eq!(offset_of!(Lb4Backend, proto), 6);
        assert_eq!(offset_of!(Lb4Backend, flags), 7);
        assert_eq!(offset_of!(Lb4Backend, cluster_id), 8);
        assert_eq!(offset_of!(Lb4Backend, pad), 9);
    }

    #[test]
    fn reverse_nat_matches_c() {
        assert_eq!(size_of::<Lb4ReverseNat>(), 6);
        assert_eq!(offset_of!(Lb4ReverseNat, port), 4);
    }

    #[test]
    fn affinity_structs_match_c() {
        assert_eq!(size_of::<Lb4AffinityKey>(), 16);
        assert_eq!(offset_of!(Lb4AffinityKey, rev_nat_id), 8);
        assert_eq!(offset_of!(Lb4AffinityKey, netns_cookie), 10);
        assert_eq!(offset_of!(Lb4AffinityKey, pad1), 11);
        assert_eq!(offset_of!(Lb4AffinityKey, pad2), 12);
        assert_eq!(size_of::<LbAffinityVal>(), 16);
        assert_eq!(offset_of!(LbAffinityVal, backend_id), 8);
        assert_eq!(offset_of!(LbAffinityVal, pad), 12);
        assert_eq!(size_of::<LbAffinityMatch>(), 8);
        assert_eq!(offset_of!(LbAffinityMatch, rev_nat_id), 4);
        assert_eq!(offset_of!(LbAffinityMatch, pad), 6);
    }

    #[test]
    fn sock_rev_layouts_match_lb_h() {
        assert_eq!(size_of::<Lb4SockRevKey>(), 16);
        assert_eq!(offset_of!(Lb4SockRevKey, address), 8);
        assert_eq!(offset_of!(Lb4SockRevKey, port), 12);
        assert_eq!(offset_of!(Lb4SockRevKey, pad), 14);
        assert_eq!(size_of::<Lb4SockRevEntry>(), 8);
        assert_eq!(offset_of!(Lb4SockRevEntry, port), 4);
        assert_eq!(offset_of!(Lb4SockRevEntry, rev_nat_index), 6);
        let entry = Lb4SockRevEntry {
            address: [10, 96, 0, 1],
            port: 80u16.to_be(),
            rev_nat_index: 3u16.to_be(),
        };
        assert_eq!(
            (entry.address(), entry.port()),
            (Ipv4Addr::new(10, 96, 0, 1), 80)
        );
    }

    #[test]
    fn maglev_inner_is_m_backend_ids() {
        assert_eq!(size_of::<MaglevInner>(), 4 * 16_381);
        assert!(MaglevInner::from_table(&[7; LB_MAGLEV_LUT_SIZE]).is_some());
        assert!(MaglevInner::from_table(&[7; 251]).is_none());
    }

    #[test]
    fn master_packs_algorithm_and_timeout() {
        let master =
            Lb4Service::master(3, 0x0102, SVC_FLAG_AFFINITY, 0, LB_SELECTION_MAGLEV, 10_800);
        assert_eq!(master.backend_id, (2 << 24) | 10_800);
        assert_eq!(master.algorithm(), LB_SELECTION_MAGLEV);
        assert_eq!(master.affinity_timeout(), 10_800);
        assert_eq!(
            master.rev_nat_index.to_ne_bytes(),
            [0x01, 0x02],
            "network order"
        );
        assert_eq!(master.rev_nat_index(), 0x0102);
        let slot = Lb4Service::slot(42, 0x0102, 0, 0);
        assert_eq!((slot.backend_id, slot.count), (42, 0));
    }

    #[test]
    fn addresses_and_ports_are_network_order() {
        let key = Lb4Key::new(
            Ipv4Addr::new(10, 96, 0, 1),
            0x1f90,
            6,
            LB_LOOKUP_SCOPE_INT,
            2,
        );
        assert_eq!(key.address, [10, 96, 0, 1]);
        assert_eq!(key.dport.to_ne_bytes(), [0x1f, 0x90]);
        assert_eq!(
            (key.address(), key.port()),
            (Ipv4Addr::new(10, 96, 0, 1), 8080)
        );
        let backend = Lb4Backend::new(Ipv4Addr::new(10, 0, 1, 5), 80, 17, BE_STATE_TERMINATING);
        assert_eq!(
            (backend.address(), backend.port(), backend.flags),
            (Ipv4Addr::new(10, 0, 1, 5), 80, 1)
        );
        let rev = Lb4ReverseNat::new(Ipv4Addr::new(10, 96, 0, 1), 80);
        assert_eq!(
            (rev.address(), rev.port()),
            (Ipv4Addr::new(10, 96, 0, 1), 80)
        );
        let affinity = Lb4AffinityKey::client_ip(Ipv4Addr::new(192, 168, 0, 9), 7);
        assert_eq!(affinity.client_id, [192, 168, 0, 9, 0, 0, 0, 0]);
        assert_eq!(Lb4AffinityKey::netns_cookie(5, 7).netns_cookie, 1);
    }

    /// Compiles `bpf/lib/lb.h` on its own for the BPF target, so that its `_Static_assert`s
    /// (the C half of the layout contract) run even while no program includes it.
    #[test]
    fn lb_header_compiles_with_its_layout_asserts() {
        let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/lib");
        let dir = tempfile::tempdir().expect("temporary directory");
        let source = dir.path().join("lb_check.c");
        std::fs::write(&source, "#include \"lb.h\"\n").expect("write the check source");
        let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
        let output = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Wextra", "-Werror",
            ])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg(format!("-I{}", lib.display()))
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(dir.path().join("lb_check.o"))
            .output()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        assert!(
            output.status.success(),
            "bpf/lib/lb.h does not compile:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
