//! Hubble in the Star Wars lab: with the L3/L4 policy, xwing's connection to deathstar is
//! dropped at deathstar's node, and that node's Hubble socket answers a client generated from
//! the project's `.proto` files by a standard toolchain (protoc + gRPC's Python plugin) with
//! the drop: both pods' names, namespaces, labels and identities, "POLICY_DENIED", ingress.
//! Tiefighter's allowed connection shows as forwarded, delivered to the endpoint.
#![cfg(feature = "privileged-tests")]

use std::path::PathBuf;
use std::time::Duration;

use cilium_e2e::{eventually, serial, starwars, Lab};

const POLICY: &str = starwars::L3_L4_POLICY;

/// The node's Hubble socket: `hubble.sock` next to its agent's API socket.
fn hubble_socket(lab: &Lab, node: &str) -> PathBuf {
    let status = lab.status();
    let socket = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == node))
        .and_then(|n| n["socket"].as_str())
        .unwrap_or_else(|| panic!("{node} has no socket in `status -o json`: {status}"));
    PathBuf::from(socket).with_file_name("hubble.sock")
}

#[test]
fn the_star_wars_drop_shows_both_pods_over_the_hubble_socket() {
    let _serial = serial();
    let lab = Lab::up_with("hb", &["--nodes", "2"]);
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

    let server = format!("unix://{}", hubble_socket(&lab, "node2").display());
    let (xwing_id, deathstar_id) = (
        starwars::identity_of(&lab, "xwing"),
        starwars::identity_of(&lab, "deathstar"),
    );
    // `hubble observe --verdict DROPPED --from-pod default/xwing` on deathstar's node.
    let drops = eventually(Duration::from_secs(10), "xwing's drop in Hubble", || {
        let flows = starwars::python_observe(
            &server,
            &["--verdict", "DROPPED", "--from-pod", "default/xwing"],
        );
        flows
            .iter()
            .any(|r| r["flow"]["event_type"]["type"] == 1)
            .then_some(flows)
    });
    let drop = &drops
        .iter()
        .find(|r| r["flow"]["event_type"]["type"] == 1)
        .expect("a drop notification")["flow"];
    assert_eq!(drop["verdict"], "DROPPED", "{drop}");
    assert_eq!(drop["drop_reason_desc"], "POLICY_DENIED", "{drop}");
    assert_eq!(drop["traffic_direction"], "INGRESS", "{drop}");
    assert_eq!(drop["node_name"], "default/node2", "{drop}");
    assert_eq!(drop["Type"], "L3_L4", "{drop}");
    assert_eq!(drop["l4"]["TCP"]["destination_port"], 80, "{drop}");
    assert_eq!(drop["Summary"], "TCP Flags: SYN", "{drop}");

    let source = &drop["source"];
    assert_eq!(source["namespace"], "default", "{drop}");
    assert_eq!(source["pod_name"], "xwing", "{drop}");
    assert_eq!(source["identity"], xwing_id, "{drop}");
    assert!(
        starwars::has_label(source, "k8s:org=alliance")
            && starwars::has_label(source, "k8s:class=xwing"),
        "{drop}"
    );
    let destination = &drop["destination"];
    assert_eq!(destination["namespace"], "default", "{drop}");
    assert_eq!(destination["pod_name"], "deathstar", "{drop}");
    assert_eq!(destination["identity"], deathstar_id, "{drop}");
    assert!(
        destination["ID"].as_u64().is_some_and(|id| id > 0),
        "{drop}"
    );
    assert!(
        starwars::has_label(destination, "k8s:org=empire")
            && starwars::has_label(destination, "k8s:io.kubernetes.pod.namespace=default"),
        "{drop}"
    );
    assert!(
        drops.iter().any(|r| r["flow"]["event_type"]["type"] == 5
            && r["flow"]["drop_reason_desc"] == "POLICY_DENIED"),
        "the policy verdict is a flow too: {drops:?}"
    );

    // Tiefighter's connection: forwarded, delivered to deathstar's endpoint.
    let forwarded = starwars::python_observe(
        &server,
        &["--verdict", "FORWARDED", "--from-pod", "default/tiefighter"],
    );
    assert!(
        forwarded.iter().any(|r| {
            let flow = &r["flow"];
            flow["trace_observation_point"] == "TO_ENDPOINT"
                && flow["destination"]["pod_name"] == "deathstar"
                && flow["is_reply"] == false
        }),
        "{forwarded:?}"
    );

    // `hubble status` and `hubble list nodes`.
    let status = &starwars::python_observe(&server, &["--status"])[0];
    let held: u64 = status["num_flows"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("num_flows: {status}"));
    assert!(held >= 2, "{status}");
    assert_eq!(status["max_flows"], "4095", "{status}");
    let nodes = &starwars::python_observe(&server, &["--nodes"])[0];
    assert_eq!(nodes["nodes"][0]["name"], "default/node2", "{nodes}");
}
