//! The resource model in the kvstore: objects applied with `cilium apply -f` (policies,
//! namespaces, pods, …) are stored under
//! `cilium/state/resources/v1/<cluster>/<kind>/<namespace or _>/<name>` as JSON, and every
//! agent follows that prefix. Policies found there are enforced on every node without
//! restarting anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cilium_kvstore::{KvError, KvStore, WatchEvent};
use cilium_policy::{parse_documents, PolicyDocument, PolicyError, PolicySource};

use crate::agent::Agent;

const PREFIX: &str = "cilium/state/resources/v1/";

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    Parse(#[from] PolicyError),
    #[error("document {index} ({kind}) has no metadata.name")]
    Unnamed { index: usize, kind: String },
    #[error("writing to the kvstore")]
    Store(#[from] KvError),
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
        PolicyDocument::Other { raw, .. } => {
            raw["metadata"]["namespace"].as_str().map(str::to_string)
        }
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

/// `cilium apply -f`: stores every object of `text`; returns the keys written.
pub async fn apply(
    store: &dyn KvStore,
    cluster: &str,
    text: &str,
) -> Result<Vec<String>, ResourceError> {
    let objects = documents(cluster, text)?;
    let mut keys = Vec::with_capacity(objects.len());
    for (key, value) in objects {
        store.put(&key, value, None).await?;
        keys.push(key);
    }
    Ok(keys)
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
        if store.delete(&key).await? {
            deleted.push(key);
        }
    }
    Ok(deleted)
}

/// Follows the cluster's resources and keeps the agent's policy repository in step with the
/// policies among them.
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
    for kv in entries {
        apply_event(&agent, &mut sources, WatchEvent::Put(kv));
    }
    refresh(&agent).await;
    let mut watch = store.watch(&prefix, revision + 1);
    while let Some(event) = watch.recv().await {
        if apply_event(&agent, &mut sources, event) {
            refresh(&agent).await;
        }
    }
}

/// Applies one change to the repository; returns whether policies changed.
fn apply_event(
    agent: &Agent,
    sources: &mut BTreeMap<String, PolicySource>,
    event: WatchEvent,
) -> bool {
    match event {
        WatchEvent::Put(kv) => {
            let parsed = serde_json::from_slice(&kv.value)
                .map_err(|e| e.to_string())
                .and_then(|value| PolicyDocument::from_value(value).map_err(|e| e.to_string()));
            match parsed {
                Ok(PolicyDocument::Policy(policy)) => {
                    sources.insert(kv.key, PolicySource::of(&policy));
                    agent.policy.upsert(&policy);
                    true
                }
                Ok(PolicyDocument::Other { .. }) => false,
                Err(error) => {
                    tracing::warn!(key = kv.key, error, "ignoring an invalid resource");
                    false
                }
            }
        }
        WatchEvent::Delete { key, .. } => match sources.remove(&key) {
            Some(source) => {
                agent.policy.delete(&source);
                true
            }
            None => false,
        },
    }
}

async fn refresh(agent: &Arc<Agent>) {
    let agent = Arc::clone(agent);
    let _ = tokio::task::spawn_blocking(move || agent.apply_policies()).await;
}
