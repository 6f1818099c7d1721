//! The facade the agent drives: open the node's datapath state, install,
//! regenerate and remove endpoints, register host addresses, mirror the
//! cluster's ipcache, attach the tunnel and underlay devices' programs,
//! read events and collect expired conntrack entries.
//!
//! All state lives in bpffs under the configured root, so a restarted agent
//! (a new [`Datapath::open`]) finds its maps, attached programs and policy
//! program array as it left them: traffic keeps flowing while it is away.

use std::{
    fmt,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use aya::programs::SchedClassifier;
use ipnet::Ipv4Net;
use thiserror::Error;

use crate::{
    abi::{
        EndpointInfo, MacAddr, RemoteEndpointInfo, ENDPOINT_F_HOST, POLICY_PROG_MAP_SIZE,
        TRACE_AGGREGATE_ACTIVE_CT,
    },
    attach::{self, AttachError, AttachMode, AttachPreference, Hook},
    bpffs::{BpfPaths, BpffsError},
    event_reader::{EventReader, EventReaderError},
    loader::{
        self, EndpointGlobals, EndpointObject, EndpointProgram, HostObject, LoaderError, MapSizes,
        OverlayObject,
    },
    maps::{
        monotonic_seconds, CallPolicyMap, CtMap, CtMapKind, Enforcement, IpcacheMap, LxcMap,
        MapsError, MetricsEntry, MetricsMap, PolicyEnforcementMap, PolicyEntry, PolicyMap,
        PolicyMapKey,
    },
    routing::{Routing, RoutingError, RoutingGlobals, Underlay},
    sock_lb::{SocketLb, SocketLbError},
};

/// Node-wide datapath settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatapathConfig {
    /// bpffs directory owning every pin (default `/sys/fs/bpf`).
    pub bpf_root: PathBuf,
    /// TCX or legacy tc.
    pub attach: AttachPreference,
    /// Trace aggregation: 0 = none (trace every packet), 3 = medium
    /// (Cilium's default).
    pub monitor_aggregation: u32,
    /// How pods on other nodes are reached (default: native routing).
    pub routing: Routing,
    /// The device facing the other nodes and the node's address on it;
    /// `None` on a node without one (pods' packets for other nodes then go
    /// by a FIB lookup or the tunnel device).
    pub underlay: Option<Underlay>,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        Self {
            bpf_root: PathBuf::from("/sys/fs/bpf"),
            attach: AttachPreference::Auto,
            monitor_aggregation: TRACE_AGGREGATE_ACTIVE_CT,
            routing: Routing::default(),
            underlay: None,
        }
    }
}

/// What the datapath needs to know about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDatapathConfig {
    /// Endpoint id, 1..=4095.
    pub id: u16,
    /// Security identity.
    pub identity: u32,
    /// The endpoint's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// MAC of the pod-side interface.
    pub mac: [u8; 6],
    /// MAC of the host-side veth.
    pub node_mac: [u8; 6],
    /// ifindex of the host-side veth.
    pub ifindex: u32,
    /// Name of the host-side veth.
    pub ifname: String,
}

/// Failures of the datapath facade.
#[derive(Debug, Error)]
pub enum DatapathError {
    /// Preparing the bpffs directory failed.
    #[error("preparing bpffs at {root}")]
    Bpffs {
        /// The root.
        root: PathBuf,
        /// Underlying error.
        #[source]
        source: BpffsError,
    },
    /// Loading the object failed.
    #[error("loading the datapath for {what}")]
    Load {
        /// "the node maps" or "endpoint <id>".
        what: String,
        /// Underlying error.
        #[source]
        source: LoaderError,
    },
    /// A pinned map operation failed.
    #[error("map operation for {what}")]
    Map {
        /// What was being done.
        what: String,
        /// Underlying error.
        #[source]
        source: MapsError,
    },
    /// Attaching failed.
    #[error("attaching endpoint {id} to {ifname}")]
    Attach {
        /// Endpoint id.
        id: u16,
        /// Interface.
        ifname: String,
        /// Underlying error.
        #[source]
        source: AttachError,
    },
    /// Choosing the attach mode failed.
    #[error("choosing the attach mode")]
    AttachMode {
        /// Underlying error.
        #[source]
        source: AttachError,
    },
    /// The routing mode cannot be set up (the tunnel or underlay device is
    /// missing).
    #[error("setting up {routing} routing")]
    Routing {
        /// The configured mode.
        routing: Routing,
        /// Underlying error.
        #[source]
        source: RoutingError,
    },
    /// Attaching a node device's program failed.
    #[error("attaching the datapath to device {ifname}")]
    AttachDevice {
        /// Interface.
        ifname: String,
        /// Underlying error.
        #[source]
        source: AttachError,
    },
    /// Detaching a node device's program left things behind.
    #[error("detaching the datapath from device {ifname}: {failures}")]
    DetachDevice {
        /// Interface.
        ifname: String,
        /// Every failure.
        failures: Failures,
    },
    /// The endpoint id cannot index `cilium_call_policy`.
    #[error("endpoint id {id} is outside 1..={max}")]
    InvalidEndpointId {
        /// The id.
        id: u16,
        /// Largest valid id.
        max: u32,
    },
    /// Creating the endpoint's pin directory failed.
    #[error("creating pin directory {path}")]
    PinDir {
        /// Directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Removing an endpoint left things behind; every failure is listed.
    #[error("removing endpoint {id}: {failures}")]
    Remove {
        /// Endpoint id.
        id: u16,
        /// Every failure.
        failures: Failures,
    },
    /// Opening the event reader failed.
    #[error("opening the event reader")]
    Events {
        /// Underlying error.
        #[source]
        source: EventReaderError,
    },
}

/// Several independent failures of one teardown.
#[derive(Debug)]
pub struct Failures(pub Vec<DatapathError>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{err}")?;
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
        }
        Ok(())
    }
}

/// Handles on the node-wide maps the facade writes.
struct NodeMaps {
    lxc: LxcMap,
    call_policy: CallPolicyMap,
    ipcache: IpcacheMap,
    enforcement: PolicyEnforcementMap,
}

/// The node's datapath: endpoints, the tunnel device and the node-wide maps.
pub struct Datapath {
    config: DatapathConfig,
    map_sizes: MapSizes,
    paths: BpfPaths,
    mode: AttachMode,
    routing: RoutingGlobals,
    maps: Mutex<NodeMaps>,
}

fn map_err(what: impl Into<String>) -> impl FnOnce(MapsError) -> DatapathError {
    let what = what.into();
    move |source| DatapathError::Map { what, source }
}

impl Datapath {
    /// Mounts bpffs at `/sys/fs/bpf` if needed, creates
    /// `<bpf_root>/tc/globals`, and creates or reopens the pinned maps
    /// (conntrack maps at Cilium's default sizes when created). In tunnel
    /// mode the tunnel device must exist in the calling thread's network
    /// namespace: its ifindex becomes every endpoint's `TUNNEL_IFINDEX`.
    pub fn open(config: DatapathConfig) -> Result<Self, DatapathError> {
        Self::open_with_sizes(config, MapSizes::default())
    }

    /// [`Datapath::open`], creating missing conntrack maps with `map_sizes`
    /// (existing pinned maps keep their size). Smaller maps suit tests and
    /// many-node labs on one machine.
    pub fn open_with_sizes(
        config: DatapathConfig,
        map_sizes: MapSizes,
    ) -> Result<Self, DatapathError> {
        let paths = BpfPaths::new(&config.bpf_root);
        paths.prepare().map_err(|source| DatapathError::Bpffs {
            root: config.bpf_root.clone(),
            source,
        })?;
        let mode = attach::resolve_mode(config.attach)
            .map_err(|source| DatapathError::AttachMode { source })?;
        let routing = config
            .routing
            .globals(config.underlay.as_ref())
            .map_err(|source| DatapathError::Routing {
                routing: config.routing.clone(),
                source,
            })?;
        loader::create_maps(&paths, &map_sizes).map_err(|source| DatapathError::Load {
            what: "the node maps".to_string(),
            source,
        })?;
        let maps = NodeMaps {
            lxc: LxcMap::open(&paths).map_err(map_err("opening cilium_lxc"))?,
            call_policy: CallPolicyMap::open(&paths)
                .map_err(map_err("opening cilium_call_policy"))?,
            ipcache: IpcacheMap::open(&paths).map_err(map_err("opening cilium_ipcache"))?,
            enforcement: PolicyEnforcementMap::open(&paths)
                .map_err(map_err("opening cilium_policy_enforcement"))?,
        };
        tracing::info!(root = %config.bpf_root.display(), attach = %mode,
            routing = %config.routing, "datapath ready");
        Ok(Self {
            config,
            map_sizes,
            paths,
            mode,
            routing,
            maps: Mutex::new(maps),
        })
    }

    /// The node's routing mode.
    pub fn routing(&self) -> &Routing {
        &self.config.routing
    }

    /// ifindex of the tunnel device in tunnel mode.
    pub fn tunnel_ifindex(&self) -> Option<u32> {
        (self.routing.tunnel_ifindex != 0).then_some(self.routing.tunnel_ifindex)
    }

    /// How programs are attached on this node.
    pub fn attach_mode(&self) -> AttachMode {
        self.mode
    }

    /// The bpffs layout, for opening the typed map handles directly.
    pub fn paths(&self) -> &BpfPaths {
        &self.paths
    }

    /// Loads the socket load balancer on this node's maps and attaches it to the cgroup v2
    /// directory `cgroup`; it stays attached while the returned handle lives.
    pub fn attach_socket_lb(&self, cgroup: &Path) -> Result<SocketLb, SocketLbError> {
        SocketLb::attach(&self.paths, &self.map_sizes, cgroup)
    }

    fn node_maps(&self) -> MutexGuard<'_, NodeMaps> {
        // A panic while holding the lock cannot leave the handles invalid.
        self.maps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_id(id: u16) -> Result<(), DatapathError> {
        if id == 0 || u32::from(id) >= POLICY_PROG_MAP_SIZE {
            return Err(DatapathError::InvalidEndpointId {
                id,
                max: POLICY_PROG_MAP_SIZE - 1,
            });
        }
        Ok(())
    }

    /// Loads `bpf_lxc.o` with `ep`'s globals (nothing attached yet).
    pub fn load_endpoint(
        &self,
        ep: &EndpointDatapathConfig,
    ) -> Result<EndpointObject, DatapathError> {
        let globals = self.endpoint_globals(ep)?;
        loader::load_endpoint(&self.paths, &self.map_sizes, &globals).map_err(|source| {
            DatapathError::Load {
                what: format!("endpoint {}", ep.id),
                source,
            }
        })
    }

    fn endpoint_globals(
        &self,
        ep: &EndpointDatapathConfig,
    ) -> Result<EndpointGlobals, DatapathError> {
        Self::check_id(ep.id)?;
        Ok(EndpointGlobals {
            id: ep.id,
            identity: ep.identity,
            ipv4: ep.ipv4,
            mac: ep.mac,
            node_mac: ep.node_mac,
            ifindex: ep.ifindex,
            monitor_aggregation: self.config.monitor_aggregation,
            routing_mode: self.routing.mode,
            tunnel_ifindex: self.routing.tunnel_ifindex,
            direct_routing_ifindex: self.routing.direct_routing_ifindex,
            node_ipv4: self.routing.node_ipv4,
            node_ipv4_mask: self.routing.node_ipv4_mask,
            tunnel_port: self.routing.tunnel_port,
        })
    }

    /// Makes `ep` reachable by local delivery: `cilium_call_policy[id]` =
    /// the object's `handle_policy`, then `cilium_lxc[ipv4]` = the endpoint.
    pub fn register_endpoint(
        &self,
        ep: &EndpointDatapathConfig,
        object: &EndpointObject,
    ) -> Result<(), DatapathError> {
        let policy = object
            .program(EndpointProgram::HandlePolicy)
            .and_then(|program| {
                program.fd().map_err(|source| LoaderError::Program {
                    program: EndpointProgram::HandlePolicy.function_name(),
                    op: "get fd",
                    source: Box::new(source),
                })
            })
            .map_err(|source| DatapathError::Load {
                what: format!("endpoint {}", ep.id),
                source,
            })?;
        let info = EndpointInfo {
            ifindex: ep.ifindex,
            lxc_id: ep.id,
            mac: MacAddr::new(ep.mac),
            node_mac: MacAddr::new(ep.node_mac),
            ..EndpointInfo::default()
        };
        let mut maps = self.node_maps();
        maps.call_policy
            .set(ep.id, policy)
            .map_err(map_err(format!("endpoint {} policy program", ep.id)))?;
        maps.lxc
            .upsert(ep.ipv4, &info)
            .map_err(map_err(format!("endpoint {} address {}", ep.id, ep.ipv4)))
    }

    /// Loads `ep`'s programs, attaches them to `ep.ifname` (replacing a
    /// previous attachment atomically), pins the attachment under
    /// `<bpf_root>/endpoints/<id>/` and registers the endpoint. After an
    /// error, retry or call [`Datapath::remove_endpoint`].
    pub fn install_endpoint(&self, ep: &EndpointDatapathConfig) -> Result<(), DatapathError> {
        let load_err = |source| DatapathError::Load {
            what: format!("endpoint {}", ep.id),
            source,
        };
        let globals = self.endpoint_globals(ep)?;
        let mut object =
            loader::parse_endpoint(&self.paths, &self.map_sizes, &globals).map_err(load_err)?;
        let dir = self.paths.endpoint(ep.id);
        std::fs::create_dir_all(&dir).map_err(|source| DatapathError::PinDir {
            path: dir.clone(),
            source,
        })?;
        // Each program on its own thread, loaded (verified) then attached: the
        // verifier runs on both CPUs, and the TCX attaches, each waiting for
        // an RCU grace period (10-25 ms), overlap.
        let programs = object.programs_mut().map_err(load_err)?;
        let results: Vec<Result<(), DatapathError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = programs
                .into_iter()
                .map(|(which, program)| {
                    let dir = &dir;
                    scope.spawn(move || {
                        loader::load_classifier(program, which.function_name())
                            .map_err(load_err)?;
                        let hook = match which {
                            EndpointProgram::FromContainer => Hook::Ingress,
                            EndpointProgram::ToContainer => Hook::Egress,
                            EndpointProgram::HandlePolicy => return Ok(()),
                        };
                        attach::attach(
                            self.mode,
                            dir,
                            &ep.ifname,
                            hook,
                            program,
                            which.function_name(),
                        )
                        .map_err(|source| DatapathError::Attach {
                            id: ep.id,
                            ifname: ep.ifname.clone(),
                            source,
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("load-and-attach thread panicked"))
                .collect()
        });
        results.into_iter().collect::<Result<(), _>>()?;
        // Attached first, registered second: a failed attach leaves no
        // local-delivery target behind.
        self.register_endpoint(ep, &object)?;
        tracing::info!(id = ep.id, ifname = %ep.ifname, mode = %self.mode, "endpoint datapath installed");
        Ok(())
    }

    /// Detaches endpoint `id` and forgets it: removes the pinned attachment,
    /// `cilium_call_policy[id]`, `cilium_lxc[ipv4]`, its policy map's pin
    /// and its enforcement switches. Idempotent; keeps
    /// going on failure and reports every failure.
    pub fn remove_endpoint(&self, id: u16, ipv4: Ipv4Addr) -> Result<(), DatapathError> {
        Self::check_id(id)?;
        let mut failures = Vec::new();
        let mut maps = self.node_maps();

        let ifname = match maps.lxc.get(ipv4) {
            Ok(Some(info)) if info.lxc_id == id => ifname_of(info.ifindex),
            Ok(_) => None,
            Err(err) => {
                failures.push(map_err(format!("looking up {ipv4}"))(err));
                None
            }
        };
        for err in attach::detach(&self.paths.endpoint(id), ifname.as_deref()) {
            failures.push(DatapathError::Attach {
                id,
                ifname: ifname.clone().unwrap_or_default(),
                source: err,
            });
        }
        if let Err(err) = maps.call_policy.clear(id) {
            failures.push(map_err(format!("endpoint {id} policy program"))(err));
        }
        if let Err(err) = maps.enforcement.set(id, Enforcement::default()) {
            failures.push(map_err(format!("endpoint {id} policy enforcement"))(err));
        }
        let policy_pin = PolicyMap::pin_path(&self.paths, id);
        match std::fs::remove_file(&policy_pin) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => failures.push(DatapathError::PinDir {
                path: policy_pin,
                source,
            }),
        }
        match maps.lxc.get(ipv4) {
            Ok(Some(info)) if info.lxc_id == id && info.flags & ENDPOINT_F_HOST == 0 => {
                if let Err(err) = maps.lxc.delete(ipv4) {
                    failures.push(map_err(format!("endpoint {id} address {ipv4}"))(err));
                }
            }
            Ok(_) => {}
            Err(err) => failures.push(map_err(format!("looking up {ipv4}"))(err)),
        }

        if failures.is_empty() {
            tracing::info!(id, %ipv4, "endpoint datapath removed");
            Ok(())
        } else {
            Err(DatapathError::Remove {
                id,
                failures: Failures(failures),
            })
        }
    }

    /// Sets endpoint `id`'s policy in place, without reloading anything:
    /// its policy map is made to hold exactly `entries` (new and changed
    /// entries written, stale ones deleted) and its enforcement switches
    /// set. Connections already established keep flowing (only new ones are
    /// checked). Directions being turned off are turned off before the
    /// entries change, directions being turned on only after, so no
    /// half-written map is ever enforced. The endpoint must have been
    /// loaded (that creates its map).
    pub fn set_policy(
        &self,
        id: u16,
        enforcement: Enforcement,
        entries: &[(PolicyMapKey, PolicyEntry)],
    ) -> Result<(), DatapathError> {
        Self::check_id(id)?;
        let what = format!("endpoint {id} policy");
        let mut policy = PolicyMap::open(&self.paths, id).map_err(map_err(&what))?;
        let mut maps = self.node_maps();
        let current = maps.enforcement.get(id).map_err(map_err(&what))?;
        maps.enforcement
            .set(id, current.intersect(enforcement))
            .map_err(map_err(&what))?;
        let (written, deleted) = policy.sync(entries).map_err(map_err(&what))?;
        maps.enforcement
            .set(id, enforcement)
            .map_err(map_err(&what))?;
        tracing::debug!(
            id,
            ingress = enforcement.ingress,
            egress = enforcement.egress,
            written,
            deleted,
            "endpoint policy updated"
        );
        Ok(())
    }

    /// Endpoint `id`'s enforcement switches.
    pub fn policy_enforcement(&self, id: u16) -> Result<Enforcement, DatapathError> {
        Self::check_id(id)?;
        self.node_maps()
            .enforcement
            .get(id)
            .map_err(map_err(format!("endpoint {id} policy enforcement")))
    }

    /// Whether endpoint `id` has a pinned attachment.
    pub fn endpoint_attached(&self, id: u16) -> bool {
        attach::has_pins(&self.paths.endpoint(id))
    }

    /// Registers `ip` as a host address (`ENDPOINT_F_HOST`): traffic to it
    /// goes to the stack, traffic from it has the host identity.
    pub fn upsert_host_ip(&self, ip: Ipv4Addr) -> Result<(), DatapathError> {
        let info = EndpointInfo {
            flags: ENDPOINT_F_HOST,
            ..EndpointInfo::default()
        };
        self.node_maps()
            .lxc
            .upsert(ip, &info)
            .map_err(map_err(format!("host address {ip}")))
    }

    /// Inserts or replaces the ipcache entry of `prefix`: the identity of
    /// its addresses and, for pods on other nodes, the node hosting them.
    pub fn upsert_ipcache(
        &self,
        prefix: Ipv4Net,
        info: &RemoteEndpointInfo,
    ) -> Result<(), DatapathError> {
        self.node_maps()
            .ipcache
            .upsert(prefix, info)
            .map_err(map_err(format!("ipcache entry {prefix}")))
    }

    /// Deletes the ipcache entry of exactly `prefix`; returns whether there
    /// was one.
    pub fn delete_ipcache(&self, prefix: Ipv4Net) -> Result<bool, DatapathError> {
        self.node_maps()
            .ipcache
            .delete(prefix)
            .map_err(map_err(format!("ipcache entry {prefix}")))
    }

    /// Loads `bpf_overlay.o` (nothing attached yet).
    pub fn load_overlay(&self) -> Result<OverlayObject, DatapathError> {
        loader::load_overlay(
            &self.paths,
            &self.map_sizes,
            self.config.monitor_aggregation,
        )
        .map_err(|source| DatapathError::Load {
            what: "the overlay".to_string(),
            source,
        })
    }

    /// Attaches `cil_from_overlay` to the ingress and `cil_to_overlay` to
    /// the egress of the tunnel device `ifname` (replacing previous
    /// attachments atomically) and pins the attachments under
    /// `<bpf_root>/devices/<ifname>/`, so they keep working while the agent
    /// is away. Idempotent.
    pub fn attach_overlay(&self, ifname: &str) -> Result<(), DatapathError> {
        let mut object = self.load_overlay()?;
        for (hook, name) in [
            (Hook::Ingress, OverlayObject::FROM_OVERLAY),
            (Hook::Egress, OverlayObject::TO_OVERLAY),
        ] {
            let program = object
                .program_mut(name)
                .map_err(|source| DatapathError::Load {
                    what: "the overlay".to_string(),
                    source,
                })?;
            self.attach_device(ifname, hook, program, name)?;
        }
        tracing::info!(%ifname, mode = %self.mode, "overlay datapath attached");
        Ok(())
    }

    /// Detaches the overlay programs from `ifname` and removes their pins.
    /// Idempotent; keeps going on failure and reports every failure.
    pub fn detach_overlay(&self, ifname: &str) -> Result<(), DatapathError> {
        self.detach_device(ifname)?;
        tracing::info!(%ifname, "overlay datapath detached");
        Ok(())
    }

    /// Whether device `ifname` has a pinned overlay attachment.
    pub fn overlay_attached(&self, ifname: &str) -> bool {
        attach::has_pins(&self.paths.device(ifname))
    }

    /// Loads `bpf_host.o` (nothing attached yet).
    pub fn load_host(&self) -> Result<HostObject, DatapathError> {
        loader::load_host(
            &self.paths,
            &self.map_sizes,
            self.config.monitor_aggregation,
            self.routing,
        )
        .map_err(|source| DatapathError::Load {
            what: "the host device".to_string(),
            source,
        })
    }

    /// Attaches `cil_from_netdev` to the ingress of the node's underlay
    /// device `ifname` (replacing a previous attachment atomically) and pins
    /// the attachment under `<bpf_root>/devices/<ifname>/`, so it keeps
    /// working while the agent is away. Idempotent. Plain IPv4 for a local
    /// endpoint then goes straight to it; everything else (ARP, the node's
    /// own traffic, VXLAN) reaches the stack as before, so this suits both
    /// routing modes.
    pub fn attach_host_device(&self, ifname: &str) -> Result<(), DatapathError> {
        let mut object = self.load_host()?;
        let program = object.program_mut().map_err(|source| DatapathError::Load {
            what: "the host device".to_string(),
            source,
        })?;
        self.attach_device(ifname, Hook::Ingress, program, HostObject::FROM_NETDEV)?;
        tracing::info!(%ifname, mode = %self.mode, "host device datapath attached");
        Ok(())
    }

    /// Detaches `cil_from_netdev` from `ifname` and removes its pins.
    /// Idempotent; keeps going on failure and reports every failure.
    pub fn detach_host_device(&self, ifname: &str) -> Result<(), DatapathError> {
        self.detach_device(ifname)?;
        tracing::info!(%ifname, "host device datapath detached");
        Ok(())
    }

    /// Whether device `ifname` has a pinned host device attachment.
    pub fn host_device_attached(&self, ifname: &str) -> bool {
        attach::has_pins(&self.paths.device(ifname))
    }

    /// Attaches `program` to `hook` of node device `ifname`, pinned under
    /// `<bpf_root>/devices/<ifname>/`.
    fn attach_device(
        &self,
        ifname: &str,
        hook: Hook,
        program: &mut SchedClassifier,
        name: &'static str,
    ) -> Result<(), DatapathError> {
        let dir = self.paths.device(ifname);
        std::fs::create_dir_all(&dir).map_err(|source| DatapathError::PinDir {
            path: dir.clone(),
            source,
        })?;
        attach::attach(self.mode, &dir, ifname, hook, program, name).map_err(|source| {
            DatapathError::AttachDevice {
                ifname: ifname.to_string(),
                source,
            }
        })
    }

    /// Detaches whatever is pinned for node device `ifname`.
    fn detach_device(&self, ifname: &str) -> Result<(), DatapathError> {
        let errors = attach::detach(&self.paths.device(ifname), Some(ifname));
        if errors.is_empty() {
            return Ok(());
        }
        let failures = errors
            .into_iter()
            .map(|source| DatapathError::AttachDevice {
                ifname: ifname.to_string(),
                source,
            })
            .collect();
        Err(DatapathError::DetachDevice {
            ifname: ifname.to_string(),
            failures: Failures(failures),
        })
    }

    /// A reader of the datapath's events. Call inside a tokio runtime.
    pub fn event_reader(&self) -> Result<EventReader, DatapathError> {
        EventReader::open(&self.paths).map_err(|source| DatapathError::Events { source })
    }

    /// The metrics counters, summed over CPUs.
    pub fn metrics(&self) -> Result<Vec<MetricsEntry>, DatapathError> {
        MetricsMap::open(&self.paths)
            .and_then(|map| map.entries())
            .map_err(map_err("reading cilium_metrics"))
    }

    /// Deletes conntrack entries whose lifetime has passed; returns how many.
    pub fn ct_gc(&self) -> Result<usize, DatapathError> {
        ct_gc(&self.paths)
    }
}

/// Deletes the expired entries of the conntrack maps pinned under `paths`;
/// returns how many. Needs no [`Datapath`], so a collector can run without
/// holding whatever guards one (a pass over a large table takes a while).
pub fn ct_gc(paths: &BpfPaths) -> Result<usize, DatapathError> {
    let now = monotonic_seconds().map_err(map_err("conntrack GC"))?;
    let mut deleted = 0;
    for kind in [CtMapKind::Tcp, CtMapKind::Any] {
        deleted += CtMap::open(paths, kind)
            .and_then(|map| map.gc(now))
            .map_err(map_err(format!("conntrack GC of {}", kind.map_name())))?;
    }
    Ok(deleted)
}

/// The name of interface `ifindex` in this thread's network namespace.
fn ifname_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let ptr = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
