//! What can be wrong with a field of a policy: every rule of the policy
//! language that the checks enforce, with the values involved.

use crate::ports::{IcmpFamily, Protocol};
use crate::selector::Operator;

/// Most ports one `toPorts` entry may list, as in Cilium.
pub(crate) const MAX_PORTS: usize = 40;
/// Most ICMP fields one `icmps` entry may list, as in Cilium.
pub(crate) const MAX_ICMP_FIELDS: usize = 40;
/// Longest Kafka topic Cilium accepts.
pub(crate) const MAX_KAFKA_TOPIC: usize = 255;

/// What is wrong with a field.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// The document is not a mapping.
    #[error("a policy document must be a mapping")]
    NotAnObject,
    /// A required field is absent or empty.
    #[error("required, but missing or empty")]
    Missing,
    /// A field that must be a string is not.
    #[error("must be a string")]
    NotAString,
    /// A kind that is neither a policy nor a known Kubernetes kind.
    #[error(
        "unknown kind {kind:?} (policies are CiliumNetworkPolicy, \
         CiliumClusterwideNetworkPolicy and NetworkPolicy)"
    )]
    UnknownKind {
        /// The kind written.
        kind: String,
    },
    /// A policy kind with the wrong apiVersion.
    #[error("{kind} must have apiVersion {expected}, not {api_version:?}")]
    ApiVersion {
        /// The kind.
        kind: &'static str,
        /// The apiVersion written.
        api_version: String,
        /// The apiVersion the kind has.
        expected: &'static str,
    },
    /// A CiliumNetworkPolicy with neither `spec` nor `specs`.
    #[error("the policy has neither spec nor specs")]
    EmptyPolicy,
    /// A rule with no subject.
    #[error("a rule must have endpointSelector or nodeSelector")]
    NoSelector,
    /// A rule with two subjects.
    #[error("a rule cannot have both endpointSelector and nodeSelector")]
    BothSelectors,
    /// `nodeSelector` outside a clusterwide policy.
    #[error("nodeSelector is only allowed in a CiliumClusterwideNetworkPolicy")]
    NodeSelectorNotClusterwide,
    /// `In`/`NotIn` without values.
    #[error("operator {operator:?} needs at least one value")]
    ValuesRequired {
        /// The operator.
        operator: Operator,
    },
    /// `Exists`/`DoesNotExist` with values.
    #[error("operator {operator:?} takes no values")]
    ValuesNotAllowed {
        /// The operator.
        operator: Operator,
    },
    /// A label key that is not a Kubernetes qualified name.
    #[error(
        "label key {key:?} is invalid: {reason} (a key is [prefix/]name; the name has at most \
         63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit; the \
         prefix is a DNS subdomain)"
    )]
    LabelKey {
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A label value that Kubernetes does not allow.
    #[error(
        "label value {value:?} is invalid (at most 63 letters, digits, '-', '_' or '.', \
         starting and ending with a letter or digit)"
    )]
    LabelValue {
        /// The value.
        value: String,
    },
    /// Two kinds of L3 peer in one rule entry.
    #[error("combining {first} and {second} in one rule is not supported; use two rules")]
    L3Combination {
        /// One peer field.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// `icmps` beside `toPorts`.
    #[error("icmps cannot be combined with toPorts in one rule; use two rules")]
    IcmpsWithToPorts,
    /// `toServices` beside `toPorts`.
    #[error("toServices cannot be combined with toPorts")]
    ToServicesWithToPorts,
    /// A field deny rules do not have.
    #[error("{field} is not supported in deny rules")]
    NotInDeny {
        /// The field.
        field: &'static str,
    },
    /// Too many ports in one entry.
    #[error("{count} ports in one toPorts entry; at most {MAX_PORTS} are allowed")]
    TooManyPorts {
        /// How many there are.
        count: usize,
    },
    /// Too many ICMP fields in one entry.
    #[error("{count} ICMP fields in one entry; at most {MAX_ICMP_FIELDS} are allowed")]
    TooManyIcmpFields {
        /// How many there are.
        count: usize,
    },
    /// `endPort` with a named port.
    #[error("endPort {end_port} needs a numeric port, not the named port {port:?}")]
    EndPortWithNamedPort {
        /// The named port.
        port: String,
        /// The end port.
        end_port: u16,
    },
    /// `endPort` with port 0 (all ports).
    #[error("endPort {end_port} needs a non-zero port")]
    EndPortWithoutPort {
        /// The end port.
        end_port: u16,
    },
    /// `endPort` below `port`.
    #[error("endPort {end_port} is below port {port}")]
    EndPortBelowPort {
        /// The start port.
        port: u16,
        /// The end port.
        end_port: u16,
    },
    /// An ICMP type name the family does not have.
    #[error("{name:?} is not an {family:?} ICMP type")]
    IcmpType {
        /// The name.
        name: String,
        /// The family.
        family: IcmpFamily,
    },
    /// A CIDR set entry with neither `cidr` nor `cidrGroupRef`.
    #[error("a CIDR set entry needs cidr or cidrGroupRef")]
    CidrMissing,
    /// A CIDR set entry with both.
    #[error("a CIDR set entry cannot have both cidr and cidrGroupRef")]
    CidrAndGroup,
    /// `except` with a CIDR group.
    #[error("except needs cidr (it cannot be used with cidrGroupRef)")]
    ExceptWithoutCidr,
    /// An exception outside its prefix.
    #[error("except {except} is not inside cidr {cidr}")]
    ExceptOutside {
        /// The prefix.
        cidr: String,
        /// The exception.
        except: String,
    },
    /// An L7 rule on a protocol that cannot carry it.
    #[error("{kind} rules apply only to {allowed} ports, not {protocol}")]
    L7Protocol {
        /// The L7 kind.
        kind: &'static str,
        /// The protocols that can carry it.
        allowed: &'static str,
        /// The protocol written.
        protocol: Protocol,
    },
    /// An L7 rule on port 0.
    #[error("L7 rules cannot be used with port 0 (all ports)")]
    L7OnPortZero,
    /// More than one kind of L7 rule on one port rule.
    #[error("one port rule can have only one kind of L7 rules, not {kinds}")]
    L7MixedKinds {
        /// The kinds set.
        kinds: String,
    },
    /// `l7` without `l7proto`.
    #[error("l7 needs l7proto")]
    L7WithoutProto,
    /// L7 rules in a host policy.
    #[error("host policies (nodeSelector) do not support L7 rules")]
    L7InHostPolicy,
    /// DNS rules on ingress.
    #[error("DNS rules are not allowed on ingress")]
    DnsOnIngress,
    /// DNS rules with no port.
    #[error("DNS rules need their port (53) listed")]
    DnsWithoutPorts,
    /// DNS rules on a port range.
    #[error("DNS rules do not support port ranges")]
    DnsPortRange,
    /// A listener on ingress.
    #[error("listener is not allowed on ingress")]
    ListenerOnIngress,
    /// A listener beside L7 rules.
    #[error("listener cannot be combined with L7 rules")]
    ListenerWithL7,
    /// Server names with L7 rules but no TLS termination.
    #[error("serverNames with L7 rules need terminatingTLS")]
    ServerNamesWithoutTls,
    /// An empty server name.
    #[error("a server name cannot be empty")]
    EmptyServerName,
    /// An HTTP field that is not a regular expression.
    #[error("{field} {pattern:?} is not a valid regular expression")]
    Regex {
        /// The field.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// A header match without a name.
    #[error("a header match needs a name")]
    EmptyHeaderName,
    /// A secret reference without a name.
    #[error("a secret reference needs a name")]
    EmptySecretName,
    /// A Kafka rule with both role and apiKey.
    #[error("a Kafka rule cannot have both role and apiKey")]
    KafkaRoleAndApiKey,
    /// An unknown Kafka role.
    #[error("Kafka role {role:?} is not produce or consume")]
    KafkaRole {
        /// The role.
        role: String,
    },
    /// An unknown Kafka API key.
    #[error("{api_key:?} is not a Kafka API key")]
    KafkaApiKey {
        /// The key.
        api_key: String,
    },
    /// A Kafka API version that is not a 16-bit non-negative integer.
    #[error("Kafka apiVersion {api_version:?} is not an integer in 0-32767")]
    KafkaApiVersion {
        /// The version.
        api_version: String,
    },
    /// An invalid Kafka topic.
    #[error(
        "Kafka topic {topic:?} must be 1-{MAX_KAFKA_TOPIC} of letters, digits, '.', '_' or '-'"
    )]
    KafkaTopic {
        /// The topic.
        topic: String,
    },
    /// An FQDN selector with neither field.
    #[error("an FQDN selector needs matchName or matchPattern")]
    FqdnEmpty,
    /// An FQDN selector with both fields.
    #[error("an FQDN selector cannot have both matchName and matchPattern")]
    FqdnBoth,
    /// An FQDN name or pattern with characters Cilium does not allow.
    #[error("{field} {value:?} may only contain letters, digits, '-', '_', '.'{extra}")]
    FqdnCharacters {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// Characters allowed beyond those (`*` in patterns).
        extra: &'static str,
    },
    /// A `toServices` entry with zero or two selectors.
    #[error("a toServices entry needs exactly one of k8sService and k8sServiceSelector")]
    ServiceSelectorCount,
    /// A NetworkPolicy peer with nothing in it.
    #[error("a peer needs podSelector, namespaceSelector or ipBlock")]
    EmptyPeer,
    /// A NetworkPolicy peer mixing ipBlock and selectors.
    #[error("ipBlock cannot be combined with podSelector or namespaceSelector in one peer")]
    IpBlockWithSelector,
    /// A NetworkPolicy port with protocol ANY.
    #[error("NetworkPolicy ports allow protocol TCP, UDP or SCTP, not {protocol}")]
    NetworkPolicyProtocol {
        /// The protocol written.
        protocol: Protocol,
    },
    /// A NetworkPolicy port 0.
    #[error("NetworkPolicy port numbers must be in 1-65535")]
    NetworkPolicyPortZero,
}
