//! `apply -f` / `delete -f` with Cilium's Star Wars demo, unchanged: the manifests become
//! pods with their labels and ports (and Pod objects in the store), the L3/L4 policy lets the
//! empire in and keeps the alliance out, and `delete -f` takes the pods away again.

#![cfg(feature = "privileged-tests")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{assert_lab_gone, LabGuard};

fn example(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/starwars")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn pod_list(lab: &LabGuard) -> Vec<serde_json::Value> {
    let text = lab.ok(&["pod", "list", "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&text)
        .expect("pod list -o json is JSON")
        .as_array()
        .expect("pod list is an array")
        .clone()
}

/// `connect` from `pod` to `target`, with a short timeout; the answer on success.
fn connect(lab: &LabGuard, pod: &str, target: &str) -> Option<String> {
    let out = lab.run_raw(&[
        "exec",
        "--name",
        &lab.name,
        pod,
        "--",
        "cilium-lab",
        "connect",
        target,
        "--timeout",
        "1",
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn the_star_wars_demo_applies_enforces_and_deletes() {
    common::require_bins(&["cilium-agent", "cilium-cni", "cilium"]);
    let lab = LabGuard::new();
    lab.ok(&["up", "--nodes", "2"]);
    let app = example("http-sw-app.yaml");
    let policy = example("sw_l3_l4_policy.yaml");

    let stored = lab.ok(&["apply", "-f", &app]);
    assert_eq!(
        stored
            .lines()
            .filter(|l| l.starts_with("stored cilium/state/resources/v1/default/Pod/default/deathstar-"))
            .count(),
        2,
        "the Deployment's pods are stored as Pod objects, as its controller would create them: {stored}"
    );
    let pods = pod_list(&lab);
    assert_eq!(pods.len(), 4, "{pods:#?}");
    let nodes: std::collections::BTreeSet<&str> =
        pods.iter().filter_map(|p| p["node"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "pods spread over both nodes: {pods:#?}");
    let find = |name: &str| {
        pods.iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no pod {name}: {pods:#?}"))
    };
    assert_eq!(find("tiefighter")["labels"]["org"], "empire");
    assert_eq!(find("xwing")["labels"]["org"], "alliance");
    let deathstars: Vec<&serde_json::Value> = pods
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("deathstar-"))
        })
        .collect();
    assert_eq!(deathstars.len(), 2, "{pods:#?}");
    for d in &deathstars {
        assert_eq!(d["labels"]["class"], "deathstar", "{d}");
        assert_eq!(d["labels"]["org"], "empire", "{d}");
    }
    let target = format!("{}:80", deathstars[0]["ip"].as_str().expect("an IP"));
    let name = deathstars[0]["name"].as_str().unwrap().to_string();
    assert_eq!(
        connect(&lab, "xwing", &target).as_deref(),
        Some(name.as_str()),
        "without a policy the deathstar serves port 80 to anyone"
    );
    let again = lab.ok(&["apply", "-f", &app]);
    assert!(
        again.contains("unchanged"),
        "re-applying keeps pods: {again}"
    );
    assert_eq!(pod_list(&lab).len(), 4);

    lab.ok(&["apply", "-f", &policy]);
    common::wait_for(
        "the L3/L4 policy to keep the xwing out",
        Duration::from_secs(20),
        || connect(&lab, "xwing", &target).is_none(),
    );
    assert_eq!(
        connect(&lab, "tiefighter", &target).as_deref(),
        Some(name.as_str()),
        "the empire's tiefighter still lands"
    );

    lab.ok(&["delete", "-f", &policy]);
    lab.ok(&["delete", "-f", &app]);
    let left = pod_list(&lab);
    assert!(left.is_empty(), "delete -f leaves pods: {left:#?}");

    lab.ok(&["down"]);
    assert_lab_gone(&lab.name);
}
