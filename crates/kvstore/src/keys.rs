//! Cilium's key layout in the kvstore (cilium-facts §2.5), so that tools which know Cilium's
//! layout (`cilium kvstore get --recursive cilium/state/nodes/`) find our entries.
//!
//! Prefixes end with `/` so that watching `…/v1/default/` does not also match a cluster named
//! `default2`.

use std::net::IpAddr;
use std::time::Duration;

/// Cluster name used when none is configured.
pub const DEFAULT_CLUSTER: &str = "default";

/// TTL of the leases node, IP and identity-value entries live on (Cilium's 15 minutes).
pub const LEASE_TTL: Duration = Duration::from_secs(15 * 60);

/// Root of all shared cluster state.
pub const STATE_PREFIX: &str = "cilium/state/";
/// Root of every node entry.
pub const NODES_PREFIX: &str = "cilium/state/nodes/v1/";
/// Root of every IP → identity entry.
pub const IP_PREFIX: &str = "cilium/state/ip/v1/";
/// Root of every service entry.
pub const SERVICES_PREFIX: &str = "cilium/state/services/v1/";
/// Root of numeric identity → labels entries.
pub const IDENTITY_ID_PREFIX: &str = "cilium/state/identities/v1/id/";
/// Root of labels → numeric identity entries (one per node using the identity).
pub const IDENTITY_VALUE_PREFIX: &str = "cilium/state/identities/v1/value/";

/// `cilium/state/nodes/v1/<cluster>/`: every node of one cluster.
pub fn nodes_prefix(cluster: &str) -> String {
    format!("{NODES_PREFIX}{cluster}/")
}

/// `cilium/state/nodes/v1/<cluster>/<node>`: one node (`node.Node` JSON, on a lease).
pub fn node(cluster: &str, node: &str) -> String {
    format!("{NODES_PREFIX}{cluster}/{node}")
}

/// `cilium/state/ip/v1/<cluster>/`: every IP → identity entry of one cluster.
pub fn ip_prefix(cluster: &str) -> String {
    format!("{IP_PREFIX}{cluster}/")
}

/// `cilium/state/ip/v1/<cluster>/<ip>`: one IP → identity entry (`IPIdentityPair` JSON, on a
/// lease).
pub fn ip(cluster: &str, ip: IpAddr) -> String {
    format!("{IP_PREFIX}{cluster}/{ip}")
}

/// `cilium/state/services/v1/<cluster>/`: every service of one cluster.
pub fn services_prefix(cluster: &str) -> String {
    format!("{SERVICES_PREFIX}{cluster}/")
}

/// `cilium/state/services/v1/<cluster>/<namespace>/<service>`: one service.
pub fn service(cluster: &str, namespace: &str, name: &str) -> String {
    format!("{SERVICES_PREFIX}{cluster}/{namespace}/{name}")
}

/// `cilium/state/identities/v1/id/<identity>`: the labels of a numeric identity (no lease).
pub fn identity_id(id: u32) -> String {
    format!("{IDENTITY_ID_PREFIX}{id}")
}

/// `cilium/state/identities/v1/value/<labels>/`: every node's claim on a label set.
pub fn identity_value_prefix(labels: &str) -> String {
    format!("{IDENTITY_VALUE_PREFIX}{labels}/")
}

/// `cilium/state/identities/v1/value/<labels>/<node>`: `node` uses the identity of `labels`
/// (value: the numeric identity, on the node's lease). `labels` is the `;`-joined label array,
/// e.g. `k8s:app=web;k8s:io.kubernetes.pod.namespace=default;`.
pub fn identity_value(labels: &str, node: &str) -> String {
    format!("{IDENTITY_VALUE_PREFIX}{labels}/{node}")
}

/// The last path segment of `key` under `prefix` (e.g. the node name of a node key), or `None`
/// when `key` is not under `prefix` or is nested deeper.
pub fn leaf<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_cilium_layout() {
        assert_eq!(
            node(DEFAULT_CLUSTER, "k8s1"),
            "cilium/state/nodes/v1/default/k8s1"
        );
        assert_eq!(
            ip("c1", "10.0.1.5".parse().unwrap()),
            "cilium/state/ip/v1/c1/10.0.1.5"
        );
        assert_eq!(
            ip("c1", "f00d::1".parse().unwrap()),
            "cilium/state/ip/v1/c1/f00d::1"
        );
        assert_eq!(
            service("default", "kube-system", "kube-dns"),
            "cilium/state/services/v1/default/kube-system/kube-dns"
        );
        assert_eq!(identity_id(65538), "cilium/state/identities/v1/id/65538");
        assert_eq!(
            identity_value("k8s:app=web;", "k8s1"),
            "cilium/state/identities/v1/value/k8s:app=web;/k8s1"
        );
    }

    #[test]
    fn prefixes_cover_their_keys_and_only_their_cluster() {
        let key = node("default", "n1");
        assert!(key.starts_with(&nodes_prefix("default")));
        assert!(!node("default2", "n1").starts_with(&nodes_prefix("default")));
        assert!(ip("default", "10.0.0.1".parse().unwrap()).starts_with(&ip_prefix("default")));
        assert!(identity_value("a=b;", "n1").starts_with(&identity_value_prefix("a=b;")));
        assert!(services_prefix("c").starts_with(SERVICES_PREFIX));
    }

    #[test]
    fn leaf_extracts_the_name_under_a_prefix() {
        let prefix = nodes_prefix("default");
        assert_eq!(leaf(&prefix, &node("default", "n1")), Some("n1"));
        assert_eq!(leaf(&prefix, "cilium/state/nodes/v1/other/n1"), None);
        assert_eq!(leaf(&prefix, &prefix), None);
        assert_eq!(leaf(IP_PREFIX, &ip("c", "10.0.0.1".parse().unwrap())), None);
    }
}
