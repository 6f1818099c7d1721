//! `node add`, `node del` and `node restart-agent`: nodes joining a running lab, dying
//! abruptly, and having their agent restarted while their pods keep running.
//!
//! A restarted agent keeps its datapath pinned in between, so established connections
//! survive; it restores its endpoints and keeps its pod CIDR.

use std::time::Duration;

use crate::agent::{AgentError, ClusterConfig};
use crate::bins::{self, BinDir};
use crate::lab::Lab;
use crate::names::NodeName;
use crate::node::{self, NodeError as LifecycleError};
use crate::plan::MAX_NODES;
use crate::process::{self, ProcessError};
use crate::report::{self, Problems};
use crate::state::{LabState, NodeState, StateError, StateLock};

/// How long the agent gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot access the lab's state")]
    State {
        #[source]
        source: StateError,
    },
    #[error("lab {lab} is not up (run `cilium-lab up{flag}`)")]
    NotUp { lab: String, flag: String },
    #[error("no node {node} in lab {lab}")]
    NoSuchNode { node: String, lab: String },
    #[error("node {node} already exists in lab {lab}")]
    Exists { node: String, lab: String },
    #[error("lab {lab} cannot have a node{index}: at most {MAX_NODES} node numbers")]
    TooMany { lab: String, index: u8 },
    #[error("stopping the agent of {node}")]
    Stop {
        node: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot add {node}")]
    Create {
        node: String,
        #[source]
        source: Box<LifecycleError>,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The cause is shown first; the cleanup outcome after it.
    #[error("{}\n{cleanup}", report::chain(.cause.as_ref()))]
    RolledBack {
        cause: Box<NodeError>,
        cleanup: CleanupNote,
    },
    #[error("{node} was removed, with problems:{problems}")]
    Incomplete {
        node: String,
        problems: Problems<LifecycleError>,
    },
}

/// Problems the rollback of a failed `node add` ran into (shown after the main message).
#[derive(Debug)]
pub struct CleanupNote(Problems<LifecycleError>);

impl std::fmt::Display for CleanupNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("The half-made node was removed again.")
        } else {
            write!(f, "Removing the half-made node left problems:{}", self.0)
        }
    }
}

/// What `node del` removed.
#[derive(Debug, Clone)]
pub struct Removed {
    pub node: NodeState,
    /// `namespace/name` of each pod that went with it.
    pub pods: Vec<String>,
}

/// `cilium-lab node add`: a new node joins the running lab with the lab's routing and etcd;
/// without `name`, it is the next never-used `nodeK`. Returns the node once its agent is
/// ready.
pub fn add(lab: &Lab, bins: &BinDir, name: Option<NodeName>) -> Result<NodeState, NodeError> {
    let lock = StateLock::acquire(lab).map_err(|source| NodeError::State { source })?;
    let mut state = load(lab, &lock)?;
    let name = name.unwrap_or(NodeName::new(state.next_node));
    if name.index() > MAX_NODES {
        return Err(NodeError::TooMany {
            lab: lab.name().to_string(),
            index: name.index(),
        });
    }
    if state.node(name).is_some() {
        return Err(NodeError::Exists {
            node: name.to_string(),
            lab: lab.name().to_string(),
        });
    }
    // Record the node before creating it, so `down` finds it even if this process dies.
    state.nodes.push(node::layout(lab, name));
    state.next_node = state.next_node.max(name.index().saturating_add(1));
    save(&lock, &state)?;
    let index = state.nodes.len() - 1;
    match join(lab, bins, &lock, &mut state, index) {
        Ok(()) => Ok(state.nodes[index].clone()),
        Err(error) => {
            let node = state.nodes.remove(index);
            let problems = node::remove(lab, bins, &node, &[]);
            save(&lock, &state)?;
            Err(NodeError::RolledBack {
                cause: Box::new(error),
                cleanup: CleanupNote(Problems(problems)),
            })
        }
    }
}

/// Creates node `index` of `state` and brings its agent up, saving the state as it goes.
fn join(
    lab: &Lab,
    bins: &BinDir,
    lock: &StateLock,
    state: &mut LabState,
    index: usize,
) -> Result<(), NodeError> {
    let cluster = ClusterConfig::of(state);
    let node = &mut state.nodes[index];
    node::create(lab, node).map_err(|source| NodeError::Create {
        node: node.name.clone(),
        source: Box::new(source),
    })?;
    let pid = node::start_agent(bins, &cluster, node)?;
    save(lock, state)?;
    node::await_agent(&mut state.nodes[index], pid)?;
    save(lock, state)
}

/// `cilium-lab node del`: the node dies. Its agent is killed with SIGKILL, so it withdraws
/// nothing from the kvstore (the other nodes notice when its lease expires); the node leaves
/// the underlay, and its pods, namespace, bpffs root and files go.
pub fn del(lab: &Lab, bins: &BinDir, name: NodeName) -> Result<Removed, NodeError> {
    let lock = StateLock::acquire(lab).map_err(|source| NodeError::State { source })?;
    let mut state = load(lab, &lock)?;
    let index = find(lab, &state, name)?;
    let node = state.nodes.remove(index);
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.pods)
        .into_iter()
        .partition(|p| p.node == node.name);
    state.pods = kept;
    let problems = node::remove(lab, bins, &node, &gone);
    save(&lock, &state)?;
    if problems.is_empty() {
        Ok(Removed {
            node,
            pods: gone
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
        })
    } else {
        Err(NodeError::Incomplete {
            node: node.name,
            problems: Problems(problems),
        })
    }
}

/// Restarts the agent of `node`; returns the new PID once it is ready.
pub fn restart_agent(lab: &Lab, bins: &BinDir, node: NodeName) -> Result<u32, NodeError> {
    let lock = StateLock::acquire(lab).map_err(|source| NodeError::State { source })?;
    let mut state = load(lab, &lock)?;
    let index = find(lab, &state, node)?;
    let cluster = ClusterConfig::of(&state);
    let current = &mut state.nodes[index];
    if let Some(pid) = current.agent_pid {
        process::terminate(pid, bins::AGENT, STOP_GRACE).map_err(|source| NodeError::Stop {
            node: current.name.clone(),
            source,
        })?;
    }
    // The agent writes the conflist again once it is ready; waiting for it tells us when.
    let _ = std::fs::remove_file(&current.cni_conflist);
    let pid = node::start_agent(bins, &cluster, current)?;
    save(&lock, &state)?;
    node::await_agent(&mut state.nodes[index], pid)?;
    save(&lock, &state)?;
    Ok(pid)
}

fn save(lock: &StateLock, state: &LabState) -> Result<(), NodeError> {
    lock.save(state)
        .map_err(|source| NodeError::State { source })
}

fn load(lab: &Lab, lock: &StateLock) -> Result<LabState, NodeError> {
    lock.load()
        .map_err(|source| NodeError::State { source })?
        .ok_or_else(|| NodeError::NotUp {
            lab: lab.name().to_string(),
            flag: lab.name_flag(),
        })
}

fn find(lab: &Lab, state: &LabState, node: NodeName) -> Result<usize, NodeError> {
    state
        .nodes
        .iter()
        .position(|n| n.name == node.to_string())
        .ok_or_else(|| NodeError::NoSuchNode {
            node: node.to_string(),
            lab: lab.name().to_string(),
        })
}
