//! [`LocalIdentityAllocator`]: node-local identities for CIDR (and later FQDN) peers, in the
//! local-scope range `1<<24 | 1 ..= 1<<24 | 0xFFFFFF` (cilium-facts §2.3). They never leave
//! the node, so they are allocated in memory, not in the kvstore.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;

use crate::label::{source, Label};
use crate::labels::Labels;
use crate::numeric::NumericIdentity;
use crate::reserved::ReservedIdentity;

/// A local allocation or release that failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// An empty label set has no identity.
    #[error("cannot allocate a local identity for an empty label set")]
    EmptyLabels,
    /// All 2^24 - 1 local identities are in use.
    #[error("no free local identity left")]
    Exhausted,
    /// `release` of labels that hold no local identity.
    #[error("label set {labels:?} holds no local identity")]
    NotHeld { labels: String },
}

/// The labels of a CIDR peer: `cidr:<prefix>` (host bits cleared; in IPv6, `:` written as
/// `-`, with a `0` added where the key would start or end with `-`) and `reserved:world`. The
/// whole internet (`/0`) is just `reserved:world`.
pub fn cidr_labels(cidr: impl Into<IpNet>) -> Labels {
    let cidr = cidr.into().trunc();
    let mut labels: Labels = [Label::reserved(ReservedIdentity::World.name())]
        .into_iter()
        .collect();
    if cidr.prefix_len() > 0 {
        let address = match cidr.addr() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let text = v6.to_string().replace(':', "-");
                let text = if text.starts_with('-') {
                    format!("0{text}")
                } else {
                    text
                };
                if text.ends_with('-') {
                    format!("{text}0")
                } else {
                    text
                }
            }
        };
        labels.insert(Label::new(
            source::CIDR,
            format!("{address}/{}", cidr.prefix_len()),
            "",
        ));
    }
    labels
}

#[derive(Default)]
struct State {
    by_labels: HashMap<Labels, (NumericIdentity, usize)>,
    by_id: BTreeMap<NumericIdentity, Labels>,
}

impl State {
    /// The lowest local-scope ID not in use.
    fn lowest_free(&self) -> Option<NumericIdentity> {
        let mut candidate = NumericIdentity::MIN_LOCAL.as_u32();
        for id in self.by_id.keys() {
            if id.as_u32() != candidate {
                break;
            }
            candidate += 1;
        }
        (candidate <= NumericIdentity::MAX_LOCAL.as_u32()).then_some(NumericIdentity(candidate))
    }
}

/// Reference-counted local-scope identities, one per label set.
#[derive(Default)]
pub struct LocalIdentityAllocator {
    state: Mutex<State>,
}

impl LocalIdentityAllocator {
    pub fn new() -> Self {
        LocalIdentityAllocator::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the maps consistent before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The local identity of `labels`, taking a reference on it (a reserved label set gets its
    /// reserved number instead, not reference-counted).
    pub fn allocate(&self, labels: &Labels) -> Result<NumericIdentity, LocalError> {
        if let Some(reserved) = ReservedIdentity::from_labels(labels) {
            return Ok(reserved.id());
        }
        if labels.is_empty() {
            return Err(LocalError::EmptyLabels);
        }
        let mut state = self.state();
        if let Some((id, refs)) = state.by_labels.get_mut(labels) {
            *refs += 1;
            return Ok(*id);
        }
        let id = state.lowest_free().ok_or(LocalError::Exhausted)?;
        state.by_labels.insert(labels.clone(), (id, 1));
        state.by_id.insert(id, labels.clone());
        Ok(id)
    }

    /// The identity of CIDR peer `cidr` ([`cidr_labels`]); `/0` is `reserved:world`.
    pub fn allocate_cidr(&self, cidr: impl Into<IpNet>) -> Result<NumericIdentity, LocalError> {
        self.allocate(&cidr_labels(cidr))
    }

    /// Drops one reference on the identity of `labels`; returns whether it was the last (the
    /// ID is then free for reuse). Reserved label sets return `false`.
    pub fn release(&self, labels: &Labels) -> Result<bool, LocalError> {
        if ReservedIdentity::from_labels(labels).is_some() {
            return Ok(false);
        }
        let mut state = self.state();
        let Some((id, refs)) = state.by_labels.get_mut(labels) else {
            return Err(LocalError::NotHeld {
                labels: labels.to_string(),
            });
        };
        *refs -= 1;
        if *refs > 0 {
            return Ok(false);
        }
        let id = *id;
        state.by_labels.remove(labels);
        state.by_id.remove(&id);
        Ok(true)
    }

    /// Drops one reference on the identity of CIDR peer `cidr`.
    pub fn release_cidr(&self, cidr: impl Into<IpNet>) -> Result<bool, LocalError> {
        self.release(&cidr_labels(cidr))
    }

    /// The labels of local identity `id`.
    pub fn lookup(&self, id: NumericIdentity) -> Option<Labels> {
        self.state().by_id.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};

    fn v4(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_identities_are_local_scope_with_cidr_and_world_labels() {
        let allocator = LocalIdentityAllocator::new();
        let id = allocator.allocate_cidr(v4("10.0.0.0/8")).unwrap();
        assert_eq!(id, NumericIdentity::MIN_LOCAL);
        assert_eq!(id.as_u32(), (1 << 24) | 1);
        assert!(id.is_local_scope());
        assert_eq!(
            allocator.lookup(id).unwrap().to_strings(),
            ["cidr:10.0.0.0/8", "reserved:world"]
        );
        let other = allocator.allocate_cidr(v4("192.168.1.0/24")).unwrap();
        assert_eq!(other.as_u32(), (1 << 24) | 2);
        assert!(other.is_local_scope());
    }

    #[test]
    fn same_cidr_shares_an_id_until_the_last_release() {
        let allocator = LocalIdentityAllocator::new();
        let first = allocator.allocate_cidr(v4("10.1.2.3/8")).unwrap();
        let second = allocator.allocate_cidr(v4("10.0.0.0/8")).unwrap();
        assert_eq!(first, second, "host bits are cleared");
        assert!(!allocator.release_cidr(v4("10.0.0.0/8")).unwrap());
        assert!(allocator.lookup(first).is_some());
        assert!(allocator.release_cidr(v4("10.0.0.0/8")).unwrap());
        assert_eq!(allocator.lookup(first), None);
        assert!(matches!(
            allocator.release_cidr(v4("10.0.0.0/8")),
            Err(LocalError::NotHeld { .. })
        ));
        let reused = allocator.allocate_cidr(v4("172.16.0.0/12")).unwrap();
        assert_eq!(reused, first, "a freed ID is reused");
    }

    #[test]
    fn whole_internet_is_world() {
        let allocator = LocalIdentityAllocator::new();
        assert_eq!(
            allocator.allocate_cidr(v4("0.0.0.0/0")).unwrap(),
            NumericIdentity::WORLD
        );
    }

    #[test]
    fn ipv6_cidr_labels_avoid_colons() {
        let net: Ipv6Net = "f00d::/16".parse().unwrap();
        assert_eq!(
            cidr_labels(net).to_strings(),
            ["cidr:f00d--0/16", "reserved:world"]
        );
        let net: Ipv6Net = "::1/128".parse().unwrap();
        assert_eq!(
            cidr_labels(net).to_strings(),
            ["cidr:0--1/128", "reserved:world"]
        );
    }
}
