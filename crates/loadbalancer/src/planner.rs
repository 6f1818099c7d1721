//! From the catalog to the node's desired [`LbState`]: the frontends of every service port
//! (cluster IP, external IPs, node IPs and `0.0.0.0` at the node port, load-balancer IPs),
//! each with its backends filtered by traffic policy, stable backend IDs and reverse-NAT
//! indexes, flags, algorithm and Maglev tables.
//!
//! Scopes follow Cilium: a cluster IP has one entry, in the default (external) scope,
//! whose backends follow `internalTrafficPolicy`. Other frontends have an external-scope
//! entry whose backends follow `externalTrafficPolicy`; when the two policies differ they
//! get a second, internal-scope entry following `internalTrafficPolicy`, and the external
//! one says so with `SVC_FLAG_TWO_SCOPES`. Both entries share the address's reverse-NAT
//! index, which keys the Maglev table, so a Maglev table is built from the external entry's
//! backends only, and an internal-scope entry selects at random: Maglev is for traffic from
//! outside the cluster, and the two entries' backends differ.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::backend::{Backend, BackendAddr, BackendId, BackendState};
use crate::catalog::Catalog;
use crate::frontend::{
    Algorithm, FrontendAddr, FrontendKey, FrontendKind, RevNatIndex, Scope, ServiceFlags,
    SVC_FLAG_AFFINITY, SVC_FLAG_EXT_LOCAL_SCOPE, SVC_FLAG_INT_LOCAL_SCOPE, SVC_FLAG_ROUTABLE,
    SVC_FLAG_TWO_SCOPES,
};
use crate::ids::IdAllocator;
use crate::maglev::{backend_key, lookup_table, MaglevBackend, MaglevConfig, DEFAULT_WEIGHT};
use crate::map_state::{MaglevTable, MapState};
use crate::names::ObjectName;
use crate::resource::{ClusterIp, EndpointSlice, Service, ServicePort, ServiceType, TrafficPolicy};
use crate::state::{FrontendEntry, LbState};

/// Backend IDs handed out: `1..=MAX_BACKEND_ID`.
const MAX_BACKEND_ID: u32 = u32::MAX - 1;
/// Reverse-NAT indexes handed out: `1..=MAX_REV_NAT`.
const MAX_REV_NAT: u32 = u16::MAX as u32;

/// What the planner needs to know about the node and the cluster's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    /// This node's name: backends whose EndpointSlice `nodeName` is this are local.
    pub node_name: String,
    /// The addresses NodePort services are offered on (besides `0.0.0.0`).
    pub node_ips: Vec<Ipv4Addr>,
    /// Selection for services without the `service.cilium.io/lb-algorithm` annotation.
    pub default_algorithm: Algorithm,
    /// Maglev table size and seed.
    pub maglev: MaglevConfig,
}

/// Something the planner had to leave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanProblem {
    /// Two services (or two ports of one) claim one frontend address; the service first in
    /// namespace/name order keeps it.
    #[error("service {service}: frontend {frontend} is already used by service {owner}; left out")]
    FrontendTaken {
        service: ObjectName,
        frontend: FrontendAddr,
        owner: ObjectName,
    },
    /// Every reverse-NAT index is in use.
    #[error("service {service}: no reverse-NAT index left for frontend {frontend}; left out")]
    RevNatExhausted {
        service: ObjectName,
        frontend: FrontendAddr,
    },
    /// Every backend ID is in use.
    #[error("service {service}: no backend ID left for backend {backend}; left out")]
    BackendIdsExhausted {
        service: ObjectName,
        backend: BackendAddr,
    },
}

/// The outcome of planning.
#[derive(Debug, Clone)]
pub struct Desired {
    /// What the datapath should hold.
    pub state: LbState,
    /// What had to be left out, and why.
    pub problems: Vec<PlanProblem>,
}

/// Plans the node's load-balancer state, keeping IDs stable from one plan to the next.
#[derive(Debug, Clone)]
pub struct Planner {
    config: LbConfig,
    backend_ids: IdAllocator<BackendAddr>,
    rev_nats: IdAllocator<FrontendAddr>,
    /// Maglev tables of the last plan by the backends they were built from.
    tables: HashMap<Vec<BackendId>, MaglevTable>,
}

/// One plan in the making.
#[derive(Default)]
struct Build {
    state: LbState,
    problems: Vec<PlanProblem>,
    /// The service each frontend address went to.
    owners: HashMap<FrontendAddr, ObjectName>,
    /// Backends in some frontend's slots.
    active: BTreeSet<BackendId>,
}

/// A backend of one service port, before it has an ID.
#[derive(Debug, Clone, Copy)]
struct PortBackend {
    state: BackendState,
    local: bool,
}

impl Planner {
    /// A planner with no IDs handed out.
    pub fn new(config: LbConfig) -> Self {
        Planner {
            config,
            backend_ids: IdAllocator::new(1, MAX_BACKEND_ID),
            rev_nats: IdAllocator::new(1, MAX_REV_NAT),
            tables: HashMap::new(),
        }
    }

    /// A planner that keeps the backend IDs and reverse-NAT indexes found in `maps` (read
    /// back from the datapath after a restart), so that plans change nothing that needs
    /// no change.
    pub fn restore(config: LbConfig, maps: &MapState) -> Self {
        let mut planner = Planner::new(config);
        for (id, backend) in &maps.backends {
            planner.backend_ids.restore(backend.addr, id.0);
        }
        for (index, frontend) in &maps.rev_nat {
            planner.rev_nats.restore(*frontend, u32::from(index.0));
        }
        planner
    }

    /// The configuration plans are made with.
    pub fn config(&self) -> &LbConfig {
        &self.config
    }

    /// The state the datapath should hold for `catalog`. IDs of backends and frontends
    /// that are gone are released, to be reused only after every other free one.
    pub fn desired(&mut self, catalog: &Catalog) -> Desired {
        let mut build = Build::default();
        for service in catalog.services() {
            if service.cluster_ip == ClusterIp::Headless
                || service.service_type == ServiceType::ExternalName
            {
                continue;
            }
            let slices = catalog.endpoint_slices(&service.name);
            for port in &service.ports {
                let backends = self.port_backends(&slices, port);
                for (addr, kind) in self.frontend_addrs(service, port) {
                    self.add_frontend(&mut build, service, port, (addr, kind), &backends);
                }
            }
        }
        let Build {
            mut state,
            problems,
            active,
            ..
        } = build;
        for (id, backend) in &mut state.backends {
            if active.contains(id) {
                backend.state = BackendState::Active;
            }
        }
        self.add_maglev_tables(&mut state);
        let backends: BTreeSet<BackendAddr> = state.backends.values().map(|b| b.addr).collect();
        self.backend_ids.retain(|addr| backends.contains(addr));
        let frontends: BTreeSet<FrontendAddr> = state.frontends.keys().map(|k| k.addr).collect();
        self.rev_nats.retain(|addr| frontends.contains(addr));
        Desired { state, problems }
    }

    /// Adds the entries (one per scope) of one frontend address of a service port, unless
    /// another service (or port) has the address already.
    fn add_frontend(
        &mut self,
        build: &mut Build,
        service: &Service,
        port: &ServicePort,
        (addr, kind): (FrontendAddr, FrontendKind),
        backends: &BTreeMap<BackendAddr, PortBackend>,
    ) {
        if let Some(owner) = build.owners.get(&addr) {
            build.problems.push(PlanProblem::FrontendTaken {
                service: service.name.clone(),
                frontend: addr,
                owner: owner.clone(),
            });
            return;
        }
        build.owners.insert(addr, service.name.clone());
        let Some(rev_nat) = self.rev_nats.get_or_allocate(&addr) else {
            build.problems.push(PlanProblem::RevNatExhausted {
                service: service.name.clone(),
                frontend: addr,
            });
            return;
        };
        let rev_nat = RevNatIndex(rev_nat as u16);
        for (scope, local_only, flags) in scopes(service, kind, addr) {
            let mut entry = FrontendEntry {
                service: service.name.clone(),
                port_name: port.name.clone(),
                kind,
                rev_nat,
                flags,
                algorithm: match scope {
                    Scope::External => service.algorithm.unwrap_or(self.config.default_algorithm),
                    Scope::Internal => Algorithm::Random,
                },
                affinity_timeout: service.affinity_timeout,
                slots: Vec::new(),
                terminating: Vec::new(),
            };
            for (backend, info) in backends {
                let takes_slot = match info.state {
                    BackendState::Active if local_only && !info.local => continue,
                    BackendState::Active => true,
                    BackendState::Terminating => false,
                };
                let Some(id) = self.backend_ids.get_or_allocate(backend) else {
                    let problem = PlanProblem::BackendIdsExhausted {
                        service: service.name.clone(),
                        backend: *backend,
                    };
                    if !build.problems.contains(&problem) {
                        build.problems.push(problem);
                    }
                    continue;
                };
                let id = BackendId(id);
                if takes_slot {
                    entry.slots.push(id);
                    build.active.insert(id);
                } else {
                    entry.terminating.push(id);
                }
                build.state.backends.insert(
                    id,
                    Backend {
                        addr: *backend,
                        state: info.state,
                    },
                );
            }
            entry.slots.sort();
            // A slot index is a u16: no frontend has more slots than that.
            entry.slots.truncate(usize::from(u16::MAX));
            entry.terminating.sort();
            build
                .state
                .frontends
                .insert(FrontendKey { addr, scope }, entry);
        }
    }

    /// The backends of a service port from its slices: the addresses of every endpoint
    /// with a state, at the port of the slice port with the service port's name and
    /// protocol. An address listed as active anywhere is active.
    fn port_backends(
        &self,
        slices: &[Cow<'_, EndpointSlice>],
        port: &ServicePort,
    ) -> BTreeMap<BackendAddr, PortBackend> {
        let mut backends: BTreeMap<BackendAddr, PortBackend> = BTreeMap::new();
        for slice in slices {
            for slice_port in &slice.ports {
                let Some(number) = slice_port.port else {
                    continue;
                };
                if slice_port.name != port.name || slice_port.protocol != port.protocol {
                    continue;
                }
                for endpoint in &slice.endpoints {
                    let Some(state) = endpoint.state() else {
                        continue;
                    };
                    let local = endpoint.node_name.as_deref() == Some(&self.config.node_name);
                    for ip in &endpoint.addresses {
                        let addr = BackendAddr {
                            ip: *ip,
                            port: number,
                            protocol: port.protocol,
                        };
                        backends
                            .entry(addr)
                            .and_modify(|known| {
                                known.state = known.state.min(state);
                                known.local |= local;
                            })
                            .or_insert(PortBackend { state, local });
                    }
                }
            }
        }
        backends
    }

    /// The frontend addresses of a service port, with their kinds.
    fn frontend_addrs(
        &self,
        service: &Service,
        port: &ServicePort,
    ) -> Vec<(FrontendAddr, FrontendKind)> {
        let at = |ip: Ipv4Addr, number: u16| FrontendAddr {
            ip,
            port: number,
            protocol: port.protocol,
        };
        let mut addrs = Vec::new();
        if let ClusterIp::Assigned(ip) = service.cluster_ip {
            addrs.push((at(ip, port.port), FrontendKind::ClusterIp));
        }
        for ip in &service.external_ips {
            addrs.push((at(*ip, port.port), FrontendKind::ExternalIp));
        }
        let node_ports = matches!(
            service.service_type,
            ServiceType::NodePort | ServiceType::LoadBalancer
        );
        if let (true, Some(node_port)) = (node_ports, port.node_port) {
            let mut node_ips: Vec<Ipv4Addr> = self.config.node_ips.clone();
            node_ips.push(Ipv4Addr::UNSPECIFIED);
            node_ips.sort();
            node_ips.dedup();
            for ip in node_ips {
                addrs.push((at(ip, node_port), FrontendKind::NodePort));
            }
        }
        if service.service_type == ServiceType::LoadBalancer {
            for ip in &service.load_balancer_ips {
                addrs.push((at(*ip, port.port), FrontendKind::LoadBalancer));
            }
        }
        addrs
    }

    /// Builds (or reuses) the table of every Maglev frontend with backends, from its
    /// external-scope entry.
    fn add_maglev_tables(&mut self, state: &mut LbState) {
        let mut tables: HashMap<Vec<BackendId>, MaglevTable> = HashMap::new();
        for (key, entry) in &state.frontends {
            if key.scope != Scope::External
                || entry.algorithm != Algorithm::Maglev
                || entry.slots.is_empty()
            {
                continue;
            }
            let table = match tables
                .get(&entry.slots)
                .or_else(|| self.tables.get(&entry.slots))
            {
                Some(table) => table.clone(),
                None => {
                    let keys: Vec<(String, BackendId)> = entry
                        .slots
                        .iter()
                        .map(|id| (backend_key(&state.backends[id].addr), *id))
                        .collect();
                    let backends: Vec<MaglevBackend<'_>> = keys
                        .iter()
                        .map(|(key, id)| MaglevBackend {
                            key,
                            id: *id,
                            weight: DEFAULT_WEIGHT,
                        })
                        .collect();
                    MaglevTable::new(lookup_table(&self.config.maglev, &backends))
                }
            };
            tables.insert(entry.slots.clone(), table.clone());
            state.maglev.insert(entry.rev_nat, table);
        }
        self.tables = tables;
    }
}

/// The services-map entries of one frontend address: `(scope, local backends only,
/// flags)`.
fn scopes(
    service: &Service,
    kind: FrontendKind,
    addr: FrontendAddr,
) -> Vec<(Scope, bool, ServiceFlags)> {
    let mut base = kind.flag();
    if kind != FrontendKind::ClusterIp && !addr.ip.is_unspecified() {
        base |= SVC_FLAG_ROUTABLE;
    }
    if service.affinity_timeout.is_some() {
        base |= SVC_FLAG_AFFINITY;
    }
    let int_local = service.internal_traffic_policy == TrafficPolicy::Local;
    let internal_flags = ServiceFlags {
        flags: base,
        flags2: if int_local {
            SVC_FLAG_INT_LOCAL_SCOPE
        } else {
            0
        },
    };
    if kind == FrontendKind::ClusterIp {
        return vec![(Scope::External, int_local, internal_flags)];
    }
    let ext_local = service.external_traffic_policy == TrafficPolicy::Local;
    let two_scopes = ext_local != int_local;
    let external = (
        Scope::External,
        ext_local,
        ServiceFlags {
            flags: base
                | if ext_local {
                    SVC_FLAG_EXT_LOCAL_SCOPE
                } else {
                    0
                },
            flags2: if two_scopes { SVC_FLAG_TWO_SCOPES } else { 0 },
        },
    );
    if two_scopes {
        vec![external, (Scope::Internal, int_local, internal_flags)]
    } else {
        vec![external]
    }
}
