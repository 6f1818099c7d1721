//! Pod metadata from the resource model: Namespace and Pod objects applied with
//! `cilium-lab apply -f` reach the agents, so a pod's identity carries its namespace's
//! labels and service account, relabelling the Namespace gives the pod a new identity, and
//! policies that name a port from the Pod spec (`toPorts: [{port: http-alt}]`) allow
//! exactly that port, on ingress (the pod's own ports) and egress (the peers' ports).
#![cfg(feature = "privileged-tests")]

use std::time::Duration;

use cilium_e2e::{eventually, serial, stdout, Lab, TempFile};

/// Namespace `shop` (team=`team`), server (TCP 8080 named `http-alt`, TCP 9090 unnamed) on
/// node2, client on node1.
fn manifest(team: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{team: {team}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: shop, labels: {{app: server}}}}
spec:
  nodeName: node2
  serviceAccountName: web
  containers:
  - name: server
    ports:
    - {{name: http-alt, containerPort: 8080}}
    - {{containerPort: 9090}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: shop, labels: {{app: client}}}}
spec:
  nodeName: node1
  containers: [{{name: client}}]
"
    )
}

/// Only TCP 8080, by its name, from client to server (ingress at the server).
const INGRESS_BY_NAME: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-ingress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: http-alt, protocol: TCP}]}]
";

/// Only TCP 8080, by its name, from client to server (egress at the client).
const EGRESS_BY_NAME: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: http-alt}]}]
";

/// Whether the client gets an answer from `addr` (the server's name).
fn connect(lab: &Lab, addr: &str) -> bool {
    let cli = lab.bin("cilium-lab").display().to_string();
    let out = lab.lab(&[
        "exec",
        "--namespace",
        "shop",
        "client",
        "--",
        &cli,
        "connect",
        addr,
        "--timeout",
        "1",
    ]);
    out.status.success() && stdout(&out).trim() == "server"
}

/// The server endpoint's identity number and labels, as node2's agent reports them.
fn server_identity(lab: &Lab) -> (u64, Vec<String>) {
    let text = lab.cilium("node2", &["endpoint", "list", "-o", "json"]);
    let endpoints: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("endpoint list JSON: {e}\n{text}"));
    let server = endpoints
        .as_array()
        .expect("endpoint list is an array")
        .iter()
        .find(|ep| ep["status"]["external-identifiers"]["pod-name"] == "shop/server")
        .unwrap_or_else(|| panic!("no endpoint for shop/server on node2: {text}"));
    let identity = &server["status"]["identity"];
    let labels = identity["labels"]
        .as_array()
        .expect("identity labels")
        .iter()
        .map(|l| l.as_str().expect("label string").to_string())
        .collect();
    (identity["id"].as_u64().expect("identity id"), labels)
}

/// Waits until the server's identity carries `label`; returns the identity.
fn wait_for_label(lab: &Lab, label: &str) -> (u64, Vec<String>) {
    eventually(
        Duration::from_secs(20),
        &format!("the server's identity to carry {label}"),
        || {
            let identity = server_identity(lab);
            identity.1.iter().any(|l| l == label).then_some(identity)
        },
    )
}

#[test]
fn namespaces_and_pod_specs_shape_identities_and_named_ports() {
    let _serial = serial();
    let lab = Lab::up("pm", 2);
    let team_x = TempFile::new(&lab, "team-x.yaml", &manifest("x"));
    lab.lab_ok(&["apply", "-f", team_x.path()]);
    let server_ip = lab
        .pods()
        .into_iter()
        .find(|p| p["name"] == "server" && p["namespace"] == "shop")
        .and_then(|p| p["ip"].as_str().map(str::to_string))
        .expect("pod shop/server in `pod list`");
    let named = format!("{server_ip}:8080");
    let unnamed = format!("{server_ip}:9090");

    // The identity comes from the Pod and Namespace objects.
    let (first_id, labels) = wait_for_label(&lab, "k8s:io.cilium.k8s.namespace.labels.team=x");
    for expected in [
        "k8s:app=server",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.policy.serviceaccount=web",
        "k8s:io.cilium.k8s.policy.cluster=default",
    ] {
        assert!(
            labels.iter().any(|l| l == expected),
            "{expected} missing from {labels:?}"
        );
    }
    let cilium = lab.bin("cilium").display().to_string();
    eventually(
        Duration::from_secs(10),
        "node1 to know the server's identity",
        || {
            let out = lab.node_exec(
                "node1",
                &[&cilium, "identity", "get", &first_id.to_string()],
            );
            (out.status.success() && stdout(&out).contains("team=x")).then_some(())
        },
    );
    assert!(connect(&lab, &named), "no policy: 8080 is open");
    assert!(connect(&lab, &unnamed), "no policy: 9090 is open");

    // Egress: the name resolves against the peers' ports (the server's Pod spec).
    let egress = TempFile::new(&lab, "egress.yaml", EGRESS_BY_NAME);
    lab.lab_ok(&["apply", "-f", egress.path()]);
    eventually(
        Duration::from_secs(20),
        "the client's egress policy to close 9090",
        || (!connect(&lab, &unnamed)).then_some(()),
    );
    assert!(
        connect(&lab, &named),
        "egress toPorts http-alt allows the server's 8080"
    );
    lab.lab_ok(&["delete", "-f", egress.path()]);
    eventually(Duration::from_secs(20), "9090 to open again", || {
        connect(&lab, &unnamed).then_some(())
    });

    // Ingress: the name resolves against the server's own container ports.
    let ingress = TempFile::new(&lab, "ingress.yaml", INGRESS_BY_NAME);
    lab.lab_ok(&["apply", "-f", ingress.path()]);
    eventually(
        Duration::from_secs(20),
        "the server's ingress policy to close 9090",
        || (!connect(&lab, &unnamed)).then_some(()),
    );
    assert!(
        connect(&lab, &named),
        "ingress toPorts http-alt allows the server's own 8080"
    );

    // Relabelling the Namespace gives the pod a new identity; the policy (by pod labels)
    // keeps holding for it.
    let team_y = TempFile::new(&lab, "team-y.yaml", &manifest("y"));
    let out = lab.lab_ok(&["apply", "-f", team_y.path()]);
    assert!(out.contains("unchanged"), "pods stay: {out}");
    let (second_id, labels) = wait_for_label(&lab, "k8s:io.cilium.k8s.namespace.labels.team=y");
    assert_ne!(second_id, first_id, "a new label set is a new identity");
    assert!(
        !labels.iter().any(|l| l.ends_with("team=x")),
        "the old namespace label is gone: {labels:?}"
    );
    eventually(
        Duration::from_secs(10),
        "the nodes to release their references on the old identities",
        || {
            let values = lab.cilium(
                "node2",
                &[
                    "kvstore",
                    "get",
                    "--recursive",
                    "cilium/state/identities/v1/value/",
                ],
            );
            (values.contains("team=y") && !values.contains("team=x")).then_some(())
        },
    );
    eventually(
        Duration::from_secs(20),
        "the relabelled server to be reachable on 8080",
        || connect(&lab, &named).then_some(()),
    );
    assert!(
        !connect(&lab, &unnamed),
        "9090 stays closed for the new identity"
    );

    // Deleting a pod deletes its Pod object; deleting the Namespace takes the other pods (and
    // their objects) along.
    lab.lab_ok(&["delete", "-f", ingress.path()]);
    let out = lab.lab_ok(&["pod", "del", "--namespace", "shop", "client"]);
    assert!(
        out.contains("removed cilium/state/resources/v1/default/Pod/shop/client"),
        "{out}"
    );
    let namespace_only = TempFile::new(
        &lab,
        "namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    let out = lab.lab_ok(&["delete", "-f", namespace_only.path()]);
    assert!(
        out.contains("removed cilium/state/resources/v1/default/Namespace/_/shop")
            && out.contains("removed cilium/state/resources/v1/default/Pod/shop/server"),
        "the namespace's pods' objects go with it: {out}"
    );
    assert!(
        lab.pods().is_empty(),
        "the namespace's pods are deleted: {:?}",
        lab.pods()
    );
    let left = lab.cilium(
        "node1",
        &["kvstore", "get", "--recursive", "cilium/state/resources/"],
    );
    assert!(!left.contains("/shop/"), "nothing of shop is left: {left}");
}
