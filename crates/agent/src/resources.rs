//! The resource model in the kvstore: objects applied with `cilium apply -f` (policies,
//! namespaces, pods, …) are stored under
//! `cilium/state/resources/v1/<cluster>/<kind>/<namespace or _>/<name>` as JSON (namespaced
//! kinds that name no namespace are in `default`, as the API server would put them), and
//! every agent follows that prefix. Policies found there are enforced on every node without
//! restarting anything; Pods and Namespaces feed the agent's pod metadata
//! ([`crate::pod_metadata`]), from which endpoint identities and named ports are derived.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cilium_kvstore::{KvError, KvStore, WatchEvent};
use cilium_policy::{parse_documents, PolicyDocument, PolicyError, PolicySource};
use futures::StreamExt;

use crate::agent::Agent;
use crate::pod_metadata::Change;

const PREFIX: &str = "cilium/state/resources/v1/";

/// The kinds `cilium apply -f` accepts that are not namespaced.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "CiliumIdentity",
    "CiliumNode",
    "CiliumCIDRGroup",
    "CiliumClusterwideEnvoyConfig",
    "CiliumEgressGatewayPolicy",
    "CiliumLoadBalancerIPPool",
];

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    Parse(#[from] PolicyError),
    #[error("document {index} ({kind}) has no metadata.name")]
    Unnamed { index: usize, kind: String },
    #[error("writing to the kvstore")]
    Store(#[from] KvError),
    #[error("assigning service addresses")]
    ServiceAddresses(#[from] crate::services::alloc::AllocError),
}

/// Prefix of every resource of `cluster`.
pub fn prefix(cluster: &str) -> String {
    format!("{PREFIX}{cluster}/")
}

/// The key of one document.
fn key_of(cluster: &str, document: &PolicyDocument) -> Option<String> {
    let name = document.name()?;
    let namespace = match document {
        PolicyDocument::Policy(policy) => policy.namespace.clone(),
        PolicyDocument::Other { kind, raw, .. } if !CLUSTER_SCOPED.contains(&kind.as_str()) => {
            Some(
                raw["metadata"]["namespace"]
                    .as_str()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(cilium_policy::DEFAULT_NAMESPACE)
                    .to_string(),
            )
        }
        PolicyDocument::Other { .. } => None,
    };
    Some(format!(
        "{}{}/{}/{}",
        prefix(cluster),
        document.kind(),
        namespace.as_deref().unwrap_or("_"),
        name
    ))
}

/// Validates every document of `text` and returns their keys and JSON values; nothing is
/// returned when any document is invalid.
fn documents(cluster: &str, text: &str) -> Result<Vec<(String, Vec<u8>)>, ResourceError> {
    let documents = parse_documents("request", text)?;
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let key = key_of(cluster, document).ok_or_else(|| ResourceError::Unnamed {
                index: index + 1,
                kind: document.kind().to_string(),
            })?;
            let value = serde_json::to_vec(document.raw()).expect("JSON values serialize");
            Ok((key, value))
        })
        .collect()
}

/// How many objects `apply` writes at once: each costs a few kvstore round trips (a Service
/// also claims its addresses), which one at a time made a file of 10,000 Services take half
/// a minute.
const APPLY_IN_FLIGHT: usize = 64;

/// `cilium apply -f`: stores every object of `text` (when a file names an object twice, the
/// last document wins, as with `kubectl apply`); returns the keys written, in file order.
/// Objects are written concurrently and independently: every object is tried, the objects
/// written stay, and the first error (in completion order) is returned. A Service whose
/// write failed may keep the address it claimed; applying it again takes that claim back.
pub async fn apply(
    store: &dyn KvStore,
    cluster: &str,
    text: &str,
) -> Result<Vec<String>, ResourceError> {
    let objects = last_document_per_key(documents(cluster, text)?);
    let keys = objects.iter().map(|(key, _)| key.clone()).collect();
    let results: Vec<Result<(), ResourceError>> = futures::stream::iter(objects)
        .map(|(key, value)| store_object(store, cluster, key, value))
        .buffer_unordered(APPLY_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(keys)
}

/// The documents with the last one of each key, in the order of those last ones.
fn last_document_per_key(objects: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let last: HashMap<&str, usize> = objects
        .iter()
        .enumerate()
        .map(|(index, (key, _))| (key.as_str(), index))
        .collect();
    let keep: Vec<bool> = objects
        .iter()
        .enumerate()
        .map(|(index, (key, _))| last[key.as_str()] == index)
        .collect();
    objects
        .into_iter()
        .zip(keep)
        .filter_map(|(object, kept)| kept.then_some(object))
        .collect()
}

/// Writes one object, a Service with its addresses assigned.
async fn store_object(
    store: &dyn KvStore,
    cluster: &str,
    key: String,
    mut value: Vec<u8>,
) -> Result<(), ResourceError> {
    if key.contains("/Service/") {
        value = with_service_addresses(store, cluster, &key, &value).await?;
    }
    store.put(&key, value, None).await?;
    Ok(())
}

/// A Service object with its cluster IP and node ports filled in as the API server would
/// ([`crate::services::alloc`]), keeping those of the version already stored.
async fn with_service_addresses(
    store: &dyn KvStore,
    cluster: &str,
    key: &str,
    value: &[u8],
) -> Result<Vec<u8>, ResourceError> {
    let mut service: serde_json::Value =
        serde_json::from_slice(value).expect("documents() produced JSON");
    let previous = store
        .get(key)
        .await?
        .and_then(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok());
    crate::services::alloc::assign(store, cluster, &mut service, previous.as_ref()).await?;
    Ok(serde_json::to_vec(&service).expect("JSON values serialize"))
}

/// `cilium delete -f`: removes every object of `text`; returns the keys that existed.
pub async fn delete(
    store: &dyn KvStore,
    cluster: &str,
    text: &str,
) -> Result<Vec<String>, ResourceError> {
    let objects = documents(cluster, text)?;
    let mut deleted = Vec::new();
    for (key, _) in objects {
        let stored = store.get(&key).await?;
        if store.delete(&key).await? {
            if let Some(Ok(service)) = stored
                .filter(|_| key.contains("/Service/"))
                .map(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value))
            {
                crate::services::alloc::release(store, cluster, &service).await?;
            }
            deleted.push(key);
        }
    }
    Ok(deleted)
}

/// What one batch of events changed.
#[derive(Default)]
struct Changes {
    policies: bool,
    pods: Vec<Change>,
}

/// Follows the cluster's resources: keeps the agent's policy repository in step with the
/// policies among them, and its pod metadata with the Pods and Namespaces.
pub async fn follow(agent: Arc<Agent>) {
    let store = Arc::clone(agent.cluster.store());
    let prefix = prefix(agent.cluster.cluster_name());
    let mut pause = Duration::from_millis(100);
    let (entries, revision) = loop {
        match store.list(&prefix).await {
            Ok(listing) => break listing,
            Err(error) => {
                tracing::warn!(error = %crate::api::chain(&error), "kvstore unreachable; retrying the resource listing");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    };
    let mut sources: BTreeMap<String, PolicySource> = BTreeMap::new();
    let mut changes = Changes::default();
    for kv in entries {
        apply_event(&agent, &mut sources, &mut changes, WatchEvent::Put(kv));
    }
    agent.identities.metadata().mark_synced();
    changes.policies = true;
    refresh(&agent, changes).await;
    let mut watch = store.watch(&prefix, revision + 1);
    while let Some(event) = watch.recv().await {
        let mut changes = Changes::default();
        apply_event(&agent, &mut sources, &mut changes, event);
        if changes.policies || !changes.pods.is_empty() {
            refresh(&agent, changes).await;
        }
    }
}

/// Applies one change to the repository or the pod metadata, noting what changed.
fn apply_event(
    agent: &Agent,
    sources: &mut BTreeMap<String, PolicySource>,
    changes: &mut Changes,
    event: WatchEvent,
) {
    match event {
        WatchEvent::Put(kv) => {
            let parsed = serde_json::from_slice(&kv.value)
                .map_err(|e| e.to_string())
                .and_then(|value| PolicyDocument::from_value(value).map_err(|e| e.to_string()));
            match parsed {
                Ok(PolicyDocument::Policy(policy)) => {
                    sources.insert(kv.key, PolicySource::of(&policy));
                    agent.policy.upsert(&policy);
                    changes.policies = true;
                }
                Ok(PolicyDocument::Other { kind, raw, .. }) => {
                    agent.services.upsert_object(&kv.key, &kind, &raw);
                    match agent.identities.metadata().upsert(&kv.key, &raw) {
                        Ok(change) => changes.pods.extend(change),
                        Err(error) => {
                            tracing::warn!(error = %crate::api::chain(&error), "ignoring an invalid resource")
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(key = kv.key, error, "ignoring an invalid resource");
                }
            }
        }
        WatchEvent::Delete { key, .. } => match sources.remove(&key) {
            Some(source) => {
                agent.policy.delete(&source);
                changes.policies = true;
            }
            None => {
                agent.services.remove_object(&key);
                changes
                    .pods
                    .extend(agent.identities.metadata().remove(&key));
            }
        },
    }
}

/// Acts on what changed: endpoints whose Pod or Namespace changed get their identity
/// derived again; policies are resolved again.
async fn refresh(agent: &Arc<Agent>, changes: Changes) {
    let agent = Arc::clone(agent);
    let _ = tokio::task::spawn_blocking(move || {
        if !changes.pods.is_empty() {
            agent.pod_metadata_changed(&changes.pods);
        }
        if changes.policies {
            agent.apply_policies();
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        documents("c1", text)
            .expect("valid documents")
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    #[test]
    fn namespaced_objects_without_a_namespace_land_in_default() {
        assert_eq!(
            keys(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: xwing}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop}\n---\n\
                 apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: x}}\n"
            ),
            [
                "cilium/state/resources/v1/c1/Pod/default/xwing",
                "cilium/state/resources/v1/c1/Pod/shop/db",
                "cilium/state/resources/v1/c1/Namespace/_/shop",
            ]
        );
    }

    fn service_yaml(name: &str, port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{type: NodePort, selector: {{app: {name}}}, ports: [{{port: {port}}}]}}\n"
        )
    }

    #[tokio::test]
    async fn apply_writes_every_object_with_distinct_addresses_and_the_last_duplicate_wins() {
        let store = cilium_kvstore::MemoryStore::new();
        let mut text: Vec<String> = (0..300)
            .map(|i| service_yaml(&format!("svc{i}"), 80))
            .collect();
        text.push(service_yaml("svc7", 8080));
        let keys = apply(&store, "c1", &text.join("---\n"))
            .await
            .expect("applied");
        assert_eq!(keys.len(), 300, "one key per object");
        assert_eq!(
            keys.last().map(String::as_str),
            Some("cilium/state/resources/v1/c1/Service/shop/svc7"),
            "a repeated object is written where its last document is"
        );

        let (stored, _) = store.list(&prefix("c1")).await.expect("listed");
        assert_eq!(stored.len(), 300);
        let mut cluster_ips = std::collections::HashSet::new();
        let mut node_ports = std::collections::HashSet::new();
        for kv in &stored {
            let service: serde_json::Value = serde_json::from_slice(&kv.value).expect("JSON");
            cluster_ips.insert(
                service["spec"]["clusterIP"]
                    .as_str()
                    .expect("IP")
                    .to_string(),
            );
            node_ports.insert(
                service["spec"]["ports"][0]["nodePort"]
                    .as_u64()
                    .expect("port"),
            );
            if kv.key.ends_with("/svc7") {
                assert_eq!(
                    service["spec"]["ports"][0]["port"], 8080,
                    "the last svc7 wins"
                );
            }
        }
        assert_eq!(
            cluster_ips.len(),
            300,
            "concurrent claims never share a cluster IP"
        );
        assert_eq!(node_ports.len(), 300, "nor a node port");
    }
}
