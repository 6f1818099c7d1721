//! Network policy as truth tables, modelled on Kubernetes' network-policy e2e tests: one
//! two-node lab with namespaces x and y (pods a, b, c each, spread over both nodes) and two
//! hosts outside the cluster; every scenario applies its policies through an agent, waits
//! until the full table (every source × target × TCP/UDP port 80/81) is the expected one,
//! then deletes them and checks that everything is reachable again.
//!
//! Labels: pods `pod=<name>`, `a` is `tier=front`, `b` and `c` are `tier=back`, `b` is
//! `canary=true`; namespaces `ns=<name>`. Named container ports: `web` 80/TCP, `web-alt`
//! 81/TCP, `dgram` 80/UDP, `dgram-alt` 81/UDP. Placement: x/a, x/c, y/b on node1; x/b, y/a,
//! y/c on node2. World hosts: world1 172.18.0.200, world2 172.18.0.201 on the underlay.
//!
//! All scenarios run in one test, one after the other; a failing scenario is reported with
//! its expected and observed tables and the others still run.
#![cfg(feature = "privileged-tests")]

use std::net::SocketAddrV4;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use cilium_e2e::policy_cluster::{PolicyCluster, Rows, TCP_80, TCP_81, UDP_80, UDP_81};
use cilium_e2e::probe::{EchoClient, EchoServer, Proto};
use cilium_e2e::serial;

/// A named scenario: applies policies and asserts truth tables; panics on failure.
struct Scenario {
    name: &'static str,
    run: fn(&PolicyCluster),
}

#[test]
fn network_policy_truth_tables() {
    let _serial = serial();
    let cx = PolicyCluster::deploy("mx");
    cx.expect(
        "without policy every pod, node and world host reaches every pod",
        |_| true,
    );

    let scenarios = scenarios();
    let started = Instant::now();
    let mut failed = Vec::new();
    for scenario in &scenarios {
        let at = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (scenario.run)(&cx)));
        let reset = catch_unwind(AssertUnwindSafe(|| cx.reset()));
        let mut problems = Vec::new();
        if let Err(panic) = outcome {
            problems.push(message(&*panic));
        }
        if let Err(panic) = reset {
            problems.push(format!("after deleting its policies: {}", message(&*panic)));
        }
        let secs = at.elapsed().as_secs_f32();
        if problems.is_empty() {
            println!("ok    {:<48} {secs:5.1}s", scenario.name);
        } else {
            println!("FAIL  {:<48} {secs:5.1}s", scenario.name);
            failed.push((scenario.name, problems.join("\n")));
        }
    }
    println!(
        "{} of {} scenarios passed in {:.0}s",
        scenarios.len() - failed.len(),
        scenarios.len(),
        started.elapsed().as_secs_f32()
    );
    let report: Vec<String> = failed
        .iter()
        .map(|(name, problem)| format!("=== {name}\n{problem}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} policy scenarios failed: {:?}\n\n{}",
        failed.len(),
        scenarios.len(),
        failed.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        report.join("\n\n")
    );
}

fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".to_string())
}

fn scenarios() -> Vec<Scenario> {
    macro_rules! scenarios {
        ($($name:ident),* $(,)?) => {
            vec![$(Scenario { name: stringify!($name), run: $name }),*]
        };
    }
    scenarios![
        k8s_default_deny_ingress,
        k8s_default_deny_egress,
        cnp_default_deny_ingress,
        cnp_default_deny_egress,
        cnp_allow_from_pod_in_same_namespace,
        cnp_allow_from_other_namespace_by_name,
        k8s_namespace_selector_on_namespace_labels,
        k8s_namespace_selector_on_metadata_name,
        k8s_pod_and_namespace_selector_in_one_peer,
        k8s_pod_or_namespace_selector_in_two_peers,
        k8s_namespace_selector_not_in,
        cnp_match_expressions_in,
        cnp_match_expressions_not_in,
        cnp_match_expressions_exists,
        cnp_match_expressions_does_not_exist,
        cnp_named_ports_ingress,
        k8s_named_port_egress,
        cnp_tcp_port_range,
        k8s_udp_port_range,
        cnp_from_cidr_set_with_except,
        cnp_from_cidr_everything_outside,
        cnp_egress_to_cidr,
        k8s_ip_block_with_except,
        cnp_ingress_deny_beats_allow,
        cnp_egress_deny_alone_is_default_deny,
        cnp_egress_deny_without_default_deny,
        policies_are_a_union,
        deleting_one_policy_keeps_the_other,
        update_keeps_an_established_connection,
        from_entities_world,
        from_entities_host,
        from_entities_cluster,
        from_entities_all_on_one_port,
        from_entities_remote_node,
        to_entities_world,
        to_entities_cluster,
        ccnp_selects_pods_in_every_namespace,
        ccnp_on_namespace_labels,
        k8s_ports_without_peers,
        k8s_egress_to_namespace,
        cnp_udp_rule_leaves_tcp_denied,
        cnp_protocol_any,
        both_sides_must_allow,
        cnp_egress_within_namespace,
        enable_default_deny_false_only_adds,
        enforcement_always_denies_what_no_rule_allows,
        enforcement_never_ignores_policies,
    ]
}

// --- default deny -----------------------------------------------------------------------

fn k8s_default_deny_ingress(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#,
    );
    cx.expect("nothing enters x", |c| !c.to_ns("x"));
}

fn k8s_default_deny_egress(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#,
    );
    cx.expect("nothing leaves x", |c| !c.from_ns("x"));
}

fn cnp_default_deny_ingress(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-ingress, namespace: y}
spec:
  endpointSelector: {}
  ingress: [{}]
"#,
    );
    cx.expect("nothing enters y", |c| !c.to_ns("y"));
}

fn cnp_default_deny_egress(cx: &PolicyCluster) {
    cx.apply(
        "node2",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-egress, namespace: y}
spec:
  endpointSelector: {}
  egress: [{}]
"#,
    );
    cx.expect("nothing leaves y", |c| !c.from_ns("y"));
}

// --- pod and namespace selectors -------------------------------------------------------

fn cnp_allow_from_pod_in_same_namespace(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
"#,
    );
    cx.expect(
        "x/a only from x/b (not y/b: peers stay in the policy's namespace)",
        |c| !c.to_pod("x", "a") || c.from_pod("x", "b"),
    );
}

fn cnp_allow_from_other_namespace_by_name(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-y, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]
"#,
    );
    cx.expect("x/a only from y", |c| !c.to_pod("x", "a") || c.from_ns("y"));
}

fn k8s_namespace_selector_on_namespace_labels(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-ns-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
"#,
    );
    cx.expect("x/a only from namespaces labelled ns=y", |c| {
        !c.to_pod("x", "a") || c.from_ns("y")
    });
}

fn k8s_namespace_selector_on_metadata_name(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]
"#,
    );
    cx.expect("x/b only from the namespace named y", |c| {
        !c.to_pod("x", "b") || c.from_ns("y")
    });
}

fn k8s_pod_and_namespace_selector_in_one_peer(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-y-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
      podSelector: {matchLabels: {pod: b}}
"#,
    );
    cx.expect("x/a only from y/b (both selectors at once)", |c| {
        !c.to_pod("x", "a") || c.from_pod("y", "b")
    });
}

fn k8s_pod_or_namespace_selector_in_two_peers(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-y-or-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
    - podSelector: {matchLabels: {pod: b}}
"#,
    );
    cx.expect("x/a from all of y and from x/b", |c| {
        !c.to_pod("x", "a") || c.from_ns("y") || c.from_pod("x", "b")
    });
}

fn k8s_namespace_selector_not_in(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-from-other-namespaces, namespace: x}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: ns, operator: NotIn, values: [x]}]
"#,
    );
    cx.expect(
        "x/c only from pods of namespaces not labelled ns=x (no world: a namespace selector selects pods)",
        |c| !c.to_pod("x", "c") || c.from_ns("y"),
    );
}

// --- matchExpressions -------------------------------------------------------------------

fn cnp_match_expressions_in(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-b-or-c, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: pod, operator: In, values: [b, c]}]
"#,
    );
    cx.expect("x/a from x/b and x/c", |c| {
        !c.to_pod("x", "a") || c.from_pod("x", "b") || c.from_pod("x", "c")
    });
}

fn cnp_match_expressions_not_in(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: not-a-from-a, namespace: y}
spec:
  endpointSelector:
    matchExpressions: [{key: pod, operator: NotIn, values: [a]}]
  ingress:
  - fromEndpoints: [{matchLabels: {pod: a}}]
"#,
    );
    cx.expect("y/b and y/c only from y/a; y/a is not selected", |c| {
        !c.to_ns("y") || c.to_label("pod", "a") || c.from_pod("y", "a")
    });
}

fn cnp_match_expressions_exists(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: from-canaries, namespace: x}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: canary, operator: Exists}]
"#,
    );
    cx.expect("x only from x's canary (x/b)", |c| {
        !c.to_ns("x") || (c.from_ns("x") && c.from_has_label("canary"))
    });
}

fn cnp_match_expressions_does_not_exist(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: stable-from-stable-back, namespace: x}
spec:
  endpointSelector:
    matchExpressions: [{key: canary, operator: DoesNotExist}]
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - {key: tier, operator: In, values: [back]}
      - {key: canary, operator: DoesNotExist}
"#,
    );
    cx.expect("x/a and x/c only from x/c; canary x/b open", |c| {
        !c.to_ns("x") || c.to_has_label("canary") || c.from_pod("x", "c")
    });
}

// --- ports --------------------------------------------------------------------------------

fn cnp_named_ports_ingress(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-named-ports, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - toPorts:
    - ports: [{port: web-alt, protocol: TCP}, {port: dgram}]
"#,
    );
    cx.expect(
        "x/a from anyone on web-alt (81/tcp) and dgram (80/udp)",
        |c| !c.to_pod("x", "a") || c.port == TCP_81 || c.port == UDP_80,
    );
}

fn k8s_named_port_egress(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-egress-web, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: web}]
"#,
    );
    cx.expect("y/a only to pods, on their port named web (80/tcp)", |c| {
        !c.from_pod("y", "a") || (c.to_any_pod() && c.port == TCP_80)
    });
}

fn cnp_tcp_port_range(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-tcp-range, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - toPorts: [{ports: [{port: "64", endPort: 95, protocol: TCP}]}]
"#,
    );
    cx.expect("x/a on TCP 64-95 from anyone; UDP blocked", |c| {
        !c.to_pod("x", "a") || c.port.proto == Proto::Tcp
    });
}

fn k8s_udp_port_range(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-udp-range, namespace: y}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - ports: [{protocol: UDP, port: 81, endPort: 1000}]
"#,
    );
    cx.expect("y/c on UDP 81-1000 only: 80 is just outside", |c| {
        !c.to_pod("y", "c") || c.port == UDP_81
    });
}

fn k8s_ports_without_peers(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: y-web-and-dgram-alt, namespace: y}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 80}, {port: 81, protocol: UDP}]
"#,
    );
    cx.expect("y from anyone on 80/tcp (TCP by default) and 81/udp", |c| {
        !c.to_ns("y") || c.port == TCP_80 || c.port == UDP_81
    });
}

fn cnp_udp_rule_leaves_tcp_denied(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-udp-80, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{}]
    toPorts: [{ports: [{port: "80", protocol: UDP}]}]
"#,
    );
    cx.expect("x/a from x on 80/udp only; TCP 80 stays blocked", |c| {
        !c.to_pod("x", "a") || (c.from_ns("x") && c.port == UDP_80)
    });
}

fn cnp_protocol_any(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-any-81, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: b}}
  ingress:
  - toPorts: [{ports: [{port: "81", protocol: ANY}]}]
"#,
    );
    cx.expect("x/b on port 81 over TCP and UDP", |c| {
        !c.to_pod("x", "b") || c.port.number == 81
    });
}

// --- CIDR ---------------------------------------------------------------------------------

fn cnp_from_cidr_set_with_except(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-underlay, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromCIDRSet: [{cidr: 172.18.0.0/24, except: [172.18.0.201/32]}]
"#,
    );
    cx.expect(
        "x/a only from world1 (world2 is excepted, pods are no CIDR)",
        |c| !c.to_pod("x", "a") || c.from_world_host("world1"),
    );
}

fn cnp_from_cidr_everything_outside(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-from-outside, namespace: y}
spec:
  endpointSelector: {matchLabels: {pod: b}}
  ingress:
  - fromCIDR: [0.0.0.0/0]
"#,
    );
    cx.expect("y/b only from the world hosts (0.0.0.0/0 is world)", |c| {
        !c.to_pod("y", "b") || c.from_world()
    });
}

fn cnp_egress_to_cidr(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-to-world1, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egress:
  - toCIDR: [172.18.0.200/32]
"#,
    );
    cx.expect("x/a only to world1", |c| {
        !c.from_pod("x", "a") || c.to_world_host("world1")
    });
}

fn k8s_ip_block_with_except(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-ip-block, namespace: y}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{ipBlock: {cidr: 172.18.0.192/26, except: [172.18.0.200/32]}}]
    ports: [{port: 80}]
"#,
    );
    cx.expect("y/b only from world2 on 80/tcp", |c| {
        !c.to_pod("y", "b") || (c.from_world_host("world2") && c.port == TCP_80)
    });
}

// --- deny ---------------------------------------------------------------------------------

fn cnp_ingress_deny_beats_allow(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-all, namespace: x}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [all]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-b-web, namespace: x}
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {pod: b}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    cx.expect("x open to all but x/b on 80/tcp", |c| {
        !(c.to_ns("x") && c.from_pod("x", "b") && c.port == TCP_80)
    });
}

fn cnp_egress_deny_alone_is_default_deny(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-not-to-y, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egressDeny:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]
"#,
    );
    cx.expect(
        "x/a reaches nothing: an egressDeny section puts it into egress default deny too",
        |c| !c.from_pod("x", "a"),
    );
}

fn cnp_egress_deny_without_default_deny(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-not-to-y, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  enableDefaultDeny: {egress: false}
  egressDeny:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]
"#,
    );
    cx.expect(
        "x/a reaches everything but y (enableDefaultDeny: false keeps the rest open)",
        |c| !(c.from_pod("x", "a") && c.to_ns("y")),
    );
}

// --- several policies, deletion, updates --------------------------------------------------

fn policies_are_a_union(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-y-c-dgram-alt, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y, pod: c}}]
    toPorts: [{ports: [{port: "81", protocol: UDP}]}]
"#,
    );
    cx.expect("x/a from x/b, and from y/c on 81/udp", |c| {
        !c.to_pod("x", "a") || c.from_pod("x", "b") || (c.from_pod("y", "c") && c.port == UDP_81)
    });
}

const A_FROM_B: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
"#;

fn deleting_one_policy_keeps_the_other(cx: &PolicyCluster) {
    cx.apply("node1", A_FROM_B);
    cx.apply(
        "node2",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-world, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEntities: [world]
"#,
    );
    cx.expect("x/a from x/b and the world", |c| {
        !c.to_pod("x", "a") || c.from_pod("x", "b") || c.from_world()
    });
    cx.delete("node2", A_FROM_B);
    cx.expect("x/a from the world only, once a-from-b is gone", |c| {
        !c.to_pod("x", "a") || c.from_world()
    });
}

/// Port of the echo server that holds a connection open across a policy update.
const ECHO_PORT: u16 = 8080;

fn update_keeps_an_established_connection(cx: &PolicyCluster) {
    const V1: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-conn, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
    toPorts: [{ports: [{port: "8080"}, {port: "80"}]}]
"#;
    const V2: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-conn, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}, {matchLabels: {pod: c}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}, {port: "81", protocol: TCP}]}]
"#;
    let patience = Duration::from_secs(2);
    let (a, b, c, ya) = (
        cx.pod("x", "a"),
        cx.pod("x", "b"),
        cx.pod("x", "c"),
        cx.pod("y", "a"),
    );
    let echo_addr = SocketAddrV4::new(a.ip, ECHO_PORT);
    let _echo = EchoServer::start(&a.netns, ECHO_PORT);
    cx.apply("node1", V1);
    cx.expect(
        "v1: x/a from x/b on port 80 (TCP and UDP: no protocol is ANY)",
        |c| !c.to_pod("x", "a") || (c.from_pod("x", "b") && c.port.number == 80),
    );
    let mut held = EchoClient::connect(&b.netns, echo_addr, patience)
        .expect("x/b connects to x/a:8080 under v1");
    assert!(
        held.round_trip("before the update", patience),
        "x/b's connection to x/a:8080 echoes under v1"
    );

    cx.apply("node1", V2);
    cx.expect("v2: x/a from x/b and x/c on 81/tcp; port 80 closed", |c| {
        !c.to_pod("x", "a") || ((c.from_pod("x", "b") || c.from_pod("x", "c")) && c.port == TCP_81)
    });
    assert!(
        held.round_trip("after the update", patience),
        "the connection x/b -> x/a:8080 opened under v1 still echoes under v2, which keeps it allowed"
    );
    let mut fresh = EchoClient::connect(&c.netns, echo_addr, patience)
        .expect("a new connection from x/c to x/a:8080 is allowed by v2");
    assert!(
        fresh.round_trip("new", patience),
        "x/c's new connection echoes"
    );
    assert!(
        EchoClient::connect(&ya.netns, echo_addr, Duration::from_secs(1)).is_none(),
        "a new connection from y/a to x/a:8080 is still denied"
    );
}

fn enable_default_deny_false_only_adds(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-also-from-y, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  enableDefaultDeny: {ingress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]
"#,
    );
    cx.expect("alone it denies nothing", |_| true);
    cx.apply("node1", A_FROM_B);
    cx.expect("with a-from-b: x/a from x/b and from y", |c| {
        !c.to_pod("x", "a") || c.from_pod("x", "b") || c.from_ns("y")
    });
}

// --- entities -----------------------------------------------------------------------------

fn from_entities_world(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c-from-world, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: c}}
  ingress:
  - fromEntities: [world]
"#,
    );
    cx.expect("x/c only from outside the cluster", |c| {
        !c.to_pod("x", "c") || c.from_world()
    });
}

fn from_entities_host(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: y-from-host, namespace: y}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [host]
"#,
    );
    cx.expect("y only from its own node", |c| !c.to_ns("y"));
}

fn from_entities_cluster(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: x-from-cluster, namespace: x}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [cluster]
"#,
    );
    cx.expect(
        "x from every pod of every namespace, not from the world",
        |c| !c.to_ns("x") || !c.from_world(),
    );
}

fn from_entities_all_on_one_port(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-from-all-web, namespace: y}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEntities: [all]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    cx.expect("y/a from everyone, world included, on 80/tcp", |c| {
        !c.to_pod("y", "a") || c.port == TCP_80
    });
}

fn from_entities_remote_node(cx: &PolicyCluster) {
    cx.expect_rows(
        "without policy the other node reaches every pod too",
        Rows::WithRemoteNode,
        |_| true,
    );
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: x-from-remote-node, namespace: x}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [remote-node]
"#,
    );
    cx.expect_rows(
        "x only from the nodes (its own, and the other as remote-node)",
        Rows::WithRemoteNode,
        |c| !c.to_ns("x") || c.from_remote_node(),
    );
}

fn to_entities_world(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-to-world, namespace: y}
spec:
  endpointSelector: {matchLabels: {pod: b}}
  egress:
  - toEntities: [world]
"#,
    );
    cx.expect("y/b only to the world hosts", |c| {
        !c.from_pod("y", "b") || c.to_world()
    });
}

fn to_entities_cluster(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: x-to-cluster, namespace: x}
spec:
  endpointSelector: {}
  egress:
  - toEntities: [cluster]
"#,
    );
    cx.expect("x to every pod, not to the world", |c| {
        !c.from_ns("x") || !c.to_world()
    });
}

// --- clusterwide --------------------------------------------------------------------------

fn ccnp_selects_pods_in_every_namespace(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: front-from-back}
spec:
  endpointSelector: {matchLabels: {tier: front}}
  ingress:
  - fromEndpoints: [{matchLabels: {tier: back}}]
"#,
    );
    cx.expect(
        "x/a and y/a only from the back tier of both namespaces",
        |c| !c.to_label("tier", "front") || c.from_label("tier", "back"),
    );
}

fn ccnp_on_namespace_labels(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: y-only-from-y}
spec:
  endpointSelector: {matchLabels: {k8s:io.cilium.k8s.namespace.labels.ns: y}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.namespace.labels.ns: y}}]
"#,
    );
    cx.expect(
        "pods of namespaces labelled ns=y only from each other",
        |c| !c.to_ns("y") || c.from_ns("y"),
    );
}

// --- egress to namespaces, both directions -----------------------------------------------

fn k8s_egress_to_namespace(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x-to-y, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: y}}}]
"#,
    );
    cx.expect("x only to y", |c| !c.from_ns("x") || c.to_ns("y"));
}

fn cnp_egress_within_namespace(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: x-egress-within, namespace: x}
spec:
  endpointSelector: {}
  egress:
  - toEndpoints: [{}]
"#,
    );
    cx.expect("x only to x ({} means the policy's namespace)", |c| {
        !c.from_ns("x") || c.to_ns("x")
    });
}

fn both_sides_must_allow(cx: &PolicyCluster) {
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a-to-y-b-web, namespace: x}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y, pod: b}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-from-x-a, namespace: y}
spec:
  endpointSelector: {matchLabels: {pod: b}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: x, pod: a}}]
"#,
    );
    cx.expect(
        "x/a -> y/b on 80/tcp only; y/b from nobody else; x/a to nowhere else",
        |c| {
            if c.from_pod("x", "a") {
                c.to_pod("y", "b") && c.port == TCP_80
            } else {
                !c.to_pod("y", "b")
            }
        },
    );
}

// --- enforcement modes ------------------------------------------------------------------

fn enforcement_always_denies_what_no_rule_allows(cx: &PolicyCluster) {
    cx.set_enforcement("always");
    cx.expect("always, no rule: nothing gets in or out", |_| false);
    cx.apply(
        "node1",
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: x-among-themselves, namespace: x}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{}]
  egress:
  - toEndpoints: [{}]
"#,
    );
    cx.expect("always: x talks within x only", |c| {
        c.from_ns("x") && c.to_ns("x")
    });
}

fn enforcement_never_ignores_policies(cx: &PolicyCluster) {
    cx.set_enforcement("never");
    cx.apply(
        "node1",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#,
    );
    cx.expect("never: a deny-all policy changes nothing", |_| true);
}
