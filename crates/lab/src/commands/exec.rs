//! `exec` and `node exec`: run a command inside a pod's or a node's network namespace; and
//! `hubble`: run the Hubble CLI against the lab's relay. The lab process replaces itself with
//! the command (through `nsenter`/`ip netns exec`), so signals, stdio and the exit code are
//! the command's own. Before that it joins the node's cgroup, so the command's sockets get
//! the node's socket load balancing.

use std::convert::Infallible;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::bins::BinDir;
use crate::cgroup::{self, CgroupError};
use crate::commands::pod::{self, PodError};
use crate::lab::Lab;
use crate::names::{NodeName, PodKey};
use crate::netns;

/// Errors of the exec commands.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot look the target up")]
    Lookup {
        #[source]
        source: Box<PodError>,
    },
    #[error("no pod {pod} in lab {lab}")]
    NoSuchPod { pod: String, lab: String },
    #[error("no node {node} in lab {lab}")]
    NoSuchNode { node: String, lab: String },
    #[error("lab {lab} has no Hubble relay (it was brought up by an older cilium-lab)")]
    NoRelay { lab: String },
    #[error("cannot run hubble")]
    Hubble {
        #[source]
        source: crate::bins::BinError,
    },
    #[error("cannot run the command in its node's cgroup")]
    Cgroup {
        #[source]
        source: CgroupError,
    },
    #[error("cannot run `{program}`")]
    Run {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// `cilium-lab exec`: becomes `command` running in the pod; returns only on failure.
pub fn exec_pod(
    lab: &Lab,
    bins: &BinDir,
    key: &PodKey,
    command: &[String],
) -> Result<Infallible, ExecError> {
    let state = pod::read_running(lab).map_err(|source| ExecError::Lookup {
        source: Box::new(source),
    })?;
    let pod = state.pod(key).ok_or_else(|| ExecError::NoSuchPod {
        pod: key.to_string(),
        lab: lab.name().to_string(),
    })?;
    let node = pod
        .node
        .parse()
        .ok()
        .and_then(|name| state.node(name))
        .ok_or_else(|| ExecError::NoSuchNode {
            node: pod.node.to_string(),
            lab: lab.name().to_string(),
        })?;
    join_node_cgroup(node.cgroup.as_deref())?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let mut cmd = netns::exec_in(&pod.netns, program);
    cmd.args(args).env("PATH", bins.search_path());
    run(cmd, program)
}

/// `cilium-lab node exec`: becomes `command` running in the node with `CILIUM_SOCK` and
/// `CILIUM_BPF_ROOT` pointing at its agent; returns only on failure.
pub fn exec_node(
    lab: &Lab,
    bins: &BinDir,
    node: NodeName,
    command: &[String],
) -> Result<Infallible, ExecError> {
    let state = pod::read_running(lab).map_err(|source| ExecError::Lookup {
        source: Box::new(source),
    })?;
    let node_state = state.node(node).ok_or_else(|| ExecError::NoSuchNode {
        node: node.to_string(),
        lab: lab.name().to_string(),
    })?;
    join_node_cgroup(node_state.cgroup.as_deref())?;
    let (program, args) = command.split_first().expect("clap requires a command");
    // Only the network namespace changes, so the agent's pins under /sys/fs/bpf stay visible.
    let mut cmd = netns::enter_net(&node_state.netns, program);
    cmd.args(args)
        .env("PATH", bins.search_path())
        .env(cilium_api::paths::AGENT_SOCKET_ENV, &node_state.socket)
        .env("CILIUM_BPF_ROOT", &node_state.bpf_root);
    run(cmd, program)
}

/// `cilium-lab hubble`: becomes `hubble ARGS` with `HUBBLE_SERVER` set to the relay's unix
/// socket (a `--server` in `args` still wins); returns only on failure.
pub fn exec_hubble(lab: &Lab, bins: &BinDir, args: &[String]) -> Result<Infallible, ExecError> {
    let state = pod::read_running(lab).map_err(|source| ExecError::Lookup {
        source: Box::new(source),
    })?;
    let relay = state.relay.as_ref().ok_or_else(|| ExecError::NoRelay {
        lab: lab.name().to_string(),
    })?;
    let hubble = bins
        .require(crate::bins::HUBBLE)
        .map_err(|source| ExecError::Hubble { source })?;
    let mut cmd = Command::new(&hubble);
    cmd.args(args).env(
        "HUBBLE_SERVER",
        format!("unix://{}", relay.socket.display()),
    );
    run(cmd, &hubble.display().to_string())
}

/// Moves this process (about to become the command) into the node's cgroup, if it has one.
fn join_node_cgroup(path: Option<&std::path::Path>) -> Result<(), ExecError> {
    match path {
        Some(path) => cgroup::join_self(path).map_err(|source| ExecError::Cgroup { source }),
        None => Ok(()),
    }
}

fn run(mut cmd: Command, program: &str) -> Result<Infallible, ExecError> {
    Err(ExecError::Run {
        program: program.to_string(),
        source: cmd.exec(),
    })
}
