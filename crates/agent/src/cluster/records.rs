//! The JSON values this agent writes to and reads from the kvstore, in Cilium's shapes: the
//! node entry (`cilium/state/nodes/v1/…`, a subset of Cilium's `node.Node`) and the IP entry
//! (`cilium/state/ip/v1/…`, Cilium's `identity.IPIdentityPair`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Address type of a node's underlay address, as Cilium names it.
pub const INTERNAL_IP: &str = "InternalIP";
/// Address type of a node's router (cilium_host) address.
pub const CILIUM_INTERNAL_IP: &str = "CiliumInternalIP";

/// A node as registered in the kvstore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeRecord {
    pub name: String,
    pub cluster: String,
    #[serde(rename = "IPAddresses")]
    pub ip_addresses: Vec<NodeAddress>,
    #[serde(rename = "IPv4AllocCIDR")]
    pub ipv4_alloc_cidr: Option<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "Type")]
    pub address_type: String,
    #[serde(rename = "IP")]
    pub ip: Ipv4Addr,
}

impl NodeRecord {
    fn address(&self, address_type: &str) -> Option<Ipv4Addr> {
        self.ip_addresses
            .iter()
            .find(|a| a.address_type == address_type)
            .map(|a| a.ip)
    }

    /// The underlay address other nodes reach this one at.
    pub fn internal_ip(&self) -> Option<Ipv4Addr> {
        self.address(INTERNAL_IP)
    }

    /// The node's router IP (gateway of its pods).
    pub fn router_ip(&self) -> Option<Ipv4Addr> {
        self.address(CILIUM_INTERNAL_IP)
    }
}

/// An address and its security identity, published by the node hosting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpIdentityPair {
    #[serde(rename = "IP")]
    pub ip: Ipv4Addr,
    #[serde(rename = "ID")]
    pub id: u32,
    /// Underlay address of the hosting node (the tunnel endpoint).
    #[serde(rename = "HostIP")]
    pub host_ip: Ipv4Addr,
    /// IPsec key index (always 0 here).
    #[serde(rename = "Key", default)]
    pub key: u8,
    #[serde(
        rename = "K8sNamespace",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub k8s_namespace: String,
    #[serde(
        rename = "K8sPodName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub k8s_pod_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_record_reads_like_ciliums() {
        let json = r#"{"Name":"node2","Cluster":"default","IPAddresses":[
            {"Type":"InternalIP","IP":"172.18.0.12"},{"Type":"CiliumInternalIP","IP":"10.0.1.1"}],
            "IPv4AllocCIDR":"10.0.1.0/24"}"#;
        let node: NodeRecord = serde_json::from_str(json).unwrap();
        assert_eq!(node.internal_ip(), Some(Ipv4Addr::new(172, 18, 0, 12)));
        assert_eq!(node.router_ip(), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(node.ipv4_alloc_cidr, Some("10.0.1.0/24".parse().unwrap()));
        let back: NodeRecord =
            serde_json::from_str(&serde_json::to_string(&node).unwrap()).unwrap();
        assert_eq!(back, node);
    }

    #[test]
    fn ip_pair_uses_ciliums_field_names() {
        let pair = IpIdentityPair {
            ip: Ipv4Addr::new(10, 0, 1, 5),
            id: 5,
            host_ip: Ipv4Addr::new(172, 18, 0, 11),
            key: 0,
            k8s_namespace: "default".into(),
            k8s_pod_name: "web".into(),
        };
        assert_eq!(
            serde_json::to_string(&pair).unwrap(),
            r#"{"IP":"10.0.1.5","ID":5,"HostIP":"172.18.0.11","Key":0,"K8sNamespace":"default","K8sPodName":"web"}"#
        );
    }
}
