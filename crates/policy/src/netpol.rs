//! Kubernetes NetworkPolicy (`networking.k8s.io/v1`): its spec, the API
//! server's checks, and its translation into a Cilium rule, the way Cilium
//! translates it:
//!
//! - `podSelector` becomes the rule's `endpointSelector`, keys from source
//!   `k8s`, plus `k8s:io.kubernetes.pod.namespace=<ns>`.
//! - Each `from`/`to` peer becomes its own rule entry. A `podSelector` peer
//!   gets the policy's namespace; a `namespaceSelector` peer's keys become
//!   `k8s:io.cilium.k8s.namespace.labels.<key>` (an empty one means "any
//!   namespace": `k8s:io.kubernetes.pod.namespace Exists`), merged with its
//!   `podSelector` if both are given. `ipBlock` becomes a CIDR set entry.
//!   An entry with no peers allows every peer (`fromEndpoints: [{}]`).
//! - `ports` go to every entry of the rule: protocol defaults to TCP, a
//!   missing port means all ports, `endPort` is kept.
//! - With no ingress rules and `policyTypes` naming Ingress (or not naming
//!   Egress), the rule gets an empty ingress entry: default deny. With no
//!   egress rules and `policyTypes` naming Egress, the same for egress.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::labels::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL, SOURCE_K8S};
use crate::peers::CidrRule;
use crate::ports::{Port, PortProtocol, PortRule, Protocol};
use crate::rule::{EgressRule, IngressRule, Rule};
use crate::selector::{EndpointSelector, LabelSelector, LabelSelectorRequirement, Operator};
use crate::validate::{check_except, check_selector_parts, fail, Check, FieldPath};
use crate::violation::Violation;

/// A NetworkPolicy's `spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Pods the policy applies to, in the policy's namespace.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Allowed incoming traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Allowed outgoing traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyEgressRule>,
    /// Directions the policy governs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<PolicyType>,
}

/// A direction a NetworkPolicy governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyType {
    /// Incoming traffic.
    Ingress,
    /// Outgoing traffic.
    Egress,
}

/// An ingress rule of a NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicyIngressRule {
    /// Ports; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
    /// Sources; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
}

/// An egress rule of a NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicyEgressRule {
    /// Ports; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
    /// Destinations; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
}

/// A NetworkPolicy peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    /// Pods (in the policy's namespace, or in the selected namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// A NetworkPolicy `ipBlock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    /// The prefix.
    pub cidr: IpNet,
    /// Prefixes inside it that are excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

/// A NetworkPolicy port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPort {
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Number or named port; absent means all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// End of a port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
}

impl NetworkPolicySpec {
    /// The API server's checks, `path` being the spec's.
    pub(crate) fn check(&self, path: &FieldPath) -> Check {
        let sel = &self.pod_selector;
        check_selector_parts(
            &sel.match_labels,
            &sel.match_expressions,
            &path.field("podSelector"),
            false,
        )?;
        let section = path.field("ingress");
        for (i, r) in self.ingress.iter().enumerate() {
            let at = section.index(i);
            check_ports(&r.ports, &at.field("ports"))?;
            check_peers(&r.from, &at.field("from"))?;
        }
        let section = path.field("egress");
        for (i, r) in self.egress.iter().enumerate() {
            let at = section.index(i);
            check_ports(&r.ports, &at.field("ports"))?;
            check_peers(&r.to, &at.field("to"))?;
        }
        Ok(())
    }

    /// The Cilium rule for this spec in `namespace` (without the policy's
    /// identifying labels).
    pub fn to_rule(&self, namespace: &str) -> Rule {
        let mut ingress = Vec::new();
        for r in &self.ingress {
            let to_ports = to_port_rules(&r.ports);
            if r.from.is_empty() {
                ingress.push(IngressRule {
                    from_endpoints: vec![EndpointSelector::wildcard()],
                    to_ports,
                    ..IngressRule::default()
                });
                continue;
            }
            for peer in &r.from {
                ingress.push(IngressRule {
                    from_endpoints: peer_selector(peer, namespace).into_iter().collect(),
                    from_cidr_set: peer.ip_block.iter().map(cidr_rule).collect(),
                    to_ports: to_ports.clone(),
                    ..IngressRule::default()
                });
            }
        }
        let mut egress = Vec::new();
        for r in &self.egress {
            let to_ports = to_port_rules(&r.ports);
            if r.to.is_empty() {
                egress.push(EgressRule {
                    to_endpoints: vec![EndpointSelector::wildcard()],
                    to_ports,
                    ..EgressRule::default()
                });
                continue;
            }
            for peer in &r.to {
                egress.push(EgressRule {
                    to_endpoints: peer_selector(peer, namespace).into_iter().collect(),
                    to_cidr_set: peer.ip_block.iter().map(cidr_rule).collect(),
                    to_ports: to_ports.clone(),
                    ..EgressRule::default()
                });
            }
        }
        let names = |t| self.policy_types.contains(&t);
        if ingress.is_empty() && (names(PolicyType::Ingress) || !names(PolicyType::Egress)) {
            ingress.push(IngressRule::default());
        }
        if egress.is_empty() && names(PolicyType::Egress) {
            egress.push(EgressRule::default());
        }
        let mut pod_selector = self.pod_selector.clone();
        pod_selector
            .match_labels
            .insert(POD_NAMESPACE_LABEL.to_owned(), namespace.to_owned());
        Rule {
            endpoint_selector: Some(EndpointSelector::from_k8s(SOURCE_K8S, &[&pod_selector])),
            ingress,
            egress,
            ..Rule::default()
        }
    }
}

fn check_ports(ports: &[NetworkPolicyPort], path: &FieldPath) -> Check {
    for (i, p) in ports.iter().enumerate() {
        let at = path.index(i);
        if let Some(protocol @ Protocol::Any) = p.protocol {
            return fail(
                &at.field("protocol"),
                Violation::NetworkPolicyProtocol { protocol },
            );
        }
        let end_port = p.end_port.filter(|e| *e != 0);
        match (&p.port, end_port) {
            (Some(Port::Number(0)), _) => {
                return fail(&at.field("port"), Violation::NetworkPolicyPortZero)
            }
            (None, Some(end_port)) => {
                return fail(
                    &at.field("endPort"),
                    Violation::EndPortWithoutPort { end_port },
                )
            }
            (Some(Port::Name(name)), Some(end_port)) => {
                return fail(
                    &at.field("endPort"),
                    Violation::EndPortWithNamedPort {
                        port: name.clone(),
                        end_port,
                    },
                )
            }
            (Some(Port::Number(port)), Some(end_port)) if end_port < *port => {
                return fail(
                    &at.field("endPort"),
                    Violation::EndPortBelowPort {
                        port: *port,
                        end_port,
                    },
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_peers(peers: &[NetworkPolicyPeer], path: &FieldPath) -> Check {
    for (i, peer) in peers.iter().enumerate() {
        let at = path.index(i);
        let has_selector = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
        match &peer.ip_block {
            None if !has_selector => return fail(&at, Violation::EmptyPeer),
            Some(_) if has_selector => return fail(&at, Violation::IpBlockWithSelector),
            Some(block) => check_except(
                &block.cidr,
                &block.except,
                &at.field("ipBlock").field("except"),
            )?,
            None => {}
        }
        for (field, sel) in [
            ("podSelector", &peer.pod_selector),
            ("namespaceSelector", &peer.namespace_selector),
        ] {
            if let Some(sel) = sel {
                check_selector_parts(
                    &sel.match_labels,
                    &sel.match_expressions,
                    &at.field(field),
                    false,
                )?;
            }
        }
    }
    Ok(())
}

/// The endpoint selector of a peer, `None` for an ipBlock peer.
fn peer_selector(peer: &NetworkPolicyPeer, namespace: &str) -> Option<EndpointSelector> {
    if let Some(ns_sel) = &peer.namespace_selector {
        let namespaces = LabelSelector {
            match_labels: ns_sel
                .match_labels
                .iter()
                .map(|(k, v)| (format!("{NAMESPACE_LABELS_PREFIX}.{k}"), v.clone()))
                .collect(),
            match_expressions: ns_sel
                .match_expressions
                .iter()
                .map(|r| LabelSelectorRequirement {
                    key: format!("{NAMESPACE_LABELS_PREFIX}.{}", r.key),
                    ..r.clone()
                })
                .collect(),
        };
        // A namespace selector selects pods only. `NotIn`/`DoesNotExist` (or `{}`) on namespace
        // labels alone would also hold for identities without any (world, host, …), so every
        // such peer also requires the pod-namespace label (Cilium issue #46949).
        let in_a_namespace = LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![LabelSelectorRequirement {
                key: POD_NAMESPACE_LABEL.to_owned(),
                operator: Operator::Exists,
                values: Vec::new(),
            }],
        };
        let mut parts = vec![&namespaces];
        parts.extend(peer.pod_selector.as_ref());
        parts.push(&in_a_namespace);
        return Some(EndpointSelector::from_k8s(SOURCE_K8S, &parts));
    }
    let mut pods = peer.pod_selector.clone()?;
    pods.match_labels
        .insert(POD_NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    Some(EndpointSelector::from_k8s(SOURCE_K8S, &[&pods]))
}

fn cidr_rule(block: &IpBlock) -> CidrRule {
    CidrRule {
        cidr: Some(block.cidr),
        cidr_group_ref: None,
        except: block.except.clone(),
    }
}

fn to_port_rules(ports: &[NetworkPolicyPort]) -> Vec<PortRule> {
    ports
        .iter()
        .map(|p| PortRule {
            ports: vec![PortProtocol {
                port: p.port.clone().unwrap_or(Port::Number(0)),
                end_port: p.end_port.filter(|e| *e != 0),
                protocol: p.protocol.unwrap_or(Protocol::Tcp),
            }],
            ..PortRule::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    #[test]
    fn negative_namespace_selectors_select_pods_only() {
        let peer: NetworkPolicyPeer = serde_norway::from_str(
            "namespaceSelector:\n  matchExpressions: [{key: ns, operator: NotIn, values: [x]}]\n",
        )
        .unwrap();
        let selector = peer_selector(&peer, "x").unwrap();
        let pod_in = |ns: &str| {
            Labels::parse([
                format!("k8s:io.kubernetes.pod.namespace={ns}"),
                format!("k8s:io.cilium.k8s.namespace.labels.ns={ns}"),
            ])
        };
        assert!(selector.matches(&pod_in("y")));
        assert!(!selector.matches(&pod_in("x")));
        for reserved in ["reserved:world", "reserved:host", "reserved:remote-node"] {
            assert!(
                !selector.matches(&Labels::parse([reserved])),
                "{reserved} has no namespace and is not selected"
            );
        }
    }
}
