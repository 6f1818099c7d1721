//! Resolving endpoints' security identities: the identity-relevant labels of a pod (Cilium's
//! derivation: pod labels, namespace, service account, cluster; Cilium's default label filter)
//! and their cluster-wide number from the kvstore allocator.
//!
//! The API path tries to resolve an identity right away (so a CNI ADD normally returns an
//! endpoint with its final identity); when the kvstore cannot answer in time the endpoint
//! starts as `reserved:init`, and the identity worker resolves it in the background and
//! regenerates the endpoint, as Cilium does.

use std::sync::Arc;
use std::time::Duration;

use cilium_endpoint::{EndpointIdentity, EndpointSelector};
use cilium_identity::{
    AllocatorConfig, AllocatorError, IdentityAllocator, Label, LabelFilter, Labels,
};
use cilium_kvstore::{KvStore, LeasedKeys};
use tokio::sync::mpsc;

use crate::agent::Agent;

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

const NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";
const SERVICE_ACCOUNT: &str = "default";

/// Label derivation, filtering and allocation.
pub struct Identities {
    allocator: IdentityAllocator,
    filter: LabelFilter,
    cluster: String,
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
            retries,
        };
        (identities, queue)
    }

    /// The identity-relevant labels of a pod in `namespace` carrying `labels`
    /// (`source:key=value`). Unparseable labels are left out.
    pub fn labels_of(&self, namespace: &str, labels: &[String]) -> Labels {
        let parsed: Vec<Label> = labels.iter().filter_map(|l| Label::parse(l).ok()).collect();
        let mut set = if namespace.is_empty() {
            Labels::new()
        } else {
            let pod = parsed
                .iter()
                .filter(|l| l.source == "k8s" && l.key != NAMESPACE_KEY)
                .map(|l| (l.key.clone(), l.value.clone()));
            Labels::from_pod(
                pod,
                namespace,
                std::iter::empty::<(String, String)>(),
                SERVICE_ACCOUNT,
                &self.cluster,
            )
        };
        for label in parsed {
            if label.source != "k8s" || namespace.is_empty() {
                set.insert(label);
            }
        }
        self.filter.filter(&set)
    }

    /// The numeric identity of `labels`, taking a reference on this node.
    pub async fn resolve(&self, labels: &Labels) -> Result<EndpointIdentity, AllocatorError> {
        let id = self.allocator.allocate(labels).await?;
        Ok(EndpointIdentity {
            id: id.as_u32(),
            labels: labels.to_strings(),
        })
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

    /// Queues an endpoint for background resolution.
    pub fn resolve_later(&self, endpoint: EndpointSelector) {
        let _ = self.retries.send(endpoint);
    }
}

/// Resolves queued endpoints' identities, retrying while the kvstore is unreachable, and
/// regenerates each endpoint with its identity.
pub async fn run_worker(agent: Arc<Agent>, mut queue: mpsc::UnboundedReceiver<EndpointSelector>) {
    while let Some(selector) = queue.recv().await {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(200);
            loop {
                let Some((namespace, labels)) = agent.endpoint_labels(&selector) else {
                    return; // deleted meanwhile
                };
                let labels = agent.identities.labels_of(&namespace, &labels);
                match agent.identities.resolve(&labels).await {
                    Ok(identity) => {
                        let agent = Arc::clone(&agent);
                        let applied = tokio::task::spawn_blocking(move || {
                            agent.apply_identity(&selector, identity)
                        })
                        .await;
                        if let Ok(Err(error)) = applied {
                            tracing::warn!(error = %crate::api::chain(&error), "applying a resolved identity failed");
                        }
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(error = %crate::api::chain(&error), "identity allocation failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        });
    }
}
