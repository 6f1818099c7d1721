//! ClusterIP services over a three-node lab, with real traffic from pods: reachability from
//! every node over TCP and UDP, an even random spread, ClientIP affinity, hairpin, a service
//! without backends, a backend scaled away under an open connection, a terminating backend
//! keeping its connection and getting no new ones, policy on the backends'
//! identity after translation, Maglev's stability when one of ten backends goes, and NodePort
//! from a host outside the cluster in both routing modes, with externalTrafficPolicy=Local.
#![cfg(feature = "privileged-tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use cilium_e2e::external::ExternalHost;
use cilium_e2e::load::{connect_outcome, from_ports, spread, Tally};
use cilium_e2e::probe::{in_netns, probe, EchoClient, EchoServer, Proto};
use cilium_e2e::services::active_backends;
use cilium_e2e::{eventually, serial, Lab};

const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 10, 10);
const STICKY_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 10, 11);
const EMPTY_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 10, 12);
const MAGLEV_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 10, 13);

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const PROGRAMMED: Duration = Duration::from_secs(30);

/// `web` (random; TCP and UDP 80 → 8080, TCP 90 → 9090), `sticky` (ClientIP affinity) and
/// `empty` (selects nothing).
const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.10.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 80, targetPort: 8080, protocol: UDP}
  - {name: echo, port: 90, targetPort: 9090, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  clusterIP: 10.96.10.11
  selector: {app: web}
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.10.12
  selector: {app: nobody}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
";

/// The web backends admit only clients labelled `trust=yes`.
const TRUSTED_ONLY: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-trusted, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {trust: 'yes'}}]
";

const MAGLEV: &str = "apiVersion: v1
kind: Service
metadata:
  name: mg
  namespace: default
  annotations: {service.cilium.io/lb-algorithm: maglev}
spec:
  clusterIP: 10.96.10.13
  selector: {app: mg}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
";

const NODES: [&str; 3] = ["node1", "node2", "node3"];

/// Waits until every node has programmed `count` active backends for the frontend.
fn wait_programmed(lab: &Lab, ip: Ipv4Addr, port: u16, proto: &str, count: usize) {
    for node in NODES {
        eventually(
            PROGRAMMED,
            &format!("{node} to program {count} backends for {ip}:{port}/{proto}"),
            || (active_backends(lab, node, ip, port, proto).len() == count).then_some(()),
        );
    }
}

/// `pod list` rows by pod name.
fn pods(lab: &Lab) -> BTreeMap<String, serde_json::Value> {
    lab.pods()
        .into_iter()
        .map(|p| (p["name"].as_str().expect("pod name").to_string(), p))
        .collect()
}

fn netns_of(lab: &Lab, pod: &str) -> String {
    pods(lab)
        .get(pod)
        .and_then(|p| p["netns"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("pod {pod} has no netns in `pod list`"))
}

fn add_pod(lab: &Lab, name: &str, node: &str, labels: &str) {
    lab.pod_add(
        name,
        &[
            "--node",
            node,
            "--labels",
            labels,
            "--serve",
            "8080/tcp,8080/udp",
        ],
    );
}

/// One probe from `netns`, retried until it gets an answer.
fn answered(netns: &str, to: SocketAddrV4, proto: Proto) -> String {
    let ns = netns.to_string();
    eventually(
        Duration::from_secs(20),
        &format!("an answer from {to} ({proto:?}) in {netns}"),
        || {
            let ns = ns.clone();
            in_netns(&ns, move || probe(to, proto, PROBE_TIMEOUT))
        },
    )
}

#[test]
fn clusterip_service_balances_pins_hairpins_rejects_and_is_policed_on_backends() {
    let _serial = serial();
    let lab = Lab::up("svc", 3);
    let web = ["web-1", "web-2", "web-3"];
    for (pod, node) in web.iter().zip(NODES) {
        add_pod(&lab, pod, node, "app=web");
    }
    let clients = [("client-1", "yes"), ("client-2", "no"), ("client-3", "no")];
    for ((pod, trust), node) in clients.iter().zip(NODES) {
        add_pod(&lab, pod, node, &format!("app=client,trust={trust}"));
    }
    let echo_servers: BTreeMap<&str, EchoServer> = web
        .iter()
        .map(|pod| (*pod, EchoServer::start(&netns_of(&lab, pod), 9090)))
        .collect();
    lab.apply("services.yaml", SERVICES);
    wait_programmed(&lab, WEB_IP, 80, "TCP", 3);
    wait_programmed(&lab, WEB_IP, 80, "UDP", 3);
    wait_programmed(&lab, STICKY_IP, 80, "TCP", 3);

    let web_names: BTreeSet<String> = web.iter().map(|s| s.to_string()).collect();
    let client_ns: Vec<String> = clients.iter().map(|(c, _)| netns_of(&lab, c)).collect();
    let web80 = SocketAddrV4::new(WEB_IP, 80);

    // Reachable from a pod on every node, over TCP and UDP.
    for (ns, (client, _)) in client_ns.iter().zip(clients) {
        for proto in [Proto::Tcp, Proto::Udp] {
            let answer = answered(ns, web80, proto);
            assert!(
                web_names.contains(&answer),
                "{client} -> {web80} {proto:?} answered by {answer:?}, not a web backend"
            );
        }
    }

    // Random selection: 3,000 connections spread within ±10 % of even.
    let mut tally = Tally::default();
    for ns in &client_ns {
        let part = spread(ns, web80, Proto::Tcp, 1000, 16, PROBE_TIMEOUT);
        for (name, n) in part.answers {
            *tally.answers.entry(name).or_default() += n;
        }
        tally.failures += part.failures;
    }
    println!("random spread of 3000 connections: {tally:?}");
    assert_eq!(tally.failures, 0, "connections got no answer: {tally:?}");
    assert_eq!(
        tally.answers.keys().cloned().collect::<BTreeSet<_>>(),
        web_names,
        "not every backend answered: {tally:?}"
    );
    for (name, n) in &tally.answers {
        assert!(
            (900..=1100).contains(n),
            "backend {name} got {n} of 3000 connections, outside 1000 ± 10 %: {tally:?}"
        );
    }

    // UDP spreads too.
    let udp = spread(&client_ns[0], web80, Proto::Udp, 150, 8, PROBE_TIMEOUT);
    assert_eq!(udp.failures, 0, "UDP probes got no answer: {udp:?}");
    assert_eq!(
        udp.answers.len(),
        3,
        "UDP did not reach every backend: {udp:?}"
    );

    // ClientIP affinity pins each client to one backend.
    let sticky = SocketAddrV4::new(STICKY_IP, 80);
    for (ns, (client, _)) in client_ns.iter().zip(clients) {
        let pinned = spread(ns, sticky, Proto::Tcp, 60, 4, PROBE_TIMEOUT);
        assert_eq!(pinned.failures, 0, "{client} -> sticky: {pinned:?}");
        assert_eq!(
            pinned.answers.len(),
            1,
            "{client} was not pinned to one backend: {pinned:?}"
        );
    }

    // Hairpin: a backend reaches its own service, and is sometimes answered by itself.
    let web1_ns = netns_of(&lab, "web-1");
    let hairpin = spread(&web1_ns, web80, Proto::Tcp, 60, 4, PROBE_TIMEOUT);
    assert_eq!(hairpin.failures, 0, "web-1 -> its own service: {hairpin:?}");
    assert!(
        hairpin.answers.contains_key("web-1"),
        "web-1 was never its own backend in 60 connections: {hairpin:?}"
    );
    let udp_hairpin = spread(&web1_ns, web80, Proto::Udp, 60, 4, PROBE_TIMEOUT);
    assert_eq!(
        udp_hairpin.failures, 0,
        "web-1 -> own service (UDP): {udp_hairpin:?}"
    );
    assert!(udp_hairpin.answers.contains_key("web-1"), "{udp_hairpin:?}");

    // A service without backends refuses at once, and the drop is counted as reason 158.
    let (took, result) = connect_outcome(
        &client_ns[0],
        SocketAddrV4::new(EMPTY_IP, 80),
        Duration::from_secs(5),
    );
    println!("connect to a service without backends: {result:?} after {took:?}");
    let err = result.expect_err("a service without backends accepted a connection");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "connect to a service without backends: {err} after {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "refusal took {took:?}, want well under 2 s"
    );
    let metrics = lab.cilium("node1", &["bpf", "metrics", "list", "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&metrics).expect("metrics JSON");
    assert!(
        rows.as_array()
            .expect("metrics rows")
            .iter()
            .any(|r| r["reason_code"] == 158 && r["packets"].as_u64().unwrap_or(0) > 0),
        "no drop with reason 158 counted on node1:\n{metrics}"
    );

    // Scaling a backend away: new connections avoid it, an open one to another survives.
    let web90 = SocketAddrV4::new(WEB_IP, 90);
    let mut open = EchoClient::connect(&client_ns[0], web90, PROBE_TIMEOUT)
        .expect("client-1 connects to the echo port of the service");
    assert!(
        open.round_trip("before", PROBE_TIMEOUT),
        "echo before scale-down"
    );
    let holder = eventually(
        Duration::from_secs(5),
        "the echo connection's backend",
        || {
            echo_servers
                .iter()
                .find(|(_, server)| server.accepted() == 1)
                .map(|(pod, _)| pod.to_string())
        },
    );
    let victim = web.iter().find(|p| **p != holder).expect("another backend");
    lab.lab_ok(&["pod", "del", victim]);
    wait_programmed(&lab, WEB_IP, 80, "TCP", 2);
    assert!(
        open.round_trip("after", PROBE_TIMEOUT),
        "the open connection to {holder} did not survive {victim} going away"
    );
    let after = spread(&client_ns[0], web80, Proto::Tcp, 300, 8, PROBE_TIMEOUT);
    assert_eq!(after.failures, 0, "after scale-down: {after:?}");
    assert!(
        !after.answers.contains_key(*victim),
        "{victim} still got new connections: {after:?}"
    );
    assert_eq!(
        after.answers.len(),
        2,
        "both remaining backends answer: {after:?}"
    );

    // A terminating backend (its Pod has a deletionTimestamp) keeps its open connection and
    // gets no new ones.
    lab.apply(
        "terminating.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {holder}\n  namespace: default\n  \
             labels: {{app: web}}\n  deletionTimestamp: \"2026-11-26T10:00:00Z\"\n"
        ),
    );
    wait_programmed(&lab, WEB_IP, 80, "TCP", 1);
    assert!(
        open.round_trip("while terminating", PROBE_TIMEOUT),
        "the open connection to {holder} did not survive it terminating"
    );
    let while_terminating = spread(&client_ns[0], web80, Proto::Tcp, 100, 8, PROBE_TIMEOUT);
    assert_eq!(
        while_terminating.failures, 0,
        "with {holder} terminating: {while_terminating:?}"
    );
    assert!(
        !while_terminating.answers.contains_key(&holder),
        "terminating {holder} still got new connections: {while_terminating:?}"
    );

    // Policy on the backends applies to the client's connection after translation.
    lab.apply("policy.yaml", TRUSTED_ONLY);
    eventually(
        Duration::from_secs(20),
        "client-2's service connections to be denied",
        || {
            let t = spread(
                &client_ns[1],
                web80,
                Proto::Tcp,
                6,
                6,
                Duration::from_secs(1),
            );
            (t.answered() == 0).then_some(())
        },
    );
    let denied = spread(
        &client_ns[2],
        web80,
        Proto::Tcp,
        20,
        4,
        Duration::from_secs(1),
    );
    assert_eq!(
        denied.answered(),
        0,
        "client-3 (trust=no) got through: {denied:?}"
    );
    let allowed = spread(&client_ns[0], web80, Proto::Tcp, 20, 4, PROBE_TIMEOUT);
    assert_eq!(
        allowed.failures, 0,
        "client-1 (trust=yes) was denied: {allowed:?}"
    );
    drop(echo_servers);
}

#[test]
fn maglev_removing_one_of_ten_backends_remaps_few_other_flows() {
    let _serial = serial();
    let lab = Lab::up("mgl", 3);
    let backends_pods: Vec<String> = (0..10).map(|i| format!("mg-{i}")).collect();
    for (i, pod) in backends_pods.iter().enumerate() {
        add_pod(&lab, pod, NODES[i % 3], "app=mg");
    }
    add_pod(&lab, "client", "node1", "app=client");
    lab.apply("maglev.yaml", MAGLEV);
    wait_programmed(&lab, MAGLEV_IP, 80, "TCP", 10);

    // `cilium status` says what the agent does in kube-proxy's place.
    let status = lab.cilium("node1", &["status"]);
    for line in [
        "KubeProxyReplacement Details:",
        "  Socket LB:           Enabled",
        "  Protocols:           TCP, UDP",
        "  Backend Selection:   Random",
        "  Session Affinity:    Enabled",
        "  - ClusterIP:   Enabled",
        "  - NodePort:    Enabled (Range: 30000-32767)",
    ] {
        assert!(
            status.lines().any(|l| l == line),
            "`cilium status` lacks {line:?}:\n{status}"
        );
    }
    let ns = netns_of(&lab, "client");
    let to = SocketAddrV4::new(MAGLEV_IP, 80);
    let ports: Vec<u16> = (41000..41400).collect();

    let before = from_ports(&ns, to, ports.clone(), PROBE_TIMEOUT);
    let missing: Vec<_> = before.iter().filter(|(_, a)| a.is_none()).collect();
    assert!(missing.is_empty(), "flows without an answer: {missing:?}");
    let again = from_ports(&ns, to, ports.clone(), PROBE_TIMEOUT);
    assert_eq!(
        before, again,
        "Maglev sent the same flows to other backends"
    );
    let used: BTreeSet<&String> = before.values().flatten().collect();
    assert_eq!(used.len(), 10, "not every backend got flows: {used:?}");

    let gone = "mg-9";
    lab.lab_ok(&["pod", "del", gone]);
    wait_programmed(&lab, MAGLEV_IP, 80, "TCP", 9);
    let after = from_ports(&ns, to, ports, PROBE_TIMEOUT);
    let mut kept = 0;
    let mut moved = 0;
    for (port, was) in &before {
        let now = after[port]
            .as_ref()
            .unwrap_or_else(|| panic!("flow from port {port} got no answer after removal"));
        assert_ne!(now, gone, "flow from port {port} still reached {gone}");
        let was = was.as_ref().expect("answered before");
        if was == gone {
            continue;
        }
        if was == now {
            kept += 1;
        } else {
            moved += 1;
        }
    }
    let share = moved as f64 / (kept + moved) as f64;
    println!(
        "maglev: removing 1 of 10 backends remapped {moved} of {} flows that did not use it ({:.1} %)",
        kept + moved,
        share * 100.0
    );
    assert!(
        share <= 0.15,
        "{moved} of {} unaffected flows moved ({:.1} %), more than 15 %",
        kept + moved,
        share * 100.0
    );
}

/// `np` (externalTrafficPolicy Cluster, node port 30080 TCP and UDP) and `np-local`
/// (externalTrafficPolicy Local, node port 30081), both on the `app=np` pods.
const NODE_PORTS: &str = "apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec:
  type: NodePort
  selector: {app: np}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
  - {name: dns, port: 80, targetPort: 8080, nodePort: 30080, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: np-local, namespace: default}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: np}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30081, protocol: TCP}
";

/// Each node's underlay address, by node name.
fn node_ips(lab: &Lab) -> BTreeMap<String, Ipv4Addr> {
    let status = lab.status();
    status["nodes"]
        .as_array()
        .expect("status lists nodes")
        .iter()
        .map(|node| {
            let name = node["name"].as_str().expect("node name").to_string();
            let ip = node["underlay_ip"]
                .as_str()
                .and_then(|ip| ip.parse().ok())
                .unwrap_or_else(|| panic!("node {name} has no underlay address: {node}"));
            (name, ip)
        })
        .collect()
}

/// NodePort from a host on the underlay: through every node with Cluster policy (backends on
/// node2 and node3, so node1 always forwards to another node), only through nodes with a
/// local backend with Local policy; the others refuse at once.
fn nodeport_from_outside(routing: &str) {
    let lab = Lab::up_with(
        &format!("np{}", &routing[..1]),
        &["--nodes", "3", "--routing", routing],
    );
    add_pod(&lab, "np-2", "node2", "app=np");
    add_pod(&lab, "np-3", "node3", "app=np");
    lab.apply("nodeports.yaml", NODE_PORTS);
    let ext = ExternalHost::start(&lab, "ext", Ipv4Addr::new(172, 18, 0, 200), "80/tcp");
    let nodes = node_ips(&lab);
    for (node, ip) in &nodes {
        for proto in ["TCP", "UDP"] {
            eventually(
                PROGRAMMED,
                &format!("{node} to program 2 backends for {ip}:30080/{proto}"),
                || (active_backends(&lab, node, *ip, 30080, proto).len() == 2).then_some(()),
            );
        }
    }
    let serving: BTreeSet<String> = ["np-2", "np-3"].map(String::from).into();

    for (node, ip) in &nodes {
        for proto in [Proto::Tcp, Proto::Udp] {
            let to = SocketAddrV4::new(*ip, 30080);
            let answer = answered(&ext.netns, to, proto);
            assert!(
                serving.contains(&answer),
                "{routing}: external host -> {node} {to} {proto:?} answered by {answer:?}"
            );
        }
        // Several connections through one node reach both backends (node1 has none of its
        // own, so its share goes to other nodes, source-NATed).
        let to = SocketAddrV4::new(*ip, 30080);
        let tally = in_netns(&ext.netns, move || {
            let mut seen = BTreeMap::<String, usize>::new();
            for _ in 0..40 {
                if let Some(a) = probe(to, Proto::Tcp, PROBE_TIMEOUT) {
                    *seen.entry(a).or_default() += 1;
                }
            }
            seen
        });
        assert_eq!(
            tally.values().sum::<usize>(),
            40,
            "{routing}: connections to {node} {to} went unanswered: {tally:?}"
        );
        assert_eq!(
            tally.keys().cloned().collect::<BTreeSet<_>>(),
            serving,
            "{routing}: connections to {node} {to} did not reach both backends: {tally:?}"
        );
    }

    // externalTrafficPolicy=Local: a node answers only with its own backend.
    for (node, ip) in &nodes {
        let to = SocketAddrV4::new(*ip, 30081);
        match node.as_str() {
            "node2" | "node3" => {
                let answer = answered(&ext.netns, to, Proto::Tcp);
                let own = format!("np-{}", &node[4..]);
                assert_eq!(
                    answer, own,
                    "{routing}: Local policy via {node} answered by another node's backend"
                );
            }
            _ => {
                let started = Instant::now();
                let answer = in_netns(&ext.netns, move || probe(to, Proto::Tcp, PROBE_TIMEOUT));
                let took = started.elapsed();
                assert_eq!(
                    answer, None,
                    "{routing}: Local policy via {node}, which has no backend, answered"
                );
                assert!(
                    took < Duration::from_secs(1),
                    "{routing}: {node} took {took:?} to refuse a Local-policy NodePort without \
                     local backends"
                );
            }
        }
    }
}

#[test]
fn nodeport_serves_external_clients_in_tunnel_and_native_mode_and_honours_local_policy() {
    let _serial = serial();
    for routing in ["tunnel", "native"] {
        nodeport_from_outside(routing);
    }
}
