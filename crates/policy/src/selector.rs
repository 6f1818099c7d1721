//! Label selectors: Kubernetes' `matchLabels`/`matchExpressions` as written,
//! and Cilium's endpoint selector, whose keys name a label source.
//!
//! In a Cilium policy a selector key may carry a source prefix: `k8s:app`
//! matches only labels from Kubernetes, `reserved:host` only Cilium's reserved
//! label, and a bare key (`app`) means `any:app`, which matches the key from
//! every source. [`EndpointSelector`] stores every key in that explicit
//! `source:key` form, as Cilium prints its rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::{split_source, Labels, SOURCE_ANY};

/// How a requirement compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key (in an [`EndpointSelector`], `source:key`).
    pub key: String,
    /// Comparison.
    pub operator: Operator,
    /// Values for `In`/`NotIn`; empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A Kubernetes label selector exactly as written (NetworkPolicy's
/// `podSelector`/`namespaceSelector`, and the raw form of a Cilium selector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// Cilium's endpoint selector. Every key is `source:key`; a selector with no
/// requirement (`{}`) selects every endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LabelSelector", into = "LabelSelector")]
pub struct EndpointSelector {
    /// `source:key` → value that must be present.
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, keys as `source:key`.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// The `source:key` form of a selector key: a bare key gets `any`, `$key` is
/// `reserved:key`.
pub fn canonical_key(key: &str) -> String {
    let (source, key) = split_source(key, SOURCE_ANY);
    format!("{source}:{key}")
}

impl From<LabelSelector> for EndpointSelector {
    /// Reads a selector written in a Cilium policy: bare keys mean `any:`.
    fn from(selector: LabelSelector) -> EndpointSelector {
        EndpointSelector {
            match_labels: selector
                .match_labels
                .into_iter()
                .map(|(k, v)| (canonical_key(&k), v))
                .collect(),
            match_expressions: selector
                .match_expressions
                .into_iter()
                .map(|r| LabelSelectorRequirement {
                    key: canonical_key(&r.key),
                    ..r
                })
                .collect(),
        }
    }
}

impl From<EndpointSelector> for LabelSelector {
    fn from(selector: EndpointSelector) -> LabelSelector {
        LabelSelector {
            match_labels: selector.match_labels,
            match_expressions: selector.match_expressions,
        }
    }
}

impl EndpointSelector {
    /// The selector that selects every endpoint.
    pub fn wildcard() -> EndpointSelector {
        EndpointSelector::default()
    }

    /// Reads Kubernetes selectors whose keys all come from `source` (as
    /// NetworkPolicy's pod and namespace selectors come from `k8s`); the
    /// requirements of all of them are merged.
    pub fn from_k8s(source: &str, selectors: &[&LabelSelector]) -> EndpointSelector {
        let mut out = EndpointSelector::default();
        for selector in selectors {
            for (k, v) in &selector.match_labels {
                out.match_labels.insert(format!("{source}:{k}"), v.clone());
            }
            for r in &selector.match_expressions {
                out.match_expressions.push(LabelSelectorRequirement {
                    key: format!("{source}:{}", r.key),
                    ..r.clone()
                });
            }
        }
        out
    }

    /// Whether the selector has no requirement and so selects everything.
    pub fn is_wildcard(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `key` (any form; compared as `source:key`) appears in
    /// `matchLabels` or `matchExpressions`.
    pub fn has_key(&self, key: &str) -> bool {
        let key = canonical_key(key);
        self.keys().any(|k| canonical_key(k) == key)
    }

    /// Whether some key, in `source:key` form, starts with `prefix`.
    pub fn has_key_prefix(&self, prefix: &str) -> bool {
        self.keys().any(|k| canonical_key(k).starts_with(prefix))
    }

    /// Requires `key` to have `value` (replacing an earlier `matchLabels` entry).
    pub fn add_match(&mut self, key: &str, value: &str) {
        self.match_labels
            .insert(canonical_key(key), value.to_owned());
    }

    /// Adds a requirement.
    pub fn add_expression(&mut self, key: &str, operator: Operator, values: Vec<String>) {
        self.match_expressions.push(LabelSelectorRequirement {
            key: canonical_key(key),
            operator,
            values,
        });
    }

    /// Whether an endpoint with `labels` is selected: every `matchLabels`
    /// entry and every expression must hold. With the `any` source a
    /// requirement holds when a label with that key from any source does.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| requirement_holds(k, Operator::In, std::slice::from_ref(v), labels))
            && self
                .match_expressions
                .iter()
                .all(|r| requirement_holds(&r.key, r.operator, &r.values, labels))
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.match_labels
            .keys()
            .chain(self.match_expressions.iter().map(|r| &r.key))
    }
}

fn requirement_holds(key: &str, operator: Operator, values: &[String], labels: &Labels) -> bool {
    let (source, key) = split_source(key, SOURCE_ANY);
    let mut found = labels.values(source, key);
    let listed = |v: &str| values.iter().any(|w| w == v);
    match operator {
        Operator::In => found.any(listed),
        Operator::NotIn => !found.any(listed),
        Operator::Exists => found.next().is_some(),
        Operator::DoesNotExist => found.next().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> EndpointSelector {
        serde_norway::from_str(yaml).expect("selector parses")
    }

    #[test]
    fn bare_keys_mean_any_source() {
        let sel = selector("matchLabels: {org: empire, 'k8s:class': deathstar, '$host': ''}");
        assert_eq!(
            sel.match_labels.keys().collect::<Vec<_>>(),
            ["any:org", "k8s:class", "reserved:host"]
        );
    }

    #[test]
    fn match_labels_respect_the_source() {
        let sel = selector("matchLabels: {'k8s:app': web}");
        assert!(sel.matches(&Labels::parse(["k8s:app=web"])));
        assert!(!sel.matches(&Labels::parse(["container:app=web"])));
        let any = selector("matchLabels: {app: web}");
        assert!(any.matches(&Labels::parse(["container:app=web"])));
        assert!(any.matches(&Labels::parse(["k8s:app=web", "k8s:tier=x"])));
        assert!(!any.matches(&Labels::parse(["k8s:app=db"])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let sel = selector(
            "matchExpressions:
               - {key: env, operator: In, values: [prod, staging]}
               - {key: 'k8s:tier', operator: NotIn, values: [db]}
               - {key: team, operator: Exists}
               - {key: legacy, operator: DoesNotExist}",
        );
        assert!(sel.matches(&Labels::parse(["k8s:env=prod", "k8s:team=a"])));
        assert!(sel.matches(&Labels::parse([
            "k8s:env=staging",
            "k8s:team=a",
            "k8s:tier=web"
        ])));
        assert!(!sel.matches(&Labels::parse(["k8s:env=dev", "k8s:team=a"])));
        assert!(!sel.matches(&Labels::parse([
            "k8s:env=prod",
            "k8s:team=a",
            "k8s:tier=db"
        ])));
        assert!(!sel.matches(&Labels::parse(["k8s:env=prod"])));
        assert!(!sel.matches(&Labels::parse([
            "k8s:env=prod",
            "k8s:team=a",
            "k8s:legacy=yes"
        ])));
    }

    #[test]
    fn reserved_labels_are_matched_by_source() {
        let host = selector("matchLabels: {'reserved:host': ''}");
        assert!(host.matches(&Labels::parse(["reserved:host"])));
        assert!(!host.matches(&Labels::parse(["k8s:host="])));
        assert!(!host.matches(&Labels::parse(["reserved:world"])));
    }

    #[test]
    fn wildcard_selects_everything() {
        let all = selector("{}");
        assert!(all.is_wildcard());
        assert!(all.matches(&Labels::default()));
        assert!(all.matches(&Labels::parse(["reserved:world"])));
    }

    #[test]
    fn serializes_with_explicit_sources() {
        let sel = selector("matchLabels: {org: empire}");
        assert_eq!(
            serde_json::to_value(&sel).unwrap(),
            serde_json::json!({"matchLabels": {"any:org": "empire"}})
        );
    }
}
