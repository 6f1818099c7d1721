//! From one [`MapState`] to the next: the map operations, in an order that never lets the
//! datapath follow a reference to a missing entry.
//!
//! Applied one by one, first every upsert, from the entries referred to towards the entries
//! that refer to them, then every delete, in the opposite direction:
//!
//! 1. backends (new ones, and state changes such as active → terminating);
//! 2. reverse-NAT entries; 3. affinity matches; 4. Maglev tables — all before the masters
//!    that make them reachable;
//! 5. backend slots (a slot beyond the old count is unreachable until its master grows;
//!    a rewritten slot names a backend that already exists);
//! 6. masters (count, flags, algorithm) — a grown count now covers written slots;
//! 7. masters of removed frontends — nothing reaches their slots any more;
//! 8. slots beyond the new count, and slots of removed frontends;
//! 9. Maglev tables, 10. affinity matches, 11. reverse-NAT entries no master uses;
//! 12. backends no slot, table or frontend lists any more. Terminating backends are still
//!     listed, so they stay for their connections until their endpoints go.
//!
//! A key is never both upserted and deleted by one diff.

use std::fmt;

use crate::backend::{Backend, BackendId};
use crate::frontend::{FrontendAddr, RevNatIndex};
use crate::map_state::{AffinityMatch, MaglevTable, MapState, ServiceKey, ServiceValue};

/// One change to one map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbOp {
    /// `cilium_lb4_backends_v3[id] = backend`.
    UpsertBackend { id: BackendId, backend: Backend },
    /// `cilium_lb4_reverse_nat[index] = frontend`.
    UpsertRevNat {
        index: RevNatIndex,
        frontend: FrontendAddr,
    },
    /// `cilium_lb_affinity_match[match] = 0`.
    UpsertAffinityMatch(AffinityMatch),
    /// `cilium_lb4_maglev[rev_nat] = inner map holding table`.
    UpsertMaglev {
        rev_nat: RevNatIndex,
        table: MaglevTable,
    },
    /// `cilium_lb4_services_v2[key] = value`.
    UpsertService {
        key: ServiceKey,
        value: ServiceValue,
    },
    /// Removes `cilium_lb4_services_v2[key]`.
    DeleteService { key: ServiceKey },
    /// Removes `cilium_lb4_maglev[rev_nat]`.
    DeleteMaglev { rev_nat: RevNatIndex },
    /// Removes `cilium_lb_affinity_match[match]`.
    DeleteAffinityMatch(AffinityMatch),
    /// Removes `cilium_lb4_reverse_nat[index]`.
    DeleteRevNat { index: RevNatIndex },
    /// Removes `cilium_lb4_backends_v3[id]`.
    DeleteBackend { id: BackendId },
}

impl fmt::Display for LbOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LbOp::UpsertBackend { id, backend } => write!(
                f,
                "upsert backend {id} = {} ({})",
                backend.addr, backend.state
            ),
            LbOp::UpsertRevNat { index, frontend } => {
                write!(f, "upsert reverse NAT {index} = {frontend}")
            }
            LbOp::UpsertAffinityMatch(m) => {
                write!(f, "upsert affinity match {}/{}", m.rev_nat, m.backend)
            }
            LbOp::UpsertMaglev { rev_nat, table } => write!(
                f,
                "upsert Maglev table {rev_nat} ({} entries)",
                table.ids().len()
            ),
            LbOp::UpsertService { key, value } => match value {
                ServiceValue::Master(m) => write!(
                    f,
                    "upsert service {key}: {} slots, reverse NAT {}, {}",
                    m.count, m.rev_nat, m.algorithm
                ),
                ServiceValue::Slot(s) => write!(f, "upsert service {key}: backend {}", s.backend),
            },
            LbOp::DeleteService { key } => write!(f, "delete service {key}"),
            LbOp::DeleteMaglev { rev_nat } => write!(f, "delete Maglev table {rev_nat}"),
            LbOp::DeleteAffinityMatch(m) => {
                write!(f, "delete affinity match {}/{}", m.rev_nat, m.backend)
            }
            LbOp::DeleteRevNat { index } => write!(f, "delete reverse NAT {index}"),
            LbOp::DeleteBackend { id } => write!(f, "delete backend {id}"),
        }
    }
}

/// The operations that turn maps holding `old` into maps holding `new`, in a safe order
/// (see the module documentation). Empty when they are equal.
pub fn diff(old: &MapState, new: &MapState) -> Vec<LbOp> {
    let mut ops = Vec::new();
    for (id, backend) in &new.backends {
        if old.backends.get(id) != Some(backend) {
            ops.push(LbOp::UpsertBackend {
                id: *id,
                backend: *backend,
            });
        }
    }
    for (index, frontend) in &new.rev_nat {
        if old.rev_nat.get(index) != Some(frontend) {
            ops.push(LbOp::UpsertRevNat {
                index: *index,
                frontend: *frontend,
            });
        }
    }
    ops.extend(
        new.affinity_match
            .difference(&old.affinity_match)
            .map(|m| LbOp::UpsertAffinityMatch(*m)),
    );
    for (rev_nat, table) in &new.maglev {
        if old.maglev.get(rev_nat) != Some(table) {
            ops.push(LbOp::UpsertMaglev {
                rev_nat: *rev_nat,
                table: table.clone(),
            });
        }
    }
    let changed = |masters: bool| {
        new.services
            .iter()
            .filter(move |(key, _)| (key.slot == 0) == masters)
            .filter(|(key, value)| old.services.get(key) != Some(value))
            .map(|(key, value)| LbOp::UpsertService {
                key: *key,
                value: *value,
            })
    };
    ops.extend(changed(false));
    ops.extend(changed(true));
    let removed = |masters: bool| {
        old.services
            .keys()
            .filter(move |key| (key.slot == 0) == masters)
            .filter(|key| !new.services.contains_key(key))
            .map(|key| LbOp::DeleteService { key: *key })
    };
    ops.extend(removed(true));
    ops.extend(removed(false));
    ops.extend(
        old.maglev
            .keys()
            .filter(|rev_nat| !new.maglev.contains_key(rev_nat))
            .map(|rev_nat| LbOp::DeleteMaglev { rev_nat: *rev_nat }),
    );
    ops.extend(
        old.affinity_match
            .difference(&new.affinity_match)
            .map(|m| LbOp::DeleteAffinityMatch(*m)),
    );
    ops.extend(
        old.rev_nat
            .keys()
            .filter(|index| !new.rev_nat.contains_key(index))
            .map(|index| LbOp::DeleteRevNat { index: *index }),
    );
    ops.extend(
        old.backends
            .keys()
            .filter(|id| !new.backends.contains_key(id))
            .map(|id| LbOp::DeleteBackend { id: *id }),
    );
    ops
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::backend::BackendAddr;
    use crate::backend::BackendState;
    use crate::frontend::{Algorithm, FrontendKey, Scope, ServiceFlags};
    use crate::map_state::{Master, Slot};
    use crate::names::Protocol;
    use crate::writer::MapWriter;

    const FRONTEND: FrontendKey = FrontendKey {
        addr: FrontendAddr {
            ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            protocol: Protocol::Tcp,
        },
        scope: Scope::External,
    };
    const REV_NAT: RevNatIndex = RevNatIndex(1);

    /// Maps holding FRONTEND with `backends` (IDs) in its slots, and `terminating` ones.
    fn maps(backends: &[u32], terminating: &[u32], algorithm: Algorithm) -> MapState {
        let mut maps = MapState::default();
        let backend = |id: u32, state| Backend {
            addr: BackendAddr {
                ip: Ipv4Addr::new(10, 0, 0, id as u8),
                port: 8080,
                protocol: Protocol::Tcp,
            },
            state,
        };
        for id in backends {
            maps.backends
                .insert(BackendId(*id), backend(*id, BackendState::Active));
        }
        for id in terminating {
            maps.backends
                .insert(BackendId(*id), backend(*id, BackendState::Terminating));
        }
        maps.services.insert(
            ServiceKey {
                frontend: FRONTEND,
                slot: 0,
            },
            ServiceValue::Master(Master {
                count: backends.len() as u16,
                rev_nat: REV_NAT,
                flags: ServiceFlags::default(),
                algorithm,
                affinity_timeout: 0,
            }),
        );
        for (slot, id) in (1..).zip(backends) {
            maps.services.insert(
                ServiceKey {
                    frontend: FRONTEND,
                    slot,
                },
                ServiceValue::Slot(Slot {
                    backend: BackendId(*id),
                    rev_nat: REV_NAT,
                    flags: ServiceFlags::default(),
                }),
            );
        }
        maps.rev_nat.insert(REV_NAT, FRONTEND.addr);
        if algorithm == Algorithm::Maglev && !backends.is_empty() {
            let table = (0..251)
                .map(|i| BackendId(backends[i % backends.len()]))
                .collect();
            maps.maglev.insert(REV_NAT, MaglevTable::new(table));
        }
        maps
    }

    fn position(ops: &[LbOp], wanted: impl Fn(&LbOp) -> bool, what: &str) -> usize {
        ops.iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("no {what} among {ops:#?}"))
    }

    fn is_slot_upsert(op: &LbOp, slot: u16) -> bool {
        matches!(op, LbOp::UpsertService { key, .. } if key.slot == slot)
    }

    fn is_slot_delete(op: &LbOp, slot: u16) -> bool {
        matches!(op, LbOp::DeleteService { key } if key.slot == slot)
    }

    /// Applies `ops` one at a time from `old`, checking after each that the datapath
    /// could follow no reference to a missing entry; returns the final maps.
    fn apply_checked(old: &MapState, ops: &[LbOp]) -> MapState {
        let mut maps = old.clone();
        for (i, op) in ops.iter().enumerate() {
            let Ok(()) = maps.apply(op);
            let dangling = maps.dangling();
            assert!(dangling.is_empty(), "after op {i} ({op}): {dangling:?}");
        }
        maps
    }

    #[test]
    fn equal_states_need_nothing() {
        let state = maps(&[1, 2], &[], Algorithm::Maglev);
        assert!(diff(&state, &state.clone()).is_empty());
    }

    #[test]
    fn growing_writes_backend_then_slot_then_master() {
        let old = maps(&[1, 2], &[], Algorithm::Random);
        let new = maps(&[1, 2, 3], &[], Algorithm::Random);
        let ops = diff(&old, &new);
        assert_eq!(ops.len(), 3, "{ops:#?}");
        let backend = position(
            &ops,
            |op| {
                matches!(
                    op,
                    LbOp::UpsertBackend {
                        id: BackendId(3),
                        ..
                    }
                )
            },
            "backend upsert",
        );
        let slot = position(&ops, |op| is_slot_upsert(op, 3), "slot 3 upsert");
        let master = position(&ops, |op| is_slot_upsert(op, 0), "master upsert");
        assert!(backend < slot && slot < master, "{ops:#?}");
        assert_eq!(apply_checked(&old, &ops), new);
    }

    #[test]
    fn shrinking_updates_master_then_deletes_slot_then_backend() {
        let old = maps(&[1, 2, 3], &[], Algorithm::Random);
        let new = maps(&[1, 3], &[], Algorithm::Random);
        let ops = diff(&old, &new);
        let slot_rewrite = position(&ops, |op| is_slot_upsert(op, 2), "slot 2 rewrite");
        let master = position(&ops, |op| is_slot_upsert(op, 0), "master upsert");
        let slot_delete = position(&ops, |op| is_slot_delete(op, 3), "slot 3 delete");
        let backend = position(
            &ops,
            |op| *op == LbOp::DeleteBackend { id: BackendId(2) },
            "backend delete",
        );
        assert!(
            slot_rewrite < master && master < slot_delete && slot_delete < backend,
            "{ops:#?}"
        );
        assert_eq!(apply_checked(&old, &ops), new);
    }

    #[test]
    fn terminating_backend_loses_its_slot_but_stays() {
        let old = maps(&[1, 2], &[], Algorithm::Random);
        let new = maps(&[1], &[2], Algorithm::Random);
        let ops = diff(&old, &new);
        assert!(
            ops.iter()
                .all(|op| !matches!(op, LbOp::DeleteBackend { .. })),
            "{ops:#?}"
        );
        let state = position(
            &ops,
            |op| matches!(op, LbOp::UpsertBackend { id: BackendId(2), backend } if backend.state == BackendState::Terminating),
            "state change",
        );
        let master = position(&ops, |op| is_slot_upsert(op, 0), "master upsert");
        let slot = position(&ops, |op| is_slot_delete(op, 2), "slot 2 delete");
        assert!(state < master && master < slot, "{ops:#?}");
        assert_eq!(apply_checked(&old, &ops), new);
    }

    #[test]
    fn removed_frontend_goes_master_first_backends_last() {
        let old = maps(&[1, 2], &[], Algorithm::Maglev);
        let ops = diff(&old, &MapState::default());
        let master = position(&ops, |op| is_slot_delete(op, 0), "master delete");
        let slots: Vec<usize> = [1, 2]
            .iter()
            .map(|s| position(&ops, |op| is_slot_delete(op, *s), "slot delete"))
            .collect();
        let table = position(
            &ops,
            |op| *op == LbOp::DeleteMaglev { rev_nat: REV_NAT },
            "table delete",
        );
        let rev_nat = position(
            &ops,
            |op| *op == LbOp::DeleteRevNat { index: REV_NAT },
            "reverse NAT delete",
        );
        let backends = position(
            &ops,
            |op| matches!(op, LbOp::DeleteBackend { .. }),
            "backend delete",
        );
        assert!(slots.iter().all(|s| master < *s && *s < table), "{ops:#?}");
        assert!(table < rev_nat && rev_nat < backends, "{ops:#?}");
        assert_eq!(apply_checked(&old, &ops), MapState::default());
    }

    #[test]
    fn maglev_table_exists_whenever_the_master_selects_by_it() {
        let random = maps(&[1, 2], &[], Algorithm::Random);
        let maglev = maps(&[1, 2], &[], Algorithm::Maglev);
        let on = diff(&random, &maglev);
        let table = position(
            &on,
            |op| matches!(op, LbOp::UpsertMaglev { .. }),
            "table upsert",
        );
        let master = position(&on, |op| is_slot_upsert(op, 0), "master upsert");
        assert!(table < master, "{on:#?}");
        assert_eq!(apply_checked(&random, &on), maglev);
        let off = diff(&maglev, &random);
        let master = position(&off, |op| is_slot_upsert(op, 0), "master upsert");
        let table = position(
            &off,
            |op| matches!(op, LbOp::DeleteMaglev { .. }),
            "table delete",
        );
        assert!(master < table, "{off:#?}");
        assert_eq!(apply_checked(&maglev, &off), random);
    }

    #[test]
    fn replacing_every_backend_never_exposes_a_missing_one() {
        let old = maps(&[1, 2, 3], &[], Algorithm::Maglev);
        let new = maps(&[4, 5], &[], Algorithm::Maglev);
        let ops = diff(&old, &new);
        assert_eq!(apply_checked(&old, &ops), new);
    }

    #[test]
    fn ops_read_as_sentences() {
        let op = LbOp::UpsertService {
            key: ServiceKey {
                frontend: FRONTEND,
                slot: 0,
            },
            value: ServiceValue::Master(Master {
                count: 2,
                rev_nat: REV_NAT,
                flags: ServiceFlags::default(),
                algorithm: Algorithm::Maglev,
                affinity_timeout: 0,
            }),
        };
        assert_eq!(
            op.to_string(),
            "upsert service 10.96.0.10:80/TCP slot 0: 2 slots, reverse NAT 1, maglev"
        );
        assert_eq!(
            LbOp::DeleteBackend { id: BackendId(7) }.to_string(),
            "delete backend 7"
        );
    }
}
