//! Labels as Cilium writes them, `source:key=value`, and the well-known label
//! keys that policy translation adds or looks for.
//!
//! A label's *source* says where it came from (`k8s`, `container`, `reserved`,
//! …). Selectors name a source in their keys (`k8s:app`); the source `any`
//! matches a label from every source.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The source a selector key names to match labels from every source.
pub const SOURCE_ANY: &str = "any";
/// Labels that come from Kubernetes (pod labels, the namespace label).
pub const SOURCE_K8S: &str = "k8s";
/// Cilium's reserved labels (`reserved:host`, `reserved:world`, …).
pub const SOURCE_RESERVED: &str = "reserved";
/// The source of a label written without one.
pub const SOURCE_UNSPEC: &str = "unspec";

/// Key of the label carrying a pod's namespace (source `k8s`).
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix under which a pod carries its namespace's labels (source `k8s`).
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels";
/// Rule label naming the kind of object a rule was derived from.
pub const POLICY_DERIVED_FROM_LABEL: &str = "io.cilium.k8s.policy.derived-from";
/// Rule label naming the policy object a rule came from.
pub const POLICY_NAME_LABEL: &str = "io.cilium.k8s.policy.name";
/// Rule label naming the namespace of the policy object a rule came from.
pub const POLICY_NAMESPACE_LABEL: &str = "io.cilium.k8s.policy.namespace";
/// Rule label carrying the UID of the policy object a rule came from.
pub const POLICY_UID_LABEL: &str = "io.cilium.k8s.policy.uid";

/// One label: a key and a value from a source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Label {
    /// Label key, without the source.
    pub key: String,
    /// Label value; empty for reserved labels such as `reserved:host`.
    pub value: String,
    /// Where the label came from (`k8s`, `reserved`, `unspec`, …).
    pub source: String,
}

impl Label {
    /// A label from its parts.
    pub fn new(source: &str, key: &str, value: &str) -> Label {
        Label {
            key: key.to_owned(),
            value: value.to_owned(),
            source: source.to_owned(),
        }
    }

    /// Parses Cilium's short form `[source:]key[=value]`. `$key` is short for
    /// `reserved:key`; a label written without a source gets `unspec`.
    pub fn parse(text: &str) -> Label {
        let (key_part, value) = match text.find('=') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        let (source, key) = split_source(key_part, SOURCE_UNSPEC);
        Label::new(source, key, value)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// Splits `source:key` (or `$key` for reserved labels); a key without a source
/// gets `default_source`.
pub(crate) fn split_source<'a>(text: &'a str, default_source: &'a str) -> (&'a str, &'a str) {
    if let Some(rest) = text.strip_prefix('$') {
        return (SOURCE_RESERVED, rest);
    }
    match text.find(':') {
        Some(0) => (default_source, &text[1..]),
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (default_source, text),
    }
}

/// The labels an endpoint carries, e.g. from `k8s:app=web` strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeSet<Label>);

impl Labels {
    /// Labels from `source:key=value` strings (see [`Label::parse`]).
    pub fn parse<I, S>(labels: I) -> Labels
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        labels
            .into_iter()
            .map(|l| Label::parse(l.as_ref()))
            .collect()
    }

    /// Adds a label.
    pub fn insert(&mut self, label: Label) {
        self.0.insert(label);
    }

    /// Every label, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// Values of the labels with `key` from `source`; the source `any`
    /// matches every source.
    pub fn values<'a>(&'a self, source: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |l| l.key == key && (source == SOURCE_ANY || l.source == source))
            .map(|l| l.value.as_str())
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<T: IntoIterator<Item = Label>>(iter: T) -> Labels {
        Labels(iter.into_iter().collect())
    }
}

/// A rule label accepts Cilium's full form `{key, value, source}` and the short
/// form `source:key=value`.
impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Label, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            key: String,
            #[serde(default)]
            value: String,
            #[serde(default)]
            source: String,
        }

        struct LabelVisitor;

        impl<'de> Visitor<'de> for LabelVisitor {
            type Value = Label;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label as {key, value, source} or \"source:key=value\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Label, E> {
                Ok(Label::parse(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Label, A::Error> {
                let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let source = if full.source.is_empty() {
                    SOURCE_UNSPEC.to_owned()
                } else {
                    full.source
                };
                Ok(Label {
                    key: full.key,
                    value: full.value,
                    source,
                })
            }
        }

        deserializer.deserialize_any(LabelVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_parses_source_key_and_value() {
        assert_eq!(Label::parse("k8s:app=web"), Label::new("k8s", "app", "web"));
        assert_eq!(
            Label::parse("reserved:host"),
            Label::new("reserved", "host", "")
        );
        assert_eq!(Label::parse("$world"), Label::new("reserved", "world", ""));
        assert_eq!(Label::parse("app=web"), Label::new("unspec", "app", "web"));
        assert_eq!(
            Label::parse("k8s:io.kubernetes.pod.namespace=default").to_string(),
            "k8s:io.kubernetes.pod.namespace=default"
        );
    }

    #[test]
    fn any_source_finds_labels_from_every_source() {
        let labels = Labels::parse(["k8s:app=web", "container:tier=front"]);
        assert_eq!(labels.values("any", "app").collect::<Vec<_>>(), ["web"]);
        assert_eq!(labels.values("k8s", "app").collect::<Vec<_>>(), ["web"]);
        assert_eq!(labels.values("container", "app").count(), 0);
        assert_eq!(labels.values("any", "tier").collect::<Vec<_>>(), ["front"]);
    }

    #[test]
    fn rule_labels_accept_both_forms() {
        let labels: Vec<Label> = serde_json::from_value(serde_json::json!([
            {"key": "team", "value": "a", "source": "k8s"},
            {"key": "owner"},
            "k8s:env=prod"
        ]))
        .expect("labels parse");
        assert_eq!(
            labels,
            [
                Label::new("k8s", "team", "a"),
                Label::new("unspec", "owner", ""),
                Label::new("k8s", "env", "prod"),
            ]
        );
    }
}
