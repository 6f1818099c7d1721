//! How a relay finds the nodes' Hubble servers: each agent serving the Observer API on TCP
//! publishes a peer record under `cilium/state/hubble/v1/<cluster>/<node>` on its node
//! lease (so it expires with the node), and the relay watches that prefix. Cilium's relay
//! learns the same from the agents' Peer service; the kvstore is what our nodes share.

use serde::{Deserialize, Serialize};

/// Where a node's Hubble server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerRecord {
    /// Node name, without the cluster.
    pub name: String,
    pub cluster: String,
    /// `host:port` of the Observer API over TCP.
    pub address: String,
}

impl PeerRecord {
    /// Cilium's absolute node name, `cluster/node`, as flows carry it.
    pub fn node_name(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }
}

/// The prefix under which the peers of `cluster` are published.
pub fn prefix(cluster: &str) -> String {
    format!("cilium/state/hubble/v1/{cluster}/")
}

/// The key of `node`'s peer record.
pub fn key(cluster: &str, node: &str) -> String {
    format!("{}{node}", prefix(cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_keys() {
        let record = PeerRecord {
            name: "node1".into(),
            cluster: "default".into(),
            address: "192.168.0.11:4244".into(),
        };
        assert_eq!(
            key("default", "node1"),
            "cilium/state/hubble/v1/default/node1"
        );
        assert!(key("default", "node1").starts_with(&prefix("default")));
        let json = serde_json::to_string(&record).expect("serializes");
        assert_eq!(
            json,
            r#"{"Name":"node1","Cluster":"default","Address":"192.168.0.11:4244"}"#
        );
        assert_eq!(record.node_name(), "default/node1");
    }
}
