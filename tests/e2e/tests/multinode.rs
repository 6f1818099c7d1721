//! Several nodes: every pod reaches every other pod in both routing modes, the identity rides
//! in the VXLAN VNI (and nothing is encapsulated in native routing), nodes leave and join,
//! and an etcd outage stops nothing that already works.
#![cfg(feature = "privileged-tests")]

use std::collections::BTreeSet;
use std::time::Duration;

use cilium_e2e::{eventually, serial, stdout, vxlan_frame, Capture, Lab};

const PODS: [(&str, &str); 4] = [
    ("a1", "node1"),
    ("a2", "node1"),
    ("b", "node2"),
    ("c", "node3"),
];

/// Adds pods serving TCP and UDP on 8080, each labelled `app=<its name>`.
fn add_pods(lab: &Lab, pods: &[(&str, &str)]) {
    for (pod, node) in pods {
        let labels = format!("app={pod}");
        lab.pod_add(
            pod,
            &[
                "--node",
                node,
                "--labels",
                &labels,
                "--serve",
                "8080/tcp,8080/udp",
            ],
        );
    }
}

/// The identity the lab reports for a pod.
fn identity_of(lab: &Lab, pod: &str) -> u32 {
    lab.pods()
        .into_iter()
        .find(|p| p["name"] == pod)
        .and_then(|p| p["identity"].as_u64())
        .unwrap_or_else(|| panic!("pod {pod} has no identity in `pod list`")) as u32
}

/// One probe from `from` to `to`: ping, TCP and UDP through the toolbox.
fn assert_reaches(lab: &Lab, from: &str, to: &str, to_ip: &str) {
    let ping = lab.exec(from, &["ping", "-c", "1", "-W", "2", to_ip]);
    assert!(
        ping.status.success(),
        "ping {from} -> {to} ({to_ip}) failed"
    );
    let cli = lab.bin("cilium-lab").display().to_string();
    let addr = format!("{to_ip}:8080");
    for extra in [None, Some("--udp")] {
        let mut cmd = vec![cli.as_str(), "connect", addr.as_str()];
        cmd.extend(extra);
        let out = lab.exec(from, &cmd);
        assert!(
            out.status.success(),
            "{from} -> {to} {extra:?} got no answer"
        );
        assert_eq!(
            stdout(&out).trim(),
            to,
            "{from} -> {to} {extra:?} answered by the wrong pod"
        );
    }
}

fn all_pairs_reach_each_other(lab: &Lab, pods: &[(&str, &str)]) {
    let ips: Vec<String> = pods.iter().map(|(p, _)| lab.pod_ip(p)).collect();
    for (i, (from, _)) in pods.iter().enumerate() {
        for (j, (to, _)) in pods.iter().enumerate() {
            if i != j {
                assert_reaches(lab, from, to, &ips[j]);
            }
        }
    }
}

/// Pod CIDRs of the lab's nodes, asserting they are all distinct.
fn distinct_pod_cidrs(lab: &Lab) -> BTreeSet<String> {
    let status = lab.status();
    let nodes = status["nodes"].as_array().expect("nodes");
    let cidrs: BTreeSet<String> = nodes
        .iter()
        .map(|n| {
            n["pod_cidr"]
                .as_str()
                .expect("every node has a pod CIDR")
                .to_string()
        })
        .collect();
    assert_eq!(
        cidrs.len(),
        nodes.len(),
        "nodes share a pod CIDR: {nodes:?}"
    );
    cidrs
}

#[test]
fn tunnel_mode_three_nodes_all_pods_reach_each_other_with_identity_in_the_vni() {
    let _serial = serial();
    let lab = Lab::up_with("mt", &["--nodes", "3", "--routing", "tunnel"]);
    let cidrs = distinct_pod_cidrs(&lab);
    assert_eq!(cidrs.len(), 3);
    add_pods(&lab, &PODS);
    all_pairs_reach_each_other(&lab, &PODS);

    // The underlay as node2 sees it (a bridge only shows frames it floods on br0 itself).
    let node2 = lab.status()["nodes"][1]["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let capture = Capture::start(&node2, "eth0", "udp");
    let c_ip = lab.pod_ip("c");
    let ping = lab.exec("b", &["ping", "-c", "3", "-i", "0.2", "-W", "2", &c_ip]);
    assert!(ping.status.success());
    let frames = capture.finish();
    let vxlan: Vec<_> = frames.iter().filter_map(|f| vxlan_frame(f)).collect();
    assert!(
        vxlan.len() >= 6,
        "expected VXLAN requests and replies, saw {vxlan:?}"
    );
    // Label-based identities: distinct labels, distinct numbers, all global (≥ 256).
    let (b_id, c_id) = (identity_of(&lab, "b"), identity_of(&lab, "c"));
    assert!(
        b_id >= 256 && c_id >= 256 && b_id != c_id,
        "b={b_id} c={c_id}"
    );
    // The same labels on another node: the same cluster-wide identity.
    lab.pod_add("b-twin", &["--node", "node3", "--labels", "app=b"]);
    assert_eq!(identity_of(&lab, "b-twin"), b_id);
    let b_ip: std::net::Ipv4Addr = lab.pod_ip("b").parse().unwrap();
    let c_addr: std::net::Ipv4Addr = c_ip.parse().unwrap();
    for frame in &vxlan {
        assert_eq!(frame.dst_port, 8472, "{frame:?}");
        match frame.inner {
            Some((src, dst)) if (src, dst) == (b_ip, c_addr) => assert_eq!(frame.vni, b_id),
            Some((src, dst)) if (src, dst) == (c_addr, b_ip) => assert_eq!(frame.vni, c_id),
            other => panic!("unexpected encapsulated packet {other:?}"),
        }
    }

    let ipcache = lab.cilium("node2", &["bpf", "ipcache", "list"]);
    assert!(
        ipcache.contains(&format!("{c_ip}/32")) && ipcache.contains("tunnelendpoint=172.18.0.13"),
        "node2's ipcache points c at node3:\n{ipcache}"
    );
}

#[test]
fn native_mode_three_nodes_all_pods_reach_each_other_without_encapsulation() {
    let _serial = serial();
    let lab = Lab::up_with("mn", &["--nodes", "3", "--routing", "native"]);
    distinct_pod_cidrs(&lab);
    add_pods(&lab, &PODS);
    all_pairs_reach_each_other(&lab, &PODS);

    let node2 = lab.status()["nodes"][1]["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let capture = Capture::start(&node2, "eth0", "udp port 8472 or icmp");
    let (b_ip, c_ip) = (lab.pod_ip("b"), lab.pod_ip("c"));
    let ping = lab.exec("b", &["ping", "-c", "3", "-i", "0.2", "-W", "2", &c_ip]);
    assert!(ping.status.success());
    let frames = capture.finish();
    assert!(
        frames.iter().all(|f| vxlan_frame(f).is_none()),
        "native routing must not encapsulate"
    );
    let pod_icmp = frames
        .iter()
        .filter(|f| f.len() >= 34 && f[12..14] == [8, 0] && f[23] == 1)
        .filter(|f| {
            let src = std::net::Ipv4Addr::new(f[26], f[27], f[28], f[29]).to_string();
            let dst = std::net::Ipv4Addr::new(f[30], f[31], f[32], f[33]).to_string();
            (src == b_ip && dst == c_ip) || (src == c_ip && dst == b_ip)
        })
        .count();
    assert!(
        pod_icmp >= 6,
        "pod ICMP crosses the underlay as is ({pod_icmp} frames)"
    );

    // The receiving node knows the sender's identity from its ipcache.
    let ipcache = lab.cilium("node3", &["bpf", "ipcache", "list"]);
    let b_id = identity_of(&lab, "b");
    assert!(
        ipcache
            .lines()
            .any(|l| l.starts_with(&format!("{b_ip}/32"))
                && l.contains(&format!("identity={b_id} "))),
        "node3's ipcache has b with identity {b_id}:\n{ipcache}"
    );
    let routes = lab.node_exec("node1", &["ip", "route"]);
    let routes = stdout(&routes);
    assert!(
        routes.contains("via 172.18.0.12") && routes.contains("via 172.18.0.13"),
        "{routes}"
    );
}

#[test]
fn a_node_that_leaves_is_forgotten_and_a_new_node_joins() {
    let _serial = serial();
    let lab = Lab::up_with(
        "mj",
        &[
            "--nodes",
            "2",
            "--routing",
            "native",
            "--kvstore-lease-ttl",
            "3",
        ],
    );
    add_pods(&lab, &[("a", "node1"), ("b", "node2")]);
    let (a_ip, b_ip) = (lab.pod_ip("a"), lab.pod_ip("b"));
    assert_reaches(&lab, "a", "b", &b_ip);
    let node2_cidr = lab.status()["nodes"][1]["pod_cidr"]
        .as_str()
        .unwrap()
        .to_string();

    lab.lab_ok(&["node", "del", "node2"]);
    // Within the lease time, node1 drops node2's pods, CIDR and route.
    eventually(Duration::from_secs(15), "node1 to forget node2", || {
        let ipcache = lab.cilium("node1", &["bpf", "ipcache", "list"]);
        let routes = stdout(&lab.node_exec("node1", &["ip", "route"]));
        let nodes = lab.cilium("node1", &["node", "list"]);
        (!ipcache.contains(&format!("{b_ip}/32"))
            && !ipcache.contains(&node2_cidr)
            && !routes.contains(&node2_cidr)
            && !nodes.contains("node2"))
        .then_some(())
    });

    let joined = lab.lab_ok(&["node", "add"]);
    assert!(joined.contains("node3"), "{joined}");
    add_pods(&lab, &[("c", "node3")]);
    let c_ip = lab.pod_ip("c");
    eventually(
        Duration::from_secs(10),
        "a to reach the new node's pod",
        || {
            let ping = lab.exec("a", &["ping", "-c", "1", "-W", "1", &c_ip]);
            ping.status.success().then_some(())
        },
    );
    assert_reaches(&lab, "a", "c", &c_ip);
    assert_reaches(&lab, "c", "a", &a_ip);
}

#[test]
fn an_etcd_outage_stops_nothing_and_the_cluster_catches_up() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let _serial = serial();
    let lab = Lab::up_with("me", &["--nodes", "2", "--routing", "tunnel"]);
    add_pods(&lab, &[("a", "node1"), ("b", "node2")]);
    let b_ip = lab.pod_ip("b");
    assert_reaches(&lab, "a", "b", &b_ip);

    // An established connection across nodes: nc from a to a listener in b.
    let spawn = |pod: &str, args: &[&str]| {
        Command::new(lab.bin("cilium-lab"))
            .args(["exec", pod, "--"])
            .args(args)
            .env("CILIUM_LAB_NAME", &lab.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning nc")
    };
    let mut server = spawn("b", &["busybox", "nc", "-l", "-p", "9000"]);
    let (tx, received) = mpsc::channel();
    let server_out = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(server_out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut client = eventually(Duration::from_secs(10), "the nc connection", || {
        let mut client = spawn("a", &["busybox", "nc", &b_ip, "9000"]);
        std::thread::sleep(Duration::from_millis(200));
        match client.try_wait() {
            Ok(None) => Some(client),
            _ => None,
        }
    });
    let mut conn = client.stdin.take().unwrap();
    let mut say = |line: &str| {
        writeln!(conn, "{line}").unwrap();
        conn.flush().unwrap();
        received
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{line:?} did not cross the established connection"))
    };
    assert_eq!(say("before"), "before");

    lab.lab_ok(&["etcd", "stop"]);
    // A pod created during the outage (CNI ADD needs only the node's own agent).
    add_pods(&lab, &[("late", "node2")]);
    let late_ip = lab.pod_ip("late");
    for second in 0..30 {
        if second % 10 == 0 {
            assert_eq!(say(&format!("outage {second}")), format!("outage {second}"));
            assert_reaches(&lab, "a", "b", &b_ip);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    lab.lab_ok(&["etcd", "start"]);

    assert_eq!(say("after"), "after");
    eventually(
        Duration::from_secs(30),
        "node1 to learn the late pod's address",
        || {
            let ipcache = lab.cilium("node1", &["bpf", "ipcache", "list"]);
            ipcache.contains(&format!("{late_ip}/32")).then_some(())
        },
    );
    assert_reaches(&lab, "a", "late", &late_ip);
    let _ = client.kill();
    let _ = server.kill();
    let _ = client.wait();
    let _ = server.wait();
}
