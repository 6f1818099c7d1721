//! The contents of the load-balancer maps, entry by entry, in host terms: what the
//! control plane wants in them, what the datapath reads back from them after a restart,
//! and an in-memory stand-in for them ([`MapState`] applies [`LbOp`]s like the real maps
//! do) that can say whether the datapath would find a reference to a missing entry.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use crate::backend::{Backend, BackendId};
use crate::diff::LbOp;
use crate::frontend::{Algorithm, FrontendAddr, FrontendKey, RevNatIndex, ServiceFlags};
use crate::writer::MapWriter;

/// A services-map key (`lb4_key`): a frontend in a scope, and a slot (0 = master).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Address and scope.
    pub frontend: FrontendKey,
    /// 0 for the master entry, 1..=count for backend slots.
    pub slot: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} slot {}", self.frontend, self.slot)
    }
}

/// A master entry (`lb4_service` at slot 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Master {
    /// Number of backend slots (active backends); 0 rejects new connections.
    pub count: u16,
    /// The frontend's reverse-NAT index.
    pub rev_nat: RevNatIndex,
    /// `flags` / `flags2`.
    pub flags: ServiceFlags,
    /// Selection algorithm (top byte of `affinity_timeout` in the map).
    pub algorithm: Algorithm,
    /// Session-affinity timeout in seconds; 0 without affinity.
    pub affinity_timeout: u32,
}

/// A backend slot (`lb4_service` at slot 1..=count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The backend of the slot.
    pub backend: BackendId,
    /// The frontend's reverse-NAT index.
    pub rev_nat: RevNatIndex,
    /// The frontend's flags.
    pub flags: ServiceFlags,
}

/// A services-map value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceValue {
    /// Slot 0.
    Master(Master),
    /// Slots 1..=count.
    Slot(Slot),
}

/// An affinity-match entry (`lb_affinity_match`): the backend may still be chosen by
/// session affinity for the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AffinityMatch {
    /// A backend in the frontend's slots.
    pub backend: BackendId,
    /// The frontend.
    pub rev_nat: RevNatIndex,
}

/// A frontend's Maglev lookup table: M backend IDs. Frontends with the same backends share
/// one table in memory (and may share one inner map).
#[derive(Debug, Clone)]
pub struct MaglevTable(Arc<[BackendId]>);

impl MaglevTable {
    /// Wraps a table computed by [`crate::maglev::lookup_table`].
    pub fn new(ids: Vec<BackendId>) -> Self {
        MaglevTable(ids.into())
    }

    /// The backend IDs, entry by entry.
    pub fn ids(&self) -> &[BackendId] {
        &self.0
    }

    /// Whether both are the same table in memory (cheaper than comparing entries).
    pub fn shares_storage(&self, other: &MaglevTable) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for MaglevTable {
    fn eq(&self, other: &Self) -> bool {
        self.shares_storage(other) || self.0 == other.0
    }
}

impl Eq for MaglevTable {}

/// Everything in the load-balancer maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapState {
    /// `cilium_lb4_services_v2`.
    pub services: BTreeMap<ServiceKey, ServiceValue>,
    /// `cilium_lb4_backends_v3`.
    pub backends: BTreeMap<BackendId, Backend>,
    /// `cilium_lb4_reverse_nat`.
    pub rev_nat: BTreeMap<RevNatIndex, FrontendAddr>,
    /// `cilium_lb4_maglev`.
    pub maglev: BTreeMap<RevNatIndex, MaglevTable>,
    /// `cilium_lb_affinity_match`.
    pub affinity_match: BTreeSet<AffinityMatch>,
}

/// A reference the datapath could follow to an entry that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dangling {
    #[error("{frontend} counts {count} slots but slot {slot} is missing")]
    Slot {
        frontend: FrontendKey,
        count: u16,
        slot: u16,
    },
    #[error("{frontend} slot {slot} names backend {backend}, which is missing")]
    SlotBackend {
        frontend: FrontendKey,
        slot: u16,
        backend: BackendId,
    },
    #[error("{frontend} uses reverse-NAT index {rev_nat}, which is missing")]
    RevNat {
        frontend: FrontendKey,
        rev_nat: RevNatIndex,
    },
    #[error("{frontend} selects by Maglev but table {rev_nat} is missing")]
    MaglevTable {
        frontend: FrontendKey,
        rev_nat: RevNatIndex,
    },
    #[error("Maglev table {rev_nat} names backend {backend}, which is missing")]
    MaglevBackend {
        rev_nat: RevNatIndex,
        backend: BackendId,
    },
    #[error("affinity match for {rev_nat} names backend {backend}, which is missing")]
    AffinityBackend {
        rev_nat: RevNatIndex,
        backend: BackendId,
    },
}

impl MapState {
    /// Every reference reachable by the datapath that leads nowhere: from each master to
    /// its slots 1..=count, their backends, its reverse-NAT entry and (Maglev, with
    /// backends) its table and the table's backends; from affinity matches to backends.
    /// Empty when the maps are consistent.
    pub fn dangling(&self) -> Vec<Dangling> {
        let mut found = Vec::new();
        let mut tables_checked = BTreeSet::new();
        for (key, value) in &self.services {
            let ServiceValue::Master(master) = value else {
                continue;
            };
            let frontend = key.frontend;
            if !self.rev_nat.contains_key(&master.rev_nat) {
                found.push(Dangling::RevNat {
                    frontend,
                    rev_nat: master.rev_nat,
                });
            }
            for slot in 1..=master.count {
                match self.services.get(&ServiceKey { frontend, slot }) {
                    Some(ServiceValue::Slot(s)) => {
                        if !self.backends.contains_key(&s.backend) {
                            found.push(Dangling::SlotBackend {
                                frontend,
                                slot,
                                backend: s.backend,
                            });
                        }
                    }
                    _ => found.push(Dangling::Slot {
                        frontend,
                        count: master.count,
                        slot,
                    }),
                }
            }
            if master.algorithm == Algorithm::Maglev && master.count > 0 {
                match self.maglev.get(&master.rev_nat) {
                    None => found.push(Dangling::MaglevTable {
                        frontend,
                        rev_nat: master.rev_nat,
                    }),
                    Some(table) if tables_checked.insert(master.rev_nat) => {
                        let missing: BTreeSet<BackendId> = table
                            .ids()
                            .iter()
                            .filter(|id| !self.backends.contains_key(id))
                            .copied()
                            .collect();
                        found.extend(missing.into_iter().map(|backend| Dangling::MaglevBackend {
                            rev_nat: master.rev_nat,
                            backend,
                        }));
                    }
                    Some(_) => {}
                }
            }
        }
        for m in &self.affinity_match {
            if !self.backends.contains_key(&m.backend) {
                found.push(Dangling::AffinityBackend {
                    rev_nat: m.rev_nat,
                    backend: m.backend,
                });
            }
        }
        found
    }
}

impl MapWriter for MapState {
    type Error = Infallible;

    fn apply(&mut self, op: &LbOp) -> Result<(), Infallible> {
        match op {
            LbOp::UpsertBackend { id, backend } => {
                self.backends.insert(*id, *backend);
            }
            LbOp::UpsertRevNat { index, frontend } => {
                self.rev_nat.insert(*index, *frontend);
            }
            LbOp::UpsertAffinityMatch(m) => {
                self.affinity_match.insert(*m);
            }
            LbOp::UpsertMaglev { rev_nat, table } => {
                self.maglev.insert(*rev_nat, table.clone());
            }
            LbOp::UpsertService { key, value } => {
                self.services.insert(*key, *value);
            }
            LbOp::DeleteService { key } => {
                self.services.remove(key);
            }
            LbOp::DeleteMaglev { rev_nat } => {
                self.maglev.remove(rev_nat);
            }
            LbOp::DeleteAffinityMatch(m) => {
                self.affinity_match.remove(m);
            }
            LbOp::DeleteRevNat { index } => {
                self.rev_nat.remove(index);
            }
            LbOp::DeleteBackend { id } => {
                self.backends.remove(id);
            }
        }
        Ok(())
    }
}
