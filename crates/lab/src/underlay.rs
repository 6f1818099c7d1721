//! The underlay: a switch namespace with bridge `br0`, and each node's `eth0` plugged into it.

use std::net::Ipv4Addr;

use crate::netns::{self, NetnsError};
use crate::plan::UNDERLAY_PREFIX_LEN;

/// The bridge inside the switch namespace.
pub const BRIDGE: &str = "br0";

/// The node's underlay interface.
pub const NODE_IFNAME: &str = "eth0";

/// Creates the switch namespace with its bridge up (the switch itself has no address).
pub fn create_switch(switch_ns: &str) -> Result<(), NetnsError> {
    netns::create(switch_ns)?;
    netns::ip(switch_ns, &["link", "add", BRIDGE, "type", "bridge"])?;
    netns::ip(switch_ns, &["link", "set", BRIDGE, "up"])
}

/// Creates the node namespace, plugs its `eth0` into the switch as port `port` and gives it
/// `ip`; enables forwarding in the node.
pub fn create_node(
    switch_ns: &str,
    node_ns: &str,
    port: &str,
    ip: Ipv4Addr,
) -> Result<(), NetnsError> {
    netns::create(node_ns)?;
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
            node_ns,
        ],
    )?;
    netns::ip(switch_ns, &["link", "set", port, "master", BRIDGE, "up"])?;
    netns::ip(
        node_ns,
        &[
            "addr",
            "add",
            &format!("{ip}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            NODE_IFNAME,
        ],
    )?;
    netns::ip(node_ns, &["link", "set", NODE_IFNAME, "up"])?;
    netns::sysctl(node_ns, "net.ipv4.ip_forward", "1")
}
