//! Local-scope CIDR identities for the prefixes policies name (`fromCIDR`, `toCIDRSet`,
//! `ipBlock`, …), numbered as Cilium numbers them: the local-scope bit (1 << 24) set, the
//! first one 16777217. They live on this node only: the selector cache learns them, and the
//! ipcache maps each prefix to its identity, so the datapath finds the most specific prefix
//! of an address outside the cluster.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

/// Cilium's local-scope identity flag.
const LOCAL_SCOPE: u32 = 1 << 24;

/// What one [`CidrIdentities::sync`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CidrChanges {
    pub added: Vec<(Ipv4Net, u32)>,
    pub removed: Vec<u32>,
}

impl CidrChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Prefix → identity, stable while a prefix stays in use.
#[derive(Debug, Default)]
pub struct CidrIdentities {
    by_prefix: BTreeMap<Ipv4Net, u32>,
}

impl CidrIdentities {
    /// Brings the set to `wanted`: prefixes that stay keep their number, new ones get the
    /// lowest free number, prefixes no longer named are released.
    pub fn sync(&mut self, wanted: &BTreeSet<Ipv4Net>) -> CidrChanges {
        let mut changes = CidrChanges::default();
        self.by_prefix.retain(|prefix, id| {
            let keep = wanted.contains(prefix);
            if !keep {
                changes.removed.push(*id);
            }
            keep
        });
        let mut used: BTreeSet<u32> = self.by_prefix.values().copied().collect();
        let mut next = LOCAL_SCOPE + 1;
        for prefix in wanted {
            if self.by_prefix.contains_key(prefix) {
                continue;
            }
            while used.contains(&next) {
                next += 1;
            }
            used.insert(next);
            self.by_prefix.insert(*prefix, next);
            changes.added.push((*prefix, next));
        }
        changes
    }

    /// Every prefix and its identity.
    pub fn entries(&self) -> &BTreeMap<Ipv4Net, u32> {
        &self.by_prefix
    }

    /// The labels of a CIDR identity, as Cilium shows them.
    pub fn labels(prefix: Ipv4Net) -> Vec<String> {
        vec![format!("cidr:{prefix}"), "reserved:world".to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(prefixes: &[&str]) -> BTreeSet<Ipv4Net> {
        prefixes.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn numbers_are_local_scope_stable_and_reused() {
        let mut cidrs = CidrIdentities::default();
        let first = cidrs.sync(&set(&["10.0.0.0/8", "192.168.0.0/16"]));
        assert_eq!(
            first.added.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
            [16_777_217, 16_777_218]
        );
        let second = cidrs.sync(&set(&["192.168.0.0/16", "172.16.0.0/12"]));
        assert_eq!(second.removed, [16_777_217]);
        assert_eq!(
            second.added,
            [("172.16.0.0/12".parse().unwrap(), 16_777_217)]
        );
        assert_eq!(
            cidrs.entries()[&"192.168.0.0/16".parse().unwrap()],
            16_777_218
        );
        assert!(cidrs
            .sync(&set(&["192.168.0.0/16", "172.16.0.0/12"]))
            .is_empty());
    }
}
