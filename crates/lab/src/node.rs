//! One node's life: where its files and namespace go, plugging it into the underlay, bringing
//! its agent up with a pod CIDR from the cluster pool, and removing it abruptly, the way a
//! machine that dies leaves a cluster.

use std::io;
use std::path::{Path, PathBuf};

use crate::agent::{self, AgentError, ClusterConfig};
use crate::bins::{self, BinDir};
use crate::cgroup::{self, CgroupError};
use crate::commands::pod::{self, PodError};
use crate::lab::Lab;
use crate::names::NodeName;
use crate::netns::{self, NetnsError};
use crate::plan;
use crate::process::{self, ProcessError};
use crate::state::{NodeState, PodState};
use crate::underlay;

/// Programs the lab runs inside a node (its agent; toolbox servers run in pods).
const NODE_PROGRAMS: [&str; 2] = [bins::AGENT, bins::LAB];

/// Errors creating or removing a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create {node}")]
    Create {
        node: String,
        #[source]
        source: NetnsError,
    },
    #[error("cannot kill the agent of {node} (pid {pid})")]
    Kill {
        node: String,
        pid: u32,
        #[source]
        source: ProcessError,
    },
    #[error("cannot unplug {node} from the switch")]
    Unplug {
        node: String,
        #[source]
        source: NetnsError,
    },
    #[error("cannot remove a pod of {node}")]
    Pod {
        node: String,
        #[source]
        source: Box<PodError>,
    },
    #[error("cannot delete the namespace of {node}")]
    Namespace {
        node: String,
        #[source]
        source: NetnsError,
    },
    #[error("{program} (pid {pid}) still runs in {node}, which was not started by the lab; the namespace is freed when it exits")]
    Foreign {
        program: String,
        pid: u32,
        node: String,
    },
    #[error("cgroup of {node}")]
    Cgroup {
        node: String,
        #[source]
        source: CgroupError,
    },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where everything of node `name` lives; the single place that lays a node out.
pub fn layout(lab: &Lab, name: NodeName) -> NodeState {
    NodeState {
        name: name.to_string(),
        netns: lab.name().node_ns(&name),
        underlay_ip: plan::underlay_ip(name),
        pod_cidr: None,
        dir: lab.node_dir(name),
        state_dir: lab.agent_state_dir(name),
        socket: lab.agent_socket(name),
        log: lab.agent_log(name),
        cni_conflist: lab.cni_conflist(name),
        bpf_root: lab.bpf_root(name),
        agent_pid: None,
        cgroup: cgroup::hierarchy().map(|root| root.join(lab.name().node_ns(&name))),
    }
}

/// Creates the node's cgroup and its namespace, plugged into the switch as port `<node>`.
pub fn create(lab: &Lab, node: &NodeState) -> Result<(), NodeError> {
    if let Some(path) = &node.cgroup {
        cgroup::create(path).map_err(|source| NodeError::Cgroup {
            node: node.name.clone(),
            source,
        })?;
    }
    underlay::create_node(
        &lab.name().switch_ns(),
        &node.netns,
        &node.name,
        node.underlay_ip,
    )
    .map_err(|source| NodeError::Create {
        node: node.name.clone(),
        source,
    })
}

/// Starts the node's agent and records its PID in `node`.
pub fn start_agent(
    bins: &BinDir,
    cluster: &ClusterConfig,
    node: &mut NodeState,
) -> Result<u32, AgentError> {
    let pid = agent::start(bins, cluster, node)?;
    node.agent_pid = Some(pid);
    Ok(pid)
}

/// Waits until the agent `pid` of `node` is ready and records the pod CIDR it got.
pub fn await_agent(node: &mut NodeState, pid: u32) -> Result<(), AgentError> {
    agent::wait_ready(node, pid)?;
    node.pod_cidr = Some(agent::pod_cidr(node)?);
    Ok(())
}

/// Removes `node` abruptly: its agent gets SIGKILL (no chance to withdraw from the kvstore),
/// the node is unplugged from the switch, its `pods` go with it (no CNI DEL), then its
/// namespace, cgroup, bpffs root and files. Carries on past failures and returns them all.
pub fn remove(lab: &Lab, bins: &BinDir, node: &NodeState, pods: &[PodState]) -> Vec<NodeError> {
    let mut problems = Vec::new();
    let name = || node.name.clone();
    if let Some(pid) = node.agent_pid {
        if let Err(source) = process::kill_now(pid, bins::AGENT) {
            problems.push(NodeError::Kill {
                node: name(),
                pid,
                source,
            });
        }
    }
    let switch = lab.name().switch_ns();
    if netns::exists(&switch) && netns::exists(&node.netns) {
        // Deleting the switch's end of the veth takes the node's eth0 with it.
        if let Err(source) = netns::ip(&switch, &["link", "del", &node.name]) {
            problems.push(NodeError::Unplug {
                node: name(),
                source,
            });
        }
    }
    for pod in pods {
        problems.extend(
            pod::discard(lab, bins, pod)
                .into_iter()
                .map(|source| NodeError::Pod {
                    node: name(),
                    source: Box::new(source),
                }),
        );
    }
    if netns::exists(&node.netns) {
        kill_leftovers(node, &mut problems);
        if let Err(source) = netns::delete(&node.netns) {
            problems.push(NodeError::Namespace {
                node: name(),
                source,
            });
        }
    }
    if let Some(path) = &node.cgroup {
        if let Err(source) = cgroup::remove(path) {
            problems.push(NodeError::Cgroup {
                node: name(),
                source,
            });
        }
    }
    for dir in [&node.bpf_root, &node.dir] {
        if let Err(problem) = remove_dir(dir) {
            problems.push(problem);
        }
    }
    problems
}

/// Kills what the lab runs in the node besides the recorded agent (an agent whose PID was
/// lost, a toolbox process); reports anything else.
fn kill_leftovers(node: &NodeState, problems: &mut Vec<NodeError>) {
    let pids = match netns::pids(&node.netns) {
        Ok(pids) => pids,
        Err(source) => {
            problems.push(NodeError::Namespace {
                node: node.name.clone(),
                source,
            });
            return;
        }
    };
    for pid in pids {
        match NODE_PROGRAMS.iter().find(|p| process::is_running(pid, p)) {
            Some(program) => {
                if let Err(source) = process::kill_now(pid, program) {
                    problems.push(NodeError::Kill {
                        node: node.name.clone(),
                        pid,
                        source,
                    });
                }
            }
            None => {
                if let Some(program) = process::program_of(pid) {
                    problems.push(NodeError::Foreign {
                        program,
                        pid,
                        node: node.name.clone(),
                    });
                }
            }
        }
    }
}

fn remove_dir(dir: &Path) -> Result<(), NodeError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NodeError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_laid_out_under_the_lab_without_a_pod_cidr_yet() {
        let lab = Lab::new(
            "default".parse().unwrap(),
            Path::new("/run/cilium-lab"),
            Path::new("/sys/fs/bpf"),
        );
        let node = layout(&lab, NodeName::new(3));
        assert_eq!(node.name, "node3");
        assert_eq!(node.netns, "cilab-default-node3");
        assert_eq!(node.underlay_ip.to_string(), "172.18.0.13");
        assert_eq!(node.pod_cidr, None);
        assert_eq!(
            node.bpf_root,
            Path::new("/sys/fs/bpf/cilium-lab-default-node3")
        );
        assert!(node.state_dir.starts_with(&node.dir) && node.socket.starts_with(&node.dir));
    }
}
