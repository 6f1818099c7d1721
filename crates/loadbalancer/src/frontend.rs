//! Frontends: the addresses a service is reached at (`ip:port/proto`), the lookup scope
//! of each services-map entry, what kind of frontend it is, its reverse-NAT index, its
//! flags (Cilium's `SVC_FLAG_*` values, `bpf/lib/lb.h`) and the backend selection
//! algorithm.

use std::fmt;
use std::net::Ipv4Addr;

use crate::names::Protocol;

/// `SVC_FLAG_EXTERNAL_IP` (`flags`): an externalIPs frontend.
pub const SVC_FLAG_EXTERNAL_IP: u8 = 1 << 0;
/// `SVC_FLAG_NODEPORT` (`flags`): a NodePort frontend.
pub const SVC_FLAG_NODEPORT: u8 = 1 << 1;
/// `SVC_FLAG_EXT_LOCAL_SCOPE` (`flags`): externalTrafficPolicy=Local.
pub const SVC_FLAG_EXT_LOCAL_SCOPE: u8 = 1 << 2;
/// `SVC_FLAG_AFFINITY` (`flags`): sessionAffinity=ClientIP.
pub const SVC_FLAG_AFFINITY: u8 = 1 << 4;
/// `SVC_FLAG_LOADBALANCER` (`flags`): a LoadBalancer frontend.
pub const SVC_FLAG_LOADBALANCER: u8 = 1 << 5;
/// `SVC_FLAG_ROUTABLE` (`flags`): reachable from outside the node (every frontend but
/// cluster IPs and the `0.0.0.0` NodePort surrogate).
pub const SVC_FLAG_ROUTABLE: u8 = 1 << 6;
/// `SVC_FLAG_INT_LOCAL_SCOPE` (`flags2`): internalTrafficPolicy=Local.
pub const SVC_FLAG_INT_LOCAL_SCOPE: u8 = 1 << 4;
/// `SVC_FLAG_TWO_SCOPES` (`flags2`): the frontend has an internal-scope entry too.
pub const SVC_FLAG_TWO_SCOPES: u8 = 1 << 5;

/// A reverse-NAT index: identifies one frontend address in the reverse-NAT, Maglev and
/// affinity maps, and is the service ID `cilium service list` shows. Never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RevNatIndex(pub u16);

impl fmt::Display for RevNatIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A frontend address: `ip:port/proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrontendAddr {
    /// Cluster IP, node IP (or `0.0.0.0` for the NodePort surrogate), load-balancer or
    /// external IP.
    pub ip: Ipv4Addr,
    /// Service port, or node port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl fmt::Display for FrontendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.ip, self.port, self.protocol)
    }
}

/// `lb4_key.scope`: which of a frontend's backend sets a lookup asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `LB_LOOKUP_SCOPE_EXT` (0): the default, and the only scope of most frontends.
    External,
    /// `LB_LOOKUP_SCOPE_INT` (1): in-cluster traffic to a frontend whose two traffic
    /// policies differ ([`SVC_FLAG_TWO_SCOPES`]).
    Internal,
}

impl Scope {
    /// The `lb4_key.scope` value.
    pub fn value(self) -> u8 {
        match self {
            Scope::External => 0,
            Scope::Internal => 1,
        }
    }

    /// The scope of an `lb4_key.scope` value read back from the map.
    pub fn from_value(value: u8) -> Option<Self> {
        match value {
            0 => Some(Scope::External),
            1 => Some(Scope::Internal),
            _ => None,
        }
    }
}

/// One services-map frontend: an address in a scope. Displayed as Cilium does,
/// `ip:port/proto`, with `/i` for the internal scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrontendKey {
    /// The address.
    pub addr: FrontendAddr,
    /// The scope.
    pub scope: Scope,
}

impl fmt::Display for FrontendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.scope == Scope::Internal {
            f.write_str("/i")?;
        }
        Ok(())
    }
}

/// What a frontend is, as `cilium service list` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrontendKind {
    /// The service's cluster IP.
    ClusterIp,
    /// A node address (or the `0.0.0.0` surrogate) at the node port.
    NodePort,
    /// A load-balancer IP.
    LoadBalancer,
    /// One of `spec.externalIPs`.
    ExternalIp,
}

impl FrontendKind {
    /// The flag marking this kind in `lb4_service.flags` (none for a cluster IP).
    pub fn flag(self) -> u8 {
        match self {
            FrontendKind::ClusterIp => 0,
            FrontendKind::NodePort => SVC_FLAG_NODEPORT,
            FrontendKind::LoadBalancer => SVC_FLAG_LOADBALANCER,
            FrontendKind::ExternalIp => SVC_FLAG_EXTERNAL_IP,
        }
    }
}

impl fmt::Display for FrontendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrontendKind::ClusterIp => "ClusterIP",
            FrontendKind::NodePort => "NodePort",
            FrontendKind::LoadBalancer => "LoadBalancer",
            FrontendKind::ExternalIp => "ExternalIPs",
        })
    }
}

/// Backend selection for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Algorithm {
    /// A random slot (Cilium's default).
    #[default]
    Random,
    /// The frontend's Maglev table: the same flow picks the same backend on every node.
    Maglev,
}

impl Algorithm {
    /// The datapath's `LB_SELECTION_*` value.
    pub fn selection(self) -> u8 {
        match self {
            Algorithm::Random => 1,
            Algorithm::Maglev => 2,
        }
    }

    /// The algorithm of an `LB_SELECTION_*` value read back from a map.
    pub fn from_selection(value: u8) -> Option<Self> {
        match value {
            1 => Some(Algorithm::Random),
            2 => Some(Algorithm::Maglev),
            _ => None,
        }
    }

    /// Parses `random` or `maglev` (the annotation's and the agent option's spelling).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "random" => Some(Algorithm::Random),
            "maglev" => Some(Algorithm::Maglev),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Random => "random",
            Algorithm::Maglev => "maglev",
        })
    }
}

/// `lb4_service.flags` and `flags2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ServiceFlags {
    /// First set: `SVC_FLAG_EXTERNAL_IP` … `SVC_FLAG_SOURCE_RANGE`.
    pub flags: u8,
    /// Second set: `SVC_FLAG_LOCALREDIRECT` … `SVC_FLAG_TWO_SCOPES`.
    pub flags2: u8,
}
