//! Cilium's Star Wars demo, as shipped under `examples/starwars/`, parses to
//! the rules Cilium enforces for it.

use cilium_policy::{
    parse_documents, Label, Labels, Policy, PolicyDocument, PolicyKind, Port, PortProtocol,
    Protocol,
};

const APP: &str = include_str!("../../../examples/starwars/http-sw-app.yaml");
const L3_L4: &str = include_str!("../../../examples/starwars/sw_l3_l4_policy.yaml");
const L3_L4_L7: &str = include_str!("../../../examples/starwars/sw_l3_l4_l7_policy.yaml");

fn only_policy(file: &str, text: &str) -> Policy {
    let docs = parse_documents(file, text).unwrap_or_else(|e| panic!("{file} must parse: {e:?}"));
    match docs.as_slice() {
        [PolicyDocument::Policy(p)] => p.clone(),
        other => panic!("{file}: expected one policy, got {other:?}"),
    }
}

fn pod(labels: &[&str]) -> Labels {
    let mut all = vec!["k8s:io.kubernetes.pod.namespace=default"];
    all.extend_from_slice(labels);
    Labels::parse(all)
}

fn deathstar() -> Labels {
    pod(&[
        "k8s:org=empire",
        "k8s:class=deathstar",
        "k8s:app.kubernetes.io/name=deathstar",
    ])
}

fn tiefighter() -> Labels {
    pod(&[
        "k8s:org=empire",
        "k8s:class=tiefighter",
        "k8s:app.kubernetes.io/name=tiefighter",
    ])
}

fn xwing() -> Labels {
    pod(&[
        "k8s:org=alliance",
        "k8s:class=xwing",
        "k8s:app.kubernetes.io/name=xwing",
    ])
}

fn assert_rule1_l3_l4(policy: &Policy) {
    assert_eq!(policy.kind, PolicyKind::CiliumNetworkPolicy);
    assert_eq!(policy.name, "rule1");
    assert_eq!(policy.namespace.as_deref(), Some("default"));
    assert_eq!(policy.rules.len(), 1);
    let rule = &policy.rules[0];

    let subject = rule.endpoint_selector.as_ref().expect("endpointSelector");
    assert_eq!(
        subject
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        [
            "any:class=deathstar",
            "any:org=empire",
            "k8s:io.kubernetes.pod.namespace=default"
        ]
    );
    assert!(subject.matches(&deathstar()));
    assert!(!subject.matches(&tiefighter()));

    assert_eq!(rule.ingress.len(), 1, "one ingress rule");
    assert!(rule.egress.is_empty() && rule.ingress_deny.is_empty() && rule.egress_deny.is_empty());
    let ingress = &rule.ingress[0];
    assert_eq!(ingress.from_endpoints.len(), 1);
    let peers = &ingress.from_endpoints[0];
    assert!(peers.matches(&tiefighter()), "empire ships may land");
    assert!(!peers.matches(&xwing()), "alliance ships may not");
    assert!(
        !peers.matches(&Labels::parse([
            "k8s:org=empire",
            "k8s:io.kubernetes.pod.namespace=other"
        ])),
        "the peer selector is scoped to the policy's namespace"
    );
    assert_eq!(ingress.to_ports.len(), 1);
    assert_eq!(
        ingress.to_ports[0].ports,
        [PortProtocol {
            port: Port::Number(80),
            end_port: None,
            protocol: Protocol::Tcp
        }]
    );
    assert!(
        rule.default_deny_ingress(),
        "an ingress section means ingress default deny"
    );
    assert!(
        !rule.default_deny_egress(),
        "no egress section, no egress default deny"
    );
    for label in [
        Label::new(
            "k8s",
            "io.cilium.k8s.policy.derived-from",
            "CiliumNetworkPolicy",
        ),
        Label::new("k8s", "io.cilium.k8s.policy.name", "rule1"),
        Label::new("k8s", "io.cilium.k8s.policy.namespace", "default"),
    ] {
        assert!(
            rule.labels.contains(&label),
            "{label} missing from {:?}",
            rule.labels
        );
    }
}

#[test]
fn l3_l4_policy_allows_empire_ships_to_port_80() {
    let policy = only_policy("sw_l3_l4_policy.yaml", L3_L4);
    assert_rule1_l3_l4(&policy);
    assert!(
        policy.rules[0].ingress[0].to_ports[0].rules.is_none(),
        "no L7 rules"
    );
}

#[test]
fn l3_l4_l7_policy_keeps_the_http_rule() {
    let policy = only_policy("sw_l3_l4_l7_policy.yaml", L3_L4_L7);
    assert_rule1_l3_l4(&policy);
    let rule = &policy.rules[0];
    assert_eq!(
        rule.description.as_deref(),
        Some("L7 policy to restrict access to specific HTTP call")
    );
    let l7 = rule.ingress[0].to_ports[0]
        .rules
        .as_ref()
        .expect("L7 rules");
    assert_eq!(l7.kinds(), ["http"]);
    let http = l7.http.as_ref().unwrap();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].method.as_deref(), Some("POST"));
    assert_eq!(http[0].path.as_deref(), Some("/v1/request-landing"));
    assert!(http[0].host.is_none() && http[0].headers.is_empty());
}

#[test]
fn app_manifest_passes_through_every_object() {
    let docs = parse_documents("http-sw-app.yaml", APP).expect("app manifest parses");
    let summary: Vec<(String, Option<String>)> = docs
        .iter()
        .map(|d| (d.kind().to_owned(), d.name().map(str::to_owned)))
        .collect();
    assert_eq!(
        summary,
        [
            ("Service".to_owned(), Some("deathstar".to_owned())),
            ("Deployment".to_owned(), Some("deathstar".to_owned())),
            ("Pod".to_owned(), Some("tiefighter".to_owned())),
            ("Pod".to_owned(), Some("xwing".to_owned())),
        ]
    );
    let PolicyDocument::Other {
        api_version, raw, ..
    } = &docs[1]
    else {
        panic!("Deployment must pass through: {:?}", docs[1]);
    };
    assert_eq!(api_version, "apps/v1");
    assert_eq!(raw["spec"]["replicas"], 2, "the object is kept as written");
}

#[test]
fn app_and_policy_in_one_file_keep_their_order() {
    let text = format!("{APP}\n---\n{L3_L4_L7}");
    let docs = parse_documents("starwars.yaml", &text).expect("combined file parses");
    let kinds: Vec<&str> = docs.iter().map(|d| d.kind()).collect();
    assert_eq!(
        kinds,
        ["Service", "Deployment", "Pod", "Pod", "CiliumNetworkPolicy"]
    );
    let PolicyDocument::Policy(policy) = &docs[4] else {
        unreachable!()
    };
    assert_rule1_l3_l4(policy);
}
