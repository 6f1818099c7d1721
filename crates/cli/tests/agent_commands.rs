//! The real `cilium` binary against a fake agent: `status`, `endpoint list/get`, `node list`,
//! `kvstore get`, `identity list/get`, `-o json`, and the error paths a user hits when the
//! agent is missing or refuses.

#[path = "support/fake_agent.rs"]
mod fake_agent;
#[path = "support/run.rs"]
mod run;

use fake_agent::FakeAgent;
use run::{run_cilium, stderr, stdout};
use serde_json::{json, Value};

fn status_json() -> Value {
    json!({
        "cilium": {"state": "Ok"},
        "node-name": "node-1",
        "version": "0.1.0",
        "routing-mode": "Tunnel",
        "datapath-mode": "veth",
        "attach-mode": "TCX",
        "ipam": {"alloc-range": "10.0.1.0/24", "allocated": 2, "capacity": 254},
        "endpoints": 2,
        "bpf-root": "/sys/fs/bpf/cilium-node-1",
        "uptime-seconds": 42
    })
}

fn endpoint_json(id: u16, identity: u32, labels: &[&str], ipv4: &str) -> Value {
    json!({
        "id": id,
        "status": {
            "state": "ready",
            "identity": {"id": identity, "labels": labels},
            "networking": {
                "addressing": [{"ipv4": ipv4}],
                "host-mac": "aa:bb:cc:00:00:01",
                "mac": "aa:bb:cc:00:00:02",
                "interface-index": 8,
                "interface-name": "lxc0a1b2c3d4e5"
            },
            "external-identifiers": {"container-id": "3f2a9c"},
            "labels": {"realized": labels},
            "policy": {"ingress-enforcement": "Enabled", "egress-enforcement": "Disabled"},
            "realized-generation": 1
        }
    })
}

fn agent() -> FakeAgent {
    FakeAgent::start(&[
        ("/v1/healthz", 200, status_json()),
        (
            "/v1/endpoint",
            200,
            json!([
                endpoint_json(
                    829,
                    40321,
                    &["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"],
                    "10.0.1.5"
                ),
                endpoint_json(212, 4, &["reserved:health"], "10.0.1.7"),
            ]),
        ),
        (
            "/v1/endpoint/829",
            200,
            endpoint_json(829, 40321, &["k8s:app=web"], "10.0.1.5"),
        ),
        (
            "/v1/endpoint/container-id:3f2a9c",
            200,
            endpoint_json(829, 40321, &["k8s:app=web"], "10.0.1.5"),
        ),
    ])
}

#[test]
fn status_shows_health_ipam_and_attach_mode() {
    let agent = agent();
    let socket = agent.socket();
    let out = run_cilium(&["-H", socket.to_str().unwrap(), "status"], &[]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "status failed: {}{}",
        text,
        stderr(&out)
    );
    for line in [
        "Cilium:        Ok   0.1.0",
        "Node:          node-1",
        "Attach Mode:   TCX",
        "IPAM:          IPv4: 2/254 allocated from 10.0.1.0/24",
        "Endpoints:     2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert_eq!(agent.requests(), vec!["GET /v1/healthz"]);
}

#[test]
fn host_accepts_unix_uri_and_environment() {
    let agent = agent();
    let uri = format!("unix://{}", agent.socket().display());
    let out = run_cilium(&["status", "-H", &uri], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_cilium(
        &["status"],
        &[("CILIUM_SOCK", agent.socket().to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("node-1"));
}

#[test]
fn status_json_is_the_agent_model() {
    let agent = agent();
    let out = run_cilium(
        &[
            "-H",
            agent.socket().to_str().unwrap(),
            "status",
            "-o",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status -o json is not JSON ({e}): {}", stdout(&out)));
    assert_eq!(parsed, status_json());
}

#[test]
fn status_without_agent_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cilium.sock");
    let out = run_cilium(&["-H", socket.to_str().unwrap(), "status"], &[]);
    assert_eq!(out.status.code(), Some(1), "unreachable agent must exit 1");
    let expected = format!(
        "Cilium:   Failure   cannot reach agent at {}",
        socket.display()
    );
    assert_eq!(stdout(&out).trim_end(), expected);
    let err = stderr(&out);
    assert!(
        err.starts_with("Error: agent status unavailable: cannot connect to the agent at")
            && err.contains("No such file"),
        "stderr should say why: {err}"
    );
}

#[test]
fn endpoint_list_table_and_json() {
    let agent = agent();
    let socket = agent.socket();
    let out = run_cilium(&["-H", socket.to_str().unwrap(), "endpoint", "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY"),
        "{text}"
    );
    assert!(lines[1].trim_start().starts_with("ENFORCEMENT"), "{text}");
    // Sorted by endpoint ID; labels sorted, extra labels on their own rows.
    let row_212: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        row_212,
        [
            "212",
            "Enabled",
            "Disabled",
            "4",
            "reserved:health",
            "10.0.1.7",
            "ready"
        ]
    );
    let row_829: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        row_829,
        [
            "829",
            "Enabled",
            "Disabled",
            "40321",
            "k8s:app=web",
            "10.0.1.5",
            "ready"
        ]
    );
    assert_eq!(lines[4].trim(), "k8s:io.kubernetes.pod.namespace=default");
    assert_eq!(lines.len(), 5, "{text}");

    let out = run_cilium(
        &[
            "-H",
            socket.to_str().unwrap(),
            "endpoint",
            "list",
            "-o",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("endpoint list -o json");
    let ids: Vec<u64> = parsed
        .as_array()
        .expect("array of endpoints")
        .iter()
        .map(|ep| ep["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [212, 829]);
    assert_eq!(
        parsed[1]["status"]["networking"]["interface-name"],
        "lxc0a1b2c3d4e5"
    );
}

#[test]
fn endpoint_get_prints_a_one_element_array() {
    let agent = agent();
    let socket = agent.socket();
    for id in ["829", "container-id:3f2a9c"] {
        let out = run_cilium(
            &["-H", socket.to_str().unwrap(), "endpoint", "get", id],
            &[],
        );
        assert!(out.status.success(), "endpoint get {id}: {}", stderr(&out));
        let parsed: Value = serde_json::from_slice(&out.stdout).expect("endpoint get is JSON");
        assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{parsed}");
        assert_eq!(parsed[0]["id"], 829);
        assert_eq!(
            parsed[0]["status"]["networking"]["addressing"][0]["ipv4"],
            "10.0.1.5"
        );
    }
}

#[test]
fn endpoint_get_errors_reach_the_user() {
    let agent = agent();
    let socket = agent.socket();
    let out = run_cilium(
        &["-H", socket.to_str().unwrap(), "endpoint", "get", "4242"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot get endpoint 4242") && err.contains("404"),
        "{err}"
    );

    let out = run_cilium(
        &["-H", socket.to_str().unwrap(), "endpoint", "get", "web"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid endpoint ID \"web\""),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn bad_usage_exits_non_zero() {
    let out = run_cilium(&["endpoint", "frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("frobnicate"));
    let out = run_cilium(&["-H", "tcp://10.0.0.1:80", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported agent address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bpf_commands_find_the_bpf_root() {
    // No flag, no agent: the user is told how to proceed.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("cilium.sock");
    let out = run_cilium(
        &["-H", missing.to_str().unwrap(), "bpf", "endpoint", "list"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("pass --bpf-root or set CILIUM_BPF_ROOT"),
        "{err}"
    );

    // The agent's config names the root; the map path under it shows up in the error.
    let root = dir.path().join("agent-bpf-root");
    let agent = FakeAgent::start(&[(
        "/v1/config",
        200,
        json!({
            "node-name": "node-1",
            "pod-cidr": "10.0.1.0/24",
            "router-ip": "10.0.1.1",
            "bpf-root": root.display().to_string(),
            "state-dir": "/var/run/cilium/state",
            "socket-path": "/var/run/cilium/cilium.sock",
            "attach-mode": "TCX",
            "routing-mode": "Tunnel",
        "datapath-mode": "veth",
            "monitor-aggregation": "medium"
        }),
    )]);
    let socket = agent.socket();
    for args in [
        ["bpf", "endpoint", "list", ""],
        ["bpf", "ct", "list", "global"],
        ["bpf", "metrics", "list", ""],
        ["bpf", "ipcache", "list", ""],
    ] {
        let mut argv = vec!["-H", socket.to_str().unwrap()];
        argv.extend(args.iter().filter(|a| !a.is_empty()));
        let out = run_cilium(&argv, &[]);
        assert_eq!(out.status.code(), Some(1), "{argv:?}");
        let err = stderr(&out);
        let expected = root.join("tc/globals/cilium_");
        assert!(
            err.contains(expected.to_str().unwrap()),
            "{argv:?} should name the map under the agent's root: {err}"
        );
    }
    assert!(agent.requests().iter().all(|r| r == "GET /v1/config"));

    // The environment wins over the agent, which is then not asked.
    let env_root = dir.path().join("env-root");
    let out = run_cilium(
        &["-H", socket.to_str().unwrap(), "bpf", "metrics", "list"],
        &[("CILIUM_BPF_ROOT", env_root.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(env_root.join("tc/globals/cilium_metrics").to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    assert_eq!(agent.requests().len(), 4);
}

/// Runs `cilium -H <agent> ARGS`.
fn cli(agent: &FakeAgent, args: &[&str]) -> std::process::Output {
    let socket = agent.socket();
    let mut argv = vec!["-H", socket.to_str().expect("utf-8 socket path")];
    argv.extend_from_slice(args);
    run_cilium(&argv, &[])
}

#[test]
fn status_shows_kvstore_and_cluster_when_the_agent_reports_them() {
    let mut status = status_json();
    status["kvstore"] = json!({
        "state": "Ok",
        "msg": "etcd: 1/1 connected, has-quorum=true: http://10.99.0.2:2379 - 3.4.23 (Leader)"
    });
    status["cluster"] = json!({"cluster-name": "default", "nodes": ["node1", "node2", "node3"]});
    let agent = FakeAgent::start(&[("/v1/healthz", 200, status.clone())]);
    let out = cli(&agent, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "KVStore:       Ok   etcd: 1/1 connected, has-quorum=true: http://10.99.0.2:2379 - 3.4.23 (Leader)",
        "{text}"
    );
    assert!(
        lines.contains(&"Cluster:       default (3 nodes: node1, node2, node3)"),
        "{text}"
    );
    assert!(
        lines.contains(&"Routing:       Network: Tunnel   Host: Legacy"),
        "{text}"
    );

    let out = cli(&agent, &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("status -o json");
    assert_eq!(parsed, status);

    // An agent that reports neither prints neither line.
    let plain = FakeAgent::start(&[("/v1/healthz", 200, status_json())]);
    let text = stdout(&cli(&plain, &["status"]));
    assert!(
        !text.contains("KVStore:") && !text.contains("Cluster:"),
        "{text}"
    );
}

fn node_json(cluster: &str, name: &str, ip: &str, cidr: &str) -> Value {
    json!({
        "name": name,
        "cluster": cluster,
        "primary-address": {"ipv4": {"enabled": true, "ip": ip, "alloc-range": cidr}},
        "ipv4-alloc-cidr": cidr
    })
}

#[test]
fn node_list_marks_the_answering_node_local() {
    let agent = FakeAgent::start(&[(
        "/v1/cluster/nodes",
        200,
        json!({
            "self": "node2",
            "nodes-added": [
                node_json("default", "node3", "172.18.0.13", "10.0.3.0/24"),
                node_json("default", "node2", "172.18.0.12", "10.0.2.0/24"),
                node_json("default", "node1", "172.18.0.11", "10.0.1.0/24"),
            ]
        }),
    )]);
    let out = cli(&agent, &["node", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        text.starts_with(
            "Name    IPv4 Address   Endpoint CIDR   IPv6 Address   Endpoint CIDR   Source\n"
        ),
        "{text}"
    );
    assert_eq!(rows[1], ["node1", "172.18.0.11", "10.0.1.0/24", "kvstore"]);
    assert_eq!(rows[2], ["node2", "172.18.0.12", "10.0.2.0/24", "local"]);
    assert_eq!(rows[3], ["node3", "172.18.0.13", "10.0.3.0/24", "kvstore"]);
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(agent.requests(), vec!["GET /v1/cluster/nodes"]);

    let out = cli(&agent, &["node", "list", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("node list -o json");
    let names: Vec<(&str, &str)> = parsed
        .as_array()
        .expect("array of nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name"),
                n["source"].as_str().expect("source"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("node1", "kvstore"),
            ("node2", "local"),
            ("node3", "kvstore")
        ]
    );
    assert_eq!(parsed[0]["primary-address"]["ipv4"]["ip"], "172.18.0.11");
}

#[test]
fn node_list_without_agent_fails() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cilium.sock");
    let out = run_cilium(&["-H", socket.to_str().unwrap(), "node", "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error: cannot list nodes: cannot connect to the agent"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

const NODE1_KEY: &str = "cilium/state/nodes/v1/default/node1";
const NODE1_VALUE: &str = r#"{"Name":"node1","Cluster":"default","IPv4AllocCIDR":"10.0.1.0/24"}"#;
const NODE2_VALUE: &str = r#"{"Name":"node2","Cluster":"default","IPv4AllocCIDR":"10.0.2.0/24"}"#;

fn kvstore_agent() -> FakeAgent {
    FakeAgent::start(&[
        (
            "/v1/kvstore?key=cilium%2Fstate%2Fnodes%2Fv1%2Fdefault%2Fnode1&recursive=false",
            200,
            json!([{"key": NODE1_KEY, "value": NODE1_VALUE}]),
        ),
        (
            "/v1/kvstore?key=cilium%2Fstate%2Fnodes%2Fv1%2Fdefault%2Fnode9&recursive=false",
            200,
            json!([]),
        ),
        (
            "/v1/kvstore?key=cilium%2Fstate%2Fnodes%2F&recursive=true",
            200,
            json!([
                {"key": "cilium/state/nodes/v1/default/node2", "value": NODE2_VALUE},
                {"key": NODE1_KEY, "value": NODE1_VALUE},
            ]),
        ),
        (
            "/v1/kvstore?key=cilium%2Fstate%2Fservices%2F&recursive=true",
            200,
            json!([]),
        ),
    ])
}

#[test]
fn kvstore_get_prints_key_arrow_value() {
    let agent = kvstore_agent();
    let out = cli(&agent, &["kvstore", "get", NODE1_KEY]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{NODE1_KEY} => {NODE1_VALUE}\n"));

    let out = cli(&agent, &["kvstore", "get", NODE1_KEY, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("kvstore get -o json");
    assert_eq!(parsed, json!([{"key": NODE1_KEY, "value": NODE1_VALUE}]));
}

#[test]
fn kvstore_get_of_a_missing_key_fails() {
    let agent = kvstore_agent();
    let key = "cilium/state/nodes/v1/default/node9";
    let out = cli(&agent, &["kvstore", "get", key]);
    assert_eq!(out.status.code(), Some(1), "a missing key must exit 1");
    assert_eq!(
        stderr(&out).trim_end(),
        format!("Error: key \"{key}\" not found")
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn kvstore_get_recursive_lists_the_prefix_sorted() {
    let agent = kvstore_agent();
    let out = cli(
        &agent,
        &["kvstore", "get", "--recursive", "cilium/state/nodes/"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{NODE1_KEY} => {NODE1_VALUE}\n\
             cilium/state/nodes/v1/default/node2 => {NODE2_VALUE}\n"
        )
    );

    let out = cli(
        &agent,
        &[
            "kvstore",
            "get",
            "--recursive",
            "cilium/state/nodes/",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("recursive -o json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(2), "{parsed}");
    assert_eq!(parsed[0]["key"], NODE1_KEY);

    // An empty prefix is not an error.
    let out = cli(
        &agent,
        &["kvstore", "get", "--recursive", "cilium/state/services/"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn kvstore_get_reports_agent_errors() {
    // An agent without the kvstore endpoint answers 404.
    let agent = agent();
    let out = cli(&agent, &["kvstore", "get", NODE1_KEY]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "Error: cannot read \"{NODE1_KEY}\" from the kvstore:"
        )) && err.contains("404"),
        "{err}"
    );
}

fn identity_agent() -> FakeAgent {
    FakeAgent::start(&[
        (
            "/v1/identity",
            200,
            json!([
                {"id": 1, "labels": ["reserved:host"]},
                {"id": 7, "labels": ["reserved:kube-apiserver", "reserved:remote-node"]},
                {"id": 40321, "labels": ["k8s:io.kubernetes.pod.namespace=default", "k8s:app=web"]},
            ]),
        ),
        (
            "/v1/identity/40321",
            200,
            json!({"id": 40321, "labels": ["k8s:app=web"]}),
        ),
    ])
}

#[test]
fn identity_list_shows_one_label_per_line() {
    let agent = identity_agent();
    let out = cli(&agent, &["identity", "list"]);
    assert!(out.status.success(), "identity list: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
ID      LABELS
1       reserved:host
7       reserved:kube-apiserver
        reserved:remote-node
40321   k8s:app=web
        k8s:io.kubernetes.pod.namespace=default
"
    );
    let out = cli(&agent, &["identity", "list", "-o", "json"]);
    assert!(
        out.status.success(),
        "identity list -o json: {}",
        stderr(&out)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("identity list is JSON");
    assert_eq!(parsed[2]["id"], 40321);
    assert_eq!(parsed[1]["labels"][1], "reserved:remote-node");
    assert_eq!(agent.requests(), vec!["GET /v1/identity"; 2]);
}

#[test]
fn identity_get_shows_one_identity_or_the_agents_error() {
    let agent = identity_agent();
    let out = cli(&agent, &["identity", "get", "40321"]);
    assert!(out.status.success(), "identity get: {}", stderr(&out));
    assert_eq!(stdout(&out), "ID      LABELS\n40321   k8s:app=web\n");
    let out = cli(&agent, &["identity", "get", "40321", "-o", "json"]);
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("identity get is JSON");
    assert_eq!(parsed, json!([{"id": 40321, "labels": ["k8s:app=web"]}]));

    let out = cli(&agent, &["identity", "get", "999"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot get identity 999") && err.contains("404"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}
