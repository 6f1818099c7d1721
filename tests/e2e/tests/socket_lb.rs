//! Socket load balancing (`bpf_sock.c` on each lab node's cgroup) seen from a client process
//! in a pod: a ClusterIP with backends on two nodes answers over TCP, `getpeername()` shows
//! the service, the packet path did no DNAT (no service conntrack entry, the connection's
//! entry goes straight to the backend), UDP replies come from the service address, a service
//! without backends fails `connect()` at once, the hooks survive an agent restart without
//! duplicates, and with `--bpf-lb-sock=false` the same client still gets through, translated
//! per packet. Hubble on the client's node reports each translation as a trace-sock flow:
//! `post-xlate-fwd` from connect() to the backend, naming the service and the client pod
//! (found by its network namespace's cookie: the socket has no address yet), and `post-xlate-rev`
//! from getpeername() back from the service, for the same socket. The node cgroups go with
//! the lab.
#![cfg(feature = "privileged-tests")]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cilium_e2e::services::active_backends;
use cilium_e2e::{eventually, run, serial, stdout, Lab};

const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 20, 10);
const EMPTY_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 20, 12);
const PROGRAMMED: Duration = Duration::from_secs(30);
/// `connect()` to a service without backends must fail well within this.
const FAILS_AT_ONCE: Duration = Duration::from_secs(2);

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.20.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 80, targetPort: 8080, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.20.12
  selector: {app: nobody}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
";

/// A client run as a process inside a pod (so in its node's cgroup): `tcp IP PORT` connects,
/// prints its local port, `getpeername()` and the answer; `udp IP PORT` sends a datagram and
/// prints the answer and the address `recvfrom()` gives; failures print the errno. One JSON
/// object on stdout.
const CLIENT: &str = r#"
import json, socket, sys, time
mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.monotonic()
out = {}
try:
    if mode == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((ip, port))
        out["local_port"] = s.getsockname()[1]
        peer = s.getpeername()
        out["peer"] = "%s:%d" % peer
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        out["answer"] = data.decode()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(b"hello", (ip, port))
        data, sender = s.recvfrom(4096)
        out["answer"] = data.decode()
        out["peer"] = "%s:%d" % sender
except OSError as e:
    out["errno"] = e.errno
out["seconds"] = time.monotonic() - started
print(json.dumps(out))
"#;

/// What one run of [`CLIENT`] saw.
#[derive(Debug)]
struct ClientRun {
    json: serde_json::Value,
}

impl ClientRun {
    fn answer(&self) -> &str {
        self.json["answer"].as_str().unwrap_or_default()
    }

    fn peer(&self) -> &str {
        self.json["peer"].as_str().unwrap_or_default()
    }

    fn local_port(&self) -> u64 {
        self.json["local_port"]
            .as_u64()
            .unwrap_or_else(|| panic!("no local port in {:?}", self.json))
    }
}

/// Runs [`CLIENT`] in `pod` (through `cilium-lab exec`, which puts it in the node's cgroup).
fn client(lab: &Lab, pod: &str, mode: &str, ip: Ipv4Addr, port: u16) -> ClientRun {
    let ip = ip.to_string();
    let port = port.to_string();
    let out = lab.exec(pod, &["/usr/bin/python3", "-c", CLIENT, mode, &ip, &port]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client in {pod} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"));
    ClientRun { json }
}

/// A client run that got an answer, retried while the service is being programmed.
fn answered(lab: &Lab, pod: &str, mode: &str, ip: Ipv4Addr, port: u16) -> ClientRun {
    eventually(
        Duration::from_secs(20),
        &format!("an answer to {mode} {ip}:{port} from {pod}"),
        || {
            let run = client(lab, pod, mode, ip, port);
            (!run.answer().is_empty()).then_some(run)
        },
    )
}

/// Brings up two nodes with a `web` backend on each and a client pod on node1, and applies
/// the services.
fn cluster(prefix: &str, extra: &[&str]) -> Lab {
    let mut flags = vec!["--nodes", "2"];
    flags.extend_from_slice(extra);
    let lab = Lab::up_with(prefix, &flags);
    for (pod, node) in [("web-1", "node1"), ("web-2", "node2")] {
        lab.pod_add(
            pod,
            &[
                "--node",
                node,
                "--labels",
                "app=web",
                "--serve",
                "8080/tcp,8080/udp",
            ],
        );
    }
    lab.pod_add("client", &["--node", "node1", "--labels", "app=client"]);
    lab.apply("socket-lb.yaml", SERVICES);
    for node in ["node1", "node2"] {
        for proto in ["TCP", "UDP"] {
            eventually(
                PROGRAMMED,
                &format!("{node} to program 2 backends for {WEB_IP}:80/{proto}"),
                || (active_backends(&lab, node, WEB_IP, 80, proto).len() == 2).then_some(()),
            );
        }
    }
    lab
}

/// Conntrack entries of `node` (`cilium bpf ct list global -o json`).
fn conntrack(lab: &Lab, node: &str) -> Vec<serde_json::Value> {
    let out = lab.cilium(node, &["bpf", "ct", "list", "global", "-o", "json"]);
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ct list JSON: {e}\n{out}"));
    rows.as_array().expect("ct list is an array").clone()
}

/// The `Socket LB:` line of `cilium status` on `node`.
fn socket_lb_status(lab: &Lab, node: &str) -> String {
    let status = lab.cilium(node, &["status"]);
    status
        .lines()
        .find(|line| line.contains("Socket LB:"))
        .unwrap_or_else(|| panic!("no `Socket LB:` line in `cilium status`:\n{status}"))
        .to_string()
}

/// The node's cgroup from `cilium-lab status -o json`.
fn node_cgroup(lab: &Lab, node: &str) -> PathBuf {
    let status = lab.status();
    let nodes = status["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in lab status: {status}"));
    let entry = nodes
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("{node} not in lab status: {status}"));
    PathBuf::from(
        entry["cgroup"]
            .as_str()
            .unwrap_or_else(|| panic!("{node} has no cgroup in lab status: {entry}")),
    )
}

/// Names of the programs attached to the cgroup (`bpftool cgroup show`), sorted.
fn attached(cgroup: &PathBuf) -> Vec<String> {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "cgroup", "show"])
        .arg(cgroup)
        .output()
        .unwrap_or_else(|e| panic!("running bpftool: {e}"));
    assert!(
        out.status.success(),
        "bpftool cgroup show {}: {}",
        cgroup.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bpftool JSON: {e}: {text}"));
    let mut names: Vec<String> = json
        .as_array()
        .map(|progs| {
            progs
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `hubble observe --type trace-sock --last 1000 ARGS` against `node`'s Hubble socket
/// (`hubble.sock` next to its agent's API socket); stdout.
fn observe_trace_sock(lab: &Lab, node: &str, args: &[&str]) -> String {
    let status = lab.status();
    let socket = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == node))
        .and_then(|n| n["socket"].as_str())
        .unwrap_or_else(|| panic!("{node} has no socket in `status -o json`: {status}"));
    let server = format!(
        "unix://{}",
        PathBuf::from(socket)
            .with_file_name("hubble.sock")
            .display()
    );
    let mut cmd = Command::new(lab.bin("hubble"));
    cmd.args([
        "--server",
        &server,
        "observe",
        "--type",
        "trace-sock",
        "--last",
        "1000",
    ])
    .args(args);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "hubble observe --type trace-sock {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// The trace-sock flows `node`'s Hubble holds.
fn sock_flows(lab: &Lab, node: &str) -> Vec<serde_json::Value> {
    observe_trace_sock(lab, node, &["-o", "json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("hubble JSON: {e}: {l}"))["flow"]
                .clone()
        })
        .collect()
}

/// Checks that Hubble on node1 shows the socket translations of `run`: getpeername()'s
/// reverse translation from the service to the client's port, and, for the same socket,
/// connect()'s forward translation to the backend that answered, naming the service.
fn assert_translations_in_hubble(lab: &Lab, run: &ClientRun) {
    let web = serde_json::json!({"name": "web", "namespace": "default"});
    let port = run.local_port();
    let backend_ip = lab.pod_ip(run.answer());
    let (reverse, forward) = eventually(
        Duration::from_secs(10),
        &format!("trace-sock flows of client port {port} in Hubble"),
        || {
            let flows = sock_flows(lab, "node1");
            assert!(
                flows.iter().all(|f| f["event_type"]["type"] == 7),
                "--type trace-sock let other events through: {flows:?}"
            );
            let reverse = flows
                .iter()
                .find(|f| {
                    f["sock_xlate_point"] == "SOCK_XLATE_POINT_POST_DIRECTION_REV"
                        && f["l4"]["TCP"]["destination_port"] == port
                })?
                .clone();
            let forward = flows
                .iter()
                .find(|f| {
                    f["sock_xlate_point"] == "SOCK_XLATE_POINT_POST_DIRECTION_FWD"
                        && f["socket_cookie"] == reverse["socket_cookie"]
                })?
                .clone();
            Some((reverse, forward))
        },
    );
    assert_eq!(forward["Type"], "SOCK", "{forward}");
    assert_eq!(forward["verdict"], "TRANSLATED", "{forward}");
    assert_eq!(forward["destination_service"], web, "{forward}");
    assert_eq!(
        forward["IP"]["destination"],
        backend_ip.as_str(),
        "{forward}"
    );
    assert_eq!(forward["l4"]["TCP"]["destination_port"], 8080, "{forward}");
    assert_eq!(
        forward["destination"]["pod_name"],
        run.answer(),
        "the backend pod: {forward}"
    );
    assert_ne!(forward["cgroup_id"], serde_json::Value::Null, "{forward}");
    assert_eq!(
        (
            &forward["source"]["namespace"],
            &forward["source"]["pod_name"]
        ),
        (&serde_json::json!("default"), &serde_json::json!("client")),
        "connect() runs before the socket has an address: its network namespace names the \
         client pod: {forward}"
    );
    assert_eq!(
        forward["IP"]["source"],
        lab.pod_ip("client").as_str(),
        "the client's address comes from its pod: {forward}"
    );
    assert_eq!(reverse["source_service"], web, "{reverse}");
    assert_eq!(reverse["IP"]["source"], WEB_IP.to_string(), "{reverse}");
    assert_eq!(reverse["l4"]["TCP"]["source_port"], 80, "{reverse}");
    assert_eq!(
        reverse["destination"]["pod_name"], "client",
        "getpeername() runs on a bound socket: the client is known: {reverse}"
    );
}

/// The four socket-LB programs (`bpftool` names them by their BTF function names), sorted.
const HOOKS: [&str; 4] = [
    "cil_sock4_connect",
    "cil_sock4_getpeername",
    "cil_sock4_recvmsg",
    "cil_sock4_sendmsg",
];

#[test]
fn socket_lb_translates_at_connect_and_shows_the_service_to_the_application() {
    let _serial = serial();
    let lab = cluster("slb", &[]);
    let cgroup = node_cgroup(&lab, "node1");
    assert!(
        cgroup.starts_with("/sys/fs/cgroup") && cgroup.exists(),
        "node1's cgroup {} is missing",
        cgroup.display()
    );
    assert!(
        socket_lb_status(&lab, "node1").contains("Enabled"),
        "{}",
        socket_lb_status(&lab, "node1")
    );
    assert_eq!(attached(&cgroup), HOOKS, "hooks on {}", cgroup.display());

    // (a) a backend answers, (b) getpeername() is the service; both backends are reached.
    let web: BTreeSet<&str> = ["web-1", "web-2"].into();
    let mut seen = BTreeSet::new();
    let mut runs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "only {seen:?} answered over TCP: {runs:?}"
        );
        let run = answered(&lab, "client", "tcp", WEB_IP, 80);
        assert!(
            web.contains(run.answer()),
            "answer {:?} is not a web backend",
            run.answer()
        );
        assert_eq!(
            run.peer(),
            format!("{WEB_IP}:80"),
            "getpeername() must show the service"
        );
        seen.insert(run.answer().to_string());
        runs.push(run);
    }

    // Hubble shows each translation, with the service, for both backends.
    for run in &runs {
        assert_translations_in_hubble(&lab, run);
    }
    let compact = observe_trace_sock(&lab, "node1", &[]);
    assert!(
        compact.contains(" post-xlate-fwd TRANSLATED (TCP)")
            && compact.contains(" post-xlate-rev TRANSLATED (TCP)"),
        "compact trace-sock lines:\n{compact}"
    );

    // (c) no DNAT on the packet path: the connection's conntrack entries on the client's
    // node go to a backend's 8080 from the client's port, and none is a service entry.
    let ct = conntrack(&lab, "node1");
    for run in &runs {
        let port = run.local_port();
        let mine: Vec<&serde_json::Value> = ct.iter().filter(|e| e["src_port"] == port).collect();
        assert!(
            mine.iter()
                .any(|e| e["dst_port"] == 8080 && e["protocol"] == "TCP"),
            "no conntrack entry from client port {port} to a backend: {mine:?}"
        );
        assert!(
            mine.iter()
                .all(|e| e["direction"] != "SVC" && e["dst"] != WEB_IP.to_string()),
            "the packet path translated client port {port}: {mine:?}"
        );
    }

    // (d) UDP through sendto/recvfrom: the reply comes from the service address.
    let udp = answered(&lab, "client", "udp", WEB_IP, 80);
    assert!(web.contains(udp.answer()), "UDP answer {udp:?}");
    assert_eq!(udp.peer(), format!("{WEB_IP}:80"), "recvfrom() sender");

    // A service without backends fails connect() at once.
    let empty = client(&lab, "client", "tcp", EMPTY_IP, 80);
    let errno = empty.json["errno"].as_i64();
    assert!(
        errno == Some(i64::from(nix::libc::EPERM))
            || errno == Some(i64::from(nix::libc::ECONNREFUSED)),
        "connect to a service without backends: {empty:?}"
    );
    let seconds = empty.json["seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        seconds < FAILS_AT_ONCE.as_secs_f64(),
        "connect to a service without backends took {seconds} s"
    );

    // A restarted agent attaches again, once.
    lab.lab_ok(&["node", "restart-agent", "node1"]);
    assert_eq!(
        attached(&cgroup),
        HOOKS,
        "hooks on {} after a restart",
        cgroup.display()
    );
    let again = answered(&lab, "client", "tcp", WEB_IP, 80);
    assert_eq!(again.peer(), format!("{WEB_IP}:80"), "after a restart");

    // The lab's cgroups go with it.
    drop(lab);
    assert!(
        !cgroup.exists(),
        "{} is left after the lab went down",
        cgroup.display()
    );
}

#[test]
fn without_socket_lb_the_packet_path_translates() {
    let _serial = serial();
    let lab = cluster("nslb", &["--agent-arg=--bpf-lb-sock=false"]);
    let cgroup = node_cgroup(&lab, "node1");
    assert!(
        socket_lb_status(&lab, "node1").contains("Disabled"),
        "{}",
        socket_lb_status(&lab, "node1")
    );
    assert!(
        attached(&cgroup).is_empty(),
        "hooks attached with --bpf-lb-sock=false"
    );
    let run = answered(&lab, "client", "tcp", WEB_IP, 80);
    assert!(
        ["web-1", "web-2"].contains(&run.answer()),
        "answer {:?}",
        run.answer()
    );
    assert_eq!(run.peer(), format!("{WEB_IP}:80"));
    let port = run.local_port();
    let ct = conntrack(&lab, "node1");
    assert!(
        ct.iter()
            .any(|e| e["src_port"] == port && e["direction"] == "SVC"),
        "no service conntrack entry for client port {port}: the packet path did not translate"
    );
    drop(lab);
    assert!(!cgroup.exists(), "{} is left", cgroup.display());
}
