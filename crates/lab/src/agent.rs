//! Starting a node's `cilium-agent` inside the node namespace and waiting until it serves.
//!
//! The agent is ready when `GET /v1/healthz` reports `Ok` and it has written the CNI conflist.

use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use cilium_api::AgentClient;

use crate::bins::{self, BinDir, BinError};
use crate::netns;
use crate::process::{self, ProcessError};
use crate::report;
use crate::state::NodeState;

/// How long `up` waits for an agent to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(100);

/// Lines of `agent.log` shown when an agent fails.
const LOG_TAIL_LINES: usize = 20;

/// Errors starting an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot start the agent of {node}")]
    Binary {
        node: String,
        #[source]
        source: BinError,
    },
    #[error("cannot create {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the agent of {node}")]
    Start {
        node: String,
        #[source]
        source: ProcessError,
    },
    #[error("the agent of {node} exited before it was ready; the end of its log:\n{tail}")]
    Exited { node: String, tail: String },
    #[error("the agent of {node} was not ready within {timeout:?} ({last}); the end of its log:\n{tail}")]
    NotReady {
        node: String,
        timeout: Duration,
        last: String,
        tail: String,
    },
}

/// Starts the agent of `node` detached; returns its PID.
pub fn start(bins: &BinDir, node: &NodeState) -> Result<u32, AgentError> {
    let agent = bins
        .require(bins::AGENT)
        .map_err(|source| AgentError::Binary {
            node: node.name.clone(),
            source,
        })?;
    let conf_dir = node.cni_conflist.parent().unwrap_or(&node.dir);
    for dir in [&node.state_dir, &node.bpf_root, conf_dir] {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut cmd = netns::enter_net(&node.netns, agent);
    cmd.arg("--node-name")
        .arg(&node.name)
        .arg("--pod-cidr")
        .arg(node.pod_cidr.to_string())
        .arg("--state-dir")
        .arg(&node.state_dir)
        .arg("--socket")
        .arg(&node.socket)
        .arg("--bpf-root")
        .arg(&node.bpf_root)
        .arg("--write-cni-conf-when-ready")
        .arg(&node.cni_conflist);
    tracing::info!(node = %node.name, log = %node.log.display(), "starting agent");
    process::spawn_detached(&mut cmd, &node.log).map_err(|source| AgentError::Start {
        node: node.name.clone(),
        source,
    })
}

/// Waits until the agent answers healthz with `Ok` and has written the conflist.
pub fn wait_ready(node: &NodeState, pid: u32) -> Result<(), AgentError> {
    let client = AgentClient::new(&node.socket).with_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if !process::is_alive(pid) {
            return Err(AgentError::Exited {
                node: node.name.clone(),
                tail: process::log_tail(&node.log, LOG_TAIL_LINES),
            });
        }
        let last = match client.healthz() {
            Ok(status) if status.cilium.state == "Ok" && node.cni_conflist.exists() => {
                return Ok(())
            }
            Ok(status) if status.cilium.state == "Ok" => format!(
                "healthy, but {} is not written yet",
                node.cni_conflist.display()
            ),
            Ok(status) => format!("health {}: {}", status.cilium.state, status.cilium.msg),
            Err(e) => report::chain(&e),
        };
        if Instant::now() >= deadline {
            return Err(AgentError::NotReady {
                node: node.name.clone(),
                timeout: READY_TIMEOUT,
                last,
                tail: process::log_tail(&node.log, LOG_TAIL_LINES),
            });
        }
        thread::sleep(POLL);
    }
}
