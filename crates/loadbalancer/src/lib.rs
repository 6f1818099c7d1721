//! The service load balancer's control plane (Cilium's kube-proxy replacement, minus the
//! datapath): pure, no I/O, testable without privilege.
//!
//! The flow, as the agent drives it:
//! 1. [`resource`] parses the Services and EndpointSlices stored by `cilium apply -f`;
//!    the agent keeps them, and the running pods as [`PodInfo`], in a [`Catalog`], which
//!    also derives the EndpointSlices of services with a selector
//!    ([`endpoint_controller`]).
//! 2. A [`Planner`] turns the catalog into the node's desired [`LbState`]: frontends per
//!    service port and scope, backends in slots, stable backend IDs and reverse-NAT
//!    indexes, flags, algorithm and [`maglev`] tables.
//! 3. [`LbState::map_state`] renders it as map entries ([`MapState`]); [`diff`] lists
//!    the [`LbOp`]s from the maps' current contents to those, in an order that never
//!    exposes a dangling reference; [`apply_ops`] feeds them to a [`MapWriter`] — the
//!    datapath's BPF maps, or a [`MapState`] in tests.
//!
//! The C side of the maps is `bpf/lib/lb.h`; its Rust mirrors are
//! `cilium_datapath::lb_abi`, whose constants this crate's values match (checked by the
//! `abi_agreement` test).

pub mod backend;
mod catalog;
mod diff;
pub mod endpoint_controller;
pub mod frontend;
mod ids;
pub mod maglev;
mod map_state;
pub mod names;
mod planner;
pub mod resource;
mod state;
mod writer;

pub use backend::{Backend, BackendAddr, BackendId, BackendState};
pub use catalog::Catalog;
pub use diff::{diff, LbOp};
pub use endpoint_controller::{derive_endpoint_slices, NamedPort, PodInfo};
pub use frontend::{
    Algorithm, FrontendAddr, FrontendKey, FrontendKind, RevNatIndex, Scope, ServiceFlags,
};
pub use map_state::{
    AffinityMatch, Dangling, MaglevTable, MapState, Master, ServiceKey, ServiceValue, Slot,
};
pub use names::{ObjectName, Protocol};
pub use planner::{Desired, LbConfig, PlanProblem, Planner};
pub use resource::{EndpointSlice, ResourceError, Service};
pub use state::{FrontendEntry, LbState};
pub use writer::{apply_ops, ApplyError, MapWriter};
