//! Small synchronous API over rtnetlink for the CNI plugin and the agent: network-namespace
//! handles ([`NetNs`]), a per-namespace netlink handle ([`Netlink`]) with link, veth,
//! address and route operations, and sysctl writes.
//!
//! A netlink socket belongs to the namespace of the thread that opened it, so
//! [`Netlink::connect_in`] opens its socket on a thread inside the target namespace and the
//! handle then works from any thread. Each handle drives its socket with its own
//! current-thread tokio runtime, so callers never need an async runtime; do not call a
//! handle from a task of an async runtime (use `spawn_blocking`). The free functions
//! ([`link_by_name`], [`replace_host_route`], ...) work on the caller's namespace and are
//! safe anywhere.

mod address;
mod current;
mod error;
mod handle;
mod link;
mod netns;
mod route;
mod sysctl;

pub use current::{
    addresses, create_veth, create_vxlan_external, delete_host_route, delete_route_to,
    ensure_address, link_by_name, replace_device_route, replace_gateway_route, replace_host_route,
    set_link_up, set_mtu,
};
pub use error::NetlinkError;
pub use handle::Netlink;
pub use link::{format_mac, Link};
pub use netns::{NetNs, NetNsError};
pub use route::Route;
pub use sysctl::set_sysctl;
