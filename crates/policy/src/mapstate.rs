//! An endpoint's desired policy map state: keys and entries as the
//! datapath's LPM policy map holds them, and the lookup the datapath does.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

/// IP protocol numbers used in policy keys.
pub mod proto {
    /// Any protocol (only with every port).
    pub const ANY: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// One policy map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    /// Peer identity; 0 means any peer.
    pub identity: u32,
    /// Egress (true) or ingress (false).
    pub egress: bool,
    /// IP protocol; 0 means any (then `prefix_len` is 0).
    pub protocol: u8,
    /// Destination port (ICMP: the type), first port of the block.
    pub dport: u16,
    /// How many leading bits of `dport` must match: 16 is one port, 0 every
    /// port.
    pub prefix_len: u8,
}

impl PolicyKey {
    /// Whether every packet this key matches is also matched by `self`.
    pub fn covers(&self, other: &PolicyKey) -> bool {
        self.egress == other.egress
            && (self.identity == 0 || self.identity == other.identity)
            && (self.protocol == proto::ANY || self.protocol == other.protocol)
            && self.prefix_len <= other.prefix_len
            && mask(other.dport, self.prefix_len) == mask(self.dport, self.prefix_len)
    }

    fn matches(&self, identity: u32, egress: bool, protocol: u8, dport: u16) -> bool {
        self.covers(&PolicyKey {
            identity,
            egress,
            protocol,
            dport,
            prefix_len: 16,
        })
    }
}

/// LPM order of keys for one identity: port bits, then a named protocol.
fn specificity(key: &PolicyKey) -> (u8, bool) {
    (key.prefix_len, key.protocol != proto::ANY)
}

fn mask(port: u16, prefix_len: u8) -> u16 {
    match prefix_len {
        0 => 0,
        n => port & (u16::MAX << (16 - n.min(16))),
    }
}

/// One policy map value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Deny (true) or allow.
    pub deny: bool,
    /// L7 proxy port (0: no redirect; L7 is not resolved yet).
    pub proxy_port: u16,
    /// The rules that produced the entry (for `policy trace` and
    /// `endpoint get`), as text.
    pub derived_from: BTreeSet<String>,
}

/// An endpoint's resolved policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Whether ingress is enforced; when not, all ingress is allowed and the
    /// datapath skips the lookup.
    pub ingress_enforced: bool,
    /// Whether egress is enforced (as for ingress).
    pub egress_enforced: bool,
    /// The policy map content.
    pub entries: BTreeMap<PolicyKey, PolicyEntry>,
}

impl EndpointPolicy {
    /// The entry the datapath would find for a packet: the exact-identity
    /// lookup, then the any-identity one; a deny from either wins, otherwise
    /// the longer port prefix does. `None` is a default-deny drop.
    pub fn lookup(
        &self,
        identity: u32,
        egress: bool,
        protocol: u8,
        dport: u16,
    ) -> Option<(&PolicyKey, &PolicyEntry)> {
        let best = |id: u32| {
            self.entries
                .iter()
                .filter(|(k, _)| k.identity == id && k.matches(identity, egress, protocol, dport))
                .max_by_key(|(k, _)| specificity(k))
        };
        let l3 = if identity == 0 { None } else { best(identity) };
        if let Some(hit) = l3.filter(|(_, e)| e.deny) {
            return Some(hit);
        }
        let l4 = best(0);
        match (l3, l4) {
            (Some(a), Some(b)) => {
                if b.1.deny || specificity(b.0) > specificity(a.0) {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (a, b) => a.or(b),
        }
    }

    /// Whether the datapath would let the packet through.
    pub fn allows(&self, identity: u32, egress: bool, protocol: u8, dport: u16) -> bool {
        let enforced = if egress {
            self.egress_enforced
        } else {
            self.ingress_enforced
        };
        !enforced
            || self
                .lookup(identity, egress, protocol, dport)
                .is_some_and(|(_, e)| !e.deny)
    }
}

/// Splits a port range into the fewest prefix-aligned blocks, as
/// `(first port, prefix length)`, the way an LPM policy map stores ranges.
pub fn port_blocks(range: RangeInclusive<u16>) -> Vec<(u16, u8)> {
    let (mut start, end) = (u32::from(*range.start()), u32::from(*range.end()));
    let mut blocks = Vec::new();
    while start <= end {
        let mut size: u32 = if start == 0 {
            1 << 16
        } else {
            1 << start.trailing_zeros()
        };
        while start + size - 1 > end {
            size >>= 1;
        }
        let prefix_len = 16 - size.trailing_zeros() as u8;
        blocks.push((start as u16, prefix_len));
        start += size;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_aligned_blocks() {
        assert_eq!(
            port_blocks(8000..=8010),
            [(8000, 13), (8008, 15), (8010, 16)]
        );
        assert_eq!(port_blocks(80..=80), [(80, 16)]);
        assert_eq!(port_blocks(0..=65535), [(0, 0)]);
        assert_eq!(port_blocks(1024..=65535).len(), 6);
        let covered: u32 = port_blocks(1..=65534)
            .iter()
            .map(|(_, p)| 1u32 << (16 - p))
            .sum();
        assert_eq!(covered, 65534);
    }

    #[test]
    fn deny_wins_in_lookup() {
        let key = |identity, dport, prefix_len, protocol| PolicyKey {
            identity,
            egress: false,
            protocol,
            dport,
            prefix_len,
        };
        let allow = PolicyEntry::default();
        let deny = PolicyEntry {
            deny: true,
            ..PolicyEntry::default()
        };
        let policy = EndpointPolicy {
            ingress_enforced: true,
            egress_enforced: false,
            entries: BTreeMap::from([
                (key(300, 0, 0, 0), allow.clone()),
                (key(0, 80, 16, proto::TCP), deny),
                (key(0, 443, 16, proto::TCP), allow),
            ]),
        };
        assert!(policy.allows(300, false, proto::TCP, 81));
        assert!(
            !policy.allows(300, false, proto::TCP, 80),
            "L4-only deny wins"
        );
        assert!(policy.allows(400, false, proto::TCP, 443));
        assert!(!policy.allows(400, false, proto::TCP, 22));
        assert!(
            policy.allows(400, true, proto::TCP, 22),
            "egress not enforced"
        );
    }
}
