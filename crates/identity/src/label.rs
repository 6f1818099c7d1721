//! One label, `source:key=value`, as Cilium writes and parses it (`pkg/labels`).
//!
//! The source says where a label came from (`k8s` for pod labels, `reserved` for Cilium's
//! own, `cidr` for CIDR peers …). When a string names no source, a label takes
//! [`source::UNSPEC`] and a selector takes [`source::ANY`] (matches every source).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Label sources Cilium knows (cilium-facts §2.1).
pub mod source {
    /// No source given.
    pub const UNSPEC: &str = "unspec";
    /// In a selector: matches a label of any source.
    pub const ANY: &str = "any";
    /// Kubernetes pod, namespace and policy labels.
    pub const K8S: &str = "k8s";
    /// Container runtime labels.
    pub const CONTAINER: &str = "container";
    /// Labels passed by the CNI plugin.
    pub const CNI: &str = "cni";
    /// Cilium's reserved labels (`reserved:host`, `reserved:world` …).
    pub const RESERVED: &str = "reserved";
    /// CIDR peers (`cidr:10.0.0.0/8`).
    pub const CIDR: &str = "cidr";
    /// CiliumCIDRGroup members.
    pub const CIDR_GROUP: &str = "cidrgroup";
    /// Node labels.
    pub const NODE: &str = "node";
    /// FQDN selectors.
    pub const FQDN: &str = "fqdn";
    /// Labels read from a directory.
    pub const DIRECTORY: &str = "directory";
    /// Labels Cilium generated itself.
    pub const GENERATED: &str = "generated";
}

/// Why a string is not a label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The string was empty.
    #[error("empty label")]
    Empty,
    /// The string has no key (`k8s:` or `k8s:=x`).
    #[error("label {input:?} has no key")]
    EmptyKey { input: String },
}

/// A label: where it came from, its key and its (possibly empty) value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(
        source: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Label {
            source: source.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    /// A Kubernetes label, `k8s:key=value`.
    pub fn k8s(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label::new(source::K8S, key, value)
    }

    /// A reserved label, `reserved:<name>` (no value).
    pub fn reserved(name: impl Into<String>) -> Self {
        Label::new(source::RESERVED, name, "")
    }

    /// Parses `[source:]key[=value]`; without a source the label's source is `unspec`.
    /// `$name` is short for `reserved:name`.
    pub fn parse(input: &str) -> Result<Self, LabelError> {
        parse_with_default(input, source::UNSPEC)
    }

    /// Parses a selector label: like [`parse`](Self::parse), but without a source it matches
    /// any source (`any`).
    pub fn parse_selector(input: &str) -> Result<Self, LabelError> {
        parse_with_default(input, source::ANY)
    }

    /// `source` is `any`: the label selects labels of every source.
    pub fn is_any_source(&self) -> bool {
        self.source == source::ANY
    }

    /// Whether this label, used as a selector, selects `other`: same key and value, and the
    /// same source unless this one's source is `any`.
    pub fn selects(&self, other: &Label) -> bool {
        (self.is_any_source() || self.source == other.source)
            && self.key == other.key
            && self.value == other.value
    }

    /// `source:key=value;`: the label as it appears in kvstore keys and identity values.
    /// Always has the `=` and the `;`, even when the value is empty.
    pub fn to_kvstore_string(&self) -> String {
        format!("{}:{}={};", self.source, self.key, self.value)
    }
}

fn parse_with_default(input: &str, default_source: &str) -> Result<Label, LabelError> {
    if input.is_empty() {
        return Err(LabelError::Empty);
    }
    let (source, rest) = if let Some(rest) = input.strip_prefix('$') {
        (source::RESERVED, rest)
    } else {
        match input.split_once(':') {
            Some(("", rest)) => (default_source, rest),
            Some((source, rest)) => (source, rest),
            None => (default_source, input),
        }
    };
    let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
    if key.is_empty() {
        return Err(LabelError::EmptyKey {
            input: input.to_owned(),
        });
    }
    Ok(Label::new(source, key, value))
}

impl fmt::Display for Label {
    /// `source:key=value`, or `source:key` when the value is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

impl FromStr for Label {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, LabelError> {
        Label::parse(s)
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Label::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_source_key_value() {
        for text in [
            "k8s:app=web",
            "k8s:io.kubernetes.pod.namespace=default",
            "reserved:host",
            "k8s:app.kubernetes.io/name=db",
            "cidr:10.0.0.0/8",
            "k8s:empty",
            "container:a=b=c",
        ] {
            let label = Label::parse(text).unwrap_or_else(|e| panic!("parse {text:?}: {e}"));
            assert_eq!(label.to_string(), text, "round trip of {text:?}");
        }
        assert_eq!(
            Label::parse("k8s:app=web").unwrap(),
            Label::new("k8s", "app", "web")
        );
        assert_eq!(
            Label::parse("container:a=b=c").unwrap().value,
            "b=c",
            "the value is everything after the first '='"
        );
    }

    #[test]
    fn missing_source_defaults_to_unspec_for_labels_and_any_for_selectors() {
        assert_eq!(
            Label::parse("app=web").unwrap(),
            Label::new("unspec", "app", "web")
        );
        let selector = Label::parse_selector("app=web").unwrap();
        assert_eq!(selector, Label::new("any", "app", "web"));
        assert!(selector.selects(&Label::k8s("app", "web")));
        assert!(selector.selects(&Label::new("container", "app", "web")));
        assert!(!Label::k8s("app", "web").selects(&Label::new("container", "app", "web")));
        assert_eq!(Label::parse("$host").unwrap(), Label::reserved("host"));
    }

    #[test]
    fn rejects_labels_without_a_key() {
        assert_eq!(Label::parse(""), Err(LabelError::Empty));
        assert!(matches!(
            Label::parse("k8s:"),
            Err(LabelError::EmptyKey { .. })
        ));
        assert!(matches!(
            Label::parse("k8s:=x"),
            Err(LabelError::EmptyKey { .. })
        ));
    }

    #[test]
    fn kvstore_form_always_has_equals_and_semicolon() {
        assert_eq!(
            Label::reserved("host").to_kvstore_string(),
            "reserved:host=;"
        );
        assert_eq!(Label::k8s("app", "web").to_kvstore_string(), "k8s:app=web;");
    }

    #[test]
    fn serializes_as_its_string_form() {
        let json = serde_json::to_string(&Label::k8s("app", "web")).unwrap();
        assert_eq!(json, "\"k8s:app=web\"");
        let back: Label = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Label::k8s("app", "web"));
    }
}
