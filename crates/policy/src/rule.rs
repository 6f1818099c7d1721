//! The rule model: one Cilium policy rule (a CiliumNetworkPolicy `spec`) with
//! its ingress, egress and deny sections, in Cilium's field names.
//!
//! Every type rejects unknown fields: the CRDs have structural schemas and
//! kubectl validates fields strictly by default, and a misspelt field in a
//! security policy (`fromEndpoint:`) must not silently change what it allows.

use serde::{Deserialize, Serialize};

use crate::labels::Label;
use crate::peers::{Authentication, Cidr, CidrRule, Entity, FqdnSelector, ServiceSelector};
use crate::ports::{IcmpRule, PortDenyRule, PortRule};
use crate::selector::EndpointSelector;

/// One policy rule: a subject (endpoints or nodes) and what it may receive
/// and send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Endpoints the rule applies to. Exactly one of this and `node_selector`
    /// is set in a valid rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<EndpointSelector>,
    /// Nodes the rule applies to (host policies; clusterwide policies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<EndpointSelector>,
    /// Allowed incoming traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Denied incoming traffic (wins over every allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_deny: Vec<IngressDenyRule>,
    /// Allowed outgoing traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
    /// Denied outgoing traffic (wins over every allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_deny: Vec<EgressDenyRule>,
    /// Labels identifying the rule (policy name, namespace, origin, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the rule puts its subject into default deny, per direction.
    #[serde(default, skip_serializing_if = "DefaultDeny::is_unset")]
    pub enable_default_deny: DefaultDeny,
    /// Value logged with flows this rule decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
}

impl Rule {
    /// Whether the rule puts its subjects into ingress default deny: as set
    /// in `enableDefaultDeny.ingress`, otherwise when it has an ingress or
    /// ingressDeny section.
    pub fn default_deny_ingress(&self) -> bool {
        self.enable_default_deny
            .ingress
            .unwrap_or(!self.ingress.is_empty() || !self.ingress_deny.is_empty())
    }

    /// Whether the rule puts its subjects into egress default deny (as for
    /// ingress).
    pub fn default_deny_egress(&self) -> bool {
        self.enable_default_deny
            .egress
            .unwrap_or(!self.egress.is_empty() || !self.egress_deny.is_empty())
    }
}

/// `enableDefaultDeny`: unset directions follow the rule's sections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultDeny {
    /// Ingress default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// Egress default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

impl DefaultDeny {
    fn is_unset(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }
}

/// `log`: a value attached to flows the rule decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The value.
    pub value: String,
}

/// An ingress section entry. `P` is [`PortRule`] for allow rules and
/// [`PortDenyRule`] for deny rules. Within one entry the peers
/// (`from*`) and the ports/ICMP types must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule<P = PortRule> {
    /// Endpoints traffic may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_endpoints: Vec<EndpointSelector>,
    /// Labels every peer must also carry (deprecated in Cilium).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_requires: Vec<EndpointSelector>,
    /// Entities traffic may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_entities: Vec<Entity>,
    /// Prefixes traffic may come from.
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Vec::is_empty")]
    pub from_cidr: Vec<Cidr>,
    /// Prefixes with exceptions traffic may come from.
    #[serde(default, rename = "fromCIDRSet", skip_serializing_if = "Vec::is_empty")]
    pub from_cidr_set: Vec<CidrRule>,
    /// Nodes traffic may come from (by node labels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_nodes: Vec<EndpointSelector>,
    /// Cloud-provider groups (kept as written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_groups: Vec<serde_json::Value>,
    /// Ports (and L7 rules) the traffic must use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<P>,
    /// ICMP types allowed or denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub icmps: Vec<IcmpRule>,
    /// Authentication the peer must pass (allow rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// An `ingressDeny` entry.
pub type IngressDenyRule = IngressRule<PortDenyRule>;

/// An egress section entry; the mirror of [`IngressRule`], plus FQDN and
/// service peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule<P = PortRule> {
    /// Endpoints traffic may go to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_endpoints: Vec<EndpointSelector>,
    /// Labels every peer must also carry (deprecated in Cilium).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_requires: Vec<EndpointSelector>,
    /// Entities traffic may go to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_entities: Vec<Entity>,
    /// Prefixes traffic may go to.
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Vec::is_empty")]
    pub to_cidr: Vec<Cidr>,
    /// Prefixes with exceptions traffic may go to.
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Vec::is_empty")]
    pub to_cidr_set: Vec<CidrRule>,
    /// Nodes traffic may go to (by node labels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_nodes: Vec<EndpointSelector>,
    /// Cloud-provider groups (kept as written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_groups: Vec<serde_json::Value>,
    /// DNS names traffic may go to (allow rules only; kept for a later issue).
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Vec::is_empty")]
    pub to_fqdns: Vec<FqdnSelector>,
    /// Services traffic may go to (kept for a later issue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_services: Vec<ServiceSelector>,
    /// Ports (and L7 rules) the traffic must use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<P>,
    /// ICMP types allowed or denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub icmps: Vec<IcmpRule>,
    /// Authentication the peer must pass (allow rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// An `egressDeny` entry.
pub type EgressDenyRule = EgressRule<PortDenyRule>;
