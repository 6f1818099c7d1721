//! The network-policy test cluster, modelled on Kubernetes' network-policy e2e tests: a
//! two-node lab with namespaces `x` and `y` (labelled `ns=<name>`), pods `a`, `b` and `c` in
//! each, spread over both nodes and serving TCP and UDP on ports 80 and 81 under named
//! container ports, plus two hosts outside the cluster (`world1`, `world2`).
//!
//! Policies go in through one agent (`cilium apply -f`, stored in the kvstore); the harness
//! waits until every agent has them, then probes the whole truth table in parallel until it
//! matches the expectation or a deadline passes. Two cells are open whatever the policy: a
//! pod reaching itself (loopback never leaves the pod) and the pod's own node reaching it
//! (`allow-localhost`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::external::ExternalHost;
use crate::matrix::{CellIndex, Table};
use crate::probe::{probe, spawn_in_netns, Port};
use crate::{eventually, Lab};

pub const TCP_80: Port = Port::tcp(80);
pub const TCP_81: Port = Port::tcp(81);
pub const UDP_80: Port = Port::udp(80);
pub const UDP_81: Port = Port::udp(81);
/// Every port every pod and world host serves, in table order.
pub const PORTS: [Port; 4] = [TCP_80, TCP_81, UDP_80, UDP_81];

/// `(namespace, pod, node, labels)` of the pods, in table order. Each namespace spans both
/// nodes, so every selector is tested within a node and across the tunnel.
const POD_PLAN: [(&str, &str, &str, &str); 6] = [
    ("x", "a", "node1", "{pod: a, tier: front}"),
    ("x", "b", "node2", "{pod: b, tier: back, canary: \"true\"}"),
    ("x", "c", "node1", "{pod: c, tier: back}"),
    ("y", "a", "node2", "{pod: a, tier: front}"),
    ("y", "b", "node1", "{pod: b, tier: back, canary: \"true\"}"),
    ("y", "c", "node2", "{pod: c, tier: back}"),
];

/// Container port names of every pod: `web` 80/TCP, `web-alt` 81/TCP, `dgram` 80/UDP,
/// `dgram-alt` 81/UDP.
const CONTAINER_PORTS: &str = concat!(
    "    - {name: web, containerPort: 80, protocol: TCP}\n",
    "    - {name: web-alt, containerPort: 81, protocol: TCP}\n",
    "    - {name: dgram, containerPort: 80, protocol: UDP}\n",
    "    - {name: dgram-alt, containerPort: 81, protocol: UDP}\n",
);

/// The world hosts: name and underlay address.
const WORLD_HOSTS: [(&str, Ipv4Addr); 2] = [
    ("world1", Ipv4Addr::new(172, 18, 0, 200)),
    ("world2", Ipv4Addr::new(172, 18, 0, 201)),
];

/// How long one probe waits for an answer (a dropped probe takes this long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a truth table may take to appear after its policies reached every agent.
const TABLE_DEADLINE: Duration = Duration::from_secs(15);
/// How long every agent may take to list (or forget) the policies of a file.
const SYNC_DEADLINE: Duration = Duration::from_secs(10);

/// Kinds whose objects show up as rules in `cilium policy get`.
const POLICY_KINDS: [&str; 3] = [
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
    "NetworkPolicy",
];

/// One pod of the cluster.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub labels: BTreeMap<String, String>,
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Where a probe starts.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Pod(&'a Pod),
    /// The node the target pod runs on.
    LocalNode,
    /// The other node.
    RemoteNode,
    World(&'a ExternalHost),
}

/// Where a probe goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Pod(&'a Pod),
    World(&'a ExternalHost),
}

/// One cell of a truth table, as expectations see it.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub from: Source<'a>,
    pub to: Target<'a>,
    pub port: Port,
}

impl Cell<'_> {
    fn source_pod(&self) -> Option<&Pod> {
        match self.from {
            Source::Pod(pod) => Some(pod),
            _ => None,
        }
    }

    fn target_pod(&self) -> Option<&Pod> {
        match self.to {
            Target::Pod(pod) => Some(pod),
            Target::World(_) => None,
        }
    }

    /// The source is pod `namespace/name`.
    pub fn from_pod(&self, namespace: &str, name: &str) -> bool {
        self.source_pod()
            .is_some_and(|p| p.namespace == namespace && p.name == name)
    }

    /// The source is a pod of `namespace`.
    pub fn from_ns(&self, namespace: &str) -> bool {
        self.source_pod().is_some_and(|p| p.namespace == namespace)
    }

    /// The source is a pod labelled `key=value`.
    pub fn from_label(&self, key: &str, value: &str) -> bool {
        self.source_pod()
            .is_some_and(|p| p.labels.get(key).is_some_and(|v| v == value))
    }

    /// The source is a pod carrying label `key`.
    pub fn from_has_label(&self, key: &str) -> bool {
        self.source_pod()
            .is_some_and(|p| p.labels.contains_key(key))
    }

    /// The source is some pod.
    pub fn from_any_pod(&self) -> bool {
        self.source_pod().is_some()
    }

    /// The source is a host outside the cluster.
    pub fn from_world(&self) -> bool {
        matches!(self.from, Source::World(_))
    }

    /// The source is world host `name`.
    pub fn from_world_host(&self, name: &str) -> bool {
        matches!(self.from, Source::World(w) if w.name == name)
    }

    /// The source is the node that does not run the target pod.
    pub fn from_remote_node(&self) -> bool {
        matches!(self.from, Source::RemoteNode)
    }

    /// The target is pod `namespace/name`.
    pub fn to_pod(&self, namespace: &str, name: &str) -> bool {
        self.target_pod()
            .is_some_and(|p| p.namespace == namespace && p.name == name)
    }

    /// The target is a pod of `namespace`.
    pub fn to_ns(&self, namespace: &str) -> bool {
        self.target_pod().is_some_and(|p| p.namespace == namespace)
    }

    /// The target is a pod labelled `key=value`.
    pub fn to_label(&self, key: &str, value: &str) -> bool {
        self.target_pod()
            .is_some_and(|p| p.labels.get(key).is_some_and(|v| v == value))
    }

    /// The target is a pod carrying label `key`.
    pub fn to_has_label(&self, key: &str) -> bool {
        self.target_pod()
            .is_some_and(|p| p.labels.contains_key(key))
    }

    /// The target is some pod.
    pub fn to_any_pod(&self) -> bool {
        self.target_pod().is_some()
    }

    /// The target is a host outside the cluster.
    pub fn to_world(&self) -> bool {
        matches!(self.to, Target::World(_))
    }

    /// The target is world host `name`.
    pub fn to_world_host(&self, name: &str) -> bool {
        matches!(self.to, Target::World(w) if w.name == name)
    }

    /// Open whatever the policy: a pod reaching itself, or its own node reaching it.
    fn always_open(&self) -> bool {
        match (self.from, self.to) {
            (Source::Pod(a), Target::Pod(b)) => std::ptr::eq(a, b),
            (Source::LocalNode, _) => true,
            _ => false,
        }
    }
}

/// Which rows a table has besides the pods, the local node and the world hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    Standard,
    /// Also probe every pod from the node it does not run on.
    WithRemoteNode,
}

/// One probe of an observation.
struct Job {
    at: CellIndex,
    netns: String,
    to: SocketAddrV4,
    port: Port,
    answer: String,
}

/// The lab, its pods and world hosts, and the policy files applied so far.
pub struct PolicyCluster {
    // Dropped in this order: the world hosts leave before the lab goes down.
    worlds: Vec<ExternalHost>,
    pub lab: Lab,
    pods: Vec<Pod>,
    /// Node name → network namespace.
    nodes: BTreeMap<String, String>,
    /// Policy files applied and not yet deleted, oldest first.
    applied: Mutex<Vec<TempFile>>,
}

impl PolicyCluster {
    /// Brings up a two-node lab and deploys the namespaces, pods and world hosts.
    pub fn deploy(prefix: &str) -> PolicyCluster {
        let lab = Lab::up_with(prefix, &["--nodes", "2"]);
        let namespaces = ["x", "y"]
            .iter()
            .map(|ns| {
                format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{ns: {ns}}}}}\n")
            })
            .collect::<Vec<_>>()
            .join("---\n");
        let file = TempFile::write(&lab.name, "namespaces", &namespaces);
        lab.cilium("node1", &["apply", "-f", file.path()]);

        let pods = POD_PLAN
            .iter()
            .map(|(ns, pod, node, labels)| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {labels}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: server\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    ports:\n{CONTAINER_PORTS}"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n");
        let file = TempFile::write(&lab.name, "pods", &pods);
        lab.lab_ok(&["apply", "-f", file.path()]);

        let listed = lab.pods();
        let pods = POD_PLAN
            .iter()
            .map(|(ns, name, _, _)| {
                let p = listed
                    .iter()
                    .find(|p| p["namespace"] == *ns && p["name"] == *name)
                    .unwrap_or_else(|| panic!("pod {ns}/{name} not in `pod list`: {listed:?}"));
                let text = |field: &str| {
                    p[field]
                        .as_str()
                        .unwrap_or_else(|| panic!("pod {ns}/{name} has no {field}: {p}"))
                        .to_string()
                };
                Pod {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    node: text("node"),
                    ip: text("ip").parse().expect("pod IP"),
                    netns: text("netns"),
                    labels: serde_json::from_value(p["labels"].clone()).expect("pod labels"),
                }
            })
            .collect();
        let nodes = lab.status()["nodes"]
            .as_array()
            .expect("status lists nodes")
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().expect("node name").to_string(),
                    n["netns"].as_str().expect("node netns").to_string(),
                )
            })
            .collect();
        let spec = PORTS
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let worlds = WORLD_HOSTS
            .iter()
            .map(|(name, ip)| ExternalHost::start(&lab, name, *ip, &spec))
            .collect();
        PolicyCluster {
            worlds,
            lab,
            pods,
            nodes,
            applied: Mutex::new(Vec::new()),
        }
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
            .unwrap_or_else(|| panic!("no pod {namespace}/{name}"))
    }

    /// Stores the objects of `yaml` through `node`'s agent (`cilium apply -f`) and waits until
    /// every agent lists its policies. Applying a file with the names of earlier policies
    /// replaces them.
    pub fn apply(&self, node: &str, yaml: &str) {
        let names = policy_names(yaml);
        let file = TempFile::write(&self.lab.name, "policy", yaml);
        self.lab.cilium(node, &["apply", "-f", file.path()]);
        self.applied.lock().expect("applied lock").push(file);
        self.wait_for_policies(&names, true);
    }

    /// Removes the objects of `yaml` through `node`'s agent (`cilium delete -f`) and waits
    /// until no agent lists its policies.
    pub fn delete(&self, node: &str, yaml: &str) {
        let names = policy_names(yaml);
        let file = TempFile::write(&self.lab.name, "delete", yaml);
        self.lab.cilium(node, &["delete", "-f", file.path()]);
        self.wait_for_policies(&names, false);
    }

    /// Sets every agent's policy enforcement mode (`cilium config PolicyEnforcement=MODE`:
    /// `default`, `always` or `never`).
    pub fn set_enforcement(&self, mode: &str) {
        for node in self.nodes.keys() {
            let setting = format!("PolicyEnforcement={mode}");
            let out = self.lab.cilium(node, &["-o", "json", "config", &setting]);
            let config: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("cilium config on {node}: {e}\n{out}"));
            assert_eq!(
                config["policy-enforcement"], mode,
                "{node} did not switch to {mode}: {out}"
            );
        }
    }

    /// Deletes every file applied so far (newest first), restores the default enforcement
    /// mode, waits until no agent has a policy left and the whole cluster is reachable again.
    pub fn reset(&self) {
        self.set_enforcement("default");
        let applied = std::mem::take(&mut *self.applied.lock().expect("applied lock"));
        for file in applied.iter().rev() {
            self.lab.cilium("node2", &["delete", "-f", file.path()]);
        }
        for node in self.nodes.keys() {
            eventually(
                SYNC_DEADLINE,
                &format!("{node} to have no policy left"),
                || self.policies_on(node).is_empty().then_some(()),
            );
        }
        self.expect("access restored once the policies are deleted", |_| true);
    }

    /// Waits until every agent lists all of `names` (`present`) or none of them.
    fn wait_for_policies(&self, names: &BTreeSet<String>, present: bool) {
        for node in self.nodes.keys() {
            let what = format!(
                "{node} to {} policies {names:?}",
                if present { "list" } else { "forget" }
            );
            eventually(SYNC_DEADLINE, &what, || {
                let on = self.policies_on(node);
                let done = if present {
                    names.is_subset(&on)
                } else {
                    names.is_disjoint(&on)
                };
                done.then_some(())
            });
        }
    }

    /// Names of the policies `node`'s agent enforces (`io.cilium.k8s.policy.name`).
    fn policies_on(&self, node: &str) -> BTreeSet<String> {
        let out = self.lab.cilium(node, &["policy", "get", "-o", "json"]);
        let reply: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("policy get on {node}: {e}\n{out}"));
        let rules: serde_json::Value = match &reply["policy"] {
            serde_json::Value::String(text) => serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("policy get on {node}: rules: {e}\n{text}")),
            other => other.clone(),
        };
        rules
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["labels"].as_array().cloned().unwrap_or_default())
            .filter(|label| label["key"] == "io.cilium.k8s.policy.name")
            .filter_map(|label| label["value"].as_str().map(str::to_string))
            .collect()
    }

    /// Polls the truth table until it is the one `allowed` describes (plus the cells that are
    /// always open); panics with both tables when it does not appear in time.
    pub fn expect(&self, what: &str, allowed: impl Fn(&Cell) -> bool) {
        self.expect_rows(what, Rows::Standard, allowed);
    }

    /// [`PolicyCluster::expect`] with a choice of rows.
    pub fn expect_rows(&self, what: &str, rows: Rows, allowed: impl Fn(&Cell) -> bool) {
        let (expected, jobs) = self.plan(rows, &allowed);
        let started = Instant::now();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let observed = observe(&expected, &jobs);
            let mismatches = expected.mismatches(&observed);
            if mismatches.is_empty() {
                return;
            }
            if started.elapsed() >= TABLE_DEADLINE {
                let listed: Vec<String> = mismatches
                    .iter()
                    .take(24)
                    .map(|m| format!("  {m}"))
                    .collect();
                let more = mismatches.len().saturating_sub(listed.len());
                panic!(
                    "{what}: the truth table did not appear within {TABLE_DEADLINE:?} ({rounds} rounds of {} probes); {} cell(s) differ:\n{}{}\n{}",
                    jobs.len(),
                    mismatches.len(),
                    listed.join("\n"),
                    if more > 0 { format!("\n  … and {more} more") } else { String::new() },
                    expected.render_against(&observed)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The expected table and the probes that observe it.
    fn plan(&self, rows: Rows, allowed: &dyn Fn(&Cell) -> bool) -> (Table, Vec<Job>) {
        let mut sources: Vec<(String, Source)> = self
            .pods
            .iter()
            .map(|p| (p.key(), Source::Pod(p)))
            .collect();
        sources.push(("node".into(), Source::LocalNode));
        if rows == Rows::WithRemoteNode {
            sources.push(("remote-node".into(), Source::RemoteNode));
        }
        sources.extend(
            self.worlds
                .iter()
                .map(|w| (w.name.clone(), Source::World(w))),
        );
        let mut targets: Vec<(String, Target)> = self
            .pods
            .iter()
            .map(|p| (p.key(), Target::Pod(p)))
            .collect();
        targets.extend(
            self.worlds
                .iter()
                .map(|w| (w.name.clone(), Target::World(w))),
        );

        let mut table = Table::new(
            sources.iter().map(|(l, _)| l.clone()).collect(),
            targets.iter().map(|(l, _)| l.clone()).collect(),
            PORTS.to_vec(),
        );
        let mut jobs = Vec::new();
        for (r, (_, from)) in sources.iter().enumerate() {
            for (c, (_, to)) in targets.iter().enumerate() {
                let (ip, answer, target_node) = match to {
                    Target::Pod(p) => (p.ip, p.name.clone(), Some(p.node.as_str())),
                    Target::World(w) => (w.ip, w.name.clone(), None),
                };
                let netns = match (from, target_node) {
                    (Source::Pod(p), _) => p.netns.clone(),
                    (Source::World(w), Some(_)) => w.netns.clone(),
                    (Source::LocalNode, Some(node)) => self.nodes[node].clone(),
                    (Source::RemoteNode, Some(node)) => self
                        .nodes
                        .iter()
                        .find(|(name, _)| *name != node)
                        .map(|(_, netns)| netns.clone())
                        .expect("a second node"),
                    // Hosts reaching world hosts is not policy's business.
                    (_, None) => continue,
                };
                for (p, port) in PORTS.iter().enumerate() {
                    let cell = Cell {
                        from: *from,
                        to: *to,
                        port: *port,
                    };
                    table.set((r, c, p), cell.always_open() || allowed(&cell));
                    jobs.push(Job {
                        at: (r, c, p),
                        netns: netns.clone(),
                        to: SocketAddrV4::new(ip, port.number),
                        port: *port,
                        answer: answer.clone(),
                    });
                }
            }
        }
        (table, jobs)
    }
}

/// Runs every probe at once (each on its own thread in its source's namespace) and records
/// which got the right answer.
fn observe(expected: &Table, jobs: &[Job]) -> Table {
    let handles: Vec<_> = jobs
        .iter()
        .map(|job| {
            let (to, proto, answer) = (job.to, job.port.proto, job.answer.clone());
            let handle = spawn_in_netns(&job.netns, move || {
                probe(to, proto, PROBE_TIMEOUT).is_some_and(|got| got.trim() == answer)
            });
            (job.at, handle)
        })
        .collect();
    let mut observed = expected.empty_like();
    for (at, handle) in handles {
        let reached = handle.join().expect("a probe thread panicked");
        observed.set(at, reached);
    }
    observed
}

/// Names of the policy objects in a multi-document YAML text.
fn policy_names(yaml: &str) -> BTreeSet<String> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| {
            serde_json::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("policy YAML does not parse: {e}\n{yaml}"))
        })
        .filter(|doc| {
            doc["kind"]
                .as_str()
                .is_some_and(|kind| POLICY_KINDS.contains(&kind))
        })
        .map(|doc| {
            doc["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("a policy without metadata.name:\n{yaml}"))
                .to_string()
        })
        .collect()
}

/// A temporary file of its own, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    /// Writes `text` to a new temporary file.
    fn write(lab: &str, what: &str, text: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "cilium-e2e-{lab}-{}-{n}-{what}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temporary paths are UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
