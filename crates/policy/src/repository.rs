//! The rule repository: every rule the node knows, grouped by the policy
//! object it came from, with a revision that moves on every change.

use std::collections::BTreeMap;
use std::fmt;

use crate::document::{Policy, PolicyKind};
use crate::rule::Rule;

/// The policy object a group of rules came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicySource {
    /// Kind of the object.
    pub kind: PolicyKind,
    /// Namespace (none for clusterwide policies).
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl PolicySource {
    /// The source of a parsed policy object.
    pub fn of(policy: &Policy) -> PolicySource {
        PolicySource {
            kind: policy.kind,
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        }
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// A rule's place in the repository, for reports: its source and its index
/// among that source's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// The policy object.
    pub source: PolicySource,
    /// Index among the object's rules (`specs` order).
    pub index: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.source, self.index)
    }
}

/// Every rule, by source, and a revision counter.
#[derive(Clone, Debug, Default)]
pub struct Repository {
    rules: BTreeMap<PolicySource, Vec<Rule>>,
    revision: u64,
}

impl Repository {
    /// An empty repository at revision 0.
    pub fn new() -> Repository {
        Repository::default()
    }

    /// Adds or replaces the rules of `source`; returns the new revision.
    pub fn upsert(&mut self, source: PolicySource, rules: Vec<Rule>) -> u64 {
        self.rules.insert(source, rules);
        self.revision += 1;
        self.revision
    }

    /// Adds or replaces a parsed policy object's rules; returns the new
    /// revision.
    pub fn upsert_policy(&mut self, policy: &Policy) -> u64 {
        self.upsert(PolicySource::of(policy), policy.rules.clone())
    }

    /// Deletes the rules of `source`; returns the new revision, or `None`
    /// (revision unchanged) when the source was unknown.
    pub fn delete(&mut self, source: &PolicySource) -> Option<u64> {
        self.rules.remove(source)?;
        self.revision += 1;
        Some(self.revision)
    }

    /// The current revision (0 before the first change).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every rule with its place, in source order.
    pub fn rules(&self) -> impl Iterator<Item = (RuleRef, &Rule)> {
        self.rules.iter().flat_map(|(source, rules)| {
            rules.iter().enumerate().map(move |(index, rule)| {
                (
                    RuleRef {
                        source: source.clone(),
                        index,
                    },
                    rule,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> PolicySource {
        PolicySource {
            kind: PolicyKind::CiliumNetworkPolicy,
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn changes_move_the_revision() {
        let mut repo = Repository::new();
        assert_eq!(repo.upsert(source("a"), vec![Rule::default()]), 1);
        assert_eq!(repo.upsert(source("a"), vec![Rule::default(); 2]), 2);
        assert_eq!(
            repo.rules().count(),
            2,
            "replacing keeps only the new rules"
        );
        assert_eq!(repo.delete(&source("missing")), None);
        assert_eq!(repo.delete(&source("a")), Some(3));
        assert_eq!(repo.rules().count(), 0);
        assert_eq!(
            RuleRef {
                source: source("a"),
                index: 1
            }
            .to_string(),
            "CiliumNetworkPolicy default/a rule 1"
        );
    }
}
