//! The node's host-side devices: the `cilium_host`/`cilium_net` veth pair that carries the
//! router (gateway) IP, and the sysctls forwarding needs.

use std::net::Ipv4Addr;

use cilium_netlink::NetlinkError;

pub const HOST_DEVICE: &str = "cilium_host";
pub const NET_DEVICE: &str = "cilium_net";

#[derive(Debug, thiserror::Error)]
#[error("setting up host device {device}: {step}")]
pub struct HostDeviceError {
    device: &'static str,
    step: &'static str,
    #[source]
    source: NetlinkError,
}

/// Creates (or adopts, after a restart) `cilium_host`/`cilium_net`, brings them up and puts
/// the router IP on `cilium_host`. Idempotent.
pub fn ensure(router_ip: Ipv4Addr) -> Result<(), HostDeviceError> {
    let fail = |device, step| {
        move |source| HostDeviceError {
            device,
            step,
            source,
        }
    };
    if cilium_netlink::link_by_name(HOST_DEVICE)
        .map_err(fail(HOST_DEVICE, "looking up"))?
        .is_none()
    {
        cilium_netlink::create_veth(HOST_DEVICE, NET_DEVICE)
            .map_err(fail(HOST_DEVICE, "creating veth pair"))?;
    }
    for device in [HOST_DEVICE, NET_DEVICE] {
        cilium_netlink::set_link_up(device).map_err(fail(device, "bringing up"))?;
    }
    cilium_netlink::ensure_address(HOST_DEVICE, router_ip, 32)
        .map_err(fail(HOST_DEVICE, "adding the router address"))?;
    for (path, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv4/conf/all/forwarding", "1"),
    ] {
        cilium_netlink::set_sysctl(path, value)
            .map_err(fail(HOST_DEVICE, "setting forwarding sysctls"))?;
    }
    Ok(())
}

/// Creates (or adopts) the VXLAN device in external mode on `port` and brings it up.
pub fn ensure_tunnel(device: &'static str, port: u16) -> Result<(), HostDeviceError> {
    let fail = |step| {
        move |source| HostDeviceError {
            device,
            step,
            source,
        }
    };
    if cilium_netlink::link_by_name(device)
        .map_err(fail("looking up"))?
        .is_none()
    {
        cilium_netlink::create_vxlan_external(device, port).map_err(fail("creating"))?;
    }
    cilium_netlink::set_link_up(device).map_err(fail("bringing up"))
}
