//! Whole policy files: every kind, every section of the schema, and what the
//! parser keeps of them.

use cilium_policy::{
    parse_documents, Cidr, Entity, IcmpFamily, IcmpType, Labels, Policy, PolicyDocument,
    PolicyKind, Port, Protocol, Rule,
};

fn policies(text: &str) -> Vec<Policy> {
    parse_documents("file.yaml", text)
        .unwrap_or_else(|e| panic!("must parse: {e:?}\n{text}"))
        .into_iter()
        .filter_map(|d| match d {
            PolicyDocument::Policy(p) => Some(p),
            PolicyDocument::Other { .. } => None,
        })
        .collect()
}

const FULL: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: full
  namespace: prod
spec:
  endpointSelector:
    matchLabels: {app: api}
  enableDefaultDeny: {egress: false}
  labels:
    - {key: owner, value: team-a, source: k8s}
  ingress:
    - fromEntities: [cluster, remote-node]
      toPorts:
        - ports: [{port: "8080", endPort: 8090, protocol: TCP}, {port: grpc, protocol: ANY}]
          rules:
            kafka: [{role: produce, topic: orders}]
    - fromCIDRSet: [{cidr: 192.0.2.0/24, except: [192.0.2.128/25]}]
      icmps: [{fields: [{type: EchoRequest}, {type: 128, family: IPv6}]}]
  ingressDeny:
    - fromCIDR: [198.51.100.7]
      toPorts: [{ports: [{port: "22", protocol: TCP}]}]
  egress:
    - toEndpoints:
        - matchLabels: {'k8s:io.kubernetes.pod.namespace': kube-system, 'k8s:k8s-app': kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: UDP}]
          rules:
            dns: [{matchPattern: "*.example.com"}]
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443"}]}]
    - toServices: [{k8sService: {serviceName: db, namespace: data}}]
    - toEndpoints: [{}]
      toPorts:
        - ports: [{port: "9000", protocol: TCP}]
          rules: {l7proto: r2d2, l7: [{cmd: READ}]}
  egressDeny:
    - toEntities: [world]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host-fw}
specs:
  - nodeSelector: {matchLabels: {'node-role.kubernetes.io/control-plane': ''}}
    ingress:
      - fromEntities: [cluster]
        toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
  - endpointSelector: {}
    egress:
      - toEndpoints: [{matchLabels: {app: dns}}]
"#;

#[test]
fn every_section_of_the_schema_is_kept() {
    let docs = parse_documents("full.yaml", FULL).expect("full file parses");
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].kind(), "Namespace");
    let all = policies(FULL);
    let cnp = &all[0];
    assert_eq!(
        (cnp.kind, cnp.name.as_str()),
        (PolicyKind::CiliumNetworkPolicy, "full")
    );
    let rule = &cnp.rules[0];

    assert!(rule.default_deny_ingress());
    assert!(
        !rule.default_deny_egress(),
        "enableDefaultDeny.egress=false wins over the egress section"
    );
    assert!(rule
        .labels
        .iter()
        .any(|l| l.to_string() == "k8s:owner=team-a"));
    assert!(rule
        .labels
        .iter()
        .any(|l| l.to_string() == "k8s:io.cilium.k8s.policy.name=full"));

    let kafka_entry = &rule.ingress[0];
    assert_eq!(
        kafka_entry.from_entities,
        [Entity::Cluster, Entity::RemoteNode]
    );
    let ports = &kafka_entry.to_ports[0].ports;
    assert_eq!(ports[0].range(), Some(8080..=8090));
    assert_eq!(ports[1].port, Port::Name("grpc".into()));
    assert_eq!(ports[1].protocol, Protocol::Any);
    let kafka = kafka_entry.to_ports[0]
        .rules
        .as_ref()
        .unwrap()
        .kafka
        .as_ref()
        .unwrap();
    assert_eq!(
        (kafka[0].role.as_deref(), kafka[0].topic.as_deref()),
        (Some("produce"), Some("orders"))
    );

    let icmp_entry = &rule.ingress[1];
    let set = &icmp_entry.from_cidr_set[0];
    assert_eq!(set.cidr.unwrap().to_string(), "192.0.2.0/24");
    assert_eq!(set.except[0].to_string(), "192.0.2.128/25");
    let fields = &icmp_entry.icmps[0].fields;
    assert_eq!(
        (fields[0].family, fields[0].type_code()),
        (IcmpFamily::IPv4, Some(8))
    );
    assert_eq!(fields[1].icmp_type, IcmpType::Number(128));
    assert_eq!(fields[1].family, IcmpFamily::IPv6);

    assert_eq!(
        rule.ingress_deny[0].from_cidr,
        [Cidr("198.51.100.7/32".parse().unwrap())]
    );
    assert_eq!(
        rule.ingress_deny[0].to_ports[0].ports[0].port,
        Port::Number(22)
    );

    let dns = &rule.egress[0];
    assert_eq!(
        dns.to_endpoints[0].match_labels["k8s:io.kubernetes.pod.namespace"], "kube-system",
        "an explicit namespace is not overridden"
    );
    let dns_rules = dns.to_ports[0]
        .rules
        .as_ref()
        .unwrap()
        .dns
        .as_ref()
        .unwrap();
    assert_eq!(dns_rules[0].match_pattern.as_deref(), Some("*.example.com"));
    assert_eq!(
        rule.egress[1].to_fqdns[0].match_name.as_deref(),
        Some("api.example.com")
    );
    let service = rule.egress[2].to_services[0].k8s_service.as_ref().unwrap();
    assert_eq!(
        (service.service_name.as_str(), service.namespace.as_deref()),
        ("db", Some("data"))
    );
    let generic = rule.egress[3].to_ports[0].rules.as_ref().unwrap();
    assert_eq!(generic.l7proto.as_deref(), Some("r2d2"));
    assert_eq!(generic.l7.as_ref().unwrap()[0]["cmd"], "READ");
    assert!(
        rule.egress[3].to_endpoints[0]
            .matches(&Labels::parse(["k8s:io.kubernetes.pod.namespace=prod"])),
        "{{}} in a namespaced policy means the policy's namespace"
    );
    assert!(!rule.egress[3].to_endpoints[0]
        .matches(&Labels::parse(["k8s:io.kubernetes.pod.namespace=dev"])));
    assert_eq!(rule.egress_deny[0].to_entities, [Entity::World]);
}

#[test]
fn clusterwide_policy_is_not_namespaced() {
    let ccnp = &policies(FULL)[1];
    assert_eq!(ccnp.kind, PolicyKind::CiliumClusterwideNetworkPolicy);
    assert_eq!(ccnp.namespace, None);
    assert_eq!(ccnp.rules.len(), 2, "both entries of specs");
    let host = &ccnp.rules[0];
    assert!(host.endpoint_selector.is_none());
    let nodes = host.node_selector.as_ref().expect("host policy");
    assert!(nodes.matches(&Labels::parse([
        "k8s:node-role.kubernetes.io/control-plane="
    ])));
    assert!(host
        .labels
        .iter()
        .all(|l| l.key != "io.cilium.k8s.policy.namespace"));
    assert!(host
        .labels
        .iter()
        .any(|l| l.to_string()
            == "k8s:io.cilium.k8s.policy.derived-from=CiliumClusterwideNetworkPolicy"));

    let pods = &ccnp.rules[1];
    assert!(
        pods.endpoint_selector.as_ref().unwrap().is_wildcard(),
        "subject not scoped"
    );
    let peer = &pods.egress[0].to_endpoints[0];
    assert!(peer.matches(&Labels::parse([
        "k8s:app=dns",
        "k8s:io.kubernetes.pod.namespace=a"
    ])));
    assert!(peer.matches(&Labels::parse([
        "k8s:app=dns",
        "k8s:io.kubernetes.pod.namespace=b"
    ])));
}

#[test]
fn l7_rules_on_a_host_policy_are_rejected() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: h}\nspec:\n  nodeSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: \"80\", protocol: TCP}], rules: {http: [{}]}}]\n";
    let err = parse_documents("h.yaml", text).unwrap_err();
    assert_eq!(err.path(), Some("spec.ingress[0].toPorts[0].rules"));
}

#[test]
fn rules_round_trip_through_json() {
    for policy in policies(FULL) {
        for rule in &policy.rules {
            let json = serde_json::to_value(rule).expect("serializes");
            let back: Rule = serde_json::from_value(json.clone()).expect("reads back");
            assert_eq!(&back, rule, "round trip changed {json}");
        }
    }
    let rule = &policies(FULL)[0].rules[0];
    let json = serde_json::to_value(rule).unwrap();
    assert_eq!(json["endpointSelector"]["matchLabels"]["any:app"], "api");
    assert_eq!(json["ingress"][0]["toPorts"][0]["ports"][0]["port"], "8080");
    assert_eq!(
        json["ingress"][0]["toPorts"][0]["ports"][0]["protocol"],
        "TCP"
    );
}

#[test]
fn json_files_and_empty_files_are_read() {
    let json = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny", "namespace": "web"}, "spec": {"podSelector": {}}}"#;
    let docs = policies(json);
    assert_eq!(docs[0].name, "deny");
    assert_eq!(docs[0].namespace.as_deref(), Some("web"));
    assert!(parse_documents("empty.yaml", "").unwrap().is_empty());
    assert!(parse_documents("comments.yaml", "# nothing\n---\n")
        .unwrap()
        .is_empty());
}

#[test]
fn namespace_defaults_to_default() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n";
    let policy = &policies(text)[0];
    assert_eq!(policy.namespace.as_deref(), Some("default"));
    assert_eq!(
        policy.rules[0]
            .endpoint_selector
            .as_ref()
            .unwrap()
            .match_labels["k8s:io.kubernetes.pod.namespace"],
        "default"
    );
}

#[test]
fn yaml_anchors_and_merge_keys_are_resolved() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: &web {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [*web]\n";
    let rule = &policies(text)[0].rules[0];
    assert_eq!(
        rule.ingress[0].from_endpoints[0].match_labels["any:app"],
        "web"
    );
}
