//! `node restart-agent`: stops a node's agent and starts it again, as an upgrade or a crash
//! would, while its pods keep running. The datapath stays pinned in between, so established
//! connections survive; the restarted agent restores its endpoints.

use std::time::Duration;

use crate::agent::{self, AgentError};
use crate::bins::BinDir;
use crate::lab::Lab;
use crate::names::NodeName;
use crate::process::{self, ProcessError};
use crate::state::{StateError, StateLock};

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
    #[error("stopping the agent of {node}")]
    Stop {
        node: String,
        #[source]
        source: ProcessError,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// Restarts the agent of `node`; returns the new PID once it is ready.
pub fn restart_agent(lab: &Lab, bins: &BinDir, node: NodeName) -> Result<u32, NodeError> {
    let lock = StateLock::acquire(lab).map_err(|source| NodeError::State { source })?;
    let mut state = lock
        .load()
        .map_err(|source| NodeError::State { source })?
        .ok_or_else(|| NodeError::NotUp {
            lab: lab.name().to_string(),
            flag: lab.name_flag(),
        })?;
    let index = state
        .nodes
        .iter()
        .position(|n| n.name == node.to_string())
        .ok_or_else(|| NodeError::NoSuchNode {
            node: node.to_string(),
            lab: lab.name().to_string(),
        })?;
    let current = state.nodes[index].clone();
    if let Some(pid) = current.agent_pid {
        process::terminate(pid, crate::bins::AGENT, STOP_GRACE).map_err(|source| {
            NodeError::Stop {
                node: current.name.clone(),
                source,
            }
        })?;
    }
    // The agent writes the conflist again once it is ready; waiting for it tells us when.
    let _ = std::fs::remove_file(&current.cni_conflist);
    let pid = agent::start(bins, &current)?;
    state.nodes[index].agent_pid = Some(pid);
    lock.save(&state)
        .map_err(|source| NodeError::State { source })?;
    agent::wait_ready(&current, pid)?;
    Ok(pid)
}
