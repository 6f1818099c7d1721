//! The selector cache: for every distinct peer selector the rules use, the
//! identities it selects, kept up to date as identities come and go.
//!
//! CIDR peers are resolved against the CIDR identities allocated elsewhere:
//! a CIDR identity is selected when its prefix lies inside the rule's prefix
//! and overlaps none of the `except` prefixes. This is how Cilium's prefix
//! labels behave once an identity exists per prefix; a CIDR identity for a
//! prefix wider than the rule's (say `10.0.0.0/8` against a `10.1.0.0/16`
//! rule) is not selected. A `/0` rule also selects the world identities.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Serialize;

use crate::identities::IdentityView;
use crate::labels::{Labels, SOURCE_RESERVED};
use crate::peers::Entity;
use crate::selector::EndpointSelector;

/// One peer a rule names, in a form the cache can key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PeerSelector {
    /// `from/toEndpoints` (and namespace-scoped peers).
    Endpoints(EndpointSelector),
    /// `from/toEntities`.
    Entity(Entity),
    /// `from/toCIDR` (no exceptions) and `from/toCIDRSet`.
    Cidr {
        /// The prefix.
        cidr: IpNet,
        /// Prefixes carved out.
        except: Vec<IpNet>,
    },
}

/// What a selector selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every peer, known or not (identity 0 in the policy map).
    Wildcard,
    /// These identities.
    Identities(BTreeSet<u32>),
}

impl PeerSelector {
    /// A stable text key (canonical JSON).
    pub fn key(&self) -> String {
        serde_json::to_string(self).expect("selectors serialize to JSON")
    }

    /// Whether the selector selects every peer.
    pub fn is_wildcard(&self) -> bool {
        match self {
            PeerSelector::Endpoints(sel) => sel.is_wildcard(),
            PeerSelector::Entity(e) => *e == Entity::All,
            PeerSelector::Cidr { .. } => false,
        }
    }

    /// Whether identity `id` with `labels` is selected (wildcards aside).
    fn selects(&self, view: &IdentityView, id: u32, labels: Option<&Labels>) -> bool {
        let empty = Labels::default();
        let labels = labels.unwrap_or(&empty);
        let reserved = |name: &str| labels.values(SOURCE_RESERVED, name).next().is_some();
        match self {
            PeerSelector::Endpoints(sel) => !view.is_cidr(id) && sel.matches(labels),
            PeerSelector::Entity(entity) => match entity {
                Entity::All => true,
                Entity::None => false,
                Entity::World => {
                    view.is_cidr(id)
                        || reserved("world")
                        || reserved("world-ipv4")
                        || reserved("world-ipv6")
                }
                Entity::WorldIpv4 => {
                    cidr_of(view, id).is_some_and(|n| matches!(n, IpNet::V4(_)))
                        || reserved("world")
                        || reserved("world-ipv4")
                }
                Entity::WorldIpv6 => {
                    cidr_of(view, id).is_some_and(|n| matches!(n, IpNet::V6(_)))
                        || reserved("world")
                        || reserved("world-ipv6")
                }
                Entity::Cluster => {
                    !view.is_cidr(id)
                        && !reserved("world")
                        && !reserved("world-ipv4")
                        && !reserved("world-ipv6")
                }
                Entity::Host => reserved("host"),
                Entity::RemoteNode => reserved("remote-node"),
                Entity::KubeApiserver => reserved("kube-apiserver"),
                Entity::Health => reserved("health"),
                Entity::Init => reserved("init"),
                Entity::Ingress => reserved("ingress"),
                Entity::Unmanaged => reserved("unmanaged"),
            },
            PeerSelector::Cidr { cidr, except } => match cidr_of(view, id) {
                Some(net) => {
                    cidr.contains(&net)
                        && !except.iter().any(|x| x.contains(&net) || net.contains(x))
                }
                None => {
                    cidr.prefix_len() == 0 && (reserved("world") || world_of_family(cidr, labels))
                }
            },
        }
    }

    fn select_all(&self, view: &IdentityView) -> Selection {
        if self.is_wildcard() {
            return Selection::Wildcard;
        }
        Selection::Identities(
            view.all_ids()
                .filter(|&id| self.selects(view, id, view.identities.get(&id)))
                .collect(),
        )
    }
}

fn world_of_family(cidr: &IpNet, labels: &Labels) -> bool {
    let name = match cidr {
        IpNet::V4(_) => "world-ipv4",
        IpNet::V6(_) => "world-ipv6",
    };
    labels.values(SOURCE_RESERVED, name).next().is_some()
}

fn cidr_of(view: &IdentityView, id: u32) -> Option<IpNet> {
    view.cidr_identities
        .iter()
        .find(|(_, &c)| c == id)
        .map(|(net, _)| *net)
}

/// Selectors in use and what each selects, over one [`IdentityView`].
#[derive(Clone, Debug, Default)]
pub struct SelectorCache {
    view: IdentityView,
    selectors: BTreeMap<String, (PeerSelector, Selection)>,
}

impl SelectorCache {
    /// A cache over `view`, with no selectors yet.
    pub fn new(view: IdentityView) -> SelectorCache {
        SelectorCache {
            view,
            selectors: BTreeMap::new(),
        }
    }

    /// The identities the cache selects from.
    pub fn view(&self) -> &IdentityView {
        &self.view
    }

    /// Registers a selector (idempotent) and returns what it selects.
    pub fn add_selector(&mut self, selector: PeerSelector) -> &Selection {
        let view = &self.view;
        &self
            .selectors
            .entry(selector.key())
            .or_insert_with(|| {
                let selection = selector.select_all(view);
                (selector, selection)
            })
            .1
    }

    /// Forgets every selector not in `in_use` (keys from [`PeerSelector::key`]).
    pub fn retain(&mut self, in_use: &BTreeSet<String>) {
        self.selectors.retain(|k, _| in_use.contains(k));
    }

    /// Number of selectors cached.
    pub fn len(&self) -> usize {
        self.selectors.len()
    }

    /// Whether no selector is cached.
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// What `selector` selects: the cached answer, or one computed now for a
    /// selector that was never registered.
    pub fn selection(&self, selector: &PeerSelector) -> Selection {
        match self.selectors.get(&selector.key()) {
            Some((_, selection)) => selection.clone(),
            None => selector.select_all(&self.view),
        }
    }

    /// Adds (or relabels) an identity; returns the keys of the selectors
    /// whose selection changed.
    pub fn upsert_identity(&mut self, id: u32, labels: Labels) -> BTreeSet<String> {
        self.view.identities.insert(id, labels);
        self.refresh(id)
    }

    /// Removes an identity; returns the keys of the selectors whose
    /// selection changed.
    pub fn remove_identity(&mut self, id: u32) -> BTreeSet<String> {
        self.view.identities.remove(&id);
        self.view.cidr_identities.retain(|_, c| *c != id);
        self.refresh(id)
    }

    /// Adds a CIDR identity for `prefix`; returns the keys of the selectors
    /// whose selection changed.
    pub fn upsert_cidr_identity(&mut self, prefix: IpNet, id: u32) -> BTreeSet<String> {
        self.view.cidr_identities.insert(prefix, id);
        self.refresh(id)
    }

    /// Re-evaluates every selector for one identity.
    fn refresh(&mut self, id: u32) -> BTreeSet<String> {
        let known = self.view.identities.contains_key(&id) || self.view.is_cidr(id);
        let labels = self.view.identities.get(&id);
        let mut changed = BTreeSet::new();
        for (key, (selector, selection)) in &mut self.selectors {
            let Selection::Identities(ids) = selection else {
                continue;
            };
            let now = known && selector.selects(&self.view, id, labels);
            let moved = if now { ids.insert(id) } else { ids.remove(&id) };
            if moved {
                changed.insert(key.clone());
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_cidr_identities_reach_cidr_and_world_selectors() {
        let mut cache = SelectorCache::new(IdentityView::with_reserved());
        let rule = PeerSelector::Cidr {
            cidr: "10.0.0.0/8".parse().unwrap(),
            except: vec!["10.9.0.0/16".parse().unwrap()],
        };
        let world = PeerSelector::Entity(Entity::World);
        assert_eq!(
            cache.add_selector(rule.clone()),
            &Selection::Identities(BTreeSet::new())
        );
        cache.add_selector(world.clone());
        cache.add_selector(PeerSelector::Entity(Entity::All));

        let changed = cache.upsert_cidr_identity("10.1.0.0/16".parse().unwrap(), 16_777_300);
        assert_eq!(changed, BTreeSet::from([rule.key(), world.key()]));
        let changed = cache.upsert_cidr_identity("10.9.1.0/24".parse().unwrap(), 16_777_301);
        assert_eq!(changed, BTreeSet::from([world.key()]), "excepted prefix");
        assert_eq!(
            cache.selection(&rule),
            Selection::Identities(BTreeSet::from([16_777_300]))
        );
        assert_eq!(cache.remove_identity(16_777_300).len(), 2);
        assert_eq!(
            cache.selection(&PeerSelector::Entity(Entity::All)),
            Selection::Wildcard
        );
    }
}
