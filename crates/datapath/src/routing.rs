//! How a node reaches pods on other nodes, and the node-wide load-time
//! globals (`ROUTING_MODE`, `TUNNEL_IFINDEX`, `DIRECT_ROUTING_DEV_IFINDEX`,
//! and for the underlay device `TUNNEL_PORT`) that tell the datapath about it.

use std::fmt;

use thiserror::Error;

use crate::abi::{ROUTING_MODE_NATIVE, ROUTING_MODE_TUNNEL};

/// The node's routing mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Routing {
    /// No encapsulation: traffic to a remote pod goes out of the node
    /// unchanged, by the routes the agent installs for the other nodes' pod
    /// CIDRs (each via its node's address on `device`); the receiving node
    /// takes the source identity from its ipcache.
    Native {
        /// The direct-routing device those routes use. With it, pods'
        /// programs send straight to the node their ipcache entry names, on
        /// this device, without a route lookup; without it (`None`), by a
        /// FIB lookup. Must exist in the caller's network namespace when the
        /// datapath is opened.
        device: Option<String>,
    },
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

/// Native routing without a device.
impl Default for Routing {
    fn default() -> Self {
        Self::Native { device: None }
    }
}

/// `native`, `native via <device>`, or `tunnel via <device> (UDP <port>)`.
impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native { device: None } => f.write_str("native"),
            Self::Native {
                device: Some(device),
            } => write!(f, "native via {device}"),
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
    /// The direct-routing device does not exist (or cannot be looked up).
    #[error("direct-routing device {device} not found in this network namespace")]
    DirectRoutingDevice {
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
    /// `DIRECT_ROUTING_DEV_IFINDEX` (0 in tunnel mode and without a device).
    pub direct_routing_ifindex: u32,
    /// `TUNNEL_PORT`, network order (0 in native routing).
    pub tunnel_port: u16,
}

impl Routing {
    /// Resolves the named device's ifindex in the calling thread's network
    /// namespace.
    pub(crate) fn globals(&self) -> Result<RoutingGlobals, RoutingError> {
        match self {
            Self::Native { device } => {
                let direct_routing_ifindex = match device {
                    Some(device) => {
                        nix::net::if_::if_nametoindex(device.as_str()).map_err(|source| {
                            RoutingError::DirectRoutingDevice {
                                device: device.clone(),
                                source,
                            }
                        })?
                    }
                    None => 0,
                };
                Ok(RoutingGlobals {
                    mode: ROUTING_MODE_NATIVE,
                    tunnel_ifindex: 0,
                    direct_routing_ifindex,
                    tunnel_port: 0,
                })
            }
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
                    direct_routing_ifindex: 0,
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
        assert_eq!(globals.direct_routing_ifindex, 0);
    }

    #[test]
    fn a_missing_direct_routing_device_is_reported_by_name() {
        let routing = Routing::Native {
            device: Some("cilt-nodev1".to_string()),
        };
        assert_eq!(routing.to_string(), "native via cilt-nodev1");
        let err = routing.globals().expect_err("no such device");
        assert!(err.to_string().contains("cilt-nodev1"), "{err}");
    }

    #[test]
    fn the_direct_routing_device_becomes_its_ifindex() {
        let routing = Routing::Native {
            device: Some("lo".to_string()),
        };
        let globals = routing.globals().expect("every namespace has lo");
        assert_eq!(globals.direct_routing_ifindex, 1);
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
