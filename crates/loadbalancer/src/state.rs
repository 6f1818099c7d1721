//! The desired load-balancer state in service terms — each frontend with its service,
//! kind, backends in slot order and terminating backends — which is what
//! `cilium service list` shows, and its rendering into map entries ([`MapState`]).

use std::collections::BTreeMap;

use crate::backend::{Backend, BackendId};
use crate::frontend::{
    Algorithm, FrontendKey, FrontendKind, RevNatIndex, ServiceFlags, SVC_FLAG_AFFINITY,
};
use crate::map_state::{
    AffinityMatch, MaglevTable, MapState, Master, ServiceKey, ServiceValue, Slot,
};
use crate::names::ObjectName;

/// One frontend in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendEntry {
    /// The service it belongs to.
    pub service: ObjectName,
    /// The service port's name (empty for an unnamed port).
    pub port_name: String,
    /// What kind of frontend it is.
    pub kind: FrontendKind,
    /// Its reverse-NAT index (shared by both scopes of one address).
    pub rev_nat: RevNatIndex,
    /// `flags` / `flags2`.
    pub flags: ServiceFlags,
    /// Backend selection.
    pub algorithm: Algorithm,
    /// Session-affinity timeout in seconds, with `sessionAffinity: ClientIP`.
    pub affinity_timeout: Option<u32>,
    /// Active backends, in slot order (slot 1 first).
    pub slots: Vec<BackendId>,
    /// Terminating backends: no slot, kept for existing connections.
    pub terminating: Vec<BackendId>,
}

impl FrontendEntry {
    /// The master entry (slot 0).
    pub fn master(&self) -> Master {
        Master {
            count: self.slots.len() as u16,
            rev_nat: self.rev_nat,
            flags: self.flags,
            algorithm: self.algorithm,
            affinity_timeout: self.affinity_timeout.unwrap_or(0),
        }
    }

    fn has_affinity(&self) -> bool {
        self.flags.flags & SVC_FLAG_AFFINITY != 0
    }
}

/// Every frontend and backend the node's datapath should serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbState {
    /// Frontends by address and scope.
    pub frontends: BTreeMap<FrontendKey, FrontendEntry>,
    /// Backends by ID: those in any frontend's slots (active) or terminating lists.
    pub backends: BTreeMap<BackendId, Backend>,
    /// Maglev tables by reverse-NAT index, for Maglev frontends with backends.
    pub maglev: BTreeMap<RevNatIndex, MaglevTable>,
}

impl LbState {
    /// The map entries that realise this state.
    pub fn map_state(&self) -> MapState {
        let mut maps = MapState {
            backends: self.backends.clone(),
            maglev: self.maglev.clone(),
            ..MapState::default()
        };
        for (frontend, entry) in &self.frontends {
            maps.services.insert(
                ServiceKey {
                    frontend: *frontend,
                    slot: 0,
                },
                ServiceValue::Master(entry.master()),
            );
            for (slot, backend) in (1..).zip(&entry.slots) {
                maps.services.insert(
                    ServiceKey {
                        frontend: *frontend,
                        slot,
                    },
                    ServiceValue::Slot(Slot {
                        backend: *backend,
                        rev_nat: entry.rev_nat,
                        flags: entry.flags,
                    }),
                );
                if entry.has_affinity() {
                    maps.affinity_match.insert(AffinityMatch {
                        backend: *backend,
                        rev_nat: entry.rev_nat,
                    });
                }
            }
            maps.rev_nat.insert(entry.rev_nat, frontend.addr);
        }
        maps
    }
}
