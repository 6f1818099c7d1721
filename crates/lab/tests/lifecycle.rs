//! `up` and `down`: a lab comes up with etcd and its agents and goes away without a trace, and
//! an `up` that fails removes everything it had created.

#![cfg(feature = "privileged-tests")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{assert_lab_gone, lab_bin, namespaces_with_prefix, LabGuard};

#[test]
fn up_then_down_leaves_nothing_behind() {
    common::require_bins(&["cilium-agent"]);
    let lab = LabGuard::new();
    let out = lab.ok(&["up", "--nodes", "2"]);
    assert!(out.contains("etcd: namespace"), "{out}");

    let namespaces = namespaces_with_prefix(&format!("cilab-{}-", lab.name));
    for want in ["sw", "etcd", "node1", "node2"] {
        let ns = format!("cilab-{}-{want}", lab.name);
        assert!(namespaces.contains(&ns), "{ns} missing from {namespaces:?}");
    }
    let status = common::status(&lab);
    assert_eq!(status["etcd"]["health"], "Ok", "{status:#}");
    assert_eq!(status["etcd"]["running"], true, "{status:#}");
    assert_eq!(status["etcd"]["endpoint"], "http://172.18.0.2:2379");
    let nodes = status["nodes"].as_array().expect("status lists nodes");
    assert_eq!(nodes.len(), 2, "{status:#}");
    let mut cidrs = Vec::new();
    for node in nodes {
        assert_eq!(node["health"], "Ok", "agent not healthy: {node}");
        assert_eq!(node["agent_running"], true, "{node}");
        let cidr = node["pod_cidr"]
            .as_str()
            .unwrap_or_else(|| panic!("no pod CIDR: {node}"));
        assert!(
            cidr.starts_with("10.") && cidr.ends_with("/24"),
            "pod CIDR {cidr} is not a /24 of the cluster pool"
        );
        cidrs.push(cidr.to_string());
    }
    assert_ne!(cidrs[0], cidrs[1], "two nodes got the same pod CIDR");
    assert_eq!(nodes[0]["underlay_ip"], "172.18.0.11");
    assert_eq!(nodes[1]["underlay_ip"], "172.18.0.12");
    common::wait_status(
        &lab,
        "each agent to know both nodes",
        Duration::from_secs(30),
        |s| {
            ["node1", "node2"]
                .iter()
                .all(|n| common::known_nodes(s, n) == ["node1", "node2"])
        },
    );
    assert!(
        Path::new(&format!("/run/cilium-lab/{}/etcd/member", lab.name)).is_dir(),
        "etcd keeps its data in the lab's directory"
    );

    let again = lab.run(&["up"]);
    assert!(!again.status.success(), "a second `up` must refuse");

    let down = lab.ok(&["down"]);
    assert!(down.contains("down") && down.contains("etcd"), "{down}");
    // Also checks that no agent and no etcd still run in the lab's directory.
    assert_lab_gone(&lab.name);
    lab.ok(&["down"]);
}

#[test]
fn failed_up_without_an_agent_cleans_up() {
    let empty = tempfile::tempdir().unwrap();
    let lab = LabGuard::with_bin_dir(empty.path());
    let out = lab.run(&["up", "--nodes", "2"]);
    assert!(
        !out.status.success(),
        "up must fail without an agent binary"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cilium-agent not found"),
        "stderr: {stderr}"
    );
    assert_lab_gone(&lab.name);
}

#[test]
fn failed_up_with_a_crashing_agent_cleans_up_and_shows_its_log() {
    let bins = tempfile::tempdir().unwrap();
    let agent = bins.path().join("cilium-agent");
    std::fs::write(
        &agent,
        "#!/bin/sh\necho \"agent for $2 cannot start: no datapath\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    // `up` checks for every program it starts before starting any; the relay comes after the
    // agents, so this one is never run.
    let relay = bins.path().join("hubble-relay");
    std::fs::write(&relay, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lab = LabGuard::with_bin_dir(bins.path());
    let out = lab.run(&["up"]);
    assert!(!out.status.success(), "up must fail when the agent exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agent for node1 cannot start: no datapath"),
        "the agent's log should be shown; stderr: {stderr}"
    );
    assert_lab_gone(&lab.name);
}

#[test]
fn down_copes_with_a_lost_state_file() {
    let lab = LabGuard::new();
    // The pieces `up` would make, with a toolbox server running in the node, and a corrupt
    // state file: down must find everything by name.
    let sw = format!("cilab-{}-sw", lab.name);
    let node = format!("cilab-{}-node1", lab.name);
    common::sh(&["ip", "netns", "add", &sw]);
    common::sh(&["ip", "netns", "add", &node]);
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &node])
        .arg(lab_bin())
        .args(["serve", "7000/tcp", "--name", "orphan"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a toolbox server in the node");
    // `down` finds it by its namespace: only once it is in there (listening) is the test fair.
    common::wait_for(
        "the toolbox server to listen in the node",
        std::time::Duration::from_secs(10),
        || {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &node, "ss", "-Hltn", "sport = :7000"])
                .output()
                .expect("run ss in the node");
            !out.stdout.is_empty()
        },
    );
    let dir = format!("/run/cilium-lab/{}", lab.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/state.json"), "{truncated").unwrap();

    let out = lab.run(&["down"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a corrupt state file is reported");
    assert!(stderr.contains("state.json"), "stderr: {stderr}");
    common::wait_for(
        "the orphaned server to exit",
        std::time::Duration::from_secs(15),
        || server.try_wait().expect("poll the server").is_some(),
    );
    assert_lab_gone(&lab.name);
    lab.ok(&["down"]);
}
