//! Validated names: the lab, its nodes and its pods, and the network-namespace names derived
//! from them.
//!
//! Every namespace the lab creates starts with `cilab-<lab>-`, so `down` can find all of them
//! even when the state file is gone. Lab names therefore contain no `-`: otherwise the prefix
//! of lab `a` would also match the namespaces of lab `a-b`.

use std::fmt;
use std::str::FromStr;

/// Prefix of every network namespace the lab creates.
pub const NS_PREFIX: &str = "cilab-";

/// Longest network-namespace name the lab generates; longer pod names are hashed.
const MAX_NS_NAME: usize = 64;

/// Longest lab name: keeps namespace and bpffs names short.
const MAX_LAB_NAME: usize = 16;

/// Longest Kubernetes-style name (a DNS-1123 label).
const MAX_K8S_NAME: usize = 63;

/// Errors validating names.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("invalid lab name {name:?}: use 1-{MAX_LAB_NAME} lowercase letters and digits")]
    Lab { name: String },
    #[error("invalid node name {name:?}: nodes are named node1, node2, ...")]
    Node { name: String },
    #[error(
        "invalid {kind} {name:?}: use at most {MAX_K8S_NAME} lowercase letters, digits and {allowed}, starting and ending with a letter or digit"
    )]
    K8s {
        kind: &'static str,
        name: String,
        allowed: &'static str,
    },
}

/// Name of one lab (`default` unless `--name` is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabName(String);

impl LabName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Prefix shared by every network namespace of this lab.
    pub fn ns_prefix(&self) -> String {
        format!("{NS_PREFIX}{}-", self.0)
    }

    /// The switch namespace holding the underlay bridge.
    pub fn switch_ns(&self) -> String {
        format!("{}sw", self.ns_prefix())
    }

    /// The namespace etcd runs in, on the underlay like a control-plane host.
    pub fn etcd_ns(&self) -> String {
        format!("{}etcd", self.ns_prefix())
    }

    /// The namespace of one node.
    pub fn node_ns(&self, node: &NodeName) -> String {
        format!("{}{}", self.ns_prefix(), node)
    }

    /// The namespace of one pod: `cilab-<lab>-p-<namespace>-<pod>`, or a hashed form when that
    /// would be ambiguous (the pod's namespace contains `-`) or too long.
    pub fn pod_ns(&self, pod: &PodKey) -> String {
        let head = format!("{}p-", self.ns_prefix());
        let plain = format!("{head}{}-{}", pod.namespace, pod.name);
        if !pod.namespace.contains('-') && plain.len() <= MAX_NS_NAME {
            return plain;
        }
        let hash = format!(
            "{:08x}",
            fnv1a32(format!("{}/{}", pod.namespace, pod.name).as_bytes())
        );
        let room = MAX_NS_NAME - head.len() - hash.len() - 1;
        let readable: String = format!("{}-{}", pod.namespace, pod.name)
            .chars()
            .take(room)
            .collect();
        let readable = readable.trim_end_matches(['-', '.']);
        format!("{head}{readable}-{hash}")
    }
}

impl Default for LabName {
    fn default() -> Self {
        LabName("default".to_string())
    }
}

impl FromStr for LabName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LAB_NAME
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(LabName(s.to_string()))
        } else {
            Err(NameError::Lab {
                name: s.to_string(),
            })
        }
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node of the lab: `node<k>` with k starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeName(u8);

impl NodeName {
    /// The node with 1-based index `index`.
    pub fn new(index: u8) -> Self {
        NodeName(index)
    }

    pub fn index(self) -> u8 {
        self.0
    }
}

impl FromStr for NodeName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("node")
            .filter(|digits| !digits.starts_with('0'))
            .and_then(|digits| digits.parse::<u8>().ok())
            .filter(|&k| k >= 1)
            .map(NodeName)
            .ok_or_else(|| NameError::Node {
                name: s.to_string(),
            })
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// A pod, identified as in Kubernetes by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    /// Validates a pod name (DNS-1123 subdomain, at most 63 characters) and its namespace
    /// (DNS-1123 label).
    pub fn new(namespace: &str, name: &str) -> Result<Self, NameError> {
        check_k8s_name("namespace", namespace, false)?;
        check_k8s_name("pod name", name, true)?;
        Ok(PodKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn check_k8s_name(kind: &'static str, name: &str, dots: bool) -> Result<(), NameError> {
    let inner_ok =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.');
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bytes = name.as_bytes();
    if name.len() <= MAX_K8S_NAME
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes.iter().all(|&b| inner_ok(b))
    {
        Ok(())
    } else {
        Err(NameError::K8s {
            kind,
            name: name.to_string(),
            allowed: if dots { "'-' or '.'" } else { "'-'" },
        })
    }
}

/// 32-bit FNV-1a: a stable, dependency-free hash for shortening names.
fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(name: &str) -> LabName {
        name.parse().unwrap()
    }

    #[test]
    fn lab_names_exclude_dashes_so_prefixes_never_overlap() {
        assert!("t1a2".parse::<LabName>().is_ok());
        for bad in ["", "a-b", "Default", "x".repeat(17).as_str(), "a_b"] {
            assert!(bad.parse::<LabName>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(LabName::default().as_str(), "default");
    }

    #[test]
    fn node_and_switch_namespaces_follow_the_layout() {
        let l = lab("default");
        assert_eq!(l.switch_ns(), "cilab-default-sw");
        assert_eq!(l.etcd_ns(), "cilab-default-etcd");
        assert_eq!(l.node_ns(&NodeName::new(2)), "cilab-default-node2");
        assert!(l.node_ns(&NodeName::new(1)).starts_with(&l.ns_prefix()));
    }

    #[test]
    fn node_names_round_trip() {
        let n: NodeName = "node12".parse().unwrap();
        assert_eq!(n.index(), 12);
        assert_eq!(n.to_string(), "node12");
        for bad in ["node0", "node", "node01", "n1", "node1x", "node256"] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn short_pod_namespaces_are_readable() {
        let key = PodKey::new("default", "client").unwrap();
        assert_eq!(
            lab("default").pod_ns(&key),
            "cilab-default-p-default-client"
        );
    }

    #[test]
    fn ambiguous_pod_names_get_distinct_hashed_namespaces() {
        let l = lab("default");
        let a = l.pod_ns(&PodKey::new("a-b", "c").unwrap());
        let b = l.pod_ns(&PodKey::new("a", "b-c").unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("cilab-default-p-a-b-c-"), "{a}");
    }

    #[test]
    fn long_pod_names_are_shortened_and_stay_valid() {
        let l = lab("abcdefghijklmnop");
        let key = PodKey::new("default", &"x".repeat(63)).unwrap();
        let ns = l.pod_ns(&key);
        assert!(ns.len() <= MAX_NS_NAME, "{ns} is {} long", ns.len());
        assert!(ns.starts_with("cilab-abcdefghijklmnop-p-default-x"), "{ns}");
        let other = l.pod_ns(&PodKey::new("default", &format!("{}y", "x".repeat(62))).unwrap());
        assert_ne!(ns, other);
    }

    #[test]
    fn pod_names_are_validated_like_kubernetes() {
        assert!(PodKey::new("default", "web-1.v2").is_ok());
        assert!(PodKey::new("kube-system", "dns").is_ok());
        for (ns, name) in [
            ("default", "Web"),
            ("default", "-x"),
            ("a.b", "x"),
            ("", "x"),
            ("default", "x/y"),
        ] {
            assert!(PodKey::new(ns, name).is_err(), "{ns}/{name} accepted");
        }
    }
}
