//! `up` and `down`: a lab comes up with its agents and goes away without a trace, and an `up`
//! that fails removes everything it had created.

#![cfg(feature = "privileged-tests")]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{assert_lab_gone, lab_bin, namespaces_with_prefix, LabGuard};

#[test]
fn up_then_down_leaves_nothing_behind() {
    common::require_bins(&["cilium-agent"]);
    let lab = LabGuard::new();
    lab.ok(&["up", "--nodes", "2"]);

    let namespaces = namespaces_with_prefix(&format!("cilab-{}-", lab.name));
    for want in ["sw", "node1", "node2"] {
        let ns = format!("cilab-{}-{want}", lab.name);
        assert!(namespaces.contains(&ns), "{ns} missing from {namespaces:?}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "-o", "json"])).expect("status -o json is JSON");
    let nodes = status["nodes"].as_array().expect("status lists nodes");
    assert_eq!(nodes.len(), 2, "{status}");
    for node in nodes {
        assert_eq!(node["health"], "Ok", "agent not healthy: {node}");
        assert_eq!(node["agent_running"], true, "{node}");
    }
    assert_eq!(nodes[0]["underlay_ip"], "172.18.0.11");
    assert_eq!(nodes[1]["pod_cidr"], "10.0.2.0/24");

    let again = lab.run(&["up"]);
    assert!(!again.status.success(), "a second `up` must refuse");

    let down = lab.ok(&["down"]);
    assert!(down.contains("down"), "{down}");
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
