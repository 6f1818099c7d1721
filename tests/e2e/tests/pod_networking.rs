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

#[test]
fn monitor_shows_forwarded_and_dropped_packets() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let _serial = serial();
    let lab = Lab::up("mo", 1);
    lab.pod_add("alpha", &[]);
    lab.pod_add("beta", &["--serve", "8080/tcp"]);
    let beta = lab.pod_ip("beta");

    let mut monitor = Command::new(lab.bin("cilium-lab"))
        .args(["node", "exec", "node1", "--"])
        .arg(lab.bin("cilium"))
        .arg("monitor")
        .env("CILIUM_LAB_NAME", &lab.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting cilium monitor");
    let stdout = monitor.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Wait for the banner so the subscription exists before traffic starts.
    let banner = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("monitor banner");
    assert!(banner.starts_with("Listening for events"), "{banner}");

    exec_ok(
        &lab,
        "alpha",
        &toolbox(&lab, &["connect", &format!("{beta}:8080")]),
    );
    // A spoofed source address: the datapath must drop it as "Invalid source ip" (132).
    exec_ok(
        &lab,
        "alpha",
        &[
            "ip".into(),
            "addr".into(),
            "add".into(),
            "10.0.1.250/32".into(),
            "dev".into(),
            "eth0".into(),
        ],
    );
    let spoofed = lab.exec(
        "alpha",
        &["ping", "-c", "1", "-W", "1", "-I", "10.0.1.250", &beta],
    );
    assert!(
        !spoofed.status.success(),
        "a spoofed ping must not get an answer"
    );

    let mut seen_delivery = false;
    let mut seen_drop = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(seen_delivery && seen_drop) && std::time::Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        seen_delivery |= line.starts_with("-> endpoint") && line.contains(&format!("{beta}:8080"));
        seen_drop |= line.starts_with("xx drop (Invalid source ip)") && line.contains("10.0.1.250");
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(seen_delivery, "monitor showed no delivery to {beta}:8080");
    assert!(seen_drop, "monitor showed no 'Invalid source ip' drop");

    let metrics: serde_json::Value =
        serde_json::from_str(&lab.cilium("node1", &["bpf", "metrics", "list", "-o", "json"]))
            .unwrap();
    assert!(
        metrics
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reason_code"] == 132 && m["packets"].as_u64() >= Some(1)),
        "metrics count the drop: {metrics}"
    );
}
