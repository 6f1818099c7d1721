//! The eBPF datapath: `bpf/bpf_lxc.c`, `bpf/bpf_overlay.c` and
//! `bpf/bpf_host.c`, compiled by `build.rs` and embedded here. `bpf_lxc` is
//! loaded with aya per endpoint with load-time globals and attached to the
//! host side of each pod's veth; `bpf_overlay` is attached to the node's
//! tunnel device, `bpf_host` to its underlay device. They share
//! node-wide maps pinned under `<bpf_root>/tc/globals` (`cilium_lxc`,
//! `cilium_ipcache`, conntrack, `cilium_metrics`, `cilium_events`,
//! `cilium_call_policy`, `cilium_policy_enforcement`); each endpoint also has
//! its own policy map, `cilium_policy_v2_<id>`, updated in place by
//! [`Datapath::set_policy`]. `bpf_sock` ([`SocketLb`]) translates services
//! at connect time in cgroup socket hooks, on the same service maps.
//!
//! [`Datapath`] is what the agent drives; [`maps`] gives typed access to the
//! pinned maps for the CLI; [`events`] and [`EventReader`] decode the
//! datapath's trace and drop notifications; [`abi`] and [`codes`] hold the
//! layouts and numbers shared with the C code.

pub mod abi;
mod attach;
pub mod bpffs;
pub mod codes;
mod datapath;
mod event_reader;
pub mod events;
pub mod lb_abi;
pub mod loader;
pub mod maps;
mod routing;
mod sock_lb;
mod spare_loader;

pub use attach::{AttachError, AttachMode, AttachPreference, Hook};
pub use datapath::{
    ct_gc, Datapath, DatapathConfig, DatapathError, EndpointDatapathConfig, Failures,
};
pub use event_reader::{EventReader, EventReaderError};
pub use events::{
    DatapathEvent, DropEvent, EventHeader, EventParseError, PolicyVerdictEvent, TraceEvent,
};
pub use loader::{
    EndpointObject, EndpointProgram, HostObject, LoaderError, MapSizes, OverlayObject, SockObject,
};
pub use routing::{Routing, RoutingError, Underlay};
pub use sock_lb::{SocketLb, SocketLbError};
