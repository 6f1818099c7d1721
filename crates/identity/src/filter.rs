//! The identity-relevant label filter: which of an endpoint's labels count for its security
//! identity (cilium-facts §2.1; Cilium's `labels` ConfigMap key and Helm value).
//!
//! A pattern is `[source:][!]regex`: without a source (or with `any`) it applies to labels of
//! every source, `!` makes it exclusive, and the regex is matched against the label's key,
//! anchored at the start. A label is kept when
//! - no user pattern is inclusive and no exclusive pattern matches it, or
//! - the longest inclusive match covers more of the key than the shortest exclusive match
//!   (so `io\.kubernetes\.pod\.namespace` beats `!io\.kubernetes`).
//!
//! Cilium's defaults are always in force: the exclusions below, and the inclusions of
//! `reserved:.*`, `io.kubernetes.pod.namespace`, `io.cilium.k8s.namespace.labels` and
//! `app.kubernetes.io`, which take effect once any user pattern is inclusive.

use regex::Regex;

use crate::label::{source, Label};
use crate::labels::Labels;

/// Patterns Cilium always applies.
pub const DEFAULT_PATTERNS: &[&str] = &[
    r"reserved:.*",
    r"any:io\.kubernetes\.pod\.namespace",
    r"any:io\.cilium\.k8s\.namespace\.labels",
    r"any:app\.kubernetes\.io",
    r"any:!io\.kubernetes",
    r"any:!kubernetes\.io",
    r"any:!statefulset\.kubernetes\.io/pod-name",
    r"any:!apps\.kubernetes\.io/pod-index",
    r"any:!batch\.kubernetes\.io/job-completion-index",
    r"any:!batch\.kubernetes\.io/controller-uid",
    r"any:!beta\.kubernetes\.io",
    r"any:!k8s\.io",
    r"any:!pod-template-generation",
    r"any:!pod-template-hash",
    r"any:!controller-revision-hash",
    r"any:!annotation.*",
    r"any:!controller-uid",
    r"any:!etcd_node",
];

/// A pattern that is not a valid filter pattern.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Nothing to match after the source and `!`.
    #[error("label filter pattern {pattern:?} has no regular expression")]
    Empty { pattern: String },
    /// The regular expression does not compile.
    #[error("label filter pattern {pattern:?} is not a valid regular expression")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}

/// One parsed pattern.
#[derive(Debug, Clone)]
struct Pattern {
    /// `None`: every source.
    source: Option<String>,
    /// Anchored at the start of the key.
    regex: Regex,
    exclusive: bool,
}

impl Pattern {
    fn parse(pattern: &str) -> Result<Self, FilterError> {
        let (source, rest) = match pattern.split_once(':') {
            Some((source, rest)) => (Some(source), rest),
            None => (None, pattern),
        };
        let (exclusive, expr) = match rest.strip_prefix('!') {
            Some(expr) => (true, expr),
            None => (false, rest),
        };
        if expr.is_empty() {
            return Err(FilterError::Empty {
                pattern: pattern.to_owned(),
            });
        }
        let regex = Regex::new(&format!("^(?:{expr})")).map_err(|source| FilterError::Regex {
            pattern: pattern.to_owned(),
            source,
        })?;
        let source = source
            .filter(|s| !s.is_empty() && *s != source::ANY)
            .map(str::to_owned);
        Ok(Pattern {
            source,
            regex,
            exclusive,
        })
    }

    /// How much of the key the pattern matches, if it matches the label at all.
    fn matched_len(&self, label: &Label) -> Option<usize> {
        if self.source.as_ref().is_some_and(|s| *s != label.source) {
            return None;
        }
        self.regex.find(&label.key).map(|m| m.end())
    }
}

/// Decides which labels are identity-relevant.
#[derive(Debug, Clone)]
pub struct LabelFilter {
    patterns: Vec<Pattern>,
    /// A user pattern is inclusive: only included labels are kept.
    inclusive: bool,
}

impl Default for LabelFilter {
    /// Cilium's default filter: everything except the default exclusions.
    fn default() -> Self {
        let patterns = DEFAULT_PATTERNS
            .iter()
            .map(|p| Pattern::parse(p).expect("default label filter patterns are valid"))
            .collect();
        LabelFilter {
            patterns,
            inclusive: false,
        }
    }
}

impl LabelFilter {
    /// Cilium's defaults plus `patterns` (see the module docs for their form).
    pub fn new<I, S>(patterns: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = LabelFilter::default();
        for pattern in patterns {
            let pattern = Pattern::parse(pattern.as_ref())?;
            filter.inclusive |= !pattern.exclusive;
            filter.patterns.push(pattern);
        }
        Ok(filter)
    }

    /// From the whitespace-separated form of Cilium's `labels` option, e.g.
    /// `k8s:io\.kubernetes\.pod\.namespace k8s:k8s-app k8s:app k8s:name`.
    pub fn from_config(config: &str) -> Result<Self, FilterError> {
        LabelFilter::new(config.split_whitespace())
    }

    /// Whether `label` counts for identity.
    pub fn is_relevant(&self, label: &Label) -> bool {
        let mut included = 0;
        let mut excluded = None::<usize>;
        for pattern in &self.patterns {
            let Some(len) = pattern.matched_len(label) else {
                continue;
            };
            if pattern.exclusive {
                excluded = Some(excluded.map_or(len, |e| e.min(len)));
            } else {
                included = included.max(len);
            }
        }
        match excluded {
            None => !self.inclusive || included > 0,
            Some(excluded) => included > excluded,
        }
    }

    /// The identity-relevant labels of `labels`.
    pub fn filter(&self, labels: &Labels) -> Labels {
        labels
            .iter()
            .filter(|l| self.is_relevant(l))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(labels: &Labels) -> Vec<String> {
        labels.to_strings()
    }

    #[test]
    fn default_filter_drops_kubernetes_bookkeeping_and_keeps_app_labels() {
        let labels = Labels::parse([
            "k8s:app=web",
            "k8s:pod-template-hash=5d8f7c",
            "k8s:controller-revision-hash=abc",
            "k8s:pod-template-generation=3",
            "k8s:statefulset.kubernetes.io/pod-name=db-0",
            "k8s:apps.kubernetes.io/pod-index=0",
            "k8s:batch.kubernetes.io/job-completion-index=1",
            "k8s:batch.kubernetes.io/controller-uid=u",
            "k8s:controller-uid=u",
            "k8s:io.kubernetes.container.name=x",
            "k8s:kubernetes.io/hostname=n1",
            "k8s:beta.kubernetes.io/arch=amd64",
            "k8s:k8s.io/foo=bar",
            "k8s:annotation.foo=bar",
            "k8s:etcd_node=e1",
            "k8s:io.kubernetes.pod.namespace=default",
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
            "k8s:io.cilium.k8s.policy.serviceaccount=default",
            "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:app.kubernetes.io/name=shop",
            "k8s:k8s-app=kube-dns",
            "reserved:host",
        ])
        .unwrap();
        assert_eq!(
            keys(&LabelFilter::default().filter(&labels)),
            [
                "k8s:app=web",
                "k8s:app.kubernetes.io/name=shop",
                "reserved:host",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=default",
                "k8s:io.kubernetes.pod.namespace=default",
                "k8s:k8s-app=kube-dns",
            ]
        );
    }

    #[test]
    fn inclusive_patterns_keep_only_matches_and_the_automatic_inclusions() {
        let filter = LabelFilter::from_config(
            r"k8s:io\.kubernetes\.pod\.namespace k8s:k8s-app k8s:app k8s:name",
        )
        .unwrap();
        let labels = Labels::parse([
            "k8s:app=web",
            "k8s:version=v2",
            "k8s:k8s-app=dns",
            "k8s:name=n",
            "k8s:io.kubernetes.pod.namespace=default",
            "k8s:io.cilium.k8s.namespace.labels.team=a",
            "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:app.kubernetes.io/part-of=shop",
            "reserved:init",
            "container:role=c",
        ])
        .unwrap();
        assert_eq!(
            keys(&filter.filter(&labels)),
            [
                "k8s:app=web",
                "k8s:app.kubernetes.io/part-of=shop",
                "reserved:init",
                "k8s:io.cilium.k8s.namespace.labels.team=a",
                "k8s:io.kubernetes.pod.namespace=default",
                "k8s:k8s-app=dns",
                "k8s:name=n",
            ]
        );
    }

    #[test]
    fn patterns_are_anchored_at_the_start_of_the_key() {
        let filter = LabelFilter::new([r"!foo"]).unwrap();
        assert!(!filter.is_relevant(&Label::k8s("foobar", "1")));
        assert!(filter.is_relevant(&Label::k8s("barfoo", "1")));
        let filter = LabelFilter::new([r"k8s:bar"]).unwrap();
        assert!(!filter.is_relevant(&Label::k8s("xbar", "1")));
        assert!(!filter.is_relevant(&Label::new("container", "bar", "1")));
        assert!(filter.is_relevant(&Label::k8s("barx", "1")));
    }

    #[test]
    fn longer_inclusion_beats_shorter_exclusion() {
        let filter = LabelFilter::new([r"!foo", r"foo\.bar"]).unwrap();
        assert!(filter.is_relevant(&Label::k8s("foo.bar", "1")));
        assert!(!filter.is_relevant(&Label::k8s("foo.baz", "1")));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(matches!(
            LabelFilter::new(["k8s:("]),
            Err(FilterError::Regex { .. })
        ));
        assert!(matches!(
            LabelFilter::new(["k8s:!"]),
            Err(FilterError::Empty { .. })
        ));
    }
}
