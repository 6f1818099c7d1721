//! What policy resolution knows about identities: every identity's labels,
//! the prefixes of CIDR identities, and the reserved identity numbers.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::labels::{Label, Labels, SOURCE_RESERVED};

/// `reserved:host`: the local host, hostNetwork pods included.
pub const IDENTITY_HOST: u32 = 1;
/// `reserved:world`: outside the cluster.
pub const IDENTITY_WORLD: u32 = 2;
/// `reserved:unmanaged`: endpoints Cilium does not manage.
pub const IDENTITY_UNMANAGED: u32 = 3;
/// `reserved:health`: Cilium's health endpoints.
pub const IDENTITY_HEALTH: u32 = 4;
/// `reserved:init`: endpoints whose labels are not resolved yet.
pub const IDENTITY_INIT: u32 = 5;
/// `reserved:remote-node`: the other nodes.
pub const IDENTITY_REMOTE_NODE: u32 = 6;
/// `reserved:kube-apiserver`.
pub const IDENTITY_KUBE_APISERVER: u32 = 7;
/// `reserved:ingress`: Cilium's Envoy ingress.
pub const IDENTITY_INGRESS: u32 = 8;

/// The reserved identities with their label names.
pub const RESERVED_IDENTITIES: [(u32, &str); 8] = [
    (IDENTITY_HOST, "host"),
    (IDENTITY_WORLD, "world"),
    (IDENTITY_UNMANAGED, "unmanaged"),
    (IDENTITY_HEALTH, "health"),
    (IDENTITY_INIT, "init"),
    (IDENTITY_REMOTE_NODE, "remote-node"),
    (IDENTITY_KUBE_APISERVER, "kube-apiserver"),
    (IDENTITY_INGRESS, "ingress"),
];

/// The identities policy resolution selects from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityView {
    /// Every known identity (reserved, pod and CIDR) and its labels.
    pub identities: BTreeMap<u32, Labels>,
    /// Local-scope CIDR identities by the prefix they stand for (allocated
    /// elsewhere). They need not also be in `identities`.
    pub cidr_identities: BTreeMap<IpNet, u32>,
}

impl IdentityView {
    /// A view holding the reserved identities 1–8, each labelled
    /// `reserved:<name>` (and 7 also `reserved:remote-node`, as in Cilium).
    pub fn with_reserved() -> IdentityView {
        let mut view = IdentityView::default();
        for (id, name) in RESERVED_IDENTITIES {
            let mut labels = Labels::parse([format!("{SOURCE_RESERVED}:{name}")]);
            if id == IDENTITY_KUBE_APISERVER {
                labels.insert(Label::new(SOURCE_RESERVED, "remote-node", ""));
            }
            view.identities.insert(id, labels);
        }
        view
    }

    /// Whether `id` is a CIDR identity.
    pub fn is_cidr(&self, id: u32) -> bool {
        self.cidr_identities.values().any(|&c| c == id)
    }

    /// Every identity number the view knows, CIDR identities included.
    pub fn all_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.identities
            .keys()
            .copied()
            .chain(self.cidr_identities.values().copied())
    }
}
