//! One-call helpers for the caller's current network namespace, for code (like the agent)
//! that does a few netlink operations on its own node. Each call runs on a short-lived
//! thread, which starts in the caller's namespace, so it is also safe from threads that
//! belong to an async runtime.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::NetlinkError;
use crate::handle::Netlink;
use crate::link::Link;
use crate::route::Route;

/// Runs `work` with a fresh handle on a thread in the caller's namespace.
fn with_netlink<T: Send>(
    work: impl FnOnce(&Netlink) -> Result<T, NetlinkError> + Send,
) -> Result<T, NetlinkError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("netlink".into())
            .spawn_scoped(scope, || work(&Netlink::connect()?))
            .map_err(|source| NetlinkError::Thread { source })?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// [`Netlink::link_by_name`] in the current namespace.
pub fn link_by_name(name: &str) -> Result<Option<Link>, NetlinkError> {
    with_netlink(|netlink| netlink.link_by_name(name))
}

/// [`Netlink::create_veth`] in the current namespace.
pub fn create_veth(name: &str, peer_name: &str) -> Result<(), NetlinkError> {
    with_netlink(|netlink| netlink.create_veth(name, peer_name))
}

/// [`Netlink::create_vxlan_external`] in the current namespace.
pub fn create_vxlan_external(name: &str, port: u16) -> Result<(), NetlinkError> {
    with_netlink(|netlink| netlink.create_vxlan_external(name, port))
}

/// [`Netlink::set_mtu`] in the current namespace.
pub fn set_mtu(name: &str, mtu: u32) -> Result<(), NetlinkError> {
    with_netlink(|netlink| netlink.set_mtu(name, mtu))
}

/// [`Netlink::addresses`] in the current namespace.
pub fn addresses(ifname: &str) -> Result<Vec<Ipv4Net>, NetlinkError> {
    with_netlink(|netlink| netlink.addresses(ifname))
}

/// Routes `cidr` via `gateway` on `dev` (`ip route replace CIDR via GW dev DEV`): how a node
/// reaches another node's pods in native routing.
pub fn replace_gateway_route(
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    dev: &str,
) -> Result<(), NetlinkError> {
    let route = Route {
        dst: cidr,
        gateway: Some(gateway),
        dev: dev.into(),
        scope_link: false,
        onlink: false,
        src: None,
    };
    with_netlink(|netlink| netlink.replace_route(&route))
}

/// Routes `cidr` out of `dev` with source address `src` (`ip route replace CIDR dev DEV scope
/// link src SRC`): how a node reaches another node's pods through the tunnel device.
pub fn replace_device_route(cidr: Ipv4Net, dev: &str, src: Ipv4Addr) -> Result<(), NetlinkError> {
    let route = Route {
        dst: cidr,
        gateway: None,
        dev: dev.into(),
        scope_link: true,
        onlink: false,
        src: Some(src),
    };
    with_netlink(|netlink| netlink.replace_route(&route))
}

/// Removes the route to `cidr` whatever it points at; `false` if there was none.
pub fn delete_route_to(cidr: Ipv4Net) -> Result<bool, NetlinkError> {
    let route = Route {
        dst: cidr,
        gateway: None,
        dev: String::new(),
        scope_link: false,
        onlink: false,
        src: None,
    };
    with_netlink(|netlink| netlink.delete_route(&route))
}

/// [`Netlink::set_link_up`] in the current namespace.
pub fn set_link_up(name: &str) -> Result<(), NetlinkError> {
    with_netlink(|netlink| netlink.set_link_up(name))
}

/// [`Netlink::ensure_address`] in the current namespace.
pub fn ensure_address(ifname: &str, address: Ipv4Addr, prefix_len: u8) -> Result<(), NetlinkError> {
    with_netlink(|netlink| netlink.ensure_address(ifname, address, prefix_len))
}

/// Points `ip/32` at `dev` (`ip route replace IP/32 dev DEV scope link`): how the node
/// reaches a local endpoint behind its host-side veth.
pub fn replace_host_route(ip: Ipv4Addr, dev: &str) -> Result<(), NetlinkError> {
    let route = Route {
        dst: Ipv4Net::from(ip),
        gateway: None,
        dev: dev.into(),
        scope_link: true,
        onlink: false,
        src: None,
    };
    with_netlink(|netlink| netlink.replace_route(&route))
}

/// Removes the `ip/32` route whatever its device; `false` if there was none.
pub fn delete_host_route(ip: Ipv4Addr) -> Result<bool, NetlinkError> {
    let route = Route {
        dst: Ipv4Net::from(ip),
        gateway: None,
        dev: String::new(),
        scope_link: false,
        onlink: false,
        src: None,
    };
    with_netlink(|netlink| netlink.delete_route(&route))
}
