//! [`Labels`]: a set of labels sorted by key, the thing a security identity stands for, and
//! the builder of an endpoint's labels from its pod and namespace.
//!
//! As in Cilium, a set holds at most one label per key (whatever its source), and its
//! kvstore form is every label's `source:key=value;` in key order — the exact string Cilium
//! stores as the value of `cilium/state/identities/v1/id/<id>` and inside
//! `…/value/<labels>/<node>` (`LabelArray` / `SortedList`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::label::{source, Label, LabelError};

/// Label keys Cilium adds to an endpoint's labels (all with the `k8s` source).
pub mod k8s_keys {
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Prefix of the namespace's labels, followed by the namespace label's key.
    pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
    /// Prefix of the labels Cilium derives for policy (service account, cluster).
    pub const POLICY_PREFIX: &str = "io.cilium.k8s.policy.";
    /// The pod's service account.
    pub const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
    /// The cluster's name.
    pub const CLUSTER: &str = "io.cilium.k8s.policy.cluster";
    /// The label Kubernetes puts on every namespace: its own name.
    pub const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
}

/// A set of labels, sorted by key, at most one label per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels {
    by_key: BTreeMap<String, Label>,
}

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    /// Adds `label`, replacing (and returning) a label with the same key.
    pub fn insert(&mut self, label: Label) -> Option<Label> {
        self.by_key.insert(label.key.clone(), label)
    }

    /// Removes the label with `key`.
    pub fn remove(&mut self, key: &str) -> Option<Label> {
        self.by_key.remove(key)
    }

    /// The label with `key`, whatever its source.
    pub fn get(&self, key: &str) -> Option<&Label> {
        self.by_key.get(key)
    }

    /// Whether the set holds exactly `label` (or, for an `any`-source selector label, a label
    /// with its key and value from any source).
    pub fn has(&self, label: &Label) -> bool {
        self.get(&label.key).is_some_and(|l| label.selects(l))
    }

    /// Labels in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether any label has `source`.
    pub fn has_source(&self, source: &str) -> bool {
        self.iter().any(|l| l.source == source)
    }

    /// Parses labels in any order (each as in [`Label::parse`]).
    pub fn parse<I, S>(labels: I) -> Result<Self, LabelError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        labels
            .into_iter()
            .map(|s| Label::parse(s.as_ref()))
            .collect()
    }

    /// `source:key=value;` for every label, in key order: Cilium's kvstore form, e.g.
    /// `k8s:app=web;k8s:io.kubernetes.pod.namespace=default;`.
    pub fn to_kvstore_string(&self) -> String {
        self.iter().map(Label::to_kvstore_string).collect()
    }

    /// Parses the kvstore form (see [`to_kvstore_string`](Self::to_kvstore_string)); empty
    /// pieces (the one after the trailing `;`) are skipped.
    pub fn from_kvstore_str(text: &str) -> Result<Self, LabelError> {
        Labels::parse(text.split(';').filter(|piece| !piece.is_empty()))
    }

    /// Each label as `source:key=value`, in key order (the list `cilium identity get` prints).
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(Label::to_string).collect()
    }

    /// An endpoint's identity labels before filtering (cilium-facts §2.1): every pod label as
    /// `k8s:<key>=<value>`, `k8s:io.kubernetes.pod.namespace=<namespace>`, every namespace
    /// label as `k8s:io.cilium.k8s.namespace.labels.<key>=<value>`,
    /// `k8s:io.cilium.k8s.policy.serviceaccount=<service_account>` and
    /// `k8s:io.cilium.k8s.policy.cluster=<cluster>` (these two only when not empty).
    ///
    /// The namespace always carries `kubernetes.io/metadata.name=<namespace>`, as Kubernetes
    /// guarantees for every namespace, so a namespace given without labels still yields the
    /// same set a real cluster would. Pod labels cannot impersonate the labels derived here:
    /// pod labels under `io.cilium.k8s.policy.` or `io.cilium.k8s.namespace.labels.`, or
    /// named `io.kubernetes.pod.namespace`, are dropped.
    pub fn from_pod<P, NS, K1, V1, K2, V2>(
        pod_labels: P,
        namespace: &str,
        namespace_labels: NS,
        service_account: &str,
        cluster: &str,
    ) -> Labels
    where
        P: IntoIterator<Item = (K1, V1)>,
        NS: IntoIterator<Item = (K2, V2)>,
        K1: AsRef<str>,
        V1: AsRef<str>,
        K2: AsRef<str>,
        V2: AsRef<str>,
    {
        let mut labels = Labels::new();
        for (key, value) in pod_labels {
            let key = key.as_ref();
            let derived = key == k8s_keys::POD_NAMESPACE
                || key.starts_with(k8s_keys::POLICY_PREFIX)
                || key.starts_with(k8s_keys::NAMESPACE_LABELS_PREFIX);
            if !derived && !key.is_empty() {
                labels.insert(Label::k8s(key, value.as_ref()));
            }
        }
        labels.insert(Label::k8s(k8s_keys::POD_NAMESPACE, namespace));
        let namespace_label = |key: &str, value: &str| {
            Label::k8s(format!("{}{key}", k8s_keys::NAMESPACE_LABELS_PREFIX), value)
        };
        for (key, value) in namespace_labels {
            labels.insert(namespace_label(key.as_ref(), value.as_ref()));
        }
        labels.insert(namespace_label(k8s_keys::NAMESPACE_NAME, namespace));
        if !service_account.is_empty() {
            labels.insert(Label::k8s(k8s_keys::SERVICE_ACCOUNT, service_account));
        }
        if !cluster.is_empty() {
            labels.insert(Label::k8s(k8s_keys::CLUSTER, cluster));
        }
        labels
    }

    /// The reserved labels only.
    pub fn reserved(&self) -> Labels {
        self.iter()
            .filter(|l| l.source == source::RESERVED)
            .cloned()
            .collect()
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        let mut labels = Labels::new();
        for label in iter {
            labels.insert(label);
        }
        labels
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::collections::btree_map::Values<'a, String, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_key.values()
    }
}

impl fmt::Display for Labels {
    /// The labels as `source:key=value`, comma-separated, in key order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{label}")?;
        }
        Ok(())
    }
}

impl Serialize for Labels {
    /// A list of `source:key=value` strings, as Cilium's API models labels.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Label>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvstore_form_is_sorted_by_key_and_round_trips() {
        let labels =
            Labels::parse(["k8s:io.kubernetes.pod.namespace=default", "k8s:app=x"]).unwrap();
        let text = labels.to_kvstore_string();
        assert_eq!(text, "k8s:app=x;k8s:io.kubernetes.pod.namespace=default;");
        assert_eq!(Labels::from_kvstore_str(&text).unwrap(), labels);
        let host = Labels::parse(["reserved:host"]).unwrap();
        assert_eq!(host.to_kvstore_string(), "reserved:host=;");
        assert_eq!(Labels::from_kvstore_str("reserved:host=;").unwrap(), host);
    }

    #[test]
    fn one_label_per_key() {
        let labels = Labels::parse(["k8s:app=a", "container:app=b"]).unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(
            labels.get("app"),
            Some(&Label::new("container", "app", "b"))
        );
    }

    #[test]
    fn has_matches_source_unless_any() {
        let labels = Labels::parse(["k8s:app=web"]).unwrap();
        assert!(labels.has(&Label::k8s("app", "web")));
        assert!(labels.has(&Label::parse_selector("app=web").unwrap()));
        assert!(!labels.has(&Label::new("container", "app", "web")));
        assert!(!labels.has(&Label::k8s("app", "db")));
    }

    #[test]
    fn star_wars_deathstar_gets_ciliums_labels() {
        let pod = [("org", "empire"), ("class", "deathstar")];
        let namespace_labels: [(&str, &str); 0] = [];
        let labels = Labels::from_pod(pod, "default", namespace_labels, "default", "default");
        assert_eq!(
            labels.to_strings(),
            [
                "k8s:class=deathstar",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=default",
                "k8s:io.kubernetes.pod.namespace=default",
                "k8s:org=empire",
            ]
        );
    }

    #[test]
    fn pod_labels_cannot_spoof_derived_labels() {
        let pod = [
            ("app", "web"),
            ("io.kubernetes.pod.namespace", "kube-system"),
            ("io.cilium.k8s.policy.serviceaccount", "admin"),
            ("io.cilium.k8s.namespace.labels.team", "root"),
        ];
        let labels = Labels::from_pod(pod, "shop", [("team", "payments")], "web", "c1");
        assert_eq!(
            labels.to_strings(),
            [
                "k8s:app=web",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s:io.cilium.k8s.namespace.labels.team=payments",
                "k8s:io.cilium.k8s.policy.cluster=c1",
                "k8s:io.cilium.k8s.policy.serviceaccount=web",
                "k8s:io.kubernetes.pod.namespace=shop",
            ]
        );
    }

    #[test]
    fn serializes_as_a_list_of_strings() {
        let labels = Labels::parse(["k8s:b=2", "k8s:a=1"]).unwrap();
        let json = serde_json::to_string(&labels).unwrap();
        assert_eq!(json, r#"["k8s:a=1","k8s:b=2"]"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), labels);
        assert_eq!(labels.to_string(), "k8s:a=1,k8s:b=2");
    }
}
