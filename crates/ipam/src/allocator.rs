//! The allocator: one pod CIDR, the router (gateway) address, and owner-tagged allocations.
//!
//! Addresses are handed out round-robin after the last one given, so an address released a
//! moment ago (its pod may still have a conntrack entry or an ARP entry somewhere) is the last
//! to be reused. Every change is written to the store before it is reported.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::store::{AllocationStore, StoreError};

/// Owner name of the router IP.
pub const ROUTER_OWNER: &str = "router";

/// What is persisted: enough to rebuild the allocator exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorState {
    pub range: Ipv4Net,
    pub router: Ipv4Addr,
    /// Address → owner (container ID, or [`ROUTER_OWNER`]).
    pub allocations: BTreeMap<Ipv4Addr, String>,
    /// Last address handed out by `allocate_next`.
    pub last: Option<Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("pod CIDR {range} is too small: it needs room for a router and at least one pod")]
    RangeTooSmall { range: Ipv4Net },
    #[error("stored allocations are for {stored}, but the node's pod CIDR is {configured}")]
    RangeChanged {
        stored: Ipv4Net,
        configured: Ipv4Net,
    },
    #[error("no free address left in {range} ({allocated} allocated)")]
    Exhausted { range: Ipv4Net, allocated: usize },
    #[error("{ip} is not in the pod CIDR {range}")]
    OutOfRange { ip: Ipv4Addr, range: Ipv4Net },
    #[error("{ip} is already allocated to {owner}")]
    InUse { ip: Ipv4Addr, owner: String },
    #[error("{ip} is reserved (network, broadcast or router address)")]
    Reserved { ip: Ipv4Addr },
    #[error("{what} is not allocated")]
    NotAllocated { what: String },
    #[error("owner name must not be empty")]
    EmptyOwner,
    #[error("persisting IPAM state")]
    Store(#[from] StoreError),
}

/// Allocates from one IPv4 pod CIDR; persists every change through `S`.
#[derive(Debug)]
pub struct HostScopeAllocator<S> {
    state: AllocatorState,
    store: S,
}

impl<S: AllocationStore> HostScopeAllocator<S> {
    /// Opens the allocator for `range`, restoring what the store holds. The router IP is the
    /// first usable address of the range and is allocated to [`ROUTER_OWNER`].
    pub fn open(range: Ipv4Net, store: S) -> Result<Self, IpamError> {
        let range = range.trunc();
        if range.prefix_len() > 30 {
            return Err(IpamError::RangeTooSmall { range });
        }
        let router = first_usable(range);
        let state = match store.load()? {
            Some(stored) if stored.range != range => {
                return Err(IpamError::RangeChanged {
                    stored: stored.range,
                    configured: range,
                })
            }
            Some(stored) => stored,
            None => AllocatorState {
                range,
                router,
                allocations: BTreeMap::from([(router, ROUTER_OWNER.to_string())]),
                last: None,
            },
        };
        let allocator = Self { state, store };
        allocator.store.save(&allocator.state)?;
        Ok(allocator)
    }

    pub fn range(&self) -> Ipv4Net {
        self.state.range
    }

    pub fn router(&self) -> Ipv4Addr {
        self.state.router
    }

    pub fn allocations(&self) -> &BTreeMap<Ipv4Addr, String> {
        &self.state.allocations
    }

    /// Number of addresses pods can ever get (network, broadcast and router excluded).
    pub fn capacity(&self) -> usize {
        PodAddresses::of(self.state.range).count as usize
    }

    /// Number of pod addresses in use (router excluded).
    pub fn allocated(&self) -> usize {
        self.state.allocations.len() - 1
    }

    /// The address `owner` holds, if any.
    pub fn owned_by(&self, owner: &str) -> Option<Ipv4Addr> {
        self.state
            .allocations
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }

    /// Hands `owner` an address. An owner that already holds one gets the same one back, so a
    /// retried CNI ADD does not leak addresses.
    pub fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        if let Some(ip) = self.owned_by(owner) {
            return Ok(ip);
        }
        let pods = PodAddresses::of(self.state.range);
        let start = self
            .state
            .last
            .and_then(|last| pods.position(last))
            .map_or(0, |pos| pos + 1);
        let ip = (0..pods.count)
            .map(|step| pods.nth((start + step) % pods.count))
            .find(|ip| !self.state.allocations.contains_key(ip))
            .ok_or(IpamError::Exhausted {
                range: self.state.range,
                allocated: self.allocated(),
            })?;
        self.commit(|state| {
            state.allocations.insert(ip, owner.to_string());
            state.last = Some(ip);
        })?;
        Ok(ip)
    }

    /// Allocates a given address (used when an endpoint is restored with its IP).
    pub fn allocate_specific(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        if !self.state.range.contains(&ip) {
            return Err(IpamError::OutOfRange {
                ip,
                range: self.state.range,
            });
        }
        if ip == self.state.router
            || ip == self.state.range.network()
            || ip == self.state.range.broadcast()
        {
            return Err(IpamError::Reserved { ip });
        }
        match self.state.allocations.get(&ip) {
            Some(current) if current == owner => Ok(()),
            Some(current) => Err(IpamError::InUse {
                ip,
                owner: current.clone(),
            }),
            None => self.commit(|state| {
                state.allocations.insert(ip, owner.to_string());
            }),
        }
    }

    /// Releases one address. The router address cannot be released.
    pub fn release(&mut self, ip: Ipv4Addr) -> Result<String, IpamError> {
        if ip == self.state.router {
            return Err(IpamError::Reserved { ip });
        }
        let owner = self
            .state
            .allocations
            .get(&ip)
            .cloned()
            .ok_or(IpamError::NotAllocated {
                what: ip.to_string(),
            })?;
        self.commit(|state| {
            state.allocations.remove(&ip);
        })?;
        Ok(owner)
    }

    /// Releases whatever `owner` holds.
    pub fn release_owner(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if owner == ROUTER_OWNER {
            return Err(IpamError::Reserved {
                ip: self.state.router,
            });
        }
        let ip = self.owned_by(owner).ok_or(IpamError::NotAllocated {
            what: format!("an address owned by {owner}"),
        })?;
        self.release(ip)?;
        Ok(ip)
    }

    /// Applies `change` to a copy, persists it, and only then makes it current.
    fn commit(&mut self, change: impl FnOnce(&mut AllocatorState)) -> Result<(), IpamError> {
        let mut next = self.state.clone();
        change(&mut next);
        self.store.save(&next)?;
        self.state = next;
        Ok(())
    }
}

fn first_usable(range: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + 1)
}

/// The addresses pods can get: the range without network, router and broadcast.
#[derive(Debug, Clone, Copy)]
struct PodAddresses {
    first: u32,
    count: u32,
}

impl PodAddresses {
    fn of(range: Ipv4Net) -> Self {
        let first = u32::from(range.network()) + 2;
        let last = u32::from(range.broadcast()) - 1;
        Self {
            first,
            count: last - first + 1,
        }
    }

    fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first + n)
    }

    fn position(self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).checked_sub(self.first)?;
        (offset < self.count).then_some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FileStore, MemoryStore};

    fn cidr(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn router_is_first_address_and_pods_follow() {
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/24"), MemoryStore::default()).unwrap();
        assert_eq!(ipam.router(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(ipam.capacity(), 253);
        assert_eq!(ipam.allocate_next("a").unwrap(), Ipv4Addr::new(10, 0, 1, 2));
        assert_eq!(ipam.allocate_next("b").unwrap(), Ipv4Addr::new(10, 0, 1, 3));
        assert_eq!(ipam.allocated(), 2);
    }

    #[test]
    fn same_owner_gets_same_address() {
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/24"), MemoryStore::default()).unwrap();
        let a = ipam.allocate_next("a").unwrap();
        assert_eq!(ipam.allocate_next("a").unwrap(), a);
        assert_eq!(ipam.allocated(), 1);
    }

    #[test]
    fn released_address_is_reused_last() {
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/29"), MemoryStore::default()).unwrap();
        let a = ipam.allocate_next("a").unwrap();
        ipam.release_owner("a").unwrap();
        let b = ipam.allocate_next("b").unwrap();
        assert_ne!(a, b, "a just-released address must not be handed out first");
    }

    #[test]
    fn exhaustion_is_an_error_not_a_duplicate() {
        // /29: network .0, router .1, broadcast .7 → 5 pod addresses.
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/29"), MemoryStore::default()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..5 {
            assert!(seen.insert(ipam.allocate_next(&format!("p{i}")).unwrap()));
        }
        let err = ipam.allocate_next("p5").unwrap_err();
        assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    }

    #[test]
    fn reserved_and_foreign_addresses_are_refused() {
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/24"), MemoryStore::default()).unwrap();
        assert!(matches!(
            ipam.allocate_specific(Ipv4Addr::new(10, 0, 1, 1), "x"),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            ipam.allocate_specific(Ipv4Addr::new(10, 0, 2, 5), "x"),
            Err(IpamError::OutOfRange { .. })
        ));
        assert!(matches!(
            ipam.release(ipam.router()),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(ipam.allocate_next(""), Err(IpamError::EmptyOwner)));
        ipam.allocate_specific(Ipv4Addr::new(10, 0, 1, 9), "x")
            .unwrap();
        assert!(matches!(
            ipam.allocate_specific(Ipv4Addr::new(10, 0, 1, 9), "y"),
            Err(IpamError::InUse { .. })
        ));
    }

    #[test]
    fn restart_never_hands_out_an_address_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.json");
        let first = {
            let mut ipam =
                HostScopeAllocator::open(cidr("10.0.1.0/24"), FileStore::new(&path)).unwrap();
            (0..10)
                .map(|i| ipam.allocate_next(&format!("pod{i}")).unwrap())
                .collect::<Vec<_>>()
        };
        let mut ipam =
            HostScopeAllocator::open(cidr("10.0.1.0/24"), FileStore::new(&path)).unwrap();
        assert_eq!(ipam.allocated(), 10);
        let next = ipam.allocate_next("new").unwrap();
        assert!(
            !first.contains(&next),
            "{next} was handed out before the restart"
        );
        assert_eq!(ipam.owned_by("pod3"), Some(first[3]));
    }

    #[test]
    fn changed_cidr_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.json");
        HostScopeAllocator::open(cidr("10.0.1.0/24"), FileStore::new(&path)).unwrap();
        let err = HostScopeAllocator::open(cidr("10.0.2.0/24"), FileStore::new(&path)).unwrap_err();
        assert!(matches!(err, IpamError::RangeChanged { .. }), "{err}");
    }

    #[test]
    fn tiny_range_is_refused() {
        assert!(matches!(
            HostScopeAllocator::open(cidr("10.0.1.0/31"), MemoryStore::default()),
            Err(IpamError::RangeTooSmall { .. })
        ));
    }
}
