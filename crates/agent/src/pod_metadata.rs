//! The agent's cache of Pods and Namespaces from the resource model (objects stored with
//! `cilium apply -f` and followed by `resources::follow`): what endpoint identities and named
//! ports are derived from, as Cilium derives them from the Kubernetes API.
//!
//! Only what the agent needs is kept: a Pod's labels, service account, named container
//! ports and owner references (Hubble names the pod's workload from them), a Namespace's
//! labels. Each update reports which pods or namespace changed, so the
//! agent re-resolves just the endpoints concerned. Until the first listing of the store is in
//! ([`PodMetadata::mark_synced`]), labels derived from the cache may be incomplete; identity
//! resolution waits for it, as Cilium waits for its Kubernetes caches.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cilium_hubble::workload::OwnerReference;
use cilium_policy::{NamedPorts, Protocol};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

/// Namespace of a Pod that names none (the API server's default).
const DEFAULT_NAMESPACE: &str = "default";
/// Service account of a Pod that names none (the API server's default).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// A stored Pod or Namespace the cache cannot read.
#[derive(Debug, thiserror::Error)]
pub enum PodMetadataError {
    #[error("the {kind} stored at {key} is not a valid Kubernetes {kind}")]
    Invalid {
        kind: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the Pod stored at {key}: port {port} has protocol {protocol:?}, not TCP, UDP or SCTP"
    )]
    Protocol {
        key: String,
        port: u16,
        protocol: String,
    },
}

/// What the agent knows about a pod from its Pod object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.serviceAccountName` (or the deprecated `spec.serviceAccount`), else `default`.
    pub service_account: String,
    /// Every container's named ports: name → (containerPort, protocol).
    pub named_ports: NamedPorts,
    /// `metadata.ownerReferences`: what created the pod (a ReplicaSet, a Job, ...).
    pub owners: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set: the pod is shutting down, and as a service
    /// backend keeps its connections but gets no new ones.
    pub terminating: bool,
}

/// What an update changed: the endpoints of that pod, or of every pod in that namespace,
/// need their identity derived again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Pod { namespace: String, name: String },
    Namespace { name: String },
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), PodInfo>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// The object each kvstore key holds, so that a delete (which carries only the key)
    /// finds it.
    keys: BTreeMap<String, Change>,
}

/// Pods and Namespaces of the cluster.
pub struct PodMetadata {
    state: Mutex<State>,
    synced: watch::Sender<bool>,
}

impl Default for PodMetadata {
    fn default() -> Self {
        PodMetadata {
            state: Mutex::new(State::default()),
            synced: watch::Sender::new(false),
        }
    }
}

impl PodMetadata {
    /// Records the object stored at `key`. Objects of other kinds are ignored (`Ok(None)`);
    /// a Pod or Namespace that did not change reports no change either. An unreadable
    /// object changes nothing.
    pub fn upsert(&self, key: &str, object: &Value) -> Result<Option<Change>, PodMetadataError> {
        let object = match object["kind"].as_str() {
            Some("Pod") => read_pod(key, object)?,
            Some("Namespace") => read_namespace(key, object)?,
            _ => return Ok(None),
        };
        let change = object.change();
        let mut state = self.state.lock().expect("pod metadata lock");
        // A key whose object was renamed in place no longer stands for the old one.
        let moved = state
            .keys
            .insert(key.to_string(), change.clone())
            .filter(|previous| *previous != change);
        if let Some(previous) = &moved {
            state.forget(previous);
        }
        let changed = match object {
            Object::Pod {
                namespace,
                name,
                info,
            } => state.pods.insert((namespace, name), info.clone()) != Some(info),
            Object::Namespace { name, labels } => {
                state.namespaces.insert(name, labels.clone()) != Some(labels)
            }
        };
        Ok((changed || moved.is_some()).then_some(change))
    }

    /// Forgets the object stored at `key`; returns what changed, if it was a Pod or Namespace.
    pub fn remove(&self, key: &str) -> Option<Change> {
        let mut state = self.state.lock().expect("pod metadata lock");
        let change = state.keys.remove(key)?;
        state.forget(&change);
        Some(change)
    }

    /// The Pod object's view of pod `namespace/name`, if one is stored.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let state = self.state.lock().expect("pod metadata lock");
        state
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The owner references of pod `namespace/name` (empty when none or no Pod object is
    /// stored): cheaper than [`pod`](Self::pod) for a caller that needs only them.
    pub fn pod_owners(&self, namespace: &str, name: &str) -> Vec<OwnerReference> {
        let state = self.state.lock().expect("pod metadata lock");
        state
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(|pod| pod.owners.clone())
            .unwrap_or_default()
    }

    /// The labels of Namespace `name`, if its object is stored.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let state = self.state.lock().expect("pod metadata lock");
        state.namespaces.get(name).cloned()
    }

    /// The named ports of every pod in the cluster: name → each distinct (port, protocol)
    /// declared under it. Egress named ports resolve against these.
    pub fn peer_named_ports(&self) -> BTreeMap<String, Vec<(u16, Protocol)>> {
        let state = self.state.lock().expect("pod metadata lock");
        let mut union: BTreeMap<String, Vec<(u16, Protocol)>> = BTreeMap::new();
        for (name, port) in state.pods.values().flat_map(|pod| pod.named_ports.iter()) {
            let ports = union.entry(name.clone()).or_default();
            if !ports.contains(port) {
                ports.push(*port);
            }
        }
        union
    }

    /// The first listing of the store is in.
    pub fn mark_synced(&self) {
        self.synced.send_replace(true);
    }

    /// Waits until [`mark_synced`](Self::mark_synced) was called.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = synced.wait_for(|synced| *synced).await;
    }
}

impl State {
    fn forget(&mut self, change: &Change) {
        match change {
            Change::Pod { namespace, name } => {
                self.pods.remove(&(namespace.clone(), name.clone()));
            }
            Change::Namespace { name } => {
                self.namespaces.remove(name);
            }
        }
    }
}

/// One Pod or Namespace as read from the store.
enum Object {
    Pod {
        namespace: String,
        name: String,
        info: PodInfo,
    },
    Namespace {
        name: String,
        labels: BTreeMap<String, String>,
    },
}

impl Object {
    fn change(&self) -> Change {
        match self {
            Object::Pod {
                namespace, name, ..
            } => Change::Pod {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Object::Namespace { name, .. } => Change::Namespace { name: name.clone() },
        }
    }
}

/// The parts of `metadata` the cache reads.
#[derive(Deserialize)]
struct ObjectMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerReferenceObject>,
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

/// One `metadata.ownerReferences` entry.
#[derive(Deserialize)]
struct OwnerReferenceObject {
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize)]
struct PodObject {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    service_account_name: Option<String>,
    #[serde(default)]
    service_account: Option<String>,
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    ports: Vec<ContainerPort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    #[serde(default)]
    name: Option<String>,
    container_port: u16,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Deserialize)]
struct NamespaceObject {
    metadata: ObjectMeta,
}

fn read_pod(key: &str, object: &Value) -> Result<Object, PodMetadataError> {
    let pod = PodObject::deserialize(object).map_err(|source| PodMetadataError::Invalid {
        kind: "Pod",
        key: key.to_string(),
        source,
    })?;
    let mut named_ports = NamedPorts::new();
    for port in pod.spec.containers.iter().flat_map(|c| &c.ports) {
        let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                return Err(PodMetadataError::Protocol {
                    key: key.to_string(),
                    port: port.container_port,
                    protocol: other.to_string(),
                })
            }
        };
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            named_ports.insert(name.to_string(), (port.container_port, protocol));
        }
    }
    let service_account = [pod.spec.service_account_name, pod.spec.service_account]
        .into_iter()
        .flatten()
        .find(|account| !account.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string());
    let namespace = pod
        .metadata
        .namespace
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    Ok(Object::Pod {
        namespace,
        name: pod.metadata.name,
        info: PodInfo {
            labels: pod.metadata.labels.unwrap_or_default(),
            service_account,
            named_ports,
            owners: pod
                .metadata
                .owner_references
                .into_iter()
                .map(|owner| OwnerReference {
                    kind: owner.kind,
                    name: owner.name,
                    controller: owner.controller.unwrap_or(false),
                })
                .collect(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        },
    })
}

fn read_namespace(key: &str, object: &Value) -> Result<Object, PodMetadataError> {
    let namespace =
        NamespaceObject::deserialize(object).map_err(|source| PodMetadataError::Invalid {
            kind: "Namespace",
            key: key.to_string(),
            source,
        })?;
    Ok(Object::Namespace {
        name: namespace.metadata.name,
        labels: namespace.metadata.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server_pod(port_name: &str, port: u16) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "shop", "labels": {"app": "server"}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [
                    {"name": "main", "ports": [
                        {"name": port_name, "containerPort": port},
                        {"containerPort": 9090},
                    ]},
                    {"name": "dns", "ports": [
                        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    ]},
                ],
            },
        })
    }

    fn namespace(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}})
    }

    const POD_KEY: &str = "cilium/state/resources/v1/default/Pod/shop/server";
    const NS_KEY: &str = "cilium/state/resources/v1/default/Namespace/_/shop";

    fn pod_change() -> Change {
        Change::Pod {
            namespace: "shop".into(),
            name: "server".into(),
        }
    }

    #[test]
    fn a_pod_object_gives_labels_service_account_and_named_ports() {
        let cache = PodMetadata::default();
        assert_eq!(
            cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap(),
            Some(pod_change())
        );
        let pod = cache.pod("shop", "server").expect("the pod is cached");
        assert_eq!(
            pod.labels,
            BTreeMap::from([("app".into(), "server".into())])
        );
        assert_eq!(pod.service_account, "web");
        assert_eq!(
            pod.named_ports,
            NamedPorts::from([
                ("dns".to_string(), (53, Protocol::Udp)),
                ("http".to_string(), (8080, Protocol::Tcp)),
            ]),
            "unnamed ports are not named ports; TCP is the default protocol"
        );
        assert_eq!(cache.pod("shop", "other"), None);
        assert_eq!(cache.pod("default", "server"), None);
    }

    #[test]
    fn a_deletion_timestamp_makes_the_pod_terminating() {
        let cache = PodMetadata::default();
        cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap();
        assert!(!cache.pod("shop", "server").expect("cached").terminating);
        let mut pod = server_pod("http", 8080);
        pod["metadata"]["deletionTimestamp"] = json!("2026-11-26T10:00:00Z");
        assert_eq!(cache.upsert(POD_KEY, &pod).unwrap(), Some(pod_change()));
        assert!(
            cache.pod("shop", "server").expect("cached").terminating,
            "a pod being deleted serves its connections but takes no new ones"
        );
    }

    #[test]
    fn owner_references_are_kept() {
        let cache = PodMetadata::default();
        let mut pod = server_pod("http", 8080);
        pod["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "server-7d4b9c8f5",
             "uid": "0b4f", "controller": true, "blockOwnerDeletion": true},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "settings", "uid": "77aa"},
        ]);
        assert_eq!(cache.upsert(POD_KEY, &pod).unwrap(), Some(pod_change()));
        assert_eq!(
            cache.pod_owners("shop", "server"),
            vec![
                OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "server-7d4b9c8f5".into(),
                    controller: true,
                },
                OwnerReference {
                    kind: "ConfigMap".into(),
                    name: "settings".into(),
                    controller: false,
                },
            ]
        );
        assert!(cache.pod_owners("shop", "other").is_empty());
        cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap();
        assert!(
            cache.pod_owners("shop", "server").is_empty(),
            "owners removed from the object are gone"
        );
    }

    #[test]
    fn only_real_changes_are_reported() {
        let cache = PodMetadata::default();
        cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap();
        assert_eq!(
            cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap(),
            None
        );
        assert_eq!(
            cache.upsert(POD_KEY, &server_pod("http", 8081)).unwrap(),
            Some(pod_change())
        );
        assert_eq!(cache.remove(POD_KEY), Some(pod_change()));
        assert_eq!(cache.pod("shop", "server"), None);
        assert_eq!(cache.remove(POD_KEY), None, "already gone");
    }

    #[test]
    fn namespaces_keep_their_labels_until_deleted() {
        let cache = PodMetadata::default();
        assert_eq!(cache.namespace_labels("shop"), None);
        let change = Change::Namespace {
            name: "shop".into(),
        };
        assert_eq!(
            cache
                .upsert(NS_KEY, &namespace(json!({"team": "x"})))
                .unwrap(),
            Some(change.clone())
        );
        assert_eq!(
            cache.namespace_labels("shop"),
            Some(BTreeMap::from([("team".into(), "x".into())]))
        );
        assert_eq!(
            cache
                .upsert(NS_KEY, &namespace(json!({"team": "y"})))
                .unwrap(),
            Some(change.clone())
        );
        assert_eq!(cache.namespace_labels("shop").unwrap()["team"], "y");
        assert_eq!(cache.remove(NS_KEY), Some(change));
        assert_eq!(cache.namespace_labels("shop"), None);
    }

    #[test]
    fn defaults_fill_what_a_pod_leaves_out() {
        let cache = PodMetadata::default();
        let bare = json!({"kind": "Pod", "metadata": {"name": "xwing"}});
        assert_eq!(
            cache
                .upsert("cilium/state/resources/v1/default/Pod/default/xwing", &bare)
                .unwrap(),
            Some(Change::Pod {
                namespace: "default".into(),
                name: "xwing".into()
            })
        );
        let pod = cache.pod("default", "xwing").unwrap();
        assert_eq!(pod.service_account, DEFAULT_SERVICE_ACCOUNT);
        assert!(pod.labels.is_empty() && pod.named_ports.is_empty());

        let old_style =
            json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {"serviceAccount": "legacy"}});
        cache.upsert("k/a", &old_style).unwrap();
        assert_eq!(cache.pod("default", "a").unwrap().service_account, "legacy");
    }

    #[test]
    fn other_kinds_are_ignored_and_broken_objects_change_nothing() {
        let cache = PodMetadata::default();
        let service = json!({"kind": "Service", "metadata": {"name": "server"}});
        assert_eq!(cache.upsert("k/svc", &service).unwrap(), None);
        assert_eq!(cache.remove("k/svc"), None);

        cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap();
        let broken = json!({"kind": "Pod", "metadata": {"name": "server", "namespace": "shop"},
            "spec": {"containers": [{"ports": [{"containerPort": "eighty"}]}]}});
        let err = cache.upsert(POD_KEY, &broken).unwrap_err();
        assert!(err.to_string().contains(POD_KEY), "{err}");
        let lowercase = json!({"kind": "Pod", "metadata": {"name": "server", "namespace": "shop"},
            "spec": {"containers": [{"ports": [{"containerPort": 80, "protocol": "tcp"}]}]}});
        let err = cache.upsert(POD_KEY, &lowercase).unwrap_err();
        assert!(err.to_string().contains("\"tcp\""), "{err}");
        assert_eq!(
            cache.pod("shop", "server").unwrap().named_ports["http"],
            (8080, Protocol::Tcp),
            "the last good object stays"
        );
    }

    #[test]
    fn peer_named_ports_are_the_union_of_every_pods_ports() {
        let cache = PodMetadata::default();
        cache.upsert(POD_KEY, &server_pod("http", 8080)).unwrap();
        let mut other = server_pod("http", 8080);
        other["metadata"]["name"] = json!("server-2");
        cache
            .upsert(
                "cilium/state/resources/v1/default/Pod/shop/server-2",
                &other,
            )
            .unwrap();
        let mut third = server_pod("http", 80);
        third["metadata"]["name"] = json!("server-3");
        cache
            .upsert(
                "cilium/state/resources/v1/default/Pod/shop/server-3",
                &third,
            )
            .unwrap();
        let union = cache.peer_named_ports();
        assert_eq!(
            union["http"],
            vec![(8080, Protocol::Tcp), (80, Protocol::Tcp)],
            "each distinct port once"
        );
        assert_eq!(union["dns"], vec![(53, Protocol::Udp)]);
    }

    #[tokio::test]
    async fn waiting_for_the_first_listing() {
        let cache = std::sync::Arc::new(PodMetadata::default());
        let waiter = tokio::spawn({
            let cache = std::sync::Arc::clone(&cache);
            async move { cache.wait_synced().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "not synced yet");
        cache.mark_synced();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends once synced")
            .expect("the waiter does not panic");
        cache.wait_synced().await;
    }
}
