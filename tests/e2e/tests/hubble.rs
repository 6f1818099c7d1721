//! Hubble in the Star Wars lab: with the L3/L4 policy, xwing's connection to deathstar is
//! dropped at deathstar's node, and that node's Hubble socket answers a client generated from
//! the project's `.proto` files by a standard toolchain (protoc + gRPC's Python plugin) with
//! the drop: both pods' names, namespaces, labels and identities, "POLICY_DENIED", ingress.
//! Tiefighter's allowed connection shows as forwarded, delivered to the endpoint.
//!
//! A pod of a Deployment (a Pod owned by ReplicaSet `client-7d4b9c8f5`) connecting to a
//! ClusterIP service on another node: `hubble observe` on the client's node shows the
//! request with the service as `destination_service` (the datapath translated it to the
//! backend and reported the frontend), the reply translated back with the service as
//! `source_service`, and the client as workload `Deployment/client`. A service whose backend
//! is on the client's own node is named on the backend's to-endpoint flow too.
#![cfg(feature = "privileged-tests")]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cilium_e2e::probe::{in_netns, probe, Proto};
use cilium_e2e::{eventually, run, serial, starwars, stdout, Lab};
use serde_json::Value;

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

const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 30, 10);
const NEAR_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 30, 11);
const CLIENT_POD: &str = "client-7d4b9c8f5-x2x7z";

/// Services `web` and `near` (80 → 8080) and a client pod on node1 as a Deployment's
/// ReplicaSet would create it.
const WEB_AND_CLIENT: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.30.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: near, namespace: default}
spec:
  clusterIP: 10.96.30.11
  selector: {app: near}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Pod
metadata:
  name: client-7d4b9c8f5-x2x7z
  namespace: default
  labels: {app: client}
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: client-7d4b9c8f5
    uid: 6f1c2a3e-0d4b-4c8f-9a5e-7b2d1c0e9f18
    controller: true
    blockOwnerDeletion: true
spec:
  nodeName: node1
  containers:
  - {name: client, image: busybox}
";

/// `hubble --server SERVER observe ARGS` with the project's CLI; its stdout lines.
fn hubble_observe(lab: &Lab, server: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(lab.bin("hubble"));
    cmd.args(["--server", server, "observe"]).args(args);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "hubble observe {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out).lines().map(str::to_string).collect()
}

/// The flows among the last 1,000 of `server` that match `filter` (hubble observe flags).
fn recent_flows(lab: &Lab, server: &str, filter: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = ["--last", "1000", "-o", "json"]
        .into_iter()
        .chain(filter.iter().copied())
        .collect();
    flows(&hubble_observe(lab, server, &args))
}

fn flows(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|response| response["flow"].clone())
        .collect()
}

fn web_service() -> Value {
    serde_json::json!({"name": "web", "namespace": "default"})
}

fn is_client_deployment(endpoint: &Value) -> bool {
    endpoint["pod_name"] == CLIENT_POD
        && endpoint["workloads"].as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w["name"] == "client" && w["kind"] == "Deployment")
        })
}

#[test]
fn flows_name_the_service_a_pod_connected_to_and_the_pods_workload() {
    let _serial = serial();
    let lab = Lab::up_with("hbs", &["--nodes", "2"]);
    lab.pod_add(
        "web",
        &[
            "--node", "node2", "--labels", "app=web", "--serve", "8080/tcp",
        ],
    );
    lab.pod_add(
        "near",
        &[
            "--node", "node1", "--labels", "app=near", "--serve", "8080/tcp",
        ],
    );
    lab.apply("web.yaml", WEB_AND_CLIENT);
    let netns = lab
        .pods()
        .into_iter()
        .find(|p| p["name"] == CLIENT_POD)
        .and_then(|p| p["netns"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{CLIENT_POD} is not in `pod list`"));

    // Connections are made from the test's own thread inside the client pod's namespace
    // (outside the lab's cgroups), so they are translated per packet by the pod's program.
    for (ip, backend) in [(WEB_IP, "web"), (NEAR_IP, "near")] {
        let to = SocketAddrV4::new(ip, 80);

        let answer = eventually(
            Duration::from_secs(30),
            &format!("an answer from the {backend} service"),
            || {
                let ns = netns.clone();
                in_netns(&ns, move || probe(to, Proto::Tcp, Duration::from_secs(3)))
            },
        );
        assert_eq!(answer.trim(), backend, "the backend answers with its name");
    }

    let server = format!("unix://{}", hubble_socket(&lab, "node1").display());
    let requests = eventually(
        Duration::from_secs(10),
        "the request to the service in Hubble",
        || {
            let flows = recent_flows(&lab, &server, &["--to-service", "default/web"]);
            (!flows.is_empty()).then_some(flows)
        },
    );
    let request = requests
        .iter()
        .find(|f| f["destination"]["pod_name"] == "web")
        .unwrap_or_else(|| panic!("no request to the backend pod: {requests:?}"));
    assert_eq!(request["destination_service"], web_service(), "{request}");
    assert_eq!(request["l4"]["TCP"]["destination_port"], 8080, "{request}");
    assert!(is_client_deployment(&request["source"]), "{request}");
    assert_eq!(request["is_reply"], false, "{request}");

    let replies = recent_flows(&lab, &server, &["--from-service", "default/web"]);
    let reply = replies
        .iter()
        .find(|f| f["destination"]["pod_name"] == CLIENT_POD)
        .unwrap_or_else(|| panic!("no reply to the client from the service: {replies:?}"));
    assert_eq!(reply["source_service"], web_service(), "{reply}");
    assert_eq!(reply["IP"]["source"], WEB_IP.to_string(), "{reply}");
    assert_eq!(reply["is_reply"], true, "{reply}");
    assert!(is_client_deployment(&reply["destination"]), "{reply}");

    // Delivered on the same node: the backend's to-endpoint flow names the service.
    let near = recent_flows(&lab, &server, &["--to-service", "default/near"]);
    assert!(
        near.iter()
            .any(|f| f["trace_observation_point"] == "TO_ENDPOINT"
                && f["destination"]["pod_name"] == "near"
                && f["destination_service"]
                    == serde_json::json!({"name": "near", "namespace": "default"})),
        "{near:?}"
    );

    // Workload filters, and the compact line naming the service for the reply's source.
    let from_client = recent_flows(&lab, &server, &["--from-workload", "Deployment/client"]);
    assert!(
        !from_client.is_empty()
            && from_client
                .iter()
                .all(|f| is_client_deployment(&f["source"])),
        "{from_client:?}"
    );
    let compact = hubble_observe(
        &lab,
        &server,
        &["--last", "1000", "--from-service", "default/web"],
    );
    assert!(
        compact.iter().any(|line| line.contains("default/web:80")
            && line.contains(&format!("default/{CLIENT_POD}:"))),
        "{compact:?}"
    );
}
