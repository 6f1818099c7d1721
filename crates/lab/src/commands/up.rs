//! `up`: the switch, etcd, the nodes and their agents, ready for pods.
//!
//! Progress is recorded in `state.json` as it happens, so `down` can undo a half-finished `up`;
//! an `up` that fails tears down everything it created before returning the error.

use crate::agent::{AgentError, ClusterConfig};
use crate::bins::{self, BinDir, BinError};
use crate::bpffs::{self, BpffsError};
use crate::commands::down::{self, DownError};
use crate::etcd::{self, EtcdError};
use crate::lab::Lab;
use crate::names::NodeName;
use crate::netns::{self, NetnsError};
use crate::node::{self, NodeError};
use crate::relay::{self, RelayError};
use crate::report::{self, Problems};
use crate::state::{LabState, Routing, StateError, StateLock};
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
    #[error("a program the lab needs is missing")]
    Binary {
        #[source]
        source: BinError,
    },
    #[error("cannot create etcd's namespace")]
    EtcdHost {
        #[source]
        source: NetnsError,
    },
    #[error("cannot bring etcd up")]
    Etcd {
        #[source]
        source: EtcdError,
    },
    #[error("cannot create the nodes")]
    Node {
        #[source]
        source: NodeError,
    },
    #[error("cannot bring the agents up")]
    Agent {
        #[source]
        source: AgentError,
    },
    #[error("cannot bring the Hubble relay up")]
    Relay {
        #[source]
        source: RelayError,
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
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub nodes: u8,
    pub routing: Routing,
    /// The agents' kvstore lease TTL, in seconds.
    pub lease_ttl_secs: u32,
    /// Extra flags for every agent.
    pub agent_args: Vec<String>,
}

/// `cilium-lab up`; returns the state of the running lab.
pub fn up(lab: &Lab, bins: &BinDir, opts: UpOptions) -> Result<LabState, UpError> {
    // Fail before creating anything when a program is missing.
    for program in [bins::AGENT, bins::RELAY] {
        bins.require(program)
            .map_err(|source| UpError::Binary { source })?;
    }
    bins::etcd().map_err(|source| UpError::Binary { source })?;
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
        lease_ttl_secs: opts.lease_ttl_secs,
        etcd: etcd::layout(lab),
        nodes: Vec::new(),
        pods: Vec::new(),
        next_node: opts.nodes + 1,
        agent_args: opts.agent_args.clone(),
        relay: None,
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

    underlay::create_host(
        &switch,
        &state.etcd.netns,
        underlay::ETCD_PORT,
        state.etcd.ip,
    )
    .map_err(|source| UpError::EtcdHost { source })?;
    let pid = etcd::start(&state.etcd).map_err(|source| UpError::Etcd { source })?;
    state.etcd.pid = Some(pid);
    save(state)?;
    etcd::wait_healthy(&state.etcd, pid).map_err(|source| UpError::Etcd { source })?;
    println!(
        "etcd: namespace {}, {} (pid {pid})",
        state.etcd.netns, state.etcd.client_url
    );

    for k in 1..=opts.nodes {
        let node = node::layout(lab, NodeName::new(k));
        // Record the node before creating it, so a failure halfway is still torn down.
        state.nodes.push(node.clone());
        save(state)?;
        node::create(lab, &node).map_err(|source| UpError::Node { source })?;
        println!(
            "{}: namespace {}, underlay {}",
            node.name, node.netns, node.underlay_ip
        );
    }
    // All agents start at once and race for pod CIDRs in the cluster pool.
    let cluster = ClusterConfig::of(state);
    let mut pids = Vec::new();
    for i in 0..state.nodes.len() {
        let pid = node::start_agent(bins, &cluster, &mut state.nodes[i])
            .map_err(|source| UpError::Agent { source })?;
        pids.push(pid);
        save(state)?;
    }
    for (node, pid) in state.nodes.iter_mut().zip(pids) {
        node::await_agent(node, pid).map_err(|source| UpError::Agent { source })?;
        println!(
            "{}: agent ready (pid {pid}, pod CIDR {}, socket {})",
            node.name,
            node.pod_cidr.map(|c| c.to_string()).unwrap_or_default(),
            node.socket.display()
        );
    }
    let mut relay = relay::layout(lab);
    let pid =
        relay::start(bins, &relay, &state.etcd).map_err(|source| UpError::Relay { source })?;
    relay.pid = Some(pid);
    state.relay = Some(relay.clone());
    save(state)?;
    relay::wait_ready(&relay, pid).map_err(|source| UpError::Relay { source })?;
    println!(
        "hubble-relay: namespace {}, {} and {} (pid {pid}); try `cilium-lab hubble{} observe`",
        relay.netns,
        relay.address,
        relay.socket.display(),
        lab.name_flag()
    );
    save(state)
}
