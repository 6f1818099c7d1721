//! Loading the embedded objects: `bpf_lxc.o` once to create (or reopen) the
//! pinned node-wide maps and once per endpoint with that endpoint's
//! load-time globals, `bpf_overlay.o` once per node for the tunnel device
//! and `bpf_host.o` once per node for the underlay device, `bpf_sock.o` once
//! per node for socket load balancing; every object shares those pinned
//! maps. Each endpoint's policy map is its own,
//! pinned as `cilium_policy_v2_<id>`.

use std::net::Ipv4Addr;

use aya::{
    programs::{CgroupSockAddr, ProgramError, SchedClassifier},
    Ebpf, EbpfError, EbpfLoader,
};
use thiserror::Error;

use crate::{
    abi::{CT_ANY4_MAP, CT_MAP_SIZE_ANY, CT_MAP_SIZE_TCP, CT_TCP4_MAP, POLICY_MAP},
    bpffs::BpfPaths,
    maps::PolicyMap,
    routing::RoutingGlobals,
};

/// The compiled endpoint datapath (`bpf/bpf_lxc.c`).
static BPF_LXC_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_lxc.o"));
/// The compiled tunnel device datapath (`bpf/bpf_overlay.c`).
static BPF_OVERLAY_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_overlay.o"));
/// The compiled underlay device datapath (`bpf/bpf_host.c`).
static BPF_HOST_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_host.o"));

/// The compiled socket load balancer (`bpf/bpf_sock.c`).
static BPF_SOCK_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_sock.o"));

const BPF_LXC: &str = "bpf_lxc.o";
const BPF_OVERLAY: &str = "bpf_overlay.o";
const BPF_HOST: &str = "bpf_host.o";
const BPF_SOCK: &str = "bpf_sock.o";

/// Failures loading a datapath object or its programs.
#[derive(Debug, Error)]
pub enum LoaderError {
    /// Parsing the object or creating/reopening its maps failed.
    #[error("cannot load {object} (maps pinned under {globals})")]
    Object {
        /// Object file name.
        object: &'static str,
        /// Directory of the pinned maps.
        globals: String,
        /// Underlying error.
        #[source]
        source: Box<EbpfError>,
    },
    /// The kernel verifier rejected a program.
    #[error("the kernel rejected program {program}: {source}\nverifier log:\n{verifier_log}")]
    Verifier {
        /// Program (function) name.
        program: &'static str,
        /// The verifier's output.
        verifier_log: String,
        /// The BPF_PROG_LOAD error.
        #[source]
        source: std::io::Error,
    },
    /// Another failure loading or handling a program.
    #[error("program {program}: {op} failed")]
    Program {
        /// Program (function) name.
        program: &'static str,
        /// What was being done.
        op: &'static str,
        /// Underlying error.
        #[source]
        source: Box<ProgramError>,
    },
    /// The object has no such program (the C and Rust sides disagree).
    #[error("{object} has no program named {program}")]
    MissingProgram {
        /// Object file name.
        object: &'static str,
        /// Program (function) name.
        program: &'static str,
    },
}

/// The programs of `bpf_lxc.o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointProgram {
    /// `cil_from_container`: tc ingress of the host-side veth.
    FromContainer,
    /// `cil_to_container`: tc egress of the host-side veth.
    ToContainer,
    /// `handle_policy`: local delivery target in `cilium_call_policy`.
    HandlePolicy,
}

impl EndpointProgram {
    /// Every program, in load order.
    pub const ALL: [Self; 3] = [Self::FromContainer, Self::ToContainer, Self::HandlePolicy];

    /// The C function name, which is how aya finds the program.
    pub fn function_name(self) -> &'static str {
        match self {
            Self::FromContainer => "cil_from_container",
            Self::ToContainer => "cil_to_container",
            Self::HandlePolicy => "handle_policy",
        }
    }
}

/// Capacities of the node-wide maps that are sized per node. They apply when
/// the maps are first created; existing pinned maps keep their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    /// `cilium_ct4_global` entries (Cilium default 524288).
    pub ct_tcp: u32,
    /// `cilium_ct_any4_global` entries (Cilium default 262144).
    pub ct_any: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            ct_tcp: CT_MAP_SIZE_TCP,
            ct_any: CT_MAP_SIZE_ANY,
        }
    }
}

/// The per-endpoint load-time globals of `bpf_lxc.c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointGlobals {
    /// `LXC_ID`: endpoint id.
    pub id: u16,
    /// `SECLABEL`: security identity.
    pub identity: u32,
    /// `LXC_IPV4`: endpoint address.
    pub ipv4: Ipv4Addr,
    /// `LXC_MAC`: MAC of the pod-side interface.
    pub mac: [u8; 6],
    /// `NODE_MAC`: MAC of the host-side veth.
    pub node_mac: [u8; 6],
    /// `LXC_IFINDEX`: ifindex of the host-side veth.
    pub ifindex: u32,
    /// `MONITOR_AGGREGATION`: trace aggregation level.
    pub monitor_aggregation: u32,
    /// `ROUTING_MODE`: `ROUTING_MODE_NATIVE` or `ROUTING_MODE_TUNNEL`
    /// (node-wide).
    pub routing_mode: u32,
    /// `TUNNEL_IFINDEX`: ifindex of the tunnel device, 0 in native
    /// routing (node-wide).
    pub tunnel_ifindex: u32,
    /// `DIRECT_ROUTING_DEV_IFINDEX`: ifindex of the underlay device, 0
    /// without one (node-wide).
    pub direct_routing_ifindex: u32,
    /// `NODE_IPV4`: the node's underlay address, network order, 0 without
    /// one (node-wide).
    pub node_ipv4: u32,
    /// `NODE_IPV4_MASK`: the netmask of its subnet, network order
    /// (node-wide).
    pub node_ipv4_mask: u32,
    /// `TUNNEL_PORT`: the VXLAN port, network order, 0 in native routing
    /// (node-wide).
    pub tunnel_port: u16,
}

/// `bpf_lxc.o` loaded for one endpoint: all three programs are loaded into
/// the kernel and use the pinned node-wide maps.
pub struct EndpointObject {
    ebpf: Ebpf,
}

impl std::fmt::Debug for EndpointObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointObject").finish_non_exhaustive()
    }
}

impl EndpointObject {
    /// One of the loaded programs.
    pub fn program(&self, which: EndpointProgram) -> Result<&SchedClassifier, LoaderError> {
        classifier(&self.ebpf, BPF_LXC, which.function_name())
    }

    /// One of the loaded programs, mutably (for attaching).
    pub(crate) fn program_mut(
        &mut self,
        which: EndpointProgram,
    ) -> Result<&mut SchedClassifier, LoaderError> {
        classifier_mut(&mut self.ebpf, BPF_LXC, which.function_name())
    }

    /// Every program at once, mutably, so that they can be loaded and
    /// attached concurrently.
    pub(crate) fn programs_mut(
        &mut self,
    ) -> Result<[(EndpointProgram, &mut SchedClassifier); 3], LoaderError> {
        let mut found: [Option<&mut SchedClassifier>; 3] = [None, None, None];
        for (name, program) in self.ebpf.programs_mut() {
            let Some(slot) = EndpointProgram::ALL
                .iter()
                .position(|w| w.function_name() == name)
            else {
                continue;
            };
            let program = program.try_into().map_err(|source| LoaderError::Program {
                program: EndpointProgram::ALL[slot].function_name(),
                op: "treat as a tc classifier",
                source: Box::new(source),
            })?;
            found[slot] = Some(program);
        }
        let [a, b, c] = found;
        let [wa, wb, wc] = EndpointProgram::ALL;
        Ok([
            (wa, a.ok_or_else(|| missing_program(wa))?),
            (wb, b.ok_or_else(|| missing_program(wb))?),
            (wc, c.ok_or_else(|| missing_program(wc))?),
        ])
    }
}

/// `bpf_overlay.o` loaded for the node's tunnel device: `cil_from_overlay`
/// is loaded into the kernel and uses the pinned node-wide maps.
pub struct OverlayObject {
    ebpf: Ebpf,
}

impl std::fmt::Debug for OverlayObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayObject").finish_non_exhaustive()
    }
}

impl OverlayObject {
    /// The C function name of the tunnel device's ingress program.
    pub const FROM_OVERLAY: &'static str = "cil_from_overlay";
    /// The tunnel device's egress program.
    pub const TO_OVERLAY: &'static str = "cil_to_overlay";

    /// One of the loaded programs ([`Self::FROM_OVERLAY`] or [`Self::TO_OVERLAY`]).
    pub fn program(&self, name: &'static str) -> Result<&SchedClassifier, LoaderError> {
        classifier(&self.ebpf, BPF_OVERLAY, name)
    }

    /// One of the loaded programs, mutably (for attaching).
    pub(crate) fn program_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut SchedClassifier, LoaderError> {
        classifier_mut(&mut self.ebpf, BPF_OVERLAY, name)
    }
}

/// `bpf_host.o` loaded for the node's underlay device: `cil_from_netdev` is
/// loaded into the kernel and uses the pinned node-wide maps.
pub struct HostObject {
    ebpf: Ebpf,
}

impl std::fmt::Debug for HostObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostObject").finish_non_exhaustive()
    }
}

impl HostObject {
    /// The C function name of the underlay device's ingress program.
    pub const FROM_NETDEV: &'static str = "cil_from_netdev";

    /// `cil_from_netdev`.
    pub fn program(&self) -> Result<&SchedClassifier, LoaderError> {
        classifier(&self.ebpf, BPF_HOST, Self::FROM_NETDEV)
    }

    /// `cil_from_netdev`, mutably (for attaching).
    pub(crate) fn program_mut(&mut self) -> Result<&mut SchedClassifier, LoaderError> {
        classifier_mut(&mut self.ebpf, BPF_HOST, Self::FROM_NETDEV)
    }
}

/// `bpf_sock.o` loaded for the node: its cgroup socket-address programs are
/// loaded into the kernel and use the pinned node-wide service maps.
pub struct SockObject {
    ebpf: Ebpf,
}

impl std::fmt::Debug for SockObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockObject").finish_non_exhaustive()
    }
}

impl SockObject {
    /// The programs (C function names), each in the section of its hook:
    /// `cgroup/connect4`, `cgroup/sendmsg4`, `cgroup/recvmsg4`,
    /// `cgroup/getpeername4`.
    pub const PROGRAMS: [&'static str; 4] = [
        "cil_sock4_connect",
        "cil_sock4_sendmsg",
        "cil_sock4_recvmsg",
        "cil_sock4_getpeername",
    ];

    /// One of [`Self::PROGRAMS`], mutably (for attaching).
    pub(crate) fn program_mut(
        &mut self,
        program: &'static str,
    ) -> Result<&mut CgroupSockAddr, LoaderError> {
        self.ebpf
            .program_mut(program)
            .ok_or(LoaderError::MissingProgram {
                object: BPF_SOCK,
                program,
            })?
            .try_into()
            .map_err(|source| LoaderError::Program {
                program,
                op: "treat as a cgroup socket-address program",
                source: Box::new(source),
            })
    }
}

fn missing_program(which: EndpointProgram) -> LoaderError {
    LoaderError::MissingProgram {
        object: BPF_LXC,
        program: which.function_name(),
    }
}

fn classifier<'a>(
    ebpf: &'a Ebpf,
    object: &'static str,
    program: &'static str,
) -> Result<&'a SchedClassifier, LoaderError> {
    ebpf.program(program)
        .ok_or(LoaderError::MissingProgram { object, program })?
        .try_into()
        .map_err(|source| LoaderError::Program {
            program,
            op: "treat as a tc classifier",
            source: Box::new(source),
        })
}

fn classifier_mut<'a>(
    ebpf: &'a mut Ebpf,
    object: &'static str,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, LoaderError> {
    ebpf.program_mut(program)
        .ok_or(LoaderError::MissingProgram { object, program })?
        .try_into()
        .map_err(|source| LoaderError::Program {
            program,
            op: "treat as a tc classifier",
            source: Box::new(source),
        })
}

/// Loads `program` into the kernel, with the verifier log on rejection.
pub(crate) fn load_classifier(
    program: &mut SchedClassifier,
    name: &'static str,
) -> Result<(), LoaderError> {
    program.load().map_err(|err| load_error(name, err))
}

fn parse_object<'a>(
    object: &'static str,
    bytes: &[u8],
    paths: &BpfPaths,
    sizes: &MapSizes,
    configure: impl FnOnce(&mut EbpfLoader<'a>),
) -> Result<Ebpf, LoaderError> {
    let globals = paths.globals();
    let mut loader: EbpfLoader<'a> = crate::spare_loader::take();
    loader
        .default_map_pin_directory(&globals)
        .map_max_entries(CT_TCP4_MAP, sizes.ct_tcp)
        .map_max_entries(CT_ANY4_MAP, sizes.ct_any);
    configure(&mut loader);
    loader.load(bytes).map_err(|source| LoaderError::Object {
        object,
        globals: globals.display().to_string(),
        source: Box::new(source),
    })
}

/// Creates the pinned node-wide maps under `paths`, or reopens them when they
/// already exist (after an agent restart), without loading any program.
/// `bpf_lxc.o` declares every node-wide map.
pub fn create_maps(paths: &BpfPaths, sizes: &MapSizes) -> Result<(), LoaderError> {
    parse_object(BPF_LXC, BPF_LXC_OBJECT, paths, sizes, |_| {}).map(drop)
}

/// Loads `bpf_lxc.o` with `globals` and loads its programs into the kernel.
/// Every map except the endpoint's own globals is the pinned node-wide one,
/// but for the policy map: the endpoint's own `cilium_policy_v2_<id>`,
/// created and pinned on first load and reused by later loads (aya's
/// per-map pin path), so a reload keeps the endpoint's policy.
pub fn load_endpoint(
    paths: &BpfPaths,
    sizes: &MapSizes,
    globals: &EndpointGlobals,
) -> Result<EndpointObject, LoaderError> {
    let mut object = parse_endpoint(paths, sizes, globals)?;
    for which in EndpointProgram::ALL {
        load_classifier(object.program_mut(which)?, which.function_name())?;
    }
    Ok(object)
}

/// Parses `bpf_lxc.o` with `globals` and creates or opens its maps, as
/// [`load_endpoint`] does, without loading the programs: the caller loads
/// them ([`load_classifier`]), possibly concurrently.
pub(crate) fn parse_endpoint(
    paths: &BpfPaths,
    sizes: &MapSizes,
    globals: &EndpointGlobals,
) -> Result<EndpointObject, LoaderError> {
    let id = u32::from(globals.id);
    let ipv4 = crate::abi::ipv4_be32(globals.ipv4);
    let policy_map = PolicyMap::pin_path(paths, globals.id);
    let ebpf = parse_object(BPF_LXC, BPF_LXC_OBJECT, paths, sizes, |loader| {
        loader
            .map_pin_path(POLICY_MAP, policy_map)
            .override_global("LXC_ID", &id, true)
            .override_global("SECLABEL", &globals.identity, true)
            .override_global("LXC_IPV4", &ipv4, true)
            .override_global("LXC_MAC", &globals.mac, true)
            .override_global("NODE_MAC", &globals.node_mac, true)
            .override_global("LXC_IFINDEX", &globals.ifindex, true)
            .override_global("MONITOR_AGGREGATION", &globals.monitor_aggregation, true)
            .override_global("ROUTING_MODE", &globals.routing_mode, true)
            .override_global("TUNNEL_IFINDEX", &globals.tunnel_ifindex, true)
            .override_global(
                "DIRECT_ROUTING_DEV_IFINDEX",
                &globals.direct_routing_ifindex,
                true,
            )
            .override_global("NODE_IPV4", &globals.node_ipv4, true)
            .override_global("NODE_IPV4_MASK", &globals.node_ipv4_mask, true)
            .override_global("TUNNEL_PORT", &globals.tunnel_port, true);
    })?;
    Ok(EndpointObject { ebpf })
}

/// Loads `bpf_overlay.o` with the node's trace aggregation level and loads
/// `cil_from_overlay` and `cil_to_overlay` into the kernel, on the pinned
/// node-wide maps.
pub fn load_overlay(
    paths: &BpfPaths,
    sizes: &MapSizes,
    monitor_aggregation: u32,
) -> Result<OverlayObject, LoaderError> {
    let ebpf = parse_object(BPF_OVERLAY, BPF_OVERLAY_OBJECT, paths, sizes, |loader| {
        loader.override_global("MONITOR_AGGREGATION", &monitor_aggregation, true);
    })?;
    let mut object = OverlayObject { ebpf };
    for name in [OverlayObject::FROM_OVERLAY, OverlayObject::TO_OVERLAY] {
        load_classifier(object.program_mut(name)?, name)?;
    }
    Ok(object)
}

/// Loads `bpf_host.o` with the node's trace aggregation level and routing
/// globals (NodePort forwards to remote backends by them) and loads
/// `cil_from_netdev` into the kernel, on the pinned node-wide maps.
pub(crate) fn load_host(
    paths: &BpfPaths,
    sizes: &MapSizes,
    monitor_aggregation: u32,
    routing: RoutingGlobals,
) -> Result<HostObject, LoaderError> {
    let ebpf = parse_object(BPF_HOST, BPF_HOST_OBJECT, paths, sizes, |loader| {
        loader
            .override_global("MONITOR_AGGREGATION", &monitor_aggregation, true)
            .override_global("ROUTING_MODE", &routing.mode, true)
            .override_global("TUNNEL_IFINDEX", &routing.tunnel_ifindex, true)
            .override_global("TUNNEL_PORT", &routing.tunnel_port, true);
    })?;
    let mut object = HostObject { ebpf };
    load_classifier(object.program_mut()?, HostObject::FROM_NETDEV)?;
    Ok(object)
}

/// Loads `bpf_sock.o` and its programs ([`SockObject::PROGRAMS`]) into the
/// kernel, on the pinned node-wide maps.
pub(crate) fn load_sock(paths: &BpfPaths, sizes: &MapSizes) -> Result<SockObject, LoaderError> {
    let ebpf = parse_object(BPF_SOCK, BPF_SOCK_OBJECT, paths, sizes, |_| {})?;
    let mut object = SockObject { ebpf };
    for name in SockObject::PROGRAMS {
        object
            .program_mut(name)?
            .load()
            .map_err(|err| load_error(name, err))?;
    }
    Ok(object)
}

/// A failed program load as a [`LoaderError`], with the verifier log.
fn load_error(name: &'static str, err: ProgramError) -> LoaderError {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => LoaderError::Verifier {
            program: name,
            verifier_log: verifier_log.to_string(),
            source: io_error,
        },
        other => LoaderError::Program {
            program: name,
            op: "load",
            source: Box::new(other),
        },
    }
}
