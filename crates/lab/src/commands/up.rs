//! `up`: the switch, the nodes and their agents, ready for pods.
//!
//! Progress is recorded in `state.json` as it happens, so `down` can undo a half-finished `up`;
//! an `up` that fails tears down everything it created before returning the error.

use crate::agent::{self, AgentError};
use crate::bins::BinDir;
use crate::bpffs::{self, BpffsError};
use crate::commands::down::{self, DownError};
use crate::lab::Lab;
use crate::names::NodeName;
use crate::netns::{self, NetnsError};
use crate::plan;
use crate::report::{self, Problems};
use crate::state::{LabState, NodeState, Routing, StateError, StateLock};
use crate::underlay;

/// Errors of `up`.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("cannot access the lab's state")]
    State {
        #[source]
        source: StateError,
    },
    #[error("lab {lab} is already up (see `cilium-lab status{flag}`)")]
    AlreadyUp { lab: String, flag: String },
    #[error(
        "namespaces of lab {lab} are left over ({namespaces}); run `cilium-lab down{flag}` first"
    )]
    Leftovers {
        lab: String,
        namespaces: String,
        flag: String,
    },
    #[error("cannot look for the lab's namespaces")]
    Namespaces {
        #[source]
        source: NetnsError,
    },
    #[error("bpffs is not available")]
    Bpffs {
        #[source]
        source: BpffsError,
    },
    #[error("cannot create the switch")]
    Switch {
        #[source]
        source: NetnsError,
    },
    #[error("cannot create {node}")]
    Node {
        node: String,
        #[source]
        source: NetnsError,
    },
    #[error("cannot bring the agents up")]
    Agent {
        #[source]
        source: AgentError,
    },
    /// The cause is shown first; the cleanup outcome after it.
    #[error("{}\n{cleanup}", report::chain(.cause.as_ref()))]
    RolledBack {
        cause: Box<UpError>,
        cleanup: CleanupNote,
    },
}

/// Problems the rollback itself ran into (shown after the main message).
#[derive(Debug)]
pub struct CleanupNote(Problems<DownError>);

impl std::fmt::Display for CleanupNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Everything `up` had created was removed again.")
        } else {
            write!(f, "Removing what `up` had created left problems:{}", self.0)
        }
    }
}

/// Options of `up`.
#[derive(Debug, Clone, Copy)]
pub struct UpOptions {
    pub nodes: u8,
    pub routing: Routing,
}

/// `cilium-lab up`; returns the state of the running lab.
pub fn up(lab: &Lab, bins: &BinDir, opts: UpOptions) -> Result<LabState, UpError> {
    let lock = StateLock::acquire(lab).map_err(|source| UpError::State { source })?;
    let flag = lab.name_flag();
    if lock
        .load()
        .map_err(|source| UpError::State { source })?
        .is_some()
    {
        return Err(UpError::AlreadyUp {
            lab: lab.name().to_string(),
            flag,
        });
    }
    let leftovers = netns::list_with_prefix(&lab.name().ns_prefix())
        .map_err(|source| UpError::Namespaces { source })?;
    if !leftovers.is_empty() {
        return Err(UpError::Leftovers {
            lab: lab.name().to_string(),
            namespaces: leftovers.join(", "),
            flag,
        });
    }
    let mut state = LabState {
        name: lab.name().to_string(),
        routing: opts.routing,
        nodes: Vec::new(),
        pods: Vec::new(),
    };
    match build(lab, bins, opts, &lock, &mut state) {
        Ok(()) => Ok(state),
        Err(error) => {
            let done = down::teardown(lab, Some(&state));
            Err(UpError::RolledBack {
                cause: Box::new(error),
                cleanup: CleanupNote(Problems(done.problems)),
            })
        }
    }
}

fn build(
    lab: &Lab,
    bins: &BinDir,
    opts: UpOptions,
    lock: &StateLock,
    state: &mut LabState,
) -> Result<(), UpError> {
    let save = |state: &LabState| lock.save(state).map_err(|source| UpError::State { source });
    save(state)?;
    bpffs::ensure_mounted(lab.bpf_fs(), &lab.bpffs_lock())
        .map_err(|source| UpError::Bpffs { source })?;
    let switch = lab.name().switch_ns();
    underlay::create_switch(&switch).map_err(|source| UpError::Switch { source })?;
    println!("switch {switch}: bridge {} up", underlay::BRIDGE);
    for k in 1..=opts.nodes {
        let name = NodeName::new(k);
        let node = node_state(lab, name);
        // Record the node before creating it, so a failure halfway is still torn down.
        state.nodes.push(node.clone());
        save(state)?;
        underlay::create_node(&switch, &node.netns, &name.to_string(), node.underlay_ip).map_err(
            |source| UpError::Node {
                node: node.name.clone(),
                source,
            },
        )?;
        println!(
            "{}: namespace {}, underlay {}, pod CIDR {}",
            node.name, node.netns, node.underlay_ip, node.pod_cidr
        );
    }
    for i in 0..state.nodes.len() {
        let pid =
            agent::start(bins, &state.nodes[i]).map_err(|source| UpError::Agent { source })?;
        state.nodes[i].agent_pid = Some(pid);
        save(state)?;
    }
    for node in &state.nodes {
        let pid = node.agent_pid.expect("every agent was started above");
        agent::wait_ready(node, pid).map_err(|source| UpError::Agent { source })?;
        println!(
            "{}: agent ready (pid {pid}, socket {})",
            node.name,
            node.socket.display()
        );
    }
    Ok(())
}

/// Where everything of node `name` lives; the single place that lays a node out.
fn node_state(lab: &Lab, name: NodeName) -> NodeState {
    NodeState {
        name: name.to_string(),
        netns: lab.name().node_ns(&name),
        underlay_ip: plan::underlay_ip(name),
        pod_cidr: plan::pod_cidr(name),
        dir: lab.node_dir(name),
        state_dir: lab.agent_state_dir(name),
        socket: lab.agent_socket(name),
        log: lab.agent_log(name),
        cni_conflist: lab.cni_conflist(name),
        bpf_root: lab.bpf_root(name),
        agent_pid: None,
    }
}
