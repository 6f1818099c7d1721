//! How a node reaches pods on other nodes, and the node-wide load-time
//! globals (`ROUTING_MODE`, `TUNNEL_IFINDEX`, and for the underlay device
//! `TUNNEL_PORT`) that tell the datapath about it.

use std::fmt;

use thiserror::Error;

use crate::abi::{ROUTING_MODE_NATIVE, ROUTING_MODE_TUNNEL};

/// The node's routing mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Routing {
    /// No encapsulation: traffic to remote pods goes to the node's stack,
    /// which forwards it by the routes the agent installs for the other
    /// nodes' pod CIDRs; the receiving node takes the source identity from
    /// its ipcache.
    #[default]
    Native,
    /// Encapsulation: traffic to a remote pod whose ipcache entry names a
    /// tunnel endpoint is sent through `device`, a VXLAN device in external
    /// (collect_md) mode, with the sender's identity in the VNI. The device
    /// must exist in the caller's network namespace when the datapath is
    /// opened.
    Tunnel {
        /// Name of the tunnel device (Cilium's is `cilium_vxlan`).
        device: String,
        /// Its UDP port (Cilium's 8472): the underlay device's program passes tunnel traffic
        /// to the stack without looking it up as service traffic.
        port: u16,
    },
}

/// `native`, or `tunnel via <device>`.
impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Tunnel { device, port } => write!(f, "tunnel via {device} (UDP {port})"),
        }
    }
}

/// Failures turning the routing mode into load-time globals.
#[derive(Debug, Error)]
pub enum RoutingError {
    /// The tunnel device does not exist (or cannot be looked up).
    #[error("tunnel device {device} not found in this network namespace")]
    TunnelDevice {
        /// Device name.
        device: String,
        /// Underlying error.
        #[source]
        source: nix::Error,
    },
}

/// The routing mode as the datapath's globals carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoutingGlobals {
    /// `ROUTING_MODE`.
    pub mode: u32,
    /// `TUNNEL_IFINDEX` (0 in native routing).
    pub tunnel_ifindex: u32,
    /// `TUNNEL_PORT`, network order (0 in native routing).
    pub tunnel_port: u16,
}

impl Routing {
    /// Resolves the tunnel device's ifindex in the calling thread's network
    /// namespace.
    pub(crate) fn globals(&self) -> Result<RoutingGlobals, RoutingError> {
        match self {
            Self::Native => Ok(RoutingGlobals {
                mode: ROUTING_MODE_NATIVE,
                tunnel_ifindex: 0,
                tunnel_port: 0,
            }),
            Self::Tunnel { device, port } => {
                let ifindex = nix::net::if_::if_nametoindex(device.as_str()).map_err(|source| {
                    RoutingError::TunnelDevice {
                        device: device.clone(),
                        source,
                    }
                })?;
                Ok(RoutingGlobals {
                    mode: ROUTING_MODE_TUNNEL,
                    tunnel_ifindex: ifindex,
                    tunnel_port: port.to_be(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_routing_is_the_default_and_needs_no_device() {
        let globals = Routing::default().globals().expect("native needs nothing");
        assert_eq!(globals.mode, ROUTING_MODE_NATIVE);
        assert_eq!(globals.tunnel_ifindex, 0);
    }

    #[test]
    fn a_missing_tunnel_device_is_reported_by_name() {
        let routing = Routing::Tunnel {
            device: "cilt-nodev0".to_string(),
            port: 8472,
        };
        assert_eq!(routing.to_string(), "tunnel via cilt-nodev0 (UDP 8472)");
        let err = routing.globals().expect_err("no such device");
        assert!(err.to_string().contains("cilt-nodev0"), "{err}");
    }
}
