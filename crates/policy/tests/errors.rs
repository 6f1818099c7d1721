//! Invalid policies are rejected whole, and the error names the file, the
//! document, the policy and the exact field, and says why.

use cilium_policy::{parse_documents, PolicyError};

/// The error with its causes, as `cilium apply -f` prints it.
fn message(err: &PolicyError) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn rejected(text: &str) -> PolicyError {
    match parse_documents("bad.yaml", text) {
        Ok(docs) => panic!("must be rejected, got {docs:?}\n{text}"),
        Err(e) => e,
    }
}

/// A CiliumNetworkPolicy named `p` with the given spec lines.
fn cnp(spec: &str) -> String {
    format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: prod\nspec:\n{spec}")
}

/// Asserts that `text` is rejected at `path` with a reason containing `why`.
#[track_caller]
fn assert_rejected(text: &str, path: &str, why: &str) {
    let err = rejected(text);
    let msg = message(&err);
    assert_eq!(err.path(), Some(path), "wrong path in: {msg}");
    assert!(
        msg.starts_with(&format!("bad.yaml: document 1 (p): {path}: ")),
        "file, document, name and path must lead the message: {msg}"
    );
    assert!(msg.contains(why), "{msg:?} must say {why:?}");
}

const SUBJECT: &str = "  endpointSelector: {matchLabels: {app: db}}\n";

#[test]
fn port_out_of_range() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts:\n    - ports:\n      - port: \"70000\"\n"
        )),
        "spec.ingress[0].toPorts[0].ports[0].port",
        "port 70000 is out of range 0-65535",
    );
}

#[test]
fn port_that_is_neither_number_nor_name() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  egress:\n  - toPorts: [{{ports: [{{port: \"80-90\"}}]}}]\n"
        )),
        "spec.egress[0].toPorts[0].ports[0].port",
        "neither a number in 0-65535 nor a port name",
    );
}

#[test]
fn protocol_is_case_sensitive() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts: [{{ports: [{{port: \"80\", protocol: tcp}}]}}]\n"
        )),
        "spec.ingress[0].toPorts[0].ports[0].protocol",
        "unknown variant `tcp`, expected one of `TCP`, `UDP`, `SCTP`, `ANY`",
    );
}

#[test]
fn end_port_below_port() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts: [{{ports: [{{port: \"8080\", endPort: 8000}}]}}]\n"
        )),
        "spec.ingress[0].toPorts[0].ports[0].endPort",
        "endPort 8000 is below port 8080",
    );
}

#[test]
fn end_port_with_named_port() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts: [{{ports: [{{port: http, endPort: 8000}}]}}]\n"
        )),
        "spec.ingress[0].toPorts[0].ports[0].endPort",
        "needs a numeric port, not the named port \"http\"",
    );
}

#[test]
fn misspelt_field() {
    assert_rejected(
        &cnp(&format!("{SUBJECT}  ingress:\n  - fromEndpoint: [{{}}]\n")),
        "spec.ingress[0].fromEndpoint",
        "unknown field `fromEndpoint`, expected one of `fromEndpoints`",
    );
}

#[test]
fn unknown_entity() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  egress:\n  - toEntities: [world, wrld]\n"
        )),
        "spec.egress[0].toEntities[1]",
        "unknown variant `wrld`",
    );
}

#[test]
fn invalid_cidr() {
    assert_rejected(
        &cnp(&format!("{SUBJECT}  egress:\n  - toCIDR: [10.0.0.0/33]\n")),
        "spec.egress[0].toCIDR[0]",
        "\"10.0.0.0/33\" is not a valid CIDR",
    );
}

#[test]
fn except_outside_its_cidr() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - fromCIDRSet:\n    - cidr: 10.0.0.0/8\n      except: [10.1.0.0/16, 192.168.0.0/16]\n"
        )),
        "spec.ingress[0].fromCIDRSet[0].except[1]",
        "except 192.168.0.0/16 is not inside cidr 10.0.0.0/8",
    );
}

#[test]
fn rule_without_selector() {
    assert_rejected(
        &cnp("  ingress:\n  - fromEntities: [world]\n"),
        "spec",
        "a rule must have endpointSelector or nodeSelector",
    );
}

#[test]
fn node_selector_in_a_namespaced_policy() {
    assert_rejected(
        &cnp("  nodeSelector: {}\n  ingress: [{fromEntities: [world]}]\n"),
        "spec.nodeSelector",
        "only allowed in a CiliumClusterwideNetworkPolicy",
    );
}

#[test]
fn l7_rules_on_udp() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts:\n    - ports: [{{port: \"80\", protocol: TCP}}, {{port: \"81\", protocol: UDP}}]\n      rules: {{http: [{{method: GET}}]}}\n"
        )),
        "spec.ingress[0].toPorts[0].ports[1].protocol",
        "HTTP rules apply only to TCP or ANY ports, not UDP",
    );
}

#[test]
fn dns_rules_on_ingress() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts:\n    - ports: [{{port: \"53\", protocol: UDP}}]\n      rules: {{dns: [{{matchPattern: \"*\"}}]}}\n"
        )),
        "spec.ingress[0].toPorts[0].rules.dns",
        "DNS rules are not allowed on ingress",
    );
}

#[test]
fn two_kinds_of_l7_rules() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  egress:\n  - toPorts:\n    - ports: [{{port: \"80\"}}]\n      rules: {{http: [{{}}], kafka: [{{topic: t}}]}}\n"
        )),
        "spec.egress[0].toPorts[0].rules",
        "only one kind of L7 rules, not http and kafka",
    );
}

#[test]
fn invalid_http_regex() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - toPorts:\n    - ports: [{{port: \"80\", protocol: TCP}}]\n      rules: {{http: [{{path: \"/v1/(\"}}]}}\n"
        )),
        "spec.ingress[0].toPorts[0].rules.http[0].path",
        "path \"/v1/(\" is not a valid regular expression",
    );
}

#[test]
fn l7_rules_in_a_deny_rule() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingressDeny:\n  - toPorts:\n    - ports: [{{port: \"80\"}}]\n      rules: {{http: [{{}}]}}\n"
        )),
        "spec.ingressDeny[0].toPorts[0].rules",
        "unknown field `rules`, expected `ports`",
    );
}

#[test]
fn fqdns_in_a_deny_rule() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  egressDeny:\n  - toFQDNs: [{{matchName: example.com}}]\n"
        )),
        "spec.egressDeny[0].toFQDNs",
        "toFQDNs is not supported in deny rules",
    );
}

#[test]
fn icmp_type_name_of_the_other_family() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - icmps:\n    - fields:\n      - {{type: EchoRequest}}\n      - {{type: PacketTooBig, family: IPv4}}\n"
        )),
        "spec.ingress[0].icmps[0].fields[1].type",
        "\"PacketTooBig\" is not an IPv4 ICMP type",
    );
}

#[test]
fn icmps_beside_to_ports() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - icmps: [{{fields: [{{type: 8}}]}}]\n    toPorts: [{{ports: [{{port: \"80\"}}]}}]\n"
        )),
        "spec.ingress[0].icmps",
        "icmps cannot be combined with toPorts",
    );
}

#[test]
fn two_kinds_of_peers_in_one_rule() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - fromEndpoints: [{{}}]\n    fromCIDR: [10.0.0.0/8]\n"
        )),
        "spec.ingress[0].fromCIDR",
        "combining fromEndpoints and fromCIDR in one rule is not supported",
    );
}

#[test]
fn in_operator_without_values() {
    assert_rejected(
        &cnp("  endpointSelector:\n    matchExpressions:\n    - {key: app, operator: In}\n"),
        "spec.endpointSelector.matchExpressions[0].values",
        "operator In needs at least one value",
    );
}

#[test]
fn unknown_operator() {
    assert_rejected(
        &cnp("  endpointSelector:\n    matchExpressions:\n    - {key: app, operator: in, values: [a]}\n"),
        "spec.endpointSelector.matchExpressions[0].operator",
        "unknown variant `in`",
    );
}

#[test]
fn invalid_label_value() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: \"-web\"}}}}]\n"
        )),
        "spec.ingress[0].fromEndpoints[0].matchLabels",
        "label value \"-web\" is invalid",
    );
}

#[test]
fn null_label_value_is_not_a_wildcard() {
    assert_rejected(
        &cnp(&format!(
            "{SUBJECT}  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: }}}}]\n"
        )),
        "spec.ingress[0].fromEndpoints[0].matchLabels.app",
        "invalid type: null, expected a string",
    );
}

#[test]
fn error_in_a_later_spec_of_specs() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspecs:\n- endpointSelector: {}\n- endpointSelector: {}\n  egress:\n  - toPorts: [{ports: [{port: \"0\", endPort: 10}]}]\n";
    assert_rejected(
        text,
        "specs[1].egress[0].toPorts[0].ports[0].endPort",
        "endPort 10 needs a non-zero port",
    );
}

#[test]
fn policy_without_spec() {
    assert_rejected(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\n",
        "spec",
        "neither spec nor specs",
    );
}

#[test]
fn policy_kind_with_the_wrong_api_version() {
    assert_rejected(
        "apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n",
        "apiVersion",
        "CiliumNetworkPolicy must have apiVersion cilium.io/v2, not \"cilium.io/v1\"",
    );
}

#[test]
fn unknown_kind() {
    assert_rejected(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyy\nmetadata: {name: p}\n",
        "kind",
        "unknown kind \"CiliumNetworkPolicyy\"",
    );
}

#[test]
fn policy_without_a_name() {
    let err = rejected("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {namespace: x}\nspec: {endpointSelector: {}}\n");
    assert_eq!(err.path(), Some("metadata.name"));
    assert_eq!(
        message(&err),
        "bad.yaml: document 1: metadata.name: required, but missing or empty"
    );
}

#[test]
fn network_policy_except_outside_its_block() {
    assert_rejected(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}\n",
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "except 10.1.0.0/24 is not inside cidr 10.0.0.0/16",
    );
}

#[test]
fn network_policy_protocol_any() {
    assert_rejected(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  egress:\n  - ports: [{port: 53, protocol: ANY}]\n",
        "spec.egress[0].ports[0].protocol",
        "TCP, UDP or SCTP, not ANY",
    );
}

#[test]
fn invalid_yaml_names_the_document_and_line() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: [\n";
    let err = rejected(text);
    let msg = message(&err);
    assert!(
        matches!(err, PolicyError::Yaml { document: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.starts_with("bad.yaml: document 2 is not valid YAML: "),
        "{msg}"
    );
    assert!(msg.contains("line 6"), "the line is given: {msg}");
}

#[test]
fn duplicate_keys_are_rejected() {
    let err = rejected(&cnp(&format!("{SUBJECT}{SUBJECT}")));
    assert!(
        message(&err).contains("duplicate entry with key \"endpointSelector\""),
        "{}",
        message(&err)
    );
}

#[test]
fn one_invalid_document_rejects_the_whole_file() {
    let good = cnp(SUBJECT);
    let bad = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: second}\nspec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [everyone]}]\n";
    let err = rejected(&format!("{good}---\n# a comment-only document\n---\n{bad}"));
    let msg = message(&err);
    assert!(
        msg.starts_with("bad.yaml: document 3 (second): spec.ingress[0].fromEntities[0]: unknown variant `everyone`"),
        "{msg}"
    );
}
