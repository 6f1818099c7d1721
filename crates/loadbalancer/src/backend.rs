//! Backends: the address, port and protocol a service forwards to, the node-local ID the
//! maps know it by, and its state.

use std::fmt;
use std::net::Ipv4Addr;

use crate::names::Protocol;

/// A backend's node-local ID (`cilium_lb4_backends_v3` key). Never 0; kept for as long
/// as the backend exists, so conntrack entries that name it stay right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId(pub u32);

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A backend address: `ip:port/proto`. Services that share a backend address share its
/// ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendAddr {
    /// Pod (or other endpoint) address.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.ip, self.port, self.protocol)
    }
}

/// A backend's state (`lb4_backend.flags`, Cilium's `BE_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendState {
    /// `BE_STATE_ACTIVE` (0): takes new connections; has slots.
    Active,
    /// `BE_STATE_TERMINATING` (1): no slots, so no new connections, but stays in the
    /// backends map for the connections it has.
    Terminating,
}

impl BackendState {
    /// The `lb4_backend.flags` value.
    pub fn value(self) -> u8 {
        match self {
            BackendState::Active => 0,
            BackendState::Terminating => 1,
        }
    }

    /// The state of an `lb4_backend.flags` value read back from the map; states this
    /// control plane never writes (quarantined, maintenance) read as `None`.
    pub fn from_value(value: u8) -> Option<Self> {
        match value {
            0 => Some(BackendState::Active),
            1 => Some(BackendState::Terminating),
            _ => None,
        }
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendState::Active => "active",
            BackendState::Terminating => "terminating",
        })
    }
}

/// A backends-map value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Where it is.
    pub addr: BackendAddr,
    /// Whether it takes new connections.
    pub state: BackendState,
}
