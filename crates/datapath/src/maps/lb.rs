//! The pinned service load-balancing maps of `bpf/lib/lb.h` as one handle: the
//! load-balancer control plane's [`MapWriter`] (each [`LbOp`] becomes one map update or
//! delete; a Maglev table becomes a new inner array map put into `cilium_lb4_maglev`), the
//! reader that turns the maps back into a [`MapState`] after a restart, and the raw entries
//! `cilium bpf lb list` prints.

use aya::maps::{Array, HashMap, HashOfMaps, MapData};
use cilium_loadbalancer::{
    AffinityMatch, Algorithm, Backend, BackendAddr, BackendId, BackendState, FrontendAddr,
    FrontendKey, LbOp, MaglevTable, MapState, MapWriter, Master, Protocol, RevNatIndex, Scope,
    ServiceFlags, ServiceKey, ServiceValue, Slot,
};

use super::{
    open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    bpffs::BpfPaths,
    lb_abi::{
        Lb4Backend, Lb4Key, Lb4ReverseNat, Lb4Service, LbAffinityMatch, MaglevInner,
        LB4_BACKENDS_MAP, LB4_MAGLEV_MAP, LB4_REVERSE_NAT_MAP, LB4_SERVICES_MAP,
        LB_AFFINITY_MATCH_MAP, LB_MAGLEV_LUT_SIZE,
    },
};

/// One Maglev inner map: a single entry (key 0) holding the whole table.
type MaglevArray = Array<MapData, MaglevInner>;

/// Handles on the load-balancing maps the agent writes.
pub struct LbMaps {
    services: HashMap<MapData, Lb4Key, Lb4Service>,
    backends: HashMap<MapData, u32, Lb4Backend>,
    rev_nat: HashMap<MapData, u16, Lb4ReverseNat>,
    maglev: HashOfMaps<MapData, u16, MaglevArray>,
    affinity_match: HashMap<MapData, LbAffinityMatch, u8>,
}

/// Entries of the maps that do not read back as the control plane's values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Services-map keys with an unknown protocol, scope or algorithm.
    pub services: usize,
    /// Backends with an unknown protocol or state.
    pub backends: usize,
    /// Maglev tables that could not be read.
    pub maglev: usize,
}

impl LbMaps {
    /// Opens the pinned maps under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            services: open_pinned(paths, LB4_SERVICES_MAP)?,
            backends: open_pinned(paths, LB4_BACKENDS_MAP)?,
            rev_nat: open_pinned(paths, LB4_REVERSE_NAT_MAP)?,
            maglev: open_pinned(paths, LB4_MAGLEV_MAP)?,
            affinity_match: open_pinned(paths, LB_AFFINITY_MATCH_MAP)?,
        })
    }

    /// Every services-map entry, in key order.
    pub fn services(&self) -> Result<Vec<(Lb4Key, Lb4Service)>, MapsError> {
        let mut entries = collect(LB4_SERVICES_MAP, self.services.iter())?;
        entries.sort_by_key(|(k, _)| (k.address, k.port(), k.proto, k.scope, k.backend_slot));
        Ok(entries)
    }

    /// Every backend, by ID.
    pub fn backends(&self) -> Result<Vec<(u32, Lb4Backend)>, MapsError> {
        let mut entries = collect(LB4_BACKENDS_MAP, self.backends.iter())?;
        entries.sort_by_key(|(id, _)| *id);
        Ok(entries)
    }

    /// Every reverse-NAT entry, by index (host order).
    pub fn rev_nat(&self) -> Result<Vec<(u16, Lb4ReverseNat)>, MapsError> {
        let mut entries: Vec<(u16, Lb4ReverseNat)> =
            collect(LB4_REVERSE_NAT_MAP, self.rev_nat.iter())?
                .into_iter()
                .map(|(k, v)| (u16::from_be(k), v))
                .collect();
        entries.sort_by_key(|(k, _)| *k);
        Ok(entries)
    }

    /// Every affinity match (backend ID, reverse-NAT index in host order).
    pub fn affinity_matches(&self) -> Result<Vec<(u32, u16)>, MapsError> {
        let mut entries: Vec<(u32, u16)> = self
            .affinity_match
            .keys()
            .map(|k| k.map(|k| (k.backend_id, u16::from_be(k.rev_nat_id))))
            .collect::<Result<_, _>>()
            .map_err(op_error(LB_AFFINITY_MATCH_MAP, "iterate".into()))?;
        entries.sort();
        Ok(entries)
    }

    /// Every Maglev table, by reverse-NAT index (host order).
    pub fn maglev_tables(&self) -> Result<Vec<(u16, Vec<u32>)>, MapsError> {
        let keys: Vec<u16> = self
            .maglev
            .keys()
            .collect::<Result<_, _>>()
            .map_err(op_error(LB4_MAGLEV_MAP, "iterate".into()))?;
        let mut tables = Vec::with_capacity(keys.len());
        for key in keys {
            let index = u16::from_be(key);
            let inner = self
                .maglev
                .get(&key, 0)
                .map_err(op_error(LB4_MAGLEV_MAP, format!("open table {index}")))?;
            let table = inner
                .get(&0, 0)
                .map_err(op_error(LB4_MAGLEV_MAP, format!("read table {index}")))?;
            tables.push((index, table.backend_ids.to_vec()));
        }
        tables.sort_by_key(|(k, _)| *k);
        Ok(tables)
    }

    /// The maps' contents in the control plane's terms, and how many entries could not be
    /// read that way (they are left out; the next diff writes over or deletes nothing it
    /// does not know about).
    pub fn read_state(&self) -> Result<(MapState, Unreadable), MapsError> {
        let mut state = MapState::default();
        let mut unreadable = Unreadable::default();
        for (key, value) in self.services()? {
            match service_entry(&key, &value) {
                Some((key, value)) => {
                    state.services.insert(key, value);
                }
                None => unreadable.services += 1,
            }
        }
        for (id, backend) in self.backends()? {
            match backend_entry(&backend) {
                Some(backend) => {
                    state.backends.insert(BackendId(id), backend);
                }
                None => unreadable.backends += 1,
            }
        }
        for (index, nat) in self.rev_nat()? {
            // A reverse-NAT entry does not name its protocol: take it from a master using it.
            let protocol = state.services.iter().find_map(|(k, v)| match v {
                ServiceValue::Master(m) if m.rev_nat.0 == index => Some(k.frontend.addr.protocol),
                _ => None,
            });
            state.rev_nat.insert(
                RevNatIndex(index),
                FrontendAddr {
                    ip: nat.address(),
                    port: nat.port(),
                    protocol: protocol.unwrap_or(Protocol::Tcp),
                },
            );
        }
        for (backend, rev_nat) in self.affinity_matches()? {
            state.affinity_match.insert(AffinityMatch {
                backend: BackendId(backend),
                rev_nat: RevNatIndex(rev_nat),
            });
        }
        match self.maglev_tables() {
            Ok(tables) => {
                for (index, ids) in tables {
                    state.maglev.insert(
                        RevNatIndex(index),
                        MaglevTable::new(ids.into_iter().map(BackendId).collect()),
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Maglev tables unreadable; they will be rewritten");
                unreadable.maglev += 1;
            }
        }
        Ok((state, unreadable))
    }

    fn upsert_maglev(
        &mut self,
        rev_nat: RevNatIndex,
        table: &MaglevTable,
    ) -> Result<(), MapsError> {
        let ids: Vec<u32> = table.ids().iter().map(|id| id.0).collect();
        let inner = MaglevInner::from_table(&ids).ok_or(MapsError::MaglevTableSize {
            rev_nat: rev_nat.0,
            len: ids.len(),
            expected: LB_MAGLEV_LUT_SIZE,
        })?;
        let mut array = MaglevArray::create(1, 0)
            .map_err(op_error(LB4_MAGLEV_MAP, format!("create table {rev_nat}")))?;
        array
            .set(0, Box::new(inner).as_ref(), 0)
            .map_err(op_error(LB4_MAGLEV_MAP, format!("fill table {rev_nat}")))?;
        counted(
            LB4_MAGLEV_MAP,
            MapOp::Update,
            self.maglev.insert(rev_nat.0.to_be(), &array, 0),
        )
        .map_err(op_error(LB4_MAGLEV_MAP, format!("insert table {rev_nat}")))
    }
}

impl MapWriter for LbMaps {
    type Error = MapsError;

    fn apply(&mut self, op: &LbOp) -> Result<(), MapsError> {
        let what = op.to_string();
        match op {
            LbOp::UpsertBackend { id, backend } => updated(
                self.backends.insert(id.0, lb4_backend(backend), 0),
                LB4_BACKENDS_MAP,
                what,
            ),
            LbOp::UpsertRevNat { index, frontend } => updated(
                self.rev_nat.insert(
                    index.0.to_be(),
                    Lb4ReverseNat::new(frontend.ip, frontend.port),
                    0,
                ),
                LB4_REVERSE_NAT_MAP,
                what,
            ),
            LbOp::UpsertAffinityMatch(m) => updated(
                self.affinity_match
                    .insert(LbAffinityMatch::new(m.backend.0, m.rev_nat.0), 0, 0),
                LB_AFFINITY_MATCH_MAP,
                what,
            ),
            LbOp::UpsertMaglev { rev_nat, table } => self.upsert_maglev(*rev_nat, table),
            LbOp::UpsertService { key, value } => updated(
                self.services.insert(lb4_key(key), lb4_service(value), 0),
                LB4_SERVICES_MAP,
                what,
            ),
            LbOp::DeleteService { key } => {
                ignore_missing(self.services.remove(&lb4_key(key)), LB4_SERVICES_MAP, what)
            }
            LbOp::DeleteMaglev { rev_nat } => {
                ignore_missing(self.maglev.remove(&rev_nat.0.to_be()), LB4_MAGLEV_MAP, what)
            }
            LbOp::DeleteAffinityMatch(m) => ignore_missing(
                self.affinity_match
                    .remove(&LbAffinityMatch::new(m.backend.0, m.rev_nat.0)),
                LB_AFFINITY_MATCH_MAP,
                what,
            ),
            LbOp::DeleteRevNat { index } => ignore_missing(
                self.rev_nat.remove(&index.0.to_be()),
                LB4_REVERSE_NAT_MAP,
                what,
            ),
            LbOp::DeleteBackend { id } => {
                ignore_missing(self.backends.remove(&id.0), LB4_BACKENDS_MAP, what)
            }
        }
    }
}

fn op_error(name: &'static str, op: String) -> impl FnOnce(aya::maps::MapError) -> MapsError {
    move |source| MapsError::Operation {
        name,
        op,
        source: Box::new(source),
    }
}

/// Counts the update whose kernel result is `result` and adds context to a failure.
fn updated(
    result: Result<(), aya::maps::MapError>,
    name: &'static str,
    op: String,
) -> Result<(), MapsError> {
    counted(name, MapOp::Update, result).map_err(op_error(name, op))
}

/// Counts the delete whose kernel result is `result`; a delete of an entry that is
/// already gone succeeded.
fn ignore_missing(
    result: Result<(), aya::maps::MapError>,
    name: &'static str,
    op: String,
) -> Result<(), MapsError> {
    match counted(name, MapOp::Delete, result) {
        Err(e) if !super::is_not_found(&e) => Err(op_error(name, op)(e)),
        _ => Ok(()),
    }
}

fn collect<K, V>(
    name: &'static str,
    iter: impl Iterator<Item = Result<(K, V), aya::maps::MapError>>,
) -> Result<Vec<(K, V)>, MapsError> {
    iter.collect::<Result<_, _>>()
        .map_err(op_error(name, "iterate".into()))
}

fn lb4_key(key: &ServiceKey) -> Lb4Key {
    let addr = key.frontend.addr;
    Lb4Key::new(
        addr.ip,
        addr.port,
        addr.protocol.number(),
        key.frontend.scope.value(),
        key.slot,
    )
}

fn lb4_service(value: &ServiceValue) -> Lb4Service {
    match value {
        ServiceValue::Master(m) => Lb4Service::master(
            m.count,
            m.rev_nat.0,
            m.flags.flags,
            m.flags.flags2,
            m.algorithm.selection(),
            m.affinity_timeout,
        ),
        ServiceValue::Slot(s) => {
            Lb4Service::slot(s.backend.0, s.rev_nat.0, s.flags.flags, s.flags.flags2)
        }
    }
}

fn lb4_backend(backend: &Backend) -> Lb4Backend {
    Lb4Backend::new(
        backend.addr.ip,
        backend.addr.port,
        backend.addr.protocol.number(),
        backend.state.value(),
    )
}

/// A services-map entry in the control plane's terms; `None` for values it never writes.
fn service_entry(key: &Lb4Key, value: &Lb4Service) -> Option<(ServiceKey, ServiceValue)> {
    let frontend = FrontendKey {
        addr: FrontendAddr {
            ip: key.address(),
            port: key.port(),
            protocol: Protocol::from_number(key.proto)?,
        },
        scope: Scope::from_value(key.scope)?,
    };
    let flags = ServiceFlags {
        flags: value.flags,
        flags2: value.flags2,
    };
    let rev_nat = RevNatIndex(value.rev_nat_index());
    let value = if key.backend_slot == 0 {
        ServiceValue::Master(Master {
            count: value.count,
            rev_nat,
            flags,
            algorithm: Algorithm::from_selection(value.algorithm())?,
            affinity_timeout: value.affinity_timeout(),
        })
    } else {
        ServiceValue::Slot(Slot {
            backend: BackendId(value.backend_id),
            rev_nat,
            flags,
        })
    };
    Some((
        ServiceKey {
            frontend,
            slot: key.backend_slot,
        },
        value,
    ))
}

fn backend_entry(backend: &Lb4Backend) -> Option<Backend> {
    Some(Backend {
        addr: BackendAddr {
            ip: backend.address(),
            port: backend.port(),
            protocol: Protocol::from_number(backend.proto)?,
        },
        state: BackendState::from_value(backend.flags)?,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn frontend() -> FrontendKey {
        FrontendKey {
            addr: FrontendAddr {
                ip: Ipv4Addr::new(10, 96, 0, 10),
                port: 80,
                protocol: Protocol::Udp,
            },
            scope: Scope::Internal,
        }
    }

    #[test]
    fn service_entries_read_back_as_written() {
        let flags = ServiceFlags {
            flags: 1 << 4,
            flags2: 0,
        };
        let master = ServiceValue::Master(Master {
            count: 3,
            rev_nat: RevNatIndex(0x0102),
            flags,
            algorithm: Algorithm::Maglev,
            affinity_timeout: 10_800,
        });
        let slot = ServiceValue::Slot(Slot {
            backend: BackendId(77),
            rev_nat: RevNatIndex(0x0102),
            flags,
        });
        for (slot_no, value) in [(0, master), (2, slot)] {
            let key = ServiceKey {
                frontend: frontend(),
                slot: slot_no,
            };
            assert_eq!(
                service_entry(&lb4_key(&key), &lb4_service(&value)),
                Some((key, value))
            );
        }
    }

    #[test]
    fn backends_read_back_as_written() {
        let backend = Backend {
            addr: BackendAddr {
                ip: Ipv4Addr::new(10, 0, 1, 7),
                port: 8080,
                protocol: Protocol::Tcp,
            },
            state: BackendState::Terminating,
        };
        assert_eq!(backend_entry(&lb4_backend(&backend)), Some(backend));
    }

    #[test]
    fn values_the_control_plane_never_writes_are_unreadable() {
        let mut key = lb4_key(&ServiceKey {
            frontend: frontend(),
            slot: 0,
        });
        key.proto = 132;
        assert_eq!(service_entry(&key, &Lb4Service::default()), None);
    }
}
