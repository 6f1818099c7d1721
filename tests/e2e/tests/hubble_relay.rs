//! Hubble through the lab's relay: in the Star Wars lab (deathstar on node2, xwing and
//! tiefighter on node1), `cilium-lab hubble observe --verdict DROPPED -o json` shows xwing's
//! drop with both pods' names, namespaces, labels and identities and `POLICY_DENIED`; the
//! compact line says "Policy denied DROPPED"; the Python client generated from the project's
//! `.proto` files gets the same from the relay; `hubble status` counts both nodes. Then
//! node1's agent is stopped: the relay reports it unavailable (status, nodes, a status event
//! in the flow stream) and keeps serving node2's flows.
#![cfg(feature = "privileged-tests")]

use std::path::PathBuf;
use std::time::Duration;

use cilium_e2e::{eventually, serial, starwars, stdout, Lab};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const POLICY: &str = starwars::L3_L4_POLICY;

/// `cilium-lab hubble ARGS`: the output lines (stdout) and stderr.
fn hubble(lab: &Lab, args: &[&str]) -> (Vec<String>, String) {
    let mut all = vec!["hubble"];
    all.extend_from_slice(args);
    let out = lab.lab(&all);
    assert!(
        out.status.success(),
        "cilium-lab hubble {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        stdout(&out).lines().map(str::to_string).collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn state(lab: &Lab) -> Value {
    let path = format!("/run/cilium-lab/{}/state.json", lab.name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn relay_socket(lab: &Lab) -> PathBuf {
    let state = state(lab);
    let socket = state["relay"]["socket"]
        .as_str()
        .unwrap_or_else(|| panic!("no relay in the lab state: {state}"));
    PathBuf::from(socket)
}

fn is_drop(response: &Value) -> bool {
    response["flow"]["event_type"]["type"] == 1
}

#[test]
fn the_relay_shows_the_star_wars_drop_and_survives_a_stopped_agent() {
    let _serial = serial();
    let lab = Lab::up_with("hbr", &["--nodes", "2"]);
    let deathstar = starwars::deploy(&lab);
    for node in ["node1", "node2"] {
        lab.cilium(node, &["policy", "import", POLICY]);
    }
    assert!(
        starwars::lands(&lab, "tiefighter", &deathstar),
        "tiefighter gets in"
    );
    assert!(
        !starwars::lands(&lab, "xwing", &deathstar),
        "xwing is dropped"
    );
    let (xwing_id, deathstar_id) = (
        starwars::identity_of(&lab, "xwing"),
        starwars::identity_of(&lab, "deathstar"),
    );

    // `hubble observe --verdict DROPPED -o json` through the relay.
    let drops = eventually(
        Duration::from_secs(10),
        "xwing's drop via the relay",
        || {
            let (lines, _) = hubble(&lab, &["observe", "--verdict", "DROPPED", "-o", "json"]);
            let responses = json_lines(&lines);
            responses.iter().any(is_drop).then_some(responses)
        },
    );
    let drop = &drops.iter().find(|r| is_drop(r)).expect("a drop")["flow"];
    assert_eq!(drop["verdict"], "DROPPED", "{drop}");
    assert_eq!(drop["drop_reason_desc"], "POLICY_DENIED", "{drop}");
    assert_eq!(drop["node_name"], "default/node2", "{drop}");
    let (source, destination) = (&drop["source"], &drop["destination"]);
    assert_eq!(
        (source["namespace"].as_str(), source["pod_name"].as_str()),
        (Some("default"), Some("xwing")),
        "{drop}"
    );
    assert_eq!(source["identity"], xwing_id, "{drop}");
    assert!(
        starwars::has_label(source, "k8s:org=alliance")
            && starwars::has_label(source, "k8s:class=xwing"),
        "{drop}"
    );
    assert_eq!(
        (
            destination["namespace"].as_str(),
            destination["pod_name"].as_str()
        ),
        (Some("default"), Some("deathstar")),
        "{drop}"
    );
    assert_eq!(destination["identity"], deathstar_id, "{drop}");
    assert!(
        starwars::has_label(destination, "k8s:org=empire")
            && starwars::has_label(destination, "k8s:class=deathstar"),
        "{drop}"
    );

    // The compact line a user reads.
    let (lines, _) = hubble(
        &lab,
        &[
            "observe",
            "--verdict",
            "DROPPED",
            "--from-pod",
            "default/xwing",
            "-t",
            "drop",
        ],
    );
    let expected = format!(
        "default/xwing:{} (ID:{xwing_id}) <> default/deathstar:80 (ID:{deathstar_id}) Policy denied DROPPED (TCP Flags: SYN)",
        drop["l4"]["TCP"]["source_port"]
    );
    assert!(
        lines.iter().any(|l| l.ends_with(&format!(": {expected}"))),
        "no line ending in {expected:?} in {lines:#?}"
    );

    // A client generated by protoc + gRPC's Python plugin, against the relay.
    let relay = format!("unix://{}", relay_socket(&lab).display());
    let python = starwars::python_observe(
        &relay,
        &["--verdict", "DROPPED", "--from-pod", "default/xwing"],
    );
    assert!(
        python
            .iter()
            .any(|r| is_drop(r) && r["flow"]["destination"]["pod_name"] == "deathstar"),
        "{python:?}"
    );
    let (status, _) = hubble(&lab, &["status"]);
    assert!(
        status.iter().any(|l| l == "Connected Nodes: 2/2"),
        "{status:?}"
    );

    // node1's agent dies: unavailable, and node2's flows are still served.
    let pid = state(&lab)["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == "node1"))
        .and_then(|n| n["agent_pid"].as_i64())
        .expect("node1's agent PID in the lab state");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("stopping node1's agent");
    let status = eventually(Duration::from_secs(10), "node1 unavailable", || {
        let (status, _) = hubble(&lab, &["status"]);
        status
            .iter()
            .any(|l| l == "Connected Nodes: 1/2")
            .then_some(status)
    });
    assert!(
        status.iter().any(|l| l == "  - default/node1"),
        "{status:?}"
    );
    let (nodes, _) = hubble(&lab, &["list", "nodes"]);
    assert!(
        nodes
            .iter()
            .any(|l| l.starts_with("default/node1") && l.contains("Unavailable")),
        "{nodes:?}"
    );
    assert!(
        nodes
            .iter()
            .any(|l| l.starts_with("default/node2") && l.contains("Connected")),
        "{nodes:?}"
    );
    let (lines, stderr) = hubble(&lab, &["observe", "--verdict", "DROPPED", "-t", "drop"]);
    assert!(
        stderr.contains("1 nodes are unavailable: default/node1"),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Policy denied DROPPED")),
        "node2's drop still served: {lines:?}"
    );
}
