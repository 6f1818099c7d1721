//! Kubernetes NetworkPolicies become the Cilium rules Cilium makes of them.

use cilium_policy::{
    parse_documents, CidrRule, EgressRule, EndpointSelector, IngressRule, Label, Labels,
    PolicyDocument, PolicyKind, Port, PortProtocol, Protocol, Rule,
};

/// The one rule of a NetworkPolicy in namespace `prod` with `spec`.
fn translate(spec: &str) -> Rule {
    let text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np\n  namespace: prod\n  uid: 0b5e-1234\nspec:\n{spec}"
    );
    let docs = parse_documents("np.yaml", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let [PolicyDocument::Policy(policy)] = docs.as_slice() else {
        panic!("one policy expected: {docs:?}");
    };
    assert_eq!(policy.kind, PolicyKind::NetworkPolicy);
    assert_eq!(policy.namespace.as_deref(), Some("prod"));
    assert_eq!(policy.rules.len(), 1);
    policy.rules[0].clone()
}

fn selector(pairs: &[(&str, &str)]) -> EndpointSelector {
    let mut sel = EndpointSelector::wildcard();
    for (k, v) in pairs {
        sel.add_match(k, v);
    }
    sel
}

fn tcp(port: Port) -> PortProtocol {
    PortProtocol {
        port,
        end_port: None,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn pod_selector_becomes_the_subject_in_the_policy_namespace() {
    let rule = translate("  podSelector: {matchLabels: {role: db}}\n  ingress:\n  - {}\n");
    assert_eq!(
        rule.endpoint_selector,
        Some(selector(&[
            ("k8s:role", "db"),
            ("k8s:io.kubernetes.pod.namespace", "prod")
        ]))
    );
    for label in [
        Label::new("k8s", "io.cilium.k8s.policy.derived-from", "NetworkPolicy"),
        Label::new("k8s", "io.cilium.k8s.policy.name", "np"),
        Label::new("k8s", "io.cilium.k8s.policy.namespace", "prod"),
        Label::new("k8s", "io.cilium.k8s.policy.uid", "0b5e-1234"),
    ] {
        assert!(
            rule.labels.contains(&label),
            "{label} missing: {:?}",
            rule.labels
        );
    }
}

#[test]
fn empty_ingress_rule_allows_everything() {
    let rule = translate("  podSelector: {}\n  ingress:\n  - {}\n");
    assert_eq!(
        rule.ingress,
        [IngressRule {
            from_endpoints: vec![EndpointSelector::wildcard()],
            ..IngressRule::default()
        }]
    );
    assert!(rule.egress.is_empty(), "egress is not governed");
    assert!(rule.default_deny_ingress() && !rule.default_deny_egress());
}

#[test]
fn empty_ingress_list_with_policy_types_denies_everything() {
    let rule = translate("  podSelector: {}\n  policyTypes: [Ingress]\n  ingress: []\n");
    assert_eq!(
        rule.ingress,
        [IngressRule::default()],
        "an entry allowing nothing"
    );
    assert!(rule.egress.is_empty());
    assert!(rule.default_deny_ingress());

    let missing = translate("  podSelector: {}\n");
    assert_eq!(
        missing.ingress, rule.ingress,
        "no policyTypes means Ingress"
    );
}

#[test]
fn egress_policy_types_decide_the_sections() {
    let egress_only = translate("  podSelector: {}\n  policyTypes: [Egress]\n");
    assert!(egress_only.ingress.is_empty(), "ingress is not governed");
    assert_eq!(egress_only.egress, [EgressRule::default()]);
    assert!(!egress_only.default_deny_ingress() && egress_only.default_deny_egress());

    let both = translate("  podSelector: {}\n  policyTypes: [Ingress, Egress]\n");
    assert_eq!(both.ingress, [IngressRule::default()]);
    assert_eq!(both.egress, [EgressRule::default()]);

    let allow_egress = translate("  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - {}\n");
    assert_eq!(
        allow_egress.egress,
        [EgressRule {
            to_endpoints: vec![EndpointSelector::wildcard()],
            ..EgressRule::default()
        }]
    );
}

#[test]
fn pod_selector_peer_stays_in_the_policy_namespace() {
    let rule = translate(
        "  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: web}}\n",
    );
    let peer = &rule.ingress[0].from_endpoints[0];
    assert_eq!(
        *peer,
        selector(&[
            ("k8s:app", "web"),
            ("k8s:io.kubernetes.pod.namespace", "prod")
        ])
    );
    assert!(peer.matches(&Labels::parse([
        "k8s:app=web",
        "k8s:io.kubernetes.pod.namespace=prod"
    ])));
    assert!(!peer.matches(&Labels::parse([
        "k8s:app=web",
        "k8s:io.kubernetes.pod.namespace=dev"
    ])));
}

#[test]
fn namespace_and_pod_selectors_combine() {
    let rule = translate(
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: blue}}\n      podSelector:\n        matchExpressions: [{key: app, operator: In, values: [web, api]}]\n    - namespaceSelector: {}\n",
    );
    assert_eq!(rule.ingress.len(), 2, "one entry per peer");
    let combined = &rule.ingress[0].from_endpoints[0];
    assert_eq!(
        combined.match_labels.iter().collect::<Vec<_>>(),
        [(
            &"k8s:io.cilium.k8s.namespace.labels.team".to_owned(),
            &"blue".to_owned()
        )]
    );
    assert_eq!(combined.match_expressions[0].key, "k8s:app");
    let web_in = |ns_team: &str, ns: &str, app: &str| {
        Labels::parse([
            format!("k8s:app={app}"),
            format!("k8s:io.kubernetes.pod.namespace={ns}"),
            format!("k8s:io.cilium.k8s.namespace.labels.team={ns_team}"),
        ])
    };
    assert!(
        combined.matches(&web_in("blue", "other", "web")),
        "any namespace labelled team=blue"
    );
    assert!(combined.matches(&web_in("blue", "prod", "api")));
    assert!(!combined.matches(&web_in("red", "other", "web")));
    assert!(!combined.matches(&web_in("blue", "other", "db")));

    let all_namespaces = &rule.ingress[1].from_endpoints[0];
    assert!(all_namespaces.matches(&web_in("red", "anywhere", "db")));
    assert!(
        !all_namespaces.matches(&Labels::parse(["reserved:world"])),
        "an empty namespaceSelector means every pod, not the world"
    );
}

#[test]
fn ip_block_with_except_becomes_a_cidr_set() {
    let rule = translate(
        "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n    ports: [{port: 443}]\n",
    );
    assert_eq!(
        rule.egress,
        [EgressRule {
            to_cidr_set: vec![CidrRule {
                cidr: Some("10.0.0.0/8".parse().unwrap()),
                cidr_group_ref: None,
                except: vec!["10.1.0.0/16".parse().unwrap()],
            }],
            to_ports: vec![cilium_policy::PortRule {
                ports: vec![tcp(Port::Number(443))],
                ..Default::default()
            }],
            ..EgressRule::default()
        }]
    );
    assert!(rule.ingress.is_empty());
}

#[test]
fn ports_carry_names_ranges_protocols_and_apply_to_every_peer() {
    let rule = translate(
        "  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {}\n    - ipBlock: {cidr: 192.0.2.0/24}\n    ports:\n    - port: http\n    - {port: 8000, endPort: 8100, protocol: UDP}\n    - protocol: SCTP\n",
    );
    assert_eq!(rule.ingress.len(), 2);
    for entry in &rule.ingress {
        let ports: Vec<&PortProtocol> = entry.to_ports.iter().flat_map(|p| &p.ports).collect();
        assert_eq!(
            ports,
            [
                &tcp(Port::Name("http".into())),
                &PortProtocol {
                    port: Port::Number(8000),
                    end_port: Some(8100),
                    protocol: Protocol::Udp
                },
                &PortProtocol {
                    port: Port::Number(0),
                    end_port: None,
                    protocol: Protocol::Sctp
                },
            ]
        );
    }
    assert!(
        rule.ingress[1].from_endpoints.is_empty(),
        "ipBlock peers select no endpoints"
    );
    assert_eq!(rule.ingress[1].from_cidr_set.len(), 1);
}
