//! Cilium's Star Wars demo in a lab, as the policy and Hubble tests use it: deathstar serving
//! TCP/80 on node2, tiefighter (org=empire) and xwing (org=alliance) on node1, the project's
//! L3/L4 policy, and the generated Python Hubble client that reads the flows.

use std::process::Command;

use serde_json::Value;

use crate::{run, stdout, Lab};

/// The Star Wars L3/L4 policy the project ships (`examples/starwars`).
pub const L3_L4_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/starwars/sw_l3_l4_policy.yaml"
);

/// The Hubble client generated from the project's `.proto` files by protoc and gRPC's Python
/// plugin (`crates/hubble-proto/python`).
const PYTHON_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crates/hubble-proto/python/hubble_observe.py"
);

/// Adds the Star Wars pods to `lab` (two nodes or more); returns deathstar's `IP:80`.
pub fn deploy(lab: &Lab) -> String {
    lab.pod_add(
        "deathstar",
        &[
            "--node",
            "node2",
            "--labels",
            "org=empire,class=deathstar",
            "--serve",
            "80/tcp",
        ],
    );
    lab.pod_add(
        "tiefighter",
        &["--node", "node1", "--labels", "org=empire,class=tiefighter"],
    );
    lab.pod_add(
        "xwing",
        &["--node", "node1", "--labels", "org=alliance,class=xwing"],
    );
    format!("{}:80", lab.pod_ip("deathstar"))
}

/// Whether `ship` reaches the deathstar at `deathstar` (`IP:80`) within a second.
pub fn lands(lab: &Lab, ship: &str, deathstar: &str) -> bool {
    let cli = lab.bin("cilium-lab").display().to_string();
    let out = lab.exec(ship, &[&cli, "connect", deathstar, "--timeout", "1"]);
    out.status.success() && stdout(&out).trim() == "deathstar"
}

/// The generated Python client against `server` (`unix://PATH` or `HOST:PORT`); one JSON
/// value per response.
pub fn python_observe(server: &str, args: &[&str]) -> Vec<Value> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let mut cmd = Command::new(&python);
    cmd.arg(PYTHON_CLIENT)
        .arg("--server")
        .arg(server)
        .args(args);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "hubble_observe.py {args:?} failed (scripts/setup.sh installs its packages):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The security identity `cilium-lab pod list` shows for `pod`.
pub fn identity_of(lab: &Lab, pod: &str) -> u64 {
    lab.pods()
        .into_iter()
        .find(|p| p["name"] == pod)
        .and_then(|p| p["identity"].as_u64())
        .unwrap_or_else(|| panic!("{pod} has no identity in `pod list`"))
}

/// Whether a flow endpoint (`source`/`destination` in Hubble's JSON) carries `label`.
pub fn has_label(end: &Value, label: &str) -> bool {
    end["labels"]
        .as_array()
        .is_some_and(|labels| labels.iter().any(|l| l == label))
}
