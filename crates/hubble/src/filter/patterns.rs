//! The small pattern languages of flow filters: `[namespace/]name-prefix` for pods and
//! services, node name globs (`node*`, `cluster/`, `cluster/node-*`), FQDN globs
//! (`*.example.com`) and HTTP status prefixes (`404`, `4+`).

/// `[namespace/]prefix`: with a namespace, the name must be in it (an empty prefix selects
/// the whole namespace); without one, any namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePrefix {
    namespace: Option<String>,
    prefix: String,
}

impl NamePrefix {
    pub fn parse(text: &str) -> NamePrefix {
        match text.split_once('/') {
            Some((namespace, prefix)) => NamePrefix {
                namespace: Some(namespace.to_string()),
                prefix: prefix.to_string(),
            },
            None => NamePrefix {
                namespace: None,
                prefix: text.to_string(),
            },
        }
    }

    /// Whether a named object in `namespace` matches. Nameless ends never match.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        if name.is_empty() && namespace.is_empty() {
            return false;
        }
        self.namespace.as_deref().is_none_or(|ns| ns == namespace) && name.starts_with(&self.prefix)
    }
}

/// A node name pattern. Flows carry `cluster/node`; a pattern without `/` concerns the node
/// part in any cluster, `cluster/` every node of a cluster. `*` matches any run of
/// characters within a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePattern {
    cluster: String,
    node: String,
}

/// A node name pattern with characters other than letters, digits, `-_.*/`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid node name pattern {pattern:?}: only letters, digits, '-', '_', '.', '*' and one '/'"
)]
pub struct NodePatternError {
    pub pattern: String,
}

impl NodePattern {
    pub fn parse(text: &str) -> Result<NodePattern, NodePatternError> {
        let valid = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '/'))
            && text.matches('/').count() <= 1
            && !text.is_empty();
        if !valid {
            return Err(NodePatternError {
                pattern: text.to_string(),
            });
        }
        Ok(match text.split_once('/') {
            Some((cluster, "")) => NodePattern {
                cluster: cluster.to_string(),
                node: "*".into(),
            },
            Some((cluster, node)) => NodePattern {
                cluster: cluster.to_string(),
                node: node.to_string(),
            },
            None => NodePattern {
                cluster: "*".into(),
                node: text.to_string(),
            },
        })
    }

    pub fn matches(&self, node_name: &str) -> bool {
        let (cluster, node) = node_name.split_once('/').unwrap_or(("", node_name));
        glob(&self.cluster, cluster) && glob(&self.node, node)
    }
}

/// Glob with `*` only, case-sensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// An FQDN glob, case-insensitive, a trailing dot ignored on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnPattern(String);

impl FqdnPattern {
    pub fn parse(text: &str) -> FqdnPattern {
        FqdnPattern(text.trim_end_matches('.').to_ascii_lowercase())
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(&self.0, &name.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// An HTTP status code filter: `404` exactly, or `4+` / `40+` for codes starting so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPattern {
    digits: String,
    prefix: bool,
}

/// A status filter that is not 1–3 digits optionally followed by `+`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP status code filter {pattern:?}: use e.g. \"404\" or \"4+\"")]
pub struct StatusPatternError {
    pub pattern: String,
}

impl StatusPattern {
    pub fn parse(text: &str) -> Result<StatusPattern, StatusPatternError> {
        let (digits, prefix) = match text.strip_suffix('+') {
            Some(digits) => (digits, true),
            None => (text, false),
        };
        let valid = (1..=3).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && (prefix || digits.len() == 3);
        if !valid {
            return Err(StatusPatternError {
                pattern: text.to_string(),
            });
        }
        Ok(StatusPattern {
            digits: digits.to_string(),
            prefix,
        })
    }

    pub fn matches(&self, code: u32) -> bool {
        let code = code.to_string();
        if self.prefix {
            code.starts_with(&self.digits)
        } else {
            code == self.digits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_prefixes_with_and_without_namespace() {
        let p = NamePrefix::parse("default/death");
        assert!(p.matches("default", "deathstar-5f8c"));
        assert!(!p.matches("other", "deathstar"));
        assert!(!p.matches("default", "xwing"));
        let ns = NamePrefix::parse("kube-system/");
        assert!(ns.matches("kube-system", "coredns-1"));
        assert!(!ns.matches("default", "coredns-1"));
        let any = NamePrefix::parse("xwing");
        assert!(any.matches("default", "xwing"));
        assert!(any.matches("rebels", "xwing-2"));
        assert!(
            !any.matches("", ""),
            "an end that is no pod matches no pod filter"
        );
    }

    #[test]
    fn node_patterns_split_cluster_and_node() {
        let p = |s| NodePattern::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(p("node*").matches("default/node1"));
        assert!(p("node1").matches("default/node1"));
        assert!(!p("node1").matches("default/node12"));
        assert!(p("default/").matches("default/node7"));
        assert!(!p("mesh/").matches("default/node7"));
        assert!(p("*/node-*").matches("mesh/node-3"));
        assert!(p("de*/n*1").matches("default/node1"));
        assert!(p("k8s*").matches("k8s1"), "names without a cluster");
        for bad in ["", "a/b/c", "node 1", "node$"] {
            assert!(NodePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globs_fqdns_and_status_codes() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbbd"));
        assert!(glob("*.cilium.io", "docs.cilium.io"));
        assert!(!glob("*.cilium.io", "cilium.io"));
        assert!(FqdnPattern::parse("*.Cilium.io.").matches("docs.cilium.IO."));
        let s = |t| StatusPattern::parse(t).unwrap_or_else(|e| panic!("{e}"));
        assert!(s("404").matches(404));
        assert!(!s("404").matches(403));
        assert!(s("4+").matches(418));
        assert!(!s("4+").matches(500));
        assert!(s("20+").matches(204));
        for bad in ["4", "4044", "x+", "+", "40"] {
            assert!(StatusPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
