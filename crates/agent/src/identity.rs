//! Resolving endpoints' security identities: the identity-relevant labels of a pod (Cilium's
//! derivation from its Pod and Namespace objects; Cilium's default label filter), their
//! cluster-wide number from the kvstore allocator, and the references this node holds.
//!
//! Labels of a pod in a Kubernetes namespace (one whose runtime sent `K8S_POD_NAMESPACE`):
//! - its pod labels (`k8s:`): the Pod object's `metadata.labels` when a Pod object for
//!   `K8S_POD_NAMESPACE`/`K8S_POD_NAME` is stored — the object is the authority, as the API
//!   server is for Cilium, so a label removed from it leaves the identity — otherwise the
//!   `k8s:` labels the CNI plugin sent (`args.cni.labels`);
//! - `k8s:io.kubernetes.pod.namespace`, the Namespace object's labels as
//!   `k8s:io.cilium.k8s.namespace.labels.<key>` plus `kubernetes.io/metadata.name` (which
//!   Kubernetes puts on every namespace, so it is there without a Namespace object too),
//!   `k8s:io.cilium.k8s.policy.serviceaccount` (the Pod's, else `default`) and
//!   `k8s:io.cilium.k8s.policy.cluster`;
//! - labels of other sources sent through CNI, unless they would override one of the above.
//!
//! The API path tries to resolve an identity right away (so a CNI ADD normally returns an
//! endpoint with its final identity); when the kvstore cannot answer in time the endpoint
//! starts as `reserved:init`, and the identity worker resolves it in the background and
//! regenerates the endpoint, as Cilium does. The worker also re-derives an endpoint's
//! identity when its Pod or Namespace object changes. Each endpoint holds one allocator
//! reference on the labels of its identity; a new identity's reference is taken before the
//! old one is released.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cilium_endpoint::{EndpointId, EndpointIdentity, EndpointSelector};
use cilium_identity::{
    source, AllocatorConfig, AllocatorError, GcStats, IdentityAllocator, Label, LabelFilter, Labels,
};
use cilium_kvstore::{KvStore, LeasedKeys};
use tokio::sync::mpsc;

use crate::agent::Agent;
use crate::pod_metadata::{PodMetadata, DEFAULT_SERVICE_ACCOUNT};

/// The identity of an endpoint whose labels are not resolved yet.
pub fn init_identity() -> EndpointIdentity {
    EndpointIdentity {
        id: 5,
        labels: vec!["reserved:init".into()],
    }
}

/// How long the API path waits for the kvstore before falling back to `reserved:init`.
pub const INLINE_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between background attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The pod an endpoint stands for, as its CNI request described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    /// `K8S_POD_NAMESPACE` (empty for endpoints outside Kubernetes namespaces).
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// The endpoint's labels (`source:key=value`).
    pub labels: Vec<String>,
}

/// Label derivation, filtering, allocation and the references endpoints hold.
pub struct Identities {
    allocator: IdentityAllocator,
    filter: LabelFilter,
    cluster: String,
    metadata: PodMetadata,
    /// The labels each endpoint holds an allocator reference on.
    held: Mutex<BTreeMap<EndpointId, Labels>>,
    retries: mpsc::UnboundedSender<EndpointSelector>,
}

impl Identities {
    /// Returns the resolver and the queue of endpoints whose identity must be resolved in
    /// the background (see [`run_worker`]).
    pub fn new(
        store: Arc<dyn KvStore>,
        owned: Arc<LeasedKeys>,
        node: &str,
        cluster: &str,
    ) -> (Self, mpsc::UnboundedReceiver<EndpointSelector>) {
        let (retries, queue) = mpsc::unbounded_channel();
        let identities = Identities {
            allocator: IdentityAllocator::new(store, owned, AllocatorConfig::new(node)),
            filter: LabelFilter::default(),
            cluster: cluster.to_string(),
            metadata: PodMetadata::default(),
            held: Mutex::new(BTreeMap::new()),
            retries,
        };
        (identities, queue)
    }

    /// The cluster's Pods and Namespaces that labels (and named ports) come from.
    pub fn metadata(&self) -> &PodMetadata {
        &self.metadata
    }

    /// The identity-relevant labels of `pod` (see the module documentation). Unparseable
    /// labels are left out.
    pub fn labels_of(&self, pod: &PodRef) -> Labels {
        derive_labels(&self.metadata, &self.cluster, pod, &self.filter)
    }

    /// The numeric identity of `labels`, taking a reference on this node.
    pub async fn resolve(&self, labels: &Labels) -> Result<EndpointIdentity, AllocatorError> {
        let id = self.allocator.allocate(labels).await?;
        Ok(EndpointIdentity {
            id: id.as_u32(),
            labels: labels.to_strings(),
        })
    }

    /// One garbage-collection round over the cluster's identities: deletes those no node
    /// references any more (the operator's job in Cilium; any agent may do it, the
    /// allocator's per-label-set locks keep concurrent rounds safe).
    pub async fn collect_unused(&self) -> Result<GcStats, AllocatorError> {
        self.allocator.gc_once().await
    }

    /// Drops this node's reference on `labels` (in the background).
    pub fn release(self: &Arc<Self>, labels: Labels) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = this.allocator.release(&labels).await {
                tracing::warn!(error = %crate::api::chain(&error), "releasing an identity failed");
            }
        });
    }

    /// Records that endpoint `id` now holds the reference taken on `labels`, and releases the
    /// one it held before.
    pub fn hold(self: &Arc<Self>, id: EndpointId, labels: Labels) {
        let previous = self.held.lock().expect("held lock").insert(id, labels);
        if let Some(previous) = previous {
            self.release(previous);
        }
    }

    /// Whether endpoint `id` holds a reference on exactly `labels`.
    pub fn holds(&self, id: EndpointId, labels: &Labels) -> bool {
        self.held.lock().expect("held lock").get(&id) == Some(labels)
    }

    /// Releases the reference endpoint `id` holds, if any (the endpoint is gone).
    pub fn forget(self: &Arc<Self>, id: EndpointId) {
        let held = self.held.lock().expect("held lock").remove(&id);
        if let Some(labels) = held {
            self.release(labels);
        }
    }

    /// Queues an endpoint for background resolution.
    pub fn resolve_later(&self, endpoint: EndpointSelector) {
        let _ = self.retries.send(endpoint);
    }
}

/// Cilium's identity labels of `pod`, from the Pod and Namespace objects in `metadata` where
/// they exist, filtered by `filter`.
fn derive_labels(
    metadata: &PodMetadata,
    cluster: &str,
    pod: &PodRef,
    filter: &LabelFilter,
) -> Labels {
    let parsed: Vec<Label> = pod
        .labels
        .iter()
        .filter_map(|l| Label::parse(l).ok())
        .collect();
    if pod.namespace.is_empty() {
        return filter.filter(&parsed.into_iter().collect());
    }
    let object = metadata.pod(&pod.namespace, &pod.name);
    let pod_labels: Vec<(String, String)> = match &object {
        Some(object) => object.labels.clone().into_iter().collect(),
        None => parsed
            .iter()
            .filter(|l| l.source == source::K8S)
            .map(|l| (l.key.clone(), l.value.clone()))
            .collect(),
    };
    let service_account = object
        .as_ref()
        .map_or(DEFAULT_SERVICE_ACCOUNT, |o| o.service_account.as_str());
    let mut labels = Labels::from_pod(
        pod_labels,
        &pod.namespace,
        metadata
            .namespace_labels(&pod.namespace)
            .unwrap_or_default(),
        service_account,
        cluster,
    );
    for label in parsed.into_iter().filter(|l| l.source != source::K8S) {
        if labels.get(&label.key).is_none() {
            labels.insert(label);
        }
    }
    filter.filter(&labels)
}

/// Endpoints being resolved, and those to resolve once more when that is done (their Pod or
/// Namespace changed meanwhile).
#[derive(Default)]
struct InFlight {
    running: BTreeSet<EndpointId>,
    again: BTreeSet<EndpointId>,
}

/// Resolves queued endpoints' identities (once the cluster's Pods and Namespaces are known),
/// retrying while the kvstore is unreachable, and regenerates each endpoint whose identity
/// changed. One resolution per endpoint runs at a time; requests meanwhile are merged into
/// one more run.
pub async fn run_worker(agent: Arc<Agent>, mut queue: mpsc::UnboundedReceiver<EndpointSelector>) {
    agent.identities.metadata().wait_synced().await;
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    while let Some(selector) = queue.recv().await {
        let Some(id) = agent.endpoint_id(&selector) else {
            continue; // deleted meanwhile
        };
        {
            let mut state = in_flight.lock().expect("in-flight lock");
            if !state.running.insert(id) {
                state.again.insert(id);
                continue;
            }
        }
        let agent = Arc::clone(&agent);
        let in_flight = Arc::clone(&in_flight);
        tokio::spawn(async move {
            loop {
                resolve_endpoint(&agent, id).await;
                let mut state = in_flight.lock().expect("in-flight lock");
                if !state.again.remove(&id) {
                    state.running.remove(&id);
                    return;
                }
            }
        });
    }
}

/// Derives endpoint `id`'s labels and, unless it already holds them, gives it their identity.
async fn resolve_endpoint(agent: &Arc<Agent>, id: EndpointId) {
    let mut pause = Duration::from_millis(200);
    loop {
        let Some(pod) = agent.endpoint_pod(&EndpointSelector::Id(id)) else {
            return; // deleted meanwhile
        };
        let labels = agent.identities.labels_of(&pod);
        if agent.identities.holds(id, &labels) {
            return;
        }
        match agent.identities.resolve(&labels).await {
            Ok(identity) => {
                let agent = Arc::clone(agent);
                let applied =
                    tokio::task::spawn_blocking(move || agent.apply_identity(id, identity, labels))
                        .await;
                if let Ok(Err(error)) = applied {
                    tracing::warn!(endpoint = %id, error = %crate::api::chain(&error), "applying a resolved identity failed");
                }
                return;
            }
            Err(AllocatorError::EmptyLabels) => {
                tracing::warn!(endpoint = %id, "endpoint has no identity-relevant labels; it keeps reserved:init");
                return;
            }
            Err(error) => {
                tracing::warn!(endpoint = %id, error = %crate::api::chain(&error), "identity allocation failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(namespace: &str, name: &str, labels: &[&str]) -> PodRef {
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn derive(metadata: &PodMetadata, pod: &PodRef) -> Vec<String> {
        derive_labels(metadata, "c1", pod, &LabelFilter::default()).to_strings()
    }

    fn namespace(name: &str, labels: serde_json::Value) -> serde_json::Value {
        json!({"kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    }

    #[test]
    fn without_objects_cni_labels_and_kubernetes_defaults_make_the_identity() {
        let metadata = PodMetadata::default();
        let labels = derive(
            &metadata,
            &pod(
                "shop",
                "web-1",
                &[
                    "k8s:app=web",
                    "k8s:io.kubernetes.pod.namespace=shop",
                    "k8s:pod-template-hash=abc",
                ],
            ),
        );
        assert_eq!(
            labels,
            [
                "k8s:app=web",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s:io.cilium.k8s.policy.cluster=c1",
                "k8s:io.cilium.k8s.policy.serviceaccount=default",
                "k8s:io.kubernetes.pod.namespace=shop",
            ],
            "pod-template-hash is not identity-relevant"
        );
    }

    #[test]
    fn pod_and_namespace_objects_supply_labels_and_service_account() {
        let metadata = PodMetadata::default();
        metadata
            .upsert(
                "k/ns",
                &namespace(
                    "shop",
                    json!({"team": "x", "kubernetes.io/metadata.name": "shop"}),
                ),
            )
            .unwrap();
        metadata
            .upsert(
                "k/pod",
                &json!({"kind": "Pod",
                    "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
                    "spec": {"serviceAccountName": "web-sa"}}),
            )
            .unwrap();
        // The CNI labels are stale: the object dropped `old` and changed `app`.
        let labels = derive(
            &metadata,
            &pod(
                "shop",
                "web-1",
                &["k8s:app=legacy", "k8s:old=yes", "container:build=7"],
            ),
        );
        assert_eq!(
            labels,
            [
                "k8s:app=web",
                "container:build=7",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s:io.cilium.k8s.namespace.labels.team=x",
                "k8s:io.cilium.k8s.policy.cluster=c1",
                "k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
                "k8s:io.kubernetes.pod.namespace=shop",
                "k8s:tier=front",
            ]
        );
        // Another pod of the namespace without an object still gets the namespace's labels.
        let other = derive(&metadata, &pod("shop", "db-0", &["k8s:app=db"]));
        assert!(
            other.contains(&"k8s:io.cilium.k8s.namespace.labels.team=x".to_string()),
            "{other:?}"
        );
    }

    #[test]
    fn labels_of_other_sources_cannot_override_derived_ones() {
        let metadata = PodMetadata::default();
        let labels = derive(
            &metadata,
            &pod(
                "shop",
                "web-1",
                &[
                    "cni:io.cilium.k8s.policy.serviceaccount=admin",
                    "k8s:io.cilium.k8s.namespace.labels.team=root",
                ],
            ),
        );
        assert!(
            labels.contains(&"k8s:io.cilium.k8s.policy.serviceaccount=default".to_string()),
            "{labels:?}"
        );
        assert!(
            !labels.iter().any(|l| l.contains("team=root")),
            "{labels:?}"
        );
    }

    #[test]
    fn endpoints_outside_kubernetes_keep_their_labels_as_given() {
        let metadata = PodMetadata::default();
        assert_eq!(
            derive(
                &metadata,
                &pod("", "box", &["cni:app=box", "container:tier=db"])
            ),
            ["cni:app=box", "container:tier=db"]
        );
    }
}
