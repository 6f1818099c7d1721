//! What this node knows of the cluster (the other nodes, every published pod address) and
//! what follows from it for the datapath: the ipcache entries and the routes to other nodes'
//! pod CIDRs.
//!
//! Pure: `desired_*` compute the target state from the view; the reconciler diffs it against
//! what was applied.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use cilium_datapath::abi::RemoteEndpointInfo;
use ipnet::Ipv4Net;

use crate::cluster::records::{IpIdentityPair, NodeRecord};
use crate::config::RoutingMode;

/// Cilium's reserved identities used for addresses that are not pods.
pub const IDENTITY_HOST: u32 = 1;
pub const IDENTITY_WORLD: u32 = 2;
pub const IDENTITY_REMOTE_NODE: u32 = 6;

/// How the node reaches another node's pod CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCidrRoute {
    /// Native routing: via that node's underlay address.
    Via(Ipv4Addr),
    /// Tunnel mode: out of the tunnel device, from this node's router IP (so replies, which
    /// come back through the tunnel, reach the node).
    Tunnel { src: Ipv4Addr },
}

/// This node, as the view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    pub name: String,
    pub node_ip: Ipv4Addr,
    pub router_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    pub routing: RoutingMode,
}

/// The cluster as seen from the kvstore.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub local: LocalNode,
    pub nodes: BTreeMap<String, NodeRecord>,
    pub ips: BTreeMap<Ipv4Addr, IpIdentityPair>,
    /// Prefixes local policies name, with their CIDR identities.
    pub policy_prefixes: BTreeMap<Ipv4Net, u32>,
}

impl ClusterView {
    pub fn new(local: LocalNode) -> Self {
        Self {
            local,
            nodes: BTreeMap::new(),
            ips: BTreeMap::new(),
            policy_prefixes: BTreeMap::new(),
        }
    }

    /// Other nodes with a usable underlay address.
    fn remote_nodes(&self) -> impl Iterator<Item = (&NodeRecord, Ipv4Addr)> {
        self.nodes
            .values()
            .filter(|node| node.name != self.local.name)
            .filter_map(|node| node.internal_ip().map(|ip| (node, ip)))
    }

    /// An entry for an address of the node `host`: entries of other nodes name that node
    /// in both routing modes, as Cilium's do. Tunnel mode encapsulates to it; in native
    /// routing it tells `bpf_lxc` that the destination is another node's, which it reaches
    /// by sending to that node out of the underlay device, past the node's stack.
    fn entry(&self, identity: u32, host: Option<Ipv4Addr>) -> RemoteEndpointInfo {
        match host {
            Some(host) if host != self.local.node_ip => {
                RemoteEndpointInfo::with_tunnel(identity, host)
            }
            _ => RemoteEndpointInfo::new(identity),
        }
    }

    /// Every ipcache entry this node should have. More specific prefixes win in the LPM map,
    /// so a pod's /32 overrides its node's pod CIDR entry; the pod CIDR entry still sends
    /// traffic for a pod not yet published (e.g. during a kvstore outage) to the right node.
    pub fn desired_ipcache(&self) -> BTreeMap<Ipv4Net, RemoteEndpointInfo> {
        // Policy prefixes first: the cluster's own entry for the same prefix replaces them.
        let mut entries: BTreeMap<Ipv4Net, RemoteEndpointInfo> = self
            .policy_prefixes
            .iter()
            .map(|(prefix, id)| (*prefix, RemoteEndpointInfo::new(*id)))
            .collect();
        for ip in [self.local.node_ip, self.local.router_ip] {
            entries.insert(Ipv4Net::from(ip), RemoteEndpointInfo::new(IDENTITY_HOST));
        }
        for (node, node_ip) in self.remote_nodes() {
            entries.insert(
                Ipv4Net::from(node_ip),
                RemoteEndpointInfo::new(IDENTITY_REMOTE_NODE),
            );
            if let Some(router) = node.router_ip() {
                entries.insert(
                    Ipv4Net::from(router),
                    self.entry(IDENTITY_REMOTE_NODE, Some(node_ip)),
                );
            }
            if let Some(cidr) = node.ipv4_alloc_cidr {
                entries.insert(cidr, self.entry(IDENTITY_WORLD, Some(node_ip)));
            }
        }
        for pair in self.ips.values() {
            entries.insert(
                Ipv4Net::from(pair.ip),
                self.entry(pair.id, Some(pair.host_ip)),
            );
        }
        entries
    }

    /// Routes to other nodes' pod CIDRs, for the node's own traffic: via their underlay
    /// address in native routing; out of the tunnel device from the router IP in tunnel mode
    /// (its egress program finds the node to tunnel to in the ipcache).
    pub fn desired_routes(&self) -> BTreeMap<Ipv4Net, PodCidrRoute> {
        let router_ip = self.local.router_ip;
        self.remote_nodes()
            .filter_map(|(node, ip)| {
                let route = match self.local.routing {
                    RoutingMode::Native => PodCidrRoute::Via(ip),
                    RoutingMode::Tunnel => PodCidrRoute::Tunnel { src: router_ip },
                };
                node.ipv4_alloc_cidr.map(|cidr| (cidr, route))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{NodeAddress, CILIUM_INTERNAL_IP, INTERNAL_IP};
    use cilium_datapath::abi::FLAG_HAS_TUNNEL_EP;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn node(name: &str, underlay: &str, cidr: &str, router: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            cluster: "default".into(),
            ip_addresses: vec![
                NodeAddress {
                    address_type: INTERNAL_IP.into(),
                    ip: ip(underlay),
                },
                NodeAddress {
                    address_type: CILIUM_INTERNAL_IP.into(),
                    ip: ip(router),
                },
            ],
            ipv4_alloc_cidr: Some(cidr.parse().unwrap()),
        }
    }

    fn view(routing: RoutingMode) -> ClusterView {
        let mut view = ClusterView::new(LocalNode {
            name: "node1".into(),
            node_ip: ip("172.18.0.11"),
            router_ip: ip("10.0.0.1"),
            pod_cidr: "10.0.0.0/24".parse().unwrap(),
            routing,
        });
        for n in [
            node("node1", "172.18.0.11", "10.0.0.0/24", "10.0.0.1"),
            node("node2", "172.18.0.12", "10.0.1.0/24", "10.0.1.1"),
        ] {
            view.nodes.insert(n.name.clone(), n);
        }
        for (pod, host) in [("10.0.0.5", "172.18.0.11"), ("10.0.1.7", "172.18.0.12")] {
            view.ips.insert(
                ip(pod),
                IpIdentityPair {
                    ip: ip(pod),
                    id: 300,
                    host_ip: ip(host),
                    key: 0,
                    k8s_namespace: String::new(),
                    k8s_pod_name: String::new(),
                },
            );
        }
        view
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn tunnel_mode_points_remote_pods_at_their_node() {
        let entries = view(RoutingMode::Tunnel).desired_ipcache();
        let remote_pod = entries[&net("10.0.1.7/32")];
        assert_eq!(remote_pod.sec_identity, 300);
        assert_eq!(remote_pod.flags & FLAG_HAS_TUNNEL_EP, FLAG_HAS_TUNNEL_EP);
        assert_eq!(remote_pod.tunnel_endpoint, [172, 18, 0, 12]);
        let local_pod = entries[&net("10.0.0.5/32")];
        assert_eq!(
            local_pod.flags & FLAG_HAS_TUNNEL_EP,
            0,
            "local pods are not tunnelled"
        );
        let remote_cidr = entries[&net("10.0.1.0/24")];
        assert_eq!(remote_cidr.sec_identity, IDENTITY_WORLD);
        assert_eq!(remote_cidr.tunnel_endpoint, [172, 18, 0, 12]);
        assert_eq!(
            entries[&net("172.18.0.12/32")].sec_identity,
            IDENTITY_REMOTE_NODE
        );
        assert_eq!(entries[&net("172.18.0.11/32")].sec_identity, IDENTITY_HOST);
        assert_eq!(
            view(RoutingMode::Tunnel).desired_routes(),
            BTreeMap::from([(
                net("10.0.1.0/24"),
                PodCidrRoute::Tunnel {
                    src: ip("10.0.0.1")
                }
            )]),
            "the node reaches remote pods through the tunnel, from its router IP"
        );
    }

    #[test]
    fn native_mode_routes_and_names_the_node_of_remote_pods() {
        let v = view(RoutingMode::Native);
        let entries = v.desired_ipcache();
        let remote_pod = entries[&net("10.0.1.7/32")];
        assert_eq!(
            remote_pod.flags & FLAG_HAS_TUNNEL_EP,
            FLAG_HAS_TUNNEL_EP,
            "bpf_lxc's native fast path needs to know the pod's node"
        );
        assert_eq!(remote_pod.tunnel_endpoint, [172, 18, 0, 12]);
        assert_eq!(
            entries[&net("10.0.0.5/32")].flags & FLAG_HAS_TUNNEL_EP,
            0,
            "local pods are not"
        );
        assert_eq!(
            v.desired_routes(),
            BTreeMap::from([(net("10.0.1.0/24"), PodCidrRoute::Via(ip("172.18.0.12")))])
        );
    }

    #[test]
    fn a_departed_node_leaves_nothing_behind() {
        let mut v = view(RoutingMode::Native);
        v.nodes.remove("node2");
        v.ips.retain(|_, pair| pair.host_ip != ip("172.18.0.12"));
        assert!(v.desired_routes().is_empty());
        let entries = v.desired_ipcache();
        assert!(!entries.contains_key(&net("10.0.1.0/24")));
        assert!(!entries.contains_key(&net("10.0.1.7/32")));
    }

    #[test]
    fn policy_prefixes_sit_below_the_clusters_own_entries() {
        let mut view = view(RoutingMode::Tunnel);
        view.policy_prefixes = [
            (net("172.18.0.0/24"), 16_777_217),
            (net("10.0.1.7/32"), 16_777_218),
            (net("192.168.0.0/16"), 16_777_219),
        ]
        .into();
        let entries = view.desired_ipcache();
        assert_eq!(entries[&net("172.18.0.0/24")].sec_identity, 16_777_217);
        assert_eq!(entries[&net("192.168.0.0/16")].sec_identity, 16_777_219);
        assert_eq!(
            entries[&net("172.18.0.12/32")].sec_identity,
            IDENTITY_REMOTE_NODE,
            "a node keeps its identity inside a policy prefix"
        );
        assert_eq!(
            entries[&net("10.0.1.7/32")].sec_identity,
            300,
            "a pod's address keeps the pod's identity"
        );
        assert_eq!(
            entries[&net("192.168.0.0/16")].flags & FLAG_HAS_TUNNEL_EP,
            0
        );
    }
}
