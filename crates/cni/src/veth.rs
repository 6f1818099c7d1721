//! Pod plumbing: a veth pair whose host end stays in the node's namespace and whose other
//! end becomes the pod's interface, with the pod's /32, a link route to the gateway and a
//! default route through it.

use std::net::Ipv4Addr;

use cilium_netlink::{Link, NetNs, Netlink, NetlinkError, Route};
use ipnet::Ipv4Net;

use crate::endpoint_request::PlumbedPod;
use crate::naming::VethNames;

/// Addressing handed out by the agent, and the MTU to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddressing {
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

/// Creates and configures the veth pair, the pod end created directly inside `pod_ns` as
/// `ifname`. The caller has checked that `ifname` is free in the pod; if it appears in
/// between, creation fails with `EEXIST` and nothing was created. On any error the caller
/// deletes the host end (which removes both ends wherever the peer is).
pub fn plumb(
    host: &Netlink,
    pod: &Netlink,
    pod_ns: &NetNs,
    names: &VethNames,
    ifname: &str,
    addressing: &PodAddressing,
) -> Result<PlumbedPod, NetlinkError> {
    // The pod end is born in the pod under its final name: moving it there afterwards would
    // wait for RCU grace periods (≈ 20 ms of a ≈ 70 ms ADD, docs/benchmarks.md).
    host.create_veth_with_peer_in(&names.host, ifname, pod_ns, addressing.mtu)?;
    disable_ipv6(pod_ns)?;
    pod.set_link_up("lo")?;
    pod.set_link_up(ifname)?;
    pod.add_address(ifname, addressing.ip, 32)?;
    for route in pod_routes(ifname, addressing.gateway) {
        pod.add_route(&route)?;
    }
    host.set_link_up(&names.host)?;

    let host_link = read_back(host, &names.host)?;
    let pod_link = read_back(pod, ifname)?;
    Ok(PlumbedPod {
        host: host_link,
        pod_mac: pod_link.mac,
        ip: addressing.ip,
        gateway: addressing.gateway,
    })
}

/// The node hands out IPv4 only, so, as Cilium's plugin does when IPv6 is off, the pod gets
/// no IPv6 stack: otherwise its router solicitations and MLD reports would show up as drops.
fn disable_ipv6(pod_ns: &NetNs) -> Result<(), NetlinkError> {
    let write_all = || {
        ["all", "default"].iter().try_for_each(|scope| {
            cilium_netlink::set_sysctl(&format!("net/ipv6/conf/{scope}/disable_ipv6"), "1")
        })
    };
    pod_ns
        .run(write_all)
        .map_err(|source| NetlinkError::Namespace {
            netns: pod_ns.path().display().to_string(),
            source,
        })?
}

/// The pod's routes: the gateway is on-link, and everything else goes through it.
pub fn pod_routes(ifname: &str, gateway: Ipv4Addr) -> [Route; 2] {
    [
        Route {
            dst: Ipv4Net::from(gateway),
            gateway: None,
            dev: ifname.into(),
            scope_link: true,
            onlink: false,
            src: None,
        },
        Route {
            dst: Ipv4Net::default(),
            gateway: Some(gateway),
            dev: ifname.into(),
            scope_link: false,
            onlink: false,
            src: None,
        },
    ]
}

fn read_back(netlink: &Netlink, name: &str) -> Result<Link, NetlinkError> {
    netlink
        .link_by_name(name)?
        .ok_or_else(|| NetlinkError::NoSuchLink {
            operation: "read back configured link",
            name: name.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_on_link_and_the_default_route() {
        let [link, default] = pod_routes("eth0", Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(link.to_string(), "10.0.0.1/32 dev eth0 scope link");
        assert_eq!(default.to_string(), "0.0.0.0/0 via 10.0.0.1 dev eth0");
    }
}
