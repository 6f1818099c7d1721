//! One Kubernetes object to a policy: dispatch on `apiVersion`/`kind`, typed
//! parsing, validation, then namespace scoping (Cilium policies) or
//! translation (NetworkPolicy), with the labels Cilium puts on imported rules.
//! Objects of other known Kubernetes kinds pass through untouched.

use std::fmt;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::labels::{
    Label, POLICY_DERIVED_FROM_LABEL, POLICY_NAMESPACE_LABEL, POLICY_NAME_LABEL, POLICY_UID_LABEL,
    SOURCE_K8S,
};
use crate::netpol::NetworkPolicySpec;
use crate::rule::Rule;
use crate::validate::{check_rule, FieldPath, Invalid};
use crate::violation::Violation;

/// Namespace of a namespaced object that does not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kinds that are not policies but that a policy file may carry beside them
/// (for `apply -f` to route elsewhere).
const PASS_THROUGH_KINDS: &[&str] = &[
    "Namespace",
    "Pod",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Node",
    "Ingress",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolumeClaim",
    "CiliumEndpoint",
    "CiliumIdentity",
    "CiliumNode",
    "CiliumCIDRGroup",
    "CiliumEnvoyConfig",
    "CiliumClusterwideEnvoyConfig",
    "CiliumEgressGatewayPolicy",
    "CiliumLocalRedirectPolicy",
    "CiliumLoadBalancerIPPool",
];

/// Path printed for a problem with the document as a whole.
const TOP_LEVEL: &str = "(top level)";

/// Why an object is not a valid document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// A field has the wrong type, is unknown, or is missing.
    #[error("{path}")]
    Schema {
        /// Field path (`spec.ingress[0].toPorts`).
        path: String,
        /// What the parser found.
        #[source]
        source: serde_json::Error,
    },
    /// A field's value breaks a rule of the policy language.
    #[error("{path}")]
    Invalid {
        /// Field path.
        path: String,
        /// The rule broken.
        #[source]
        source: Box<Violation>,
    },
}

impl DocumentError {
    /// The path of the offending field.
    pub fn path(&self) -> &str {
        match self {
            DocumentError::Schema { path, .. } | DocumentError::Invalid { path, .. } => path,
        }
    }
}

impl From<Invalid> for DocumentError {
    fn from(invalid: Invalid) -> DocumentError {
        DocumentError::Invalid {
            path: invalid.path,
            source: Box::new(invalid.violation),
        }
    }
}

fn invalid(path: &str, violation: Violation) -> DocumentError {
    DocumentError::Invalid {
        path: path.to_owned(),
        source: Box::new(violation),
    }
}

/// The three policy kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `cilium.io/v2` CiliumNetworkPolicy (namespaced).
    CiliumNetworkPolicy,
    /// `cilium.io/v2` CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
    /// `networking.k8s.io/v1` NetworkPolicy (namespaced).
    NetworkPolicy,
}

impl PolicyKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// The apiVersion the kind has.
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy => {
                "cilium.io/v2"
            }
            PolicyKind::NetworkPolicy => "networking.k8s.io/v1",
        }
    }

    fn from_kind(kind: &str) -> Option<PolicyKind> {
        [
            PolicyKind::CiliumNetworkPolicy,
            PolicyKind::CiliumClusterwideNetworkPolicy,
            PolicyKind::NetworkPolicy,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated policy object and the rules Cilium enforces for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Its kind.
    pub kind: PolicyKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (default `default`); `None` for clusterwide policies.
    pub namespace: Option<String>,
    /// `metadata.uid`, when the object has one.
    pub uid: Option<String>,
    /// The rules: namespace-scoped (Cilium kinds) or translated
    /// (NetworkPolicy), each labelled with the policy's derived-from, name,
    /// namespace and uid labels.
    pub rules: Vec<Rule>,
    /// The object as written.
    pub raw: Value,
}

/// One document of a policy file.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyDocument {
    /// A policy.
    Policy(Policy),
    /// An object of another known Kubernetes kind, untouched.
    Other {
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
        /// Its `metadata.name`, if any.
        name: Option<String>,
        /// The object as written.
        raw: Value,
    },
}

impl PolicyDocument {
    /// Reads one object. Policy kinds must have their exact apiVersion and
    /// pass every check; known non-policy kinds pass through; anything else
    /// is an error.
    pub fn from_value(raw: Value) -> Result<PolicyDocument, DocumentError> {
        let object = raw
            .as_object()
            .ok_or_else(|| invalid(TOP_LEVEL, Violation::NotAnObject))?;
        let api_version = string_field(object, "apiVersion")?.to_owned();
        let kind = string_field(object, "kind")?.to_owned();
        let Some(policy_kind) = PolicyKind::from_kind(&kind) else {
            if !PASS_THROUGH_KINDS.contains(&kind.as_str()) {
                return Err(invalid("kind", Violation::UnknownKind { kind }));
            }
            let name = metadata_name(&raw).map(str::to_owned);
            return Ok(PolicyDocument::Other {
                api_version,
                kind,
                name,
                raw,
            });
        };
        if api_version != policy_kind.api_version() {
            return Err(invalid(
                "apiVersion",
                Violation::ApiVersion {
                    kind: policy_kind.as_str(),
                    api_version,
                    expected: policy_kind.api_version(),
                },
            ));
        }
        let mut typed = raw.clone();
        strip_nulls(&mut typed, false);
        let policy = match policy_kind {
            PolicyKind::NetworkPolicy => network_policy(typed, raw)?,
            cilium => cilium_policy(cilium, typed, raw)?,
        };
        Ok(PolicyDocument::Policy(policy))
    }

    /// The document's kind.
    pub fn kind(&self) -> &str {
        match self {
            PolicyDocument::Policy(p) => p.kind.as_str(),
            PolicyDocument::Other { kind, .. } => kind,
        }
    }

    /// The document's `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            PolicyDocument::Policy(p) => Some(&p.name),
            PolicyDocument::Other { name, .. } => name.as_deref(),
        }
    }

    /// The object as written.
    pub fn raw(&self) -> &Value {
        match self {
            PolicyDocument::Policy(p) => &p.raw,
            PolicyDocument::Other { raw, .. } => raw,
        }
    }
}

/// `metadata.name` of an object, if it has a string one.
pub(crate) fn metadata_name(raw: &Value) -> Option<&str> {
    raw.pointer("/metadata/name").and_then(Value::as_str)
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, DocumentError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(invalid(field, Violation::Missing)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(invalid(field, Violation::Missing)),
        Some(_) => Err(invalid(field, Violation::NotAString)),
    }
}

/// Drops `field: null` entries, which Kubernetes treats as absent. Inside
/// string maps (`matchLabels`, `l7`) nulls are kept, so that they are
/// rejected rather than silently widening a selector.
fn strip_nulls(value: &mut Value, keep: bool) {
    match value {
        Value::Object(map) => {
            if !keep {
                map.retain(|_, v| !v.is_null());
            }
            for (key, v) in map.iter_mut() {
                strip_nulls(v, key == "matchLabels" || key == "l7");
            }
        }
        Value::Array(items) => {
            for v in items {
                strip_nulls(v, keep);
            }
        }
        _ => {}
    }
}

/// `metadata`: only what policies need; the API server's fields are ignored.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ObjectMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
}

impl ObjectMeta {
    fn required_name(&self) -> Result<String, DocumentError> {
        match self.name.as_deref() {
            Some(name) if !name.is_empty() => Ok(name.to_owned()),
            _ => Err(invalid("metadata.name", Violation::Missing)),
        }
    }

    fn namespace_or_default(&self) -> String {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// A CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CiliumPolicyObject {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Rule>,
    #[serde(default)]
    specs: Option<Vec<Rule>>,
    /// Older Cilium examples, the stored Star Wars L3/L4 demo among them, put
    /// `description` at the top level; Kubernetes prunes it, and so do we.
    #[serde(default, rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

/// A NetworkPolicy object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkPolicyObject {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: NetworkPolicySpec,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, DocumentError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DocumentError::Schema {
            path: if path == "." {
                TOP_LEVEL.to_owned()
            } else {
                path
            },
            source: e.into_inner(),
        }
    })
}

fn cilium_policy(kind: PolicyKind, value: Value, raw: Value) -> Result<Policy, DocumentError> {
    let object: CiliumPolicyObject = typed(value)?;
    let name = object.metadata.required_name()?;
    let clusterwide = kind == PolicyKind::CiliumClusterwideNetworkPolicy;
    let namespace = (!clusterwide).then(|| object.metadata.namespace_or_default());
    let mut rules: Vec<(FieldPath, Rule)> = object
        .spec
        .into_iter()
        .map(|r| (FieldPath::root("spec"), r))
        .collect();
    let specs_path = FieldPath::root("specs");
    let has_specs = object.specs.is_some();
    for (i, r) in object.specs.into_iter().flatten().enumerate() {
        rules.push((specs_path.index(i), r));
    }
    if rules.is_empty() && !has_specs {
        return Err(invalid("spec", Violation::EmptyPolicy));
    }
    for (path, rule) in &rules {
        check_rule(rule, path, clusterwide)?;
    }
    let uid = object.metadata.uid;
    let origin = policy_labels(kind, &name, namespace.as_deref(), uid.as_deref());
    let rules = rules
        .into_iter()
        .map(|(_, rule)| labelled(rule.scoped(namespace.as_deref()), &origin))
        .collect();
    Ok(Policy {
        kind,
        name,
        namespace,
        uid,
        rules,
        raw,
    })
}

fn network_policy(value: Value, raw: Value) -> Result<Policy, DocumentError> {
    let object: NetworkPolicyObject = typed(value)?;
    let name = object.metadata.required_name()?;
    let namespace = object.metadata.namespace_or_default();
    object.spec.check(&FieldPath::root("spec"))?;
    let kind = PolicyKind::NetworkPolicy;
    let uid = object.metadata.uid;
    let origin = policy_labels(kind, &name, Some(&namespace), uid.as_deref());
    let rule = labelled(object.spec.to_rule(&namespace), &origin);
    Ok(Policy {
        kind,
        name,
        namespace: Some(namespace),
        uid,
        rules: vec![rule],
        raw,
    })
}

/// The labels Cilium puts on rules imported from a policy object.
fn policy_labels(
    kind: PolicyKind,
    name: &str,
    namespace: Option<&str>,
    uid: Option<&str>,
) -> Vec<Label> {
    let mut labels = vec![
        Label::new(SOURCE_K8S, POLICY_DERIVED_FROM_LABEL, kind.as_str()),
        Label::new(SOURCE_K8S, POLICY_NAME_LABEL, name),
    ];
    if let Some(ns) = namespace {
        labels.push(Label::new(SOURCE_K8S, POLICY_NAMESPACE_LABEL, ns));
    }
    if let Some(uid) = uid {
        labels.push(Label::new(SOURCE_K8S, POLICY_UID_LABEL, uid));
    }
    labels
}

fn labelled(mut rule: Rule, origin: &[Label]) -> Rule {
    rule.labels.extend(origin.iter().cloned());
    rule.labels.sort();
    rule.labels.dedup();
    rule
}
