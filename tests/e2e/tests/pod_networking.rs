//! One node, pods talking through the eBPF datapath: ICMP, TCP and UDP between pods, pods to
//! their gateway, and proof that the datapath (not the kernel's routing) carried it.
#![cfg(feature = "privileged-tests")]

use cilium_e2e::{serial, stdout, Lab};

fn toolbox<'a>(lab: &'a Lab, args: &[&'a str]) -> Vec<String> {
    let mut cmd = vec![lab.bin("cilium-lab").display().to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd
}

fn exec_ok(lab: &Lab, pod: &str, cmd: &[String]) -> String {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = lab.exec(pod, &args);
    assert!(
        out.status.success(),
        "{cmd:?} in pod {pod} failed:\n{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn pods_on_one_node_reach_each_other_and_their_gateway() {
    let _serial = serial();
    let lab = Lab::up("pn", 1);
    lab.pod_add("alpha", &["--serve", "8080/tcp,8080/udp"]);
    lab.pod_add("beta", &["--serve", "8080/tcp,8080/udp"]);
    let alpha = lab.pod_ip("alpha");
    let beta = lab.pod_ip("beta");

    for (from, to_ip, to_name) in [("alpha", &beta, "beta"), ("beta", &alpha, "alpha")] {
        let ping = ["ping", "-c", "2", "-W", "2", to_ip.as_str()];
        let out = lab.exec(from, &ping);
        assert!(
            out.status.success(),
            "ping {from} -> {to_ip}: {}",
            stdout(&out)
        );

        let addr = format!("{to_ip}:8080");
        let tcp = exec_ok(&lab, from, &toolbox(&lab, &["connect", &addr]));
        assert_eq!(tcp.trim(), to_name, "TCP answer from {to_name}");
        let udp = exec_ok(&lab, from, &toolbox(&lab, &["connect", &addr, "--udp"]));
        assert_eq!(udp.trim(), to_name, "UDP answer from {to_name}");
    }

    // The gateway is whatever the CNI plugin set as the pod's default route.
    let routes = exec_ok(
        &lab,
        "alpha",
        &["ip".into(), "route".into(), "show".into(), "default".into()],
    );
    let gateway = routes
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or_else(|| panic!("no default route via a gateway in the pod: {routes}"))
        .to_string();
    let out = lab.exec("alpha", &["ping", "-c", "2", "-W", "2", &gateway]);
    assert!(
        out.status.success(),
        "pod -> gateway {gateway}: {}",
        stdout(&out)
    );

    // The datapath did the work: both endpoints are ready, conntrack holds the flows we
    // made, and the metrics map counted forwarded packets.
    let endpoints: serde_json::Value =
        serde_json::from_str(&lab.cilium("node1", &["endpoint", "list", "-o", "json"])).unwrap();
    let endpoints = endpoints.as_array().expect("endpoint list is an array");
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    assert!(
        endpoints.iter().all(|e| e["status"]["state"] == "ready"),
        "{endpoints:?}"
    );

    let ct = lab.cilium("node1", &["bpf", "ct", "list", "global"]);
    for needle in [format!("{alpha}:"), format!("{beta}:8080")] {
        assert!(
            ct.contains(&needle),
            "conntrack has no entry with {needle}:\n{ct}"
        );
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&lab.cilium("node1", &["bpf", "metrics", "list", "-o", "json"]))
            .unwrap();
    let forwarded: u64 = metrics
        .as_array()
        .expect("metrics list is an array")
        .iter()
        .filter(|m| m["reason_code"] == 0)
        .filter_map(|m| m["packets"].as_u64())
        .sum();
    assert!(forwarded >= 8, "metrics count forwarded packets: {metrics}");
}
