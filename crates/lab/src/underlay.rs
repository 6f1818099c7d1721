//! The underlay: a switch namespace with bridge `br0`, and the `eth0` of each node (and of
//! etcd's namespace) plugged into it.

use std::net::Ipv4Addr;

use crate::netns::{self, NetnsError};
use crate::plan::UNDERLAY_PREFIX_LEN;

/// The bridge inside the switch namespace.
pub const BRIDGE: &str = "br0";

/// The underlay interface of a node or of etcd's namespace.
pub const NODE_IFNAME: &str = "eth0";

/// etcd's port on the switch.
pub const ETCD_PORT: &str = "etcd";

/// Creates the switch namespace with its bridge up (the switch itself has no address).
pub fn create_switch(switch_ns: &str) -> Result<(), NetnsError> {
    netns::create(switch_ns)?;
    netns::ip(switch_ns, &["link", "add", BRIDGE, "type", "bridge"])?;
    netns::ip(switch_ns, &["link", "set", BRIDGE, "up"])
}

/// Creates the node namespace, plugs it into the switch (see [`create_host`]) and enables
/// forwarding in it.
pub fn create_node(
    switch_ns: &str,
    node_ns: &str,
    port: &str,
    ip: Ipv4Addr,
) -> Result<(), NetnsError> {
    create_host(switch_ns, node_ns, port, ip)?;
    netns::sysctl(node_ns, "net.ipv4.ip_forward", "1")
}

/// Creates namespace `host_ns`, plugs its `eth0` into the switch as port `port` and gives it
/// `ip`.
pub fn create_host(
    switch_ns: &str,
    host_ns: &str,
    port: &str,
    ip: Ipv4Addr,
) -> Result<(), NetnsError> {
    netns::create(host_ns)?;
    netns::ip(
        switch_ns,
        &[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            NODE_IFNAME,
            "netns",
            host_ns,
        ],
    )?;
    netns::ip(switch_ns, &["link", "set", port, "master", BRIDGE, "up"])?;
    netns::ip(
        host_ns,
        &[
            "addr",
            "add",
            &format!("{ip}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            NODE_IFNAME,
        ],
    )?;
    netns::ip(host_ns, &["link", "set", NODE_IFNAME, "up"])
}
