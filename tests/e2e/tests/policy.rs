//! The Star Wars demo's L3/L4 policy, imported on every node: tiefighter (org=empire) reaches
//! deathstar on TCP/80 across nodes, xwing (org=alliance) is dropped with "Policy denied"
//! at deathstar's node, and `cilium policy trace` says why; deleting the policy lets xwing in
//! again. Applied once through the kvstore, the same policy holds across nodes in native
//! routing too.
#![cfg(feature = "privileged-tests")]

use std::time::Duration;

use cilium_e2e::{eventually, serial, starwars, Lab};

const POLICY: &str = starwars::L3_L4_POLICY;

#[test]
fn starwars_l3_l4_policy_lets_the_empire_in_and_drops_the_alliance() {
    let _serial = serial();
    let lab = Lab::up_with("sw", &["--nodes", "2"]);
    let deathstar = starwars::deploy(&lab);
    assert!(
        starwars::lands(&lab, "xwing", &deathstar),
        "without policy everyone gets in"
    );

    for node in ["node1", "node2"] {
        let out = lab.cilium(node, &["policy", "import", POLICY]);
        assert!(out.contains("Revision:"), "{out}");
    }
    assert!(
        starwars::lands(&lab, "tiefighter", &deathstar),
        "tiefighter must reach deathstar:80"
    );
    assert!(
        !starwars::lands(&lab, "xwing", &deathstar),
        "xwing must be dropped"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&lab.cilium("node2", &["bpf", "metrics", "list", "-o", "json"]))
            .unwrap();
    assert!(
        metrics
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reason_code"] == 133
                && m["reason"] == "Policy denied"
                && m["direction"] == "INGRESS"),
        "deathstar's node counts the drop as Policy denied: {metrics}"
    );

    // `cilium policy trace` explains both verdicts, by labels and by the pod's endpoint.
    let namespace = "k8s:io.kubernetes.pod.namespace=default";
    let deathstar_labels = format!("k8s:org=empire,k8s:class=deathstar,{namespace}");
    let trace = lab.cilium(
        "node2",
        &[
            "policy",
            "trace",
            "--src-labels",
            &format!("k8s:org=empire,k8s:class=tiefighter,{namespace}"),
            "--dst-labels",
            &deathstar_labels,
            "--dport",
            "80/TCP",
        ],
    );
    assert!(
        trace.contains("allowed by CiliumNetworkPolicy default/rule1")
            && trace.contains("Final verdict: ALLOWED"),
        "{trace}"
    );
    let trace = lab.cilium(
        "node1",
        &[
            "policy",
            "trace",
            "--src-k8s-pod",
            "default:xwing",
            "--dst-labels",
            &deathstar_labels,
            "--dport",
            "80/TCP",
        ],
    );
    assert!(
        trace.contains("no rule matched (default deny)") && trace.contains("Final verdict: DENIED"),
        "{trace}"
    );

    // Policies are applied in place: deleting them opens the door again.
    lab.cilium("node2", &["policy", "delete", "--all"]);
    eventually(Duration::from_secs(5), "xwing to get in again", || {
        starwars::lands(&lab, "xwing", &deathstar).then_some(())
    });
}

#[test]
fn a_policy_applied_on_one_node_is_enforced_on_every_node_in_native_routing() {
    let _serial = serial();
    let lab = Lab::up_with("sa", &["--nodes", "2", "--routing", "native"]);
    let deathstar = starwars::deploy(&lab);

    // Applied through node1's agent only: stored in the kvstore, enforced on node2.
    let out = lab.cilium("node1", &["apply", "-f", POLICY]);
    assert!(
        out.contains("cilium/state/resources/v1/default/CiliumNetworkPolicy/default/rule1 applied"),
        "{out}"
    );
    eventually(Duration::from_secs(10), "node2 to enforce rule1", || {
        (!starwars::lands(&lab, "xwing", &deathstar)).then_some(())
    });
    assert!(starwars::lands(&lab, "tiefighter", &deathstar));
    let rules = lab.cilium("node2", &["policy", "get"]);
    assert!(rules.contains("rule1"), "{rules}");

    // Invalid input is refused and changes nothing.
    let bad = std::env::temp_dir().join(format!("{}-bad.yaml", lab.name));
    std::fs::write(&bad, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: broken}\nspec:\n  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: \"99999\"}]}]\n").unwrap();
    let cli = lab.bin("cilium").display().to_string();
    let out = lab.node_exec("node1", &[&cli, "apply", "-f", bad.to_str().unwrap()]);
    let _ = std::fs::remove_file(&bad);
    assert!(!out.status.success(), "a malformed policy must be refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("port"),
        "the error names the field"
    );
    assert!(
        starwars::lands(&lab, "tiefighter", &deathstar),
        "the refused file changed nothing"
    );

    lab.cilium("node1", &["delete", "-f", POLICY]);
    eventually(Duration::from_secs(10), "node2 to drop rule1", || {
        starwars::lands(&lab, "xwing", &deathstar).then_some(())
    });
}
