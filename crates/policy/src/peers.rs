//! The non-label peers a rule can name: entities, CIDRs, FQDNs, services,
//! and the authentication a peer must pass.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::selector::EndpointSelector;

/// A named group of peers (`fromEntities`/`toEntities`), as in Cilium's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    /// Everything, the world included.
    All,
    /// Outside the cluster (same as 0.0.0.0/0 and ::/0).
    World,
    /// Outside the cluster, IPv4 only.
    #[serde(rename = "world-ipv4")]
    WorldIpv4,
    /// Outside the cluster, IPv6 only.
    #[serde(rename = "world-ipv6")]
    WorldIpv6,
    /// Every endpoint of the local cluster, hosts and nodes included.
    Cluster,
    /// The local host, hostNetwork pods included.
    Host,
    /// Other nodes of the cluster.
    RemoteNode,
    /// The Kubernetes API server.
    KubeApiserver,
    /// Cilium's health endpoints.
    Health,
    /// Endpoints whose identity is not resolved yet.
    Init,
    /// Cilium's Envoy ingress.
    Ingress,
    /// Endpoints Cilium does not manage.
    Unmanaged,
    /// Nothing.
    None,
}

/// A CIDR in `fromCIDR`/`toCIDR`: a prefix, or a bare address meaning a
/// single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub IpNet);

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        struct CidrVisitor;

        impl Visitor<'_> for CidrVisitor {
            type Value = Cidr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CIDR such as 10.0.0.0/8, or an IP address")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Cidr, E> {
                if text.contains('/') {
                    text.parse::<IpNet>()
                        .map(Cidr)
                        .map_err(|_| E::custom(format_args!("{text:?} is not a valid CIDR")))
                } else {
                    text.parse::<IpAddr>()
                        .map(|ip| Cidr(IpNet::from(ip)))
                        .map_err(|_| {
                            E::custom(format_args!("{text:?} is not a valid CIDR or IP address"))
                        })
                }
            }
        }

        deserializer.deserialize_str(CidrVisitor)
    }
}

/// A `fromCIDRSet`/`toCIDRSet` entry: a prefix (or a CiliumCIDRGroup) with
/// sub-prefixes carved out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    /// The prefix, in `address/length` notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
    /// Name of a CiliumCIDRGroup instead of `cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_group_ref: Option<String>,
    /// Prefixes inside `cidr` that are not part of the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

/// A DNS name matcher (`toFQDNs`, and `dns` L7 rules). Exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnSelector {
    /// An exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A pattern where `*` matches within one label (a bare `*` matches all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// A `toServices` entry (kept for a later issue): a service by name or by
/// label selector. Exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSelector {
    /// A service by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_service: Option<K8sServiceName>,
    /// Services by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_service_selector: Option<K8sServiceLabels>,
}

/// A Kubernetes service by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sServiceName {
    /// Service name.
    pub service_name: String,
    /// Namespace; the policy's own when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Kubernetes services by label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sServiceLabels {
    /// Service label selector.
    pub selector: EndpointSelector,
    /// Namespace; the policy's own when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Mutual authentication a peer must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Authentication mode.
    pub mode: AuthenticationMode,
}

/// Authentication modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthenticationMode {
    /// No authentication.
    Disabled,
    /// Mutual authentication required.
    Required,
    /// Always fails (for tests).
    TestAlwaysFail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_are_host_prefixes() {
        let cidrs: Vec<Cidr> = serde_json::from_value(serde_json::json!([
            "10.0.0.0/8",
            "192.0.2.1",
            "2001:db8::1"
        ]))
        .unwrap();
        assert_eq!(
            cidrs.iter().map(|c| c.0.to_string()).collect::<Vec<_>>(),
            ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::1/128"]
        );
        assert!(serde_json::from_value::<Cidr>(serde_json::json!("10.0.0.0/33")).is_err());
    }

    #[test]
    fn entities_use_ciliums_names() {
        let entities: Vec<Entity> = serde_json::from_value(serde_json::json!([
            "all",
            "world",
            "world-ipv4",
            "cluster",
            "host",
            "remote-node",
            "kube-apiserver",
            "health",
            "init",
            "ingress",
            "unmanaged",
            "none"
        ]))
        .unwrap();
        assert_eq!(entities.len(), 12);
        assert!(serde_json::from_value::<Entity>(serde_json::json!("World")).is_err());
    }
}
