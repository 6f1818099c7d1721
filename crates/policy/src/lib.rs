//! Cilium's policy language: CiliumNetworkPolicy (`spec` and `specs`),
//! CiliumClusterwideNetworkPolicy and Kubernetes NetworkPolicy, read from
//! multi-document YAML, validated as Cilium and the Kubernetes API server
//! validate them, namespace-scoped as Cilium scopes them, and (for
//! NetworkPolicy) translated into Cilium rules as Cilium translates them.
//!
//! The crate is pure: no I/O beyond the text it is given. Rules go into a
//! [`Repository`]; a [`SelectorCache`] over an [`IdentityView`] says what
//! their peers select; [`resolve`] turns both into one endpoint's desired
//! policy map state ([`EndpointPolicy`]), and [`trace`] explains a verdict.
//!
//! ```
//! let docs = cilium_policy::parse_documents("policy.yaml", r#"
//! apiVersion: cilium.io/v2
//! kind: CiliumNetworkPolicy
//! metadata: {name: rule1}
//! spec:
//!   endpointSelector: {matchLabels: {org: empire}}
//!   ingress:
//!     - fromEndpoints: [{matchLabels: {org: empire}}]
//!       toPorts: [{ports: [{port: "80", protocol: TCP}]}]
//! "#).unwrap();
//! let cilium_policy::PolicyDocument::Policy(policy) = &docs[0] else { panic!() };
//! let subject = policy.rules[0].endpoint_selector.as_ref().unwrap();
//! let pod = cilium_policy::Labels::parse(["k8s:org=empire", "k8s:io.kubernetes.pod.namespace=default"]);
//! assert!(subject.matches(&pod));
//! ```

mod cidr_prefixes;
mod document;
mod enforcement;
mod file;
mod identities;
mod l7;
mod labels;
mod mapstate;
mod netpol;
mod peers;
mod ports;
mod repository;
mod resolve;
mod rule;
mod scope;
mod selector;
mod selector_cache;
mod trace;
mod validate;
mod violation;

pub use cidr_prefixes::cidr_prefixes;
pub use document::{DocumentError, Policy, PolicyDocument, PolicyKind, DEFAULT_NAMESPACE};
pub use enforcement::{EnforcementMode, EnforcementModeError};
pub use file::{parse_documents, PolicyError};
pub use identities::{
    IdentityView, IDENTITY_HEALTH, IDENTITY_HOST, IDENTITY_INGRESS, IDENTITY_INIT,
    IDENTITY_KUBE_APISERVER, IDENTITY_REMOTE_NODE, IDENTITY_UNMANAGED, IDENTITY_WORLD,
    RESERVED_IDENTITIES,
};
pub use l7::{HeaderMatch, HttpRule, KafkaRule, L7Rules, MismatchAction};
pub use labels::{
    Label, Labels, NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL, POLICY_DERIVED_FROM_LABEL,
    POLICY_NAMESPACE_LABEL, POLICY_NAME_LABEL, POLICY_UID_LABEL, SOURCE_ANY, SOURCE_K8S,
    SOURCE_RESERVED, SOURCE_UNSPEC,
};
pub use mapstate::{port_blocks, proto, EndpointPolicy, PolicyEntry, PolicyKey};
pub use netpol::{
    IpBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec, PolicyType,
};
pub use peers::{
    Authentication, AuthenticationMode, Cidr, CidrRule, Entity, FqdnSelector, K8sServiceLabels,
    K8sServiceName, ServiceSelector,
};
pub use ports::{
    EnvoyConfigRef, IcmpFamily, IcmpField, IcmpRule, IcmpType, Listener, Port, PortDenyRule,
    PortError, PortProtocol, PortRule, PortSpec, Protocol, SecretRef, TlsContext,
};
pub use repository::{PolicySource, Repository, RuleRef};
pub use resolve::{resolve, rule_selectors, rule_selects, NamedPorts, ResolveOptions};
pub use rule::{
    DefaultDeny, EgressDenyRule, EgressRule, IngressDenyRule, IngressRule, LogConfig, Rule,
};
pub use selector::{
    canonical_key, EndpointSelector, LabelSelector, LabelSelectorRequirement, Operator,
};
pub use selector_cache::{PeerSelector, Selection, SelectorCache};
pub use trace::{trace, SideVerdict, TraceQuery, Verdict};
pub use violation::Violation;
