//! Starting a node's `cilium-agent` inside the node namespace, pointed at the lab's etcd, and
//! waiting until it serves.
//!
//! The agent is ready when `GET /v1/healthz` reports `Ok` and it has written the CNI conflist.
//! It takes its pod CIDR from the cluster pool in the kvstore; [`pod_cidr`] reads it back.

use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use cilium_api::{AgentClient, ClientError};
use ipnet::Ipv4Net;

use crate::bins::{self, BinDir, BinError};
use crate::netns;
use crate::plan;
use crate::process::{self, ProcessError};
use crate::report;
use crate::state::{LabState, NodeState, Routing};
use crate::underlay;

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
    #[error("cannot ask the agent of {node} for its configuration")]
    Config {
        node: String,
        #[source]
        source: ClientError,
    },
    #[error("the agent of {node} reports pod CIDR {value:?}, which is not an IPv4 CIDR")]
    PodCidr {
        node: String,
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
}

/// What every agent of a lab is started with, besides its node's own paths.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub routing: Routing,
    /// etcd's client URL.
    pub kvstore_endpoint: String,
    pub lease_ttl_secs: u32,
    /// Extra flags, after the lab's own (a later flag wins).
    pub agent_args: Vec<String>,
}

impl ClusterConfig {
    /// The configuration a lab's agents share.
    pub fn of(state: &LabState) -> Self {
        ClusterConfig {
            routing: state.routing,
            kvstore_endpoint: state.etcd.client_url.clone(),
            lease_ttl_secs: state.lease_ttl_secs,
            agent_args: state.agent_args.clone(),
        }
    }
}

/// Starts the agent of `node` detached, without a pod CIDR (the cluster pool hands one out);
/// returns its PID.
pub fn start(bins: &BinDir, cluster: &ClusterConfig, node: &NodeState) -> Result<u32, AgentError> {
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
        .arg("--state-dir")
        .arg(&node.state_dir)
        .arg("--socket")
        .arg(&node.socket)
        .arg("--bpf-root")
        .arg(&node.bpf_root)
        .arg("--write-cni-conf-when-ready")
        .arg(&node.cni_conflist)
        .arg("--kvstore")
        .arg("etcd")
        .arg("--kvstore-endpoints")
        .arg(&cluster.kvstore_endpoint)
        .arg("--kvstore-lease-ttl")
        .arg(cluster.lease_ttl_secs.to_string())
        .arg("--routing-mode")
        .arg(cluster.routing.to_string())
        .arg("--direct-routing-device")
        .arg(underlay::NODE_IFNAME)
        .arg("--cluster-pool-ipv4-cidr")
        .arg(plan::CLUSTER_POOL.to_string())
        .arg("--cluster-pool-ipv4-mask-size")
        .arg(plan::POD_CIDR_PREFIX_LEN.to_string())
        // Hubble on the underlay, for the lab's relay.
        .arg("--hubble-listen-address")
        .arg(format!("{}:{}", node.underlay_ip, plan::HUBBLE_PORT));
    // Socket LB on the node's own cgroup, never the machine's.
    if let Some(cgroup) = &node.cgroup {
        cmd.arg("--cgroup-root").arg(cgroup);
    }
    cmd.args(&cluster.agent_args);
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

/// The pod CIDR the (ready) agent of `node` reports in `GET /v1/config`.
pub fn pod_cidr(node: &NodeState) -> Result<Ipv4Net, AgentError> {
    let config = AgentClient::new(&node.socket)
        .with_timeout(Duration::from_secs(5))
        .config()
        .map_err(|source| AgentError::Config {
            node: node.name.clone(),
            source,
        })?;
    config
        .pod_cidr
        .parse()
        .map_err(|source| AgentError::PodCidr {
            node: node.name.clone(),
            value: config.pod_cidr.clone(),
            source,
        })
}
