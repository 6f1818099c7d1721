//! `node add` and `node del`: a node joins a running lab and is reachable; a node dies
//! abruptly, taking its pods, namespace, bpffs root and files with it, and the others forget
//! it once its kvstore lease runs out; a new node never takes a dead node's name.

#![cfg(feature = "privileged-tests")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{known_nodes, namespaces_with_prefix, status_node, LabGuard};

/// Short, so that the other nodes forget a dead one quickly.
const LEASE_TTL_SECS: &str = "5";

#[test]
fn nodes_join_a_running_lab_and_die_abruptly() {
    common::require_bins(&["cilium-agent", "cilium-cni", "cilium"]);
    let lab = LabGuard::new();
    lab.ok(&["up", "--kvstore-lease-ttl", LEASE_TTL_SECS]);

    let out = lab.ok(&["node", "add"]);
    assert!(out.starts_with("node2: joined"), "{out}");
    let status = common::wait_status(&lab, "node1 to know node2", Duration::from_secs(30), |s| {
        known_nodes(s, "node1") == ["node1", "node2"]
    });
    let node2 = status_node(&status, "node2");
    assert_eq!(node2["health"], "Ok", "{node2}");
    assert_eq!(node2["underlay_ip"], "172.18.0.12");
    assert_ne!(
        node2["pod_cidr"],
        status_node(&status, "node1")["pod_cidr"],
        "the joining node got a pod CIDR in use"
    );
    let dup = lab.run(&["node", "add", "node2"]);
    assert!(!dup.status.success(), "adding an existing node must fail");

    lab.ok(&["pod", "add", "client", "--node", "node1"]);
    lab.ok(&["pod", "add", "web", "--node", "node2", "--serve", "80/tcp"]);
    let pods: serde_json::Value =
        serde_json::from_str(&lab.ok(&["pod", "list", "-o", "json"])).expect("pod list is JSON");
    let web = pods
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "web"))
        .unwrap_or_else(|| panic!("web missing from {pods}"));
    assert_eq!(web["node"], "node2");
    let target = format!("{}:80", web["ip"].as_str().expect("web has an IP"));
    let connect = lab.run_raw(&[
        "exec",
        "--name",
        &lab.name,
        "client",
        "--",
        "cilium-lab",
        "connect",
        &target,
    ]);
    assert!(
        connect.status.success(),
        "client on node1 cannot reach web on the joined node2: {}",
        String::from_utf8_lossy(&connect.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&connect.stdout).trim(), "web");

    let out = lab.ok(&["node", "del", "node2"]);
    assert!(
        out.contains("node2 removed") && out.contains("default/web"),
        "{out}"
    );
    let prefix = format!("cilab-{}-", lab.name);
    let namespaces = namespaces_with_prefix(&prefix);
    assert!(
        !namespaces
            .iter()
            .any(|ns| ns.ends_with("-node2") || ns.contains("-p-default-web")),
        "node2 or its pod left namespaces: {namespaces:?}"
    );
    let node2_dir = format!("/run/cilium-lab/{}/node2", lab.name);
    let left = common::processes_mentioning(&format!("{node2_dir}/"));
    assert!(left.is_empty(), "node2's agent still runs: {left:?}");
    let pins = common::bpf_entries_with_prefix(&format!("cilium-lab-{}-node2", lab.name));
    assert!(pins.is_empty(), "node2's bpffs root is left: {pins:?}");
    assert!(!Path::new(&node2_dir).exists(), "node2's files are left");
    let status = common::status(&lab);
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["node1"], "{status:#}");
    let pods = status["pods"].as_array().unwrap();
    assert!(
        pods.len() == 1 && pods[0]["name"] == "client",
        "only node1's pod is left: {pods:?}"
    );
    common::wait_status(
        &lab,
        "node1 to forget the dead node2 once its lease expires",
        Duration::from_secs(60),
        |s| known_nodes(s, "node1") == ["node1"],
    );

    let out = lab.ok(&["node", "add"]);
    assert!(
        out.starts_with("node3: joined"),
        "a dead node's name is not reused: {out}"
    );
    common::wait_status(&lab, "node1 to know node3", Duration::from_secs(30), |s| {
        known_nodes(s, "node1") == ["node1", "node3"]
    });
    lab.ok(&["down"]);
    common::assert_lab_gone(&lab.name);
}
