//! Namespace scoping, as Cilium applies it when it imports a policy object.
//!
//! - A CiliumNetworkPolicy's `endpointSelector` always gets
//!   `k8s:io.kubernetes.pod.namespace=<ns>`: a namespaced policy selects only
//!   pods of its own namespace.
//! - Its `fromEndpoints`/`toEndpoints` (and `fromRequires`/`toRequires`)
//!   selectors get the same requirement unless they already name the
//!   namespace label (`k8s:` or `any:`) or namespace labels
//!   (`io.cilium.k8s.namespace.labels.*`); peers elsewhere are reached by
//!   naming their namespace. `fromEndpoints`/`toEndpoints` selectors on
//!   reserved labels (`reserved:host`) are left alone.
//! - A CiliumClusterwideNetworkPolicy's subject is not scoped; its peer
//!   selectors that do not name a namespace get
//!   `k8s:io.kubernetes.pod.namespace Exists`, so that `{}` means every pod
//!   of the cluster rather than every identity (host, world, …). Rules whose
//!   subject selects `reserved:init` are exempt.

use crate::labels::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL, SOURCE_RESERVED};
use crate::rule::{EgressRule, IngressRule, Rule};
use crate::selector::{EndpointSelector, Operator};

impl Rule {
    /// The rule as Cilium enforces it for a policy in `namespace` (`None` for
    /// a clusterwide policy). Scoping a rule twice changes nothing more.
    pub fn scoped(mut self, namespace: Option<&str>) -> Rule {
        let pod_namespace = format!("k8s:{POD_NAMESPACE_LABEL}");
        let matches_init = self
            .endpoint_selector
            .as_ref()
            .is_some_and(|s| s.has_key(&format!("{SOURCE_RESERVED}:init")));
        if let (Some(ns), Some(subject)) = (namespace, self.endpoint_selector.as_mut()) {
            subject.add_match(&pod_namespace, ns);
        }
        let scope = Scope {
            namespace,
            matches_init,
        };
        for r in &mut self.ingress {
            scope.ingress(r);
        }
        for r in &mut self.ingress_deny {
            scope.ingress(r);
        }
        for r in &mut self.egress {
            scope.egress(r);
        }
        for r in &mut self.egress_deny {
            scope.egress(r);
        }
        self
    }
}

struct Scope<'a> {
    namespace: Option<&'a str>,
    matches_init: bool,
}

impl Scope<'_> {
    fn ingress<P>(&self, r: &mut IngressRule<P>) {
        for sel in &mut r.from_endpoints {
            self.peer(sel, true);
        }
        for sel in &mut r.from_requires {
            self.peer(sel, false);
        }
    }

    fn egress<P>(&self, r: &mut EgressRule<P>) {
        for sel in &mut r.to_endpoints {
            self.peer(sel, true);
        }
        for sel in &mut r.to_requires {
            self.peer(sel, false);
        }
    }

    fn peer(&self, sel: &mut EndpointSelector, reserved_exempt: bool) {
        if reserved_exempt && sel.has_key_prefix(&format!("{SOURCE_RESERVED}:")) {
            return;
        }
        let k8s_namespace = format!("k8s:{POD_NAMESPACE_LABEL}");
        if sel.has_key(&k8s_namespace) || sel.has_key(&format!("any:{POD_NAMESPACE_LABEL}")) {
            return;
        }
        match self.namespace {
            None if !self.matches_init => {
                sel.add_expression(&k8s_namespace, Operator::Exists, Vec::new())
            }
            None => {}
            Some(ns) => {
                let names_namespace_labels = ["k8s", "any"]
                    .iter()
                    .any(|src| sel.has_key_prefix(&format!("{src}:{NAMESPACE_LABELS_PREFIX}")));
                if !names_namespace_labels {
                    sel.add_match(&k8s_namespace, ns);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::labels::Labels;
    use crate::rule::Rule;

    fn rule(yaml: &str) -> Rule {
        serde_norway::from_str(yaml).expect("rule parses")
    }

    const RULE: &str = "
endpointSelector: {matchLabels: {app: db}}
ingress:
  - fromEndpoints:
      - matchLabels: {app: web}
      - matchLabels: {app: web, 'k8s:io.kubernetes.pod.namespace': other}
      - matchLabels: {'io.kubernetes.pod.namespace': third}
      - matchLabels: {'reserved:host': ''}
      - matchLabels: {'io.cilium.k8s.namespace.labels.team': blue}
      - {}
egressDeny:
  - toEndpoints: [{matchLabels: {app: cache}}]
";

    #[test]
    fn namespaced_policy_scopes_subject_and_unqualified_peers() {
        let r = rule(RULE).scoped(Some("prod"));
        let subject = r.endpoint_selector.as_ref().unwrap();
        assert_eq!(
            subject
                .match_labels
                .get("k8s:io.kubernetes.pod.namespace")
                .map(String::as_str),
            Some("prod")
        );
        let peers = &r.ingress[0].from_endpoints;
        let ns = |i: usize| {
            peers[i]
                .match_labels
                .get("k8s:io.kubernetes.pod.namespace")
                .cloned()
        };
        assert_eq!(
            ns(0).as_deref(),
            Some("prod"),
            "plain peer gets the policy namespace"
        );
        assert_eq!(
            ns(1).as_deref(),
            Some("other"),
            "explicit namespace is kept"
        );
        assert_eq!(
            ns(2),
            None,
            "any: namespace key counts as naming the namespace"
        );
        assert_eq!(ns(3), None, "reserved selectors are not scoped");
        assert_eq!(ns(4), None, "namespace-label selectors are not scoped");
        assert_eq!(
            ns(5).as_deref(),
            Some("prod"),
            "{{}} means every pod of the namespace"
        );
        let deny_peer = &r.egress_deny[0].to_endpoints[0];
        assert!(deny_peer.matches(&Labels::parse([
            "k8s:app=cache",
            "k8s:io.kubernetes.pod.namespace=prod"
        ])));
        assert!(!deny_peer.matches(&Labels::parse([
            "k8s:app=cache",
            "k8s:io.kubernetes.pod.namespace=dev"
        ])));
    }

    #[test]
    fn subject_namespace_is_always_the_policys() {
        let r =
            rule("endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': elsewhere}}")
                .scoped(Some("prod"));
        assert_eq!(
            r.endpoint_selector.unwrap().match_labels["k8s:io.kubernetes.pod.namespace"],
            "prod"
        );
    }

    #[test]
    fn clusterwide_policy_requires_a_namespace_on_unqualified_peers() {
        let r = rule(RULE).scoped(None);
        let subject = r.endpoint_selector.as_ref().unwrap();
        assert_eq!(
            subject.match_labels.len(),
            1,
            "subject is not scoped: {subject:?}"
        );
        let wildcard = &r.ingress[0].from_endpoints[5];
        assert!(wildcard.matches(&Labels::parse(["k8s:io.kubernetes.pod.namespace=any"])));
        assert!(!wildcard.matches(&Labels::parse(["reserved:host"])));
        assert!(r.ingress[0].from_endpoints[3].match_expressions.is_empty());
    }

    #[test]
    fn scoping_is_idempotent() {
        let once = rule(RULE).scoped(Some("prod"));
        assert_eq!(once.clone().scoped(Some("prod")), once);
        let once = rule(RULE).scoped(None);
        assert_eq!(once.clone().scoped(None), once);
    }
}
