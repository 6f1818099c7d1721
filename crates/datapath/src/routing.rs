//! How a node reaches pods on other nodes, and the node-wide load-time
//! globals that tell the datapath about it: `ROUTING_MODE`, `TUNNEL_IFINDEX`,
//! `TUNNEL_PORT`, and from the node's underlay `DIRECT_ROUTING_DEV_IFINDEX`,
//! `NODE_IPV4` and `NODE_IPV4_MASK`.

use std::fmt;

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::abi::{ipv4_be32, ROUTING_MODE_NATIVE, ROUTING_MODE_TUNNEL};

/// The node's routing mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Routing {
    /// No encapsulation: traffic to a remote pod goes out of the node
    /// unchanged, by the routes the agent installs for the other nodes' pod
    /// CIDRs (each via its node's address on the underlay device); the
    /// receiving node takes the source identity from its ipcache.
    #[default]
    Native,
    /// Encapsulation: traffic to a remote pod whose ipcache entry names a
    /// tunnel endpoint is sent in VXLAN, with the sender's identity in the
    /// VNI, through `device`, a VXLAN device in external (collect_md) mode,
    /// or wrapped by the datapath itself when the node is on the underlay's
    /// subnet. The device must exist in the caller's network namespace when
    /// the datapath is opened.
    Tunnel {
        /// Name of the tunnel device (Cilium's is `cilium_vxlan`).
        device: String,
        /// Its UDP port (Cilium's 8472): the destination port of what the
        /// datapath wraps itself, and the underlay device's program passes
        /// tunnel traffic to the stack without looking it up as service
        /// traffic.
        port: u16,
    },
}

/// `native`, or `tunnel via <device> (UDP <port>)`.
impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Tunnel { device, port } => write!(f, "tunnel via {device} (UDP {port})"),
        }
    }
}

/// The node's underlay: the device facing the other nodes (Cilium's
/// direct-routing device) and its address. Pods' packets for another node
/// leave by this device: in native routing to that node (the agent routes
/// every other node's pod CIDR via the node's address on this device, so no
/// route lookup is needed), in tunnel mode wrapped in VXLAN from `address`
/// when the node is on `address`'s subnet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Underlay {
    /// Device name; must exist in the caller's network namespace when the
    /// datapath is opened.
    pub device: String,
    /// The node's address on it, with the subnet's prefix length.
    pub address: Ipv4Net,
}

/// `<address> on <device>`.
impl fmt::Display for Underlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.address, self.device)
    }
}

/// Failures turning the routing mode into load-time globals.
#[derive(Debug, Error)]
pub enum RoutingError {
    /// A device the datapath must send through does not exist (or cannot be
    /// looked up).
    #[error("{role} device {device} not found in this network namespace")]
    Device {
        /// What the device is for: `tunnel` or `underlay`.
        role: &'static str,
        /// Device name.
        device: String,
        /// Underlying error.
        #[source]
        source: nix::Error,
    },
}

/// The routing mode and underlay as the datapath's globals carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RoutingGlobals {
    /// `ROUTING_MODE`.
    pub mode: u32,
    /// `TUNNEL_IFINDEX` (0 in native routing).
    pub tunnel_ifindex: u32,
    /// `TUNNEL_PORT`, network order (0 in native routing).
    pub tunnel_port: u16,
    /// `DIRECT_ROUTING_DEV_IFINDEX` (0 without an underlay).
    pub direct_routing_ifindex: u32,
    /// `NODE_IPV4`: the underlay address, network order (0 without one).
    pub node_ipv4: u32,
    /// `NODE_IPV4_MASK`: its subnet's netmask, network order.
    pub node_ipv4_mask: u32,
}

fn ifindex(role: &'static str, device: &str) -> Result<u32, RoutingError> {
    nix::net::if_::if_nametoindex(device).map_err(|source| RoutingError::Device {
        role,
        device: device.to_string(),
        source,
    })
}

impl Routing {
    /// Resolves the devices' ifindexes in the calling thread's network
    /// namespace.
    pub(crate) fn globals(
        &self,
        underlay: Option<&Underlay>,
    ) -> Result<RoutingGlobals, RoutingError> {
        let mut globals = RoutingGlobals::default();
        match self {
            Self::Native => globals.mode = ROUTING_MODE_NATIVE,
            Self::Tunnel { device, port } => {
                globals.mode = ROUTING_MODE_TUNNEL;
                globals.tunnel_ifindex = ifindex("tunnel", device)?;
                globals.tunnel_port = port.to_be();
            }
        }
        if let Some(underlay) = underlay {
            globals.direct_routing_ifindex = ifindex("underlay", &underlay.device)?;
            globals.node_ipv4 = ipv4_be32(underlay.address.addr());
            globals.node_ipv4_mask = ipv4_be32(underlay.address.netmask());
        }
        Ok(globals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_routing_is_the_default_and_needs_no_device() {
        let globals = Routing::default()
            .globals(None)
            .expect("native needs nothing");
        assert_eq!(globals.mode, ROUTING_MODE_NATIVE);
        assert_eq!(globals, RoutingGlobals::default());
    }

    #[test]
    fn a_missing_tunnel_device_is_reported_by_name() {
        let routing = Routing::Tunnel {
            device: "cilt-nodev0".to_string(),
            port: 8472,
        };
        assert_eq!(routing.to_string(), "tunnel via cilt-nodev0 (UDP 8472)");
        let err = routing.globals(None).expect_err("no such device");
        assert!(
            err.to_string().contains("tunnel device cilt-nodev0"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_underlay_device_is_reported_by_name() {
        let underlay = Underlay {
            device: "cilt-nodev1".to_string(),
            address: "192.0.2.1/24".parse().expect("valid"),
        };
        assert_eq!(underlay.to_string(), "192.0.2.1/24 on cilt-nodev1");
        let err = Routing::Native
            .globals(Some(&underlay))
            .expect_err("no such device");
        assert!(
            err.to_string().contains("underlay device cilt-nodev1"),
            "{err}"
        );
    }

    #[test]
    fn the_underlay_becomes_its_ifindex_address_and_netmask_in_network_order() {
        let underlay = Underlay {
            device: "lo".to_string(),
            address: "192.0.2.1/24".parse().expect("valid"),
        };
        let globals = Routing::Native
            .globals(Some(&underlay))
            .expect("every namespace has lo");
        assert_eq!(globals.direct_routing_ifindex, 1);
        assert_eq!(globals.node_ipv4.to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(globals.node_ipv4_mask.to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(globals.tunnel_ifindex, 0);
    }
}
