//! `apply -f` and `delete -f`: a file's objects into the cluster's store through node1's
//! agent, and its Pods and Deployments realized as lab pods, the way a kubelet would.
//!
//! The store gets what a Kubernetes API server would hold: the file's objects and, for each
//! Deployment, the Pod objects its controller would create (agents derive pods' identities
//! and named ports from Pod and Namespace objects). Deleting a Namespace deletes its pods.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cilium_api::{AgentClient, ClientError};

use crate::bins::BinDir;
use crate::commands::pod::{self, PodError};
use crate::lab::Lab;
use crate::manifest::{self, ManifestError, Workload};
use crate::names::PodKey;
use crate::report::Problems;
use crate::state::{LabState, NodeState};

/// How long `pod del` waits for the agent to remove a Pod object (the pod is gone already; a
/// kvstore outage must not hold the command up for long).
const FORGET_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of `apply` and `delete`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: Box<ManifestError>,
    },
    #[error(transparent)]
    Lab { source: Box<PodError> },
    #[error("the agent on {node} refused {path}")]
    Agent {
        node: String,
        path: PathBuf,
        #[source]
        source: ClientError,
    },
    #[error("the agent on {node} could not remove the Pod object of {pod}")]
    ForgetPod {
        node: String,
        pod: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot realize pod {pod}")]
    Realize {
        pod: String,
        #[source]
        source: Box<PodError>,
    },
    #[error("the objects were {verb}, but pods were left with problems:{problems}")]
    Pods {
        verb: &'static str,
        problems: Problems<ApplyError>,
    },
}

/// What `apply` or `delete` did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The kvstore keys the agent stored or removed.
    pub keys: Vec<String>,
    /// Pods created or deleted.
    pub pods: Vec<PodKey>,
    /// Pods that already existed (`apply`) and were left alone.
    pub unchanged: Vec<PodKey>,
}

/// `cilium-lab apply -f FILE`.
pub fn apply(lab: &Lab, bins: &BinDir, file: &Path) -> Result<Outcome, ApplyError> {
    let (text, workloads) = read(file)?;
    let state = pod::read_running(lab).map_err(|source| ApplyError::Lab {
        source: Box::new(source),
    })?;
    let objects = with_created_pods(&text, &workloads);
    let keys = send(&state, file, |agent| agent.resources_apply(&objects))?;
    let mut outcome = Outcome {
        keys,
        ..Outcome::default()
    };
    let mut problems = Vec::new();
    for plan in workloads.iter().flat_map(Workload::pods) {
        let current = pod::read_running(lab).map_err(|source| ApplyError::Lab {
            source: Box::new(source),
        })?;
        if current.pod(&plan.key).is_some() {
            outcome.unchanged.push(plan.key.clone());
            continue;
        }
        let opts = pod::PodOptions {
            key: plan.key.clone(),
            node: plan.node,
            labels: plan.labels.clone(),
            serve: plan.serve.clone(),
        };
        match pod::add(lab, bins, &opts) {
            Ok(_) => outcome.pods.push(plan.key.clone()),
            Err(source) => problems.push(ApplyError::Realize {
                pod: plan.key.to_string(),
                source: Box::new(source),
            }),
        }
    }
    finish(outcome, problems, "applied")
}

/// `cilium-lab delete -f FILE`.
pub fn delete(lab: &Lab, bins: &BinDir, file: &Path) -> Result<Outcome, ApplyError> {
    let (text, workloads) = read(file)?;
    let state = pod::read_running(lab).map_err(|source| ApplyError::Lab {
        source: Box::new(source),
    })?;
    let owned: Vec<PodKey> = state
        .pods
        .iter()
        .filter(|p| {
            workloads
                .iter()
                .any(|w| w.owns(&p.namespace, &p.name, &p.labels))
        })
        .map(|p| PodKey {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
        })
        .collect();
    // The pods go, and so do their Pod objects (also those a deleted Namespace takes along).
    let mut objects = with_created_pods(&text, &workloads);
    for key in &owned {
        objects.push_str("\n---\n");
        objects.push_str(&pod_stub(key).to_string());
        objects.push('\n');
    }
    let keys = send(&state, file, |agent| agent.resources_delete(&objects))?;
    let mut outcome = Outcome {
        keys,
        ..Outcome::default()
    };
    let mut problems = Vec::new();
    for key in owned {
        match pod::del(lab, bins, &key) {
            Ok(_) => outcome.pods.push(key),
            Err(source) => problems.push(ApplyError::Realize {
                pod: key.to_string(),
                source: Box::new(source),
            }),
        }
    }
    finish(outcome, problems, "deleted")
}

/// The file's text and the workloads in it.
fn read(file: &Path) -> Result<(String, Vec<Workload>), ApplyError> {
    let text = std::fs::read_to_string(file).map_err(|source| ApplyError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let workloads = manifest::workloads(&text).map_err(|source| ApplyError::Manifest {
        path: file.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok((text, workloads))
}

/// The file's documents followed by the Pod objects its workloads' controllers would create.
fn with_created_pods(text: &str, workloads: &[Workload]) -> String {
    let mut all = text.to_string();
    for object in workloads.iter().flat_map(Workload::created_objects) {
        all.push_str("\n---\n");
        all.push_str(&object.to_string());
        all.push('\n');
    }
    all
}

/// A Pod object naming pod `key` (enough to delete it from the store).
fn pod_stub(key: &PodKey) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": key.name, "namespace": key.namespace},
    })
}

/// `cilium-lab pod del`'s last step: the pod's Pod object leaves the store, as deleting a pod
/// in Kubernetes deletes its object. Returns the key removed (none when there was no object).
pub fn forget_pod(lab: &Lab, key: &PodKey) -> Result<Vec<String>, ApplyError> {
    let state = pod::read_running(lab).map_err(|source| ApplyError::Lab {
        source: Box::new(source),
    })?;
    let node = first_node(&state)?;
    let answer = AgentClient::new(&node.socket)
        .with_timeout(FORGET_TIMEOUT)
        .resources_delete(&pod_stub(key).to_string())
        .map_err(|source| ApplyError::ForgetPod {
            node: node.name.clone(),
            pod: key.to_string(),
            source,
        })?;
    Ok(keys_of(&answer))
}

/// Sends the objects to the first node's agent; returns the keys it reports.
fn send(
    state: &LabState,
    file: &Path,
    call: impl FnOnce(&AgentClient) -> Result<serde_json::Value, ClientError>,
) -> Result<Vec<String>, ApplyError> {
    let node = first_node(state)?;
    let answer = call(&AgentClient::new(&node.socket)).map_err(|source| ApplyError::Agent {
        node: node.name.clone(),
        path: file.to_path_buf(),
        source,
    })?;
    Ok(keys_of(&answer))
}

/// The node whose agent takes the lab's resources.
fn first_node(state: &LabState) -> Result<&NodeState, ApplyError> {
    state.nodes.first().ok_or_else(|| ApplyError::Lab {
        source: Box::new(PodError::NoNodes {
            lab: state.name.clone(),
            flag: String::new(),
        }),
    })
}

/// The keys an agent's resources answer lists.
fn keys_of(answer: &serde_json::Value) -> Vec<String> {
    answer["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

fn finish(
    outcome: Outcome,
    problems: Vec<ApplyError>,
    verb: &'static str,
) -> Result<Outcome, ApplyError> {
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(ApplyError::Pods {
            verb,
            problems: Problems(problems),
        })
    }
}
