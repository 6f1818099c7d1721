//! Cilium's reserved identities (cilium-facts §2.2): fixed numbers for the host, the world,
//! other nodes …, each standing for its `reserved:<name>` label, never allocated.

use std::fmt;

use crate::label::{source, Label};
use crate::labels::Labels;
use crate::numeric::NumericIdentity;

/// A reserved identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReservedIdentity {
    Host,
    World,
    Unmanaged,
    Health,
    Init,
    RemoteNode,
    KubeApiserver,
    Ingress,
    WorldIpv4,
    WorldIpv6,
}

impl ReservedIdentity {
    /// Every reserved identity, in numeric order.
    pub const ALL: [ReservedIdentity; 10] = [
        ReservedIdentity::Host,
        ReservedIdentity::World,
        ReservedIdentity::Unmanaged,
        ReservedIdentity::Health,
        ReservedIdentity::Init,
        ReservedIdentity::RemoteNode,
        ReservedIdentity::KubeApiserver,
        ReservedIdentity::Ingress,
        ReservedIdentity::WorldIpv4,
        ReservedIdentity::WorldIpv6,
    ];

    /// Its number.
    pub fn id(self) -> NumericIdentity {
        match self {
            ReservedIdentity::Host => NumericIdentity::HOST,
            ReservedIdentity::World => NumericIdentity::WORLD,
            ReservedIdentity::Unmanaged => NumericIdentity::UNMANAGED,
            ReservedIdentity::Health => NumericIdentity::HEALTH,
            ReservedIdentity::Init => NumericIdentity::INIT,
            ReservedIdentity::RemoteNode => NumericIdentity::REMOTE_NODE,
            ReservedIdentity::KubeApiserver => NumericIdentity::KUBE_APISERVER,
            ReservedIdentity::Ingress => NumericIdentity::INGRESS,
            ReservedIdentity::WorldIpv4 => NumericIdentity::WORLD_IPV4,
            ReservedIdentity::WorldIpv6 => NumericIdentity::WORLD_IPV6,
        }
    }

    /// The reserved identity with number `id`.
    pub fn from_id(id: NumericIdentity) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.id() == id)
    }

    /// Its name: the key of its `reserved:` label (`host`, `world`, `remote-node` …).
    pub fn name(self) -> &'static str {
        match self {
            ReservedIdentity::Host => "host",
            ReservedIdentity::World => "world",
            ReservedIdentity::Unmanaged => "unmanaged",
            ReservedIdentity::Health => "health",
            ReservedIdentity::Init => "init",
            ReservedIdentity::RemoteNode => "remote-node",
            ReservedIdentity::KubeApiserver => "kube-apiserver",
            ReservedIdentity::Ingress => "ingress",
            ReservedIdentity::WorldIpv4 => "world-ipv4",
            ReservedIdentity::WorldIpv6 => "world-ipv6",
        }
    }

    /// The labels the identity stands for: `reserved:<name>`, and for the kube-apiserver
    /// also `reserved:remote-node` (it runs on nodes).
    pub fn labels(self) -> Labels {
        let mut labels: Labels = [Label::reserved(self.name())].into_iter().collect();
        if self == ReservedIdentity::KubeApiserver {
            labels.insert(Label::reserved(ReservedIdentity::RemoteNode.name()));
        }
        labels
    }

    /// The reserved identity for `labels`, if they call for one: any set with `reserved:host`
    /// is the host (the host's node labels ride along); otherwise the set must consist of
    /// exactly one reserved identity's labels.
    pub fn from_labels(labels: &Labels) -> Option<Self> {
        if labels.has(&Label::reserved(ReservedIdentity::Host.name())) {
            return Some(ReservedIdentity::Host);
        }
        if labels.is_empty() || labels.iter().any(|l| l.source != source::RESERVED) {
            return None;
        }
        Self::ALL.into_iter().find(|r| r.labels() == *labels)
    }
}

impl fmt::Display for ReservedIdentity {
    /// `reserved:<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", source::RESERVED, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&str]) -> Labels {
        Labels::parse(list).unwrap()
    }

    #[test]
    fn reserved_labels_map_to_ciliums_numbers() {
        let cases: [(&[&str], u32); 10] = [
            (&["reserved:host"], 1),
            (&["reserved:world"], 2),
            (&["reserved:unmanaged"], 3),
            (&["reserved:health"], 4),
            (&["reserved:init"], 5),
            (&["reserved:remote-node"], 6),
            (&["reserved:kube-apiserver", "reserved:remote-node"], 7),
            (&["reserved:ingress"], 8),
            (&["reserved:world-ipv4"], 9),
            (&["reserved:world-ipv6"], 10),
        ];
        for (list, id) in cases {
            let reserved = ReservedIdentity::from_labels(&labels(list))
                .unwrap_or_else(|| panic!("{list:?} should be reserved"));
            assert_eq!(reserved.id(), NumericIdentity(id), "{list:?}");
            assert_eq!(
                ReservedIdentity::from_id(NumericIdentity(id)),
                Some(reserved)
            );
        }
    }

    #[test]
    fn host_keeps_its_identity_with_node_labels() {
        let host = labels(&["reserved:host", "node:kubernetes.io/hostname=n1"]);
        assert_eq!(
            ReservedIdentity::from_labels(&host),
            Some(ReservedIdentity::Host)
        );
    }

    #[test]
    fn other_sets_are_not_reserved() {
        for list in [
            &["k8s:app=web"][..],
            &["reserved:world", "k8s:app=web"],
            &["reserved:world", "reserved:health"],
            &[],
        ] {
            assert_eq!(
                ReservedIdentity::from_labels(&labels(list)),
                None,
                "{list:?}"
            );
        }
    }

    #[test]
    fn names_read_like_cilium() {
        assert_eq!(ReservedIdentity::Host.to_string(), "reserved:host");
        assert_eq!(
            ReservedIdentity::RemoteNode.to_string(),
            "reserved:remote-node"
        );
        assert_eq!(
            ReservedIdentity::KubeApiserver.labels().to_strings(),
            ["reserved:kube-apiserver", "reserved:remote-node"]
        );
    }
}
