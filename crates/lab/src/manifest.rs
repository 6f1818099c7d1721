//! Kubernetes manifests read the way a kubelet would realize them in the lab: which pods a
//! YAML file's Pods and Deployments stand for, with their node, labels and served ports, the
//! Pod objects a Deployment's controller would create for them, and which pods a deleted
//! Namespace takes along.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::labels::{LabelError, Labels};
use crate::names::{NameError, NodeName, PodKey};
use crate::toolbox::spec::{ServeSpec, SpecError};

/// Namespace of objects that name none.
const DEFAULT_NAMESPACE: &str = "default";
/// Length of the random-looking part of a Deployment's pod names.
const SUFFIX_LEN: usize = 5;
/// Length of the pod-template hash in a Deployment's ReplicaSet name.
const TEMPLATE_HASH_LEN: usize = 10;
/// The characters of those parts.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Errors reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index} is not valid YAML")]
    Yaml {
        index: usize,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{kind} {name}: {field} is missing or not {expected}")]
    Field {
        kind: String,
        name: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error("{kind} {name}: invalid name or namespace")]
    Name {
        kind: String,
        name: String,
        #[source]
        source: Box<NameError>,
    },
    #[error("{kind} {name}: invalid labels")]
    Labels {
        kind: String,
        name: String,
        #[source]
        source: LabelError,
    },
    #[error("{kind} {name}: spec.nodeName {node:?} is not a lab node (node1, node2, ...)")]
    Node {
        kind: String,
        name: String,
        node: String,
        #[source]
        source: Box<NameError>,
    },
    #[error("{kind} {name}: invalid ports")]
    Ports {
        kind: String,
        name: String,
        #[source]
        source: SpecError,
    },
}

/// One pod to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    pub key: PodKey,
    pub node: Option<NodeName>,
    pub labels: Labels,
    pub serve: Option<ServeSpec>,
    /// The Pod object as the API server would hold it (the document itself for a bare Pod;
    /// built from the template for a Deployment's pod): agents derive the pod's identity and
    /// named ports from it.
    pub object: Value,
}

/// What a workload object stands for in the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// A bare Pod: exactly one pod of that name.
    Pod(PodPlan),
    /// A Deployment: `replicas` pods named `<name>-<suffix>` carrying the template's labels.
    Deployment {
        namespace: String,
        name: String,
        labels: Labels,
        pods: Vec<PodPlan>,
    },
    /// A Namespace: no pods of its own, but deleting it deletes every pod in it.
    Namespace { name: String },
}

impl Workload {
    /// The pods to create.
    pub fn pods(&self) -> &[PodPlan] {
        match self {
            Workload::Pod(plan) => std::slice::from_ref(plan),
            Workload::Deployment { pods, .. } => pods,
            Workload::Namespace { .. } => &[],
        }
    }

    /// The Pod objects a controller creates for this workload and the file does not hold
    /// itself (a Deployment's pods).
    pub fn created_objects(&self) -> impl Iterator<Item = &Value> {
        let created: &[PodPlan] = match self {
            Workload::Deployment { pods, .. } => pods,
            Workload::Pod(_) | Workload::Namespace { .. } => &[],
        };
        created.iter().map(|plan| &plan.object)
    }

    /// Whether a running pod belongs to this workload.
    pub fn owns(&self, namespace: &str, name: &str, labels: &Labels) -> bool {
        match self {
            Workload::Pod(plan) => plan.key.namespace == namespace && plan.key.name == name,
            Workload::Deployment {
                namespace: ns,
                name: deployment,
                labels: template,
                ..
            } => {
                ns == namespace
                    && name
                        .strip_prefix(deployment.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
                    && template
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            }
            Workload::Namespace { name: ns } => ns == namespace,
        }
    }
}

/// The Pods, Deployments and Namespaces of a multi-document YAML text, in order. Ports are
/// the containers'
/// `containerPort`s plus the target ports of the file's Services whose selector picks the pod
/// (the images are not run, so a Service is the only other word on what they listen on).
pub fn workloads(text: &str) -> Result<Vec<Workload>, ManifestError> {
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| ManifestError::Yaml {
            index: index + 1,
            source,
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    let services: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "Service")
        .collect();
    let mut out = Vec::new();
    for doc in &documents {
        let object = Object::of(doc);
        match doc["kind"].as_str() {
            Some("Pod") => {
                let labels = labels(&object, &doc["metadata"]["labels"])?;
                let key = object.key(&object.name)?;
                out.push(Workload::Pod(pod_plan(
                    &object,
                    key,
                    &doc["spec"],
                    labels,
                    &services,
                    (*doc).clone(),
                )?));
            }
            Some("Deployment") => {
                let template = &doc["spec"]["template"];
                let labels = labels(&object, &template["metadata"]["labels"])?;
                let replicas = match &doc["spec"]["replicas"] {
                    Value::Null => 1,
                    value => value
                        .as_u64()
                        .ok_or_else(|| object.field("spec.replicas", "a non-negative integer"))?,
                };
                let replica_set = replica_set_name(&object.namespace, &object.name, template);
                let pods = (0..replicas)
                    .map(|i| {
                        let key = object.key(&format!(
                            "{replica_set}-{}",
                            suffix(&object.namespace, &object.name, i)
                        ))?;
                        let created = created_pod(
                            &key,
                            &template["metadata"]["labels"],
                            &template["spec"],
                            &replica_set,
                        );
                        pod_plan(
                            &object,
                            key,
                            &template["spec"],
                            labels.clone(),
                            &services,
                            created,
                        )
                    })
                    .collect::<Result<_, _>>()?;
                out.push(Workload::Deployment {
                    namespace: object.namespace.clone(),
                    name: object.name.clone(),
                    labels,
                    pods,
                });
            }
            Some("Namespace") => out.push(Workload::Namespace {
                name: object.name.clone(),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The Pod object a Deployment's ReplicaSet `replica_set` creates for pod `key` from the
/// Deployment's template: owned by the ReplicaSet (which Hubble shows as the Deployment).
fn created_pod(key: &PodKey, labels: &Value, spec: &Value, replica_set: &str) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), Value::String(key.name.clone()));
    metadata.insert("namespace".into(), Value::String(key.namespace.clone()));
    if !labels.is_null() {
        metadata.insert("labels".into(), labels.clone());
    }
    metadata.insert(
        "ownerReferences".into(),
        serde_json::json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": replica_set, "controller": true, "blockOwnerDeletion": true}]),
    );
    let mut pod = serde_json::Map::new();
    pod.insert("apiVersion".into(), Value::String("v1".into()));
    pod.insert("kind".into(), Value::String("Pod".into()));
    pod.insert("metadata".into(), Value::Object(metadata));
    if !spec.is_null() {
        pod.insert("spec".into(), spec.clone());
    }
    Value::Object(pod)
}

/// Kind, name and namespace of a document, for naming things and errors.
struct Object {
    kind: String,
    name: String,
    namespace: String,
}

impl Object {
    fn of(doc: &Value) -> Self {
        let kind = doc["kind"].as_str().unwrap_or("object").to_string();
        let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
        let namespace = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        Object {
            kind,
            name,
            namespace,
        }
    }

    fn field(&self, field: &'static str, expected: &'static str) -> ManifestError {
        ManifestError::Field {
            kind: self.kind.clone(),
            name: self.name.clone(),
            field,
            expected,
        }
    }

    fn key(&self, pod: &str) -> Result<PodKey, ManifestError> {
        PodKey::new(&self.namespace, pod).map_err(|source| ManifestError::Name {
            kind: self.kind.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        })
    }
}

/// Labels from a `labels:` map (absent means none).
fn labels(object: &Object, map: &Value) -> Result<Labels, ManifestError> {
    let text = match map {
        Value::Null => String::new(),
        Value::Object(map) => {
            let mut parts = Vec::new();
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| object.field("labels", "a map of strings"))?;
                parts.push(format!("{k}={v}"));
            }
            parts.join(",")
        }
        _ => return Err(object.field("labels", "a map of strings")),
    };
    text.parse().map_err(|source| ManifestError::Labels {
        kind: object.kind.clone(),
        name: object.name.clone(),
        source,
    })
}

/// One pod of a pod spec.
fn pod_plan(
    object: &Object,
    key: PodKey,
    spec: &Value,
    labels: Labels,
    services: &[&Value],
    pod_object: Value,
) -> Result<PodPlan, ManifestError> {
    let node = match spec["nodeName"].as_str() {
        None => None,
        Some(node) => Some(node.parse().map_err(|source| ManifestError::Node {
            kind: object.kind.clone(),
            name: object.name.clone(),
            node: node.to_string(),
            source: Box::new(source),
        })?),
    };
    let mut ports: BTreeSet<(u16, &'static str)> = BTreeSet::new();
    let mut named: Vec<(String, u16, &'static str)> = Vec::new();
    for container in spec["containers"].as_array().into_iter().flatten() {
        for port in container["ports"].as_array().into_iter().flatten() {
            let number = port_number(&port["containerPort"])
                .ok_or_else(|| object.field("containerPort", "a port number"))?;
            let Some(proto) = proto(&port["protocol"]) else {
                continue;
            };
            ports.insert((number, proto));
            if let Some(name) = port["name"].as_str() {
                named.push((name.to_string(), number, proto));
            }
        }
    }
    for service in services {
        let namespace = service["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE);
        if namespace != key.namespace || !selects(&service["spec"]["selector"], &labels) {
            continue;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let Some(proto) = proto(&port["protocol"]) else {
                continue;
            };
            let target = match &port["targetPort"] {
                Value::String(name) if port_number(&port["targetPort"]).is_none() => named
                    .iter()
                    .find(|(n, _, p)| n == name && *p == proto)
                    .map(|(_, number, _)| *number),
                Value::Null => port_number(&port["port"]),
                other => port_number(other),
            };
            if let Some(number) = target {
                ports.insert((number, proto));
            }
        }
    }
    let serve = if ports.is_empty() {
        None
    } else {
        let text: Vec<String> = ports.iter().map(|(n, p)| format!("{n}/{p}")).collect();
        Some(
            text.join(",")
                .parse()
                .map_err(|source| ManifestError::Ports {
                    kind: object.kind.clone(),
                    name: object.name.clone(),
                    source,
                })?,
        )
    };
    Ok(PodPlan {
        key,
        node,
        labels,
        serve,
        object: pod_object,
    })
}

/// A port given as a number or a numeric string.
fn port_number(value: &Value) -> Option<u16> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|&n| n != 0)
}

/// The toolbox protocol of a Kubernetes port protocol (TCP when absent; SCTP is not served).
fn proto(value: &Value) -> Option<&'static str> {
    match value.as_str().unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        _ => None,
    }
}

/// Whether a non-empty Service selector picks pods with these labels.
fn selects(selector: &Value, labels: &Labels) -> bool {
    let Some(selector) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(k, v)| {
        labels
            .iter()
            .any(|(lk, lv)| lk == k && Some(lv) == v.as_str())
    })
}

/// FNV-1a over `parts`, each followed by a 0 byte; stable across runs and versions.
fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts
        .into_iter()
        .flat_map(|part| part.iter().copied().chain([0]))
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `len` characters of Kubernetes' name-suffix alphabet drawn from `hash`.
fn encode(mut hash: u64, len: usize) -> String {
    let base = SUFFIX_ALPHABET.len() as u64;
    (0..len)
        .map(|_| {
            let c = SUFFIX_ALPHABET[(hash % base) as usize];
            hash /= base;
            char::from(c)
        })
        .collect()
}

/// The deterministic 5-character suffix of a Deployment's `index`th pod.
fn suffix(namespace: &str, name: &str, index: u64) -> String {
    let hash = fnv1a([namespace.as_bytes(), name.as_bytes(), &index.to_le_bytes()]);
    encode(hash, SUFFIX_LEN)
}

/// The name of the ReplicaSet a Deployment's controller makes for its current template:
/// `<deployment>-<pod-template-hash>`, the hash (10 characters) taken over the template.
fn replica_set_name(namespace: &str, name: &str, template: &Value) -> String {
    let template = template.to_string();
    let hash = fnv1a([namespace.as_bytes(), name.as_bytes(), template.as_bytes()]);
    format!("{name}-{}", encode(hash, TEMPLATE_HASH_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARWARS: &str = include_str!("../../../examples/starwars/http-sw-app.yaml");

    #[test]
    fn the_star_wars_app_is_four_pods_and_deathstars_serve_the_service_port() {
        let loads = workloads(STARWARS).unwrap();
        let pods: Vec<&PodPlan> = loads.iter().flat_map(Workload::pods).collect();
        assert_eq!(pods.len(), 4, "{pods:?}");
        let deathstars: Vec<&&PodPlan> = pods
            .iter()
            .filter(|p| p.key.name.starts_with("deathstar-"))
            .collect();
        assert_eq!(deathstars.len(), 2);
        assert_ne!(deathstars[0].key, deathstars[1].key);
        for d in &deathstars {
            assert_eq!(
                d.key.name.len(),
                "deathstar-".len() + TEMPLATE_HASH_LEN + 1 + SUFFIX_LEN
            );
            assert_eq!(d.key.namespace, "default");
            assert_eq!(
                d.labels.to_string(),
                "app.kubernetes.io/name=deathstar,class=deathstar,org=empire"
            );
            assert_eq!(
                d.serve.as_ref().map(ToString::to_string).as_deref(),
                Some("80/tcp")
            );
        }
        let xwing = pods.iter().find(|p| p.key.name == "xwing").unwrap();
        assert_eq!(
            xwing.serve, None,
            "nothing selects or declares a port of xwing"
        );
        assert_eq!(
            workloads(STARWARS).unwrap(),
            loads,
            "names are deterministic"
        );
    }

    #[test]
    fn pods_keep_node_container_ports_and_named_service_targets() {
        let text = "\
apiVersion: v1
kind: Pod
metadata: {name: dns, namespace: kube-system, labels: {k8s-app: dns}}
spec:
  nodeName: node2
  containers:
  - ports:
    - {containerPort: 53, protocol: UDP, name: dns}
    - {containerPort: 9153, name: metrics}
---
kind: Service
metadata: {name: dns, namespace: kube-system}
spec:
  selector: {k8s-app: dns}
  ports:
  - {port: 5353, targetPort: dns, protocol: UDP}
  - {port: 8080, targetPort: 8081}
";
        let loads = workloads(text).unwrap();
        let [Workload::Pod(pod)] = loads.as_slice() else {
            panic!("one pod expected: {loads:?}");
        };
        assert_eq!(pod.key.to_string(), "kube-system/dns");
        assert_eq!(pod.node.map(NodeName::index), Some(2));
        assert_eq!(
            pod.serve.as_ref().unwrap().to_string(),
            "53/udp,8081/tcp,9153/tcp"
        );
    }

    #[test]
    fn deployments_own_their_pods_by_prefix_and_labels() {
        let loads = workloads(STARWARS).unwrap();
        let deployment = loads
            .iter()
            .find(|w| matches!(w, Workload::Deployment { .. }))
            .unwrap();
        let labels: Labels = "org=empire,class=deathstar,app.kubernetes.io/name=deathstar"
            .parse()
            .unwrap();
        assert!(deployment.owns("default", "deathstar-abcde", &labels));
        assert!(!deployment.owns("default", "deathstarx-abcde", &labels));
        assert!(!deployment.owns("other", "deathstar-abcde", &labels));
        let other: Labels = "org=empire".parse().unwrap();
        assert!(!deployment.owns("default", "deathstar-abcde", &other));
    }

    #[test]
    fn deployment_pods_get_the_pod_objects_their_controller_would_create() {
        let loads = workloads(STARWARS).unwrap();
        let created: Vec<&Value> = loads.iter().flat_map(Workload::created_objects).collect();
        assert_eq!(created.len(), 2, "one per deathstar replica: {created:#?}");
        let names: Vec<&str> = loads
            .iter()
            .flat_map(Workload::pods)
            .filter(|p| p.key.name.starts_with("deathstar-"))
            .map(|p| p.key.name.as_str())
            .collect();
        for object in &created {
            assert_eq!(object["kind"], "Pod");
            assert_eq!(object["apiVersion"], "v1");
            assert_eq!(object["metadata"]["namespace"], "default");
            assert!(names.contains(&object["metadata"]["name"].as_str().unwrap()));
            assert_eq!(object["metadata"]["labels"]["class"], "deathstar");
            assert_eq!(
                object["spec"]["containers"][0]["name"], "deathstar",
                "the template's spec: {object}"
            );
            let owner = &object["metadata"]["ownerReferences"][0];
            assert_eq!(owner["kind"], "ReplicaSet");
            assert_eq!(owner["controller"], true);
            let replica_set = owner["name"].as_str().expect("the ReplicaSet's name");
            assert!(
                replica_set.starts_with("deathstar-")
                    && replica_set.len() == "deathstar-".len() + 10,
                "a ReplicaSet named <deployment>-<pod-template-hash>: {replica_set}"
            );
            assert!(
                object["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{replica_set}-")),
                "pods are named after their ReplicaSet: {object}"
            );
        }
        let xwing = loads
            .iter()
            .flat_map(Workload::pods)
            .find(|p| p.key.name == "xwing")
            .unwrap();
        assert_eq!(
            xwing.object["metadata"]["name"], "xwing",
            "a bare Pod is its own object"
        );
    }

    #[test]
    fn a_namespace_owns_every_pod_in_it() {
        let loads = workloads(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n",
        )
        .unwrap();
        let [ns @ Workload::Namespace { .. }] = loads.as_slice() else {
            panic!("one namespace expected: {loads:?}");
        };
        assert!(ns.pods().is_empty());
        assert_eq!(ns.created_objects().count(), 0);
        let any = Labels::default();
        assert!(ns.owns("team-a", "web", &any));
        assert!(!ns.owns("default", "web", &any));
    }

    #[test]
    fn bad_manifests_name_the_object() {
        let err = workloads("kind: Deployment\nmetadata: {name: web}\nspec: {replicas: -1}\n")
            .unwrap_err();
        assert!(err.to_string().contains("Deployment web"), "{err}");
        let err =
            workloads("kind: Pod\nmetadata: {name: web}\nspec: {nodeName: worker}\n").unwrap_err();
        assert!(err.to_string().contains("worker"), "{err}");
        assert!(workloads("a: [\n").is_err());
    }
}
