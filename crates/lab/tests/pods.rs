//! Pods on a running lab, with the real agent and CNI plugin: wiring, the toolbox between
//! pods, identities, exec, and deletion.

#![cfg(feature = "privileged-tests")]

mod common;

use common::{assert_lab_gone, namespaces_with_prefix, LabGuard};

fn pod_list(lab: &LabGuard) -> Vec<serde_json::Value> {
    let text = lab.ok(&["pod", "list", "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&text)
        .expect("pod list -o json is JSON")
        .as_array()
        .expect("pod list is an array")
        .clone()
}

#[test]
fn pods_talk_through_the_toolbox_and_go_away_cleanly() {
    common::require_bins(&["cilium-agent", "cilium-cni", "cilium"]);
    let lab = LabGuard::new();
    lab.ok(&["up"]);
    lab.ok(&["pod", "add", "client", "--labels", "app=client"]);
    lab.ok(&[
        "pod",
        "add",
        "server",
        "--labels",
        "app=server",
        "--serve",
        "80/tcp,80/udp,8080/http",
    ]);
    let dup = lab.run(&["pod", "add", "client"]);
    assert!(!dup.status.success(), "adding an existing pod must fail");

    let pods = pod_list(&lab);
    assert_eq!(pods.len(), 2, "{pods:?}");
    let server = pods
        .iter()
        .find(|p| p["name"] == "server")
        .expect("server listed");
    let server_ip = server["ip"].as_str().expect("server has an IP").to_string();
    let status = common::status(&lab);
    let cidr = common::status_node(&status, "node1")["pod_cidr"]
        .as_str()
        .expect("node1 has a pod CIDR")
        .to_string();
    let network = cidr.trim_end_matches(".0/24");
    assert!(
        cidr.ends_with(".0/24") && server_ip.starts_with(&format!("{network}.")),
        "server IP {server_ip} outside node1's pod CIDR {cidr}"
    );
    for pod in &pods {
        assert!(
            pod["identity"].as_u64().is_some_and(|id| id > 0),
            "pod without a security identity: {pod}"
        );
    }
    assert_eq!(server["labels"]["app"], "server");

    let exec = |args: &[&str]| {
        let mut all = vec!["exec", "--name", &lab.name, "client", "--"];
        all.extend_from_slice(args);
        lab.run_raw(&all)
    };
    let target = format!("{server_ip}:80");
    for extra in [&[][..], &["--udp"][..], &["--http"][..]] {
        let mut args = vec!["cilium-lab", "connect", &target];
        args.extend_from_slice(extra);
        let out = exec(&args);
        assert!(
            out.status.success(),
            "connect {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "server");
    }
    let code = exec(&["sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "exec passes the exit code on");

    let env = lab.run_raw(&[
        "node",
        "exec",
        "--name",
        &lab.name,
        "node1",
        "--",
        "sh",
        "-c",
        "echo $CILIUM_SOCK",
    ]);
    assert!(
        String::from_utf8_lossy(&env.stdout)
            .trim()
            .ends_with("/node1/cilium.sock"),
        "node exec sets CILIUM_SOCK: {}",
        String::from_utf8_lossy(&env.stdout)
    );

    lab.ok(&["pod", "del", "server"]);
    let gone = exec(&["cilium-lab", "connect", &target, "--timeout", "2"]);
    assert!(!gone.status.success(), "the deleted server must not answer");
    let pods = pod_list(&lab);
    assert_eq!(pods.len(), 1, "{pods:?}");
    let leftover = namespaces_with_prefix(&format!("cilab-{}-p-default-server", lab.name));
    assert!(
        leftover.is_empty(),
        "pod namespace left behind: {leftover:?}"
    );

    lab.ok(&["down"]);
    assert_lab_gone(&lab.name);
}
