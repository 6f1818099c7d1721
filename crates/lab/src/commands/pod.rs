//! `pod add`, `pod del`, `pod list`: pods as network namespaces wired by the CNI plugin, with
//! an optional toolbox server inside.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use cilium_api::AgentClient;
use serde::Serialize;

use crate::bins::{self, BinDir, BinError};
use crate::cgroup::{self, CgroupError};
use crate::cli::POD_NAME_ENV;
use crate::cni::{CniError, CniPlugin, PodCall};
use crate::lab::Lab;
use crate::labels::Labels;
use crate::names::{NodeName, PodKey};
use crate::netns::{self, NetnsError};
use crate::process::{self, ProcessError, TERM_GRACE};
use crate::report::{self, Problems};
use crate::state::{self, LabState, NodeState, PodState, StateError, StateLock};
use crate::toolbox::spec::ServeSpec;

/// How long a toolbox server gets to bind its ports.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a starting server is checked.
const POLL: Duration = Duration::from_millis(20);
/// How long `pod list` waits for each agent.
const AGENT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of the pod commands.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("cannot access the lab's state")]
    State {
        #[source]
        source: StateError,
    },
    #[error("lab {lab} is not up (run `cilium-lab up{flag}`)")]
    NotUp { lab: String, flag: String },
    #[error("pod {pod} already exists")]
    Exists { pod: String },
    #[error("no pod {pod} in lab {lab}")]
    NoSuchPod { pod: String, lab: String },
    #[error("no node {node} in lab {lab}")]
    NoSuchNode { node: String, lab: String },
    #[error("lab {lab} has no nodes (add one with `cilium-lab node add{flag}`)")]
    NoNodes { lab: String, flag: String },
    #[error("cannot create a container ID")]
    ContainerId {
        #[source]
        source: io::Error,
    },
    #[error("pod {pod}")]
    Netns {
        pod: String,
        #[source]
        source: NetnsError,
    },
    #[error("pod {pod}")]
    Cni {
        pod: String,
        #[source]
        source: Box<CniError>,
    },
    #[error("pod {pod}: cannot start the toolbox server")]
    ServerBinary {
        pod: String,
        #[source]
        source: BinError,
    },
    #[error("pod {pod}: cannot put the toolbox server in its node's cgroup")]
    Cgroup {
        pod: String,
        #[source]
        source: CgroupError,
    },
    #[error("pod {pod}: cannot prepare {path}")]
    PodDir {
        pod: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pod {pod}: toolbox server")]
    Server {
        pod: String,
        #[source]
        source: ProcessError,
    },
    #[error("pod {pod}: the toolbox server exited; the end of its log:\n{tail}")]
    ServerExited { pod: String, tail: String },
    #[error("pod {pod}: the toolbox server did not listen within {timeout:?}; the end of its log:\n{tail}")]
    ServerNotReady {
        pod: String,
        timeout: Duration,
        tail: String,
    },
    /// The cause is shown first; the cleanup outcome after it.
    #[error("{}\n{cleanup}", report::chain(.cause.as_ref()))]
    RolledBack {
        cause: Box<PodError>,
        cleanup: CleanupNote,
    },
    #[error("pod {pod} was deleted, with problems:{problems}")]
    Incomplete {
        pod: String,
        problems: Problems<PodError>,
    },
}

/// Problems a rollback ran into (shown after the main message).
#[derive(Debug)]
pub struct CleanupNote(Problems<PodError>);

impl std::fmt::Display for CleanupNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("The half-made pod was removed again.")
        } else {
            write!(f, "Removing the half-made pod left problems:{}", self.0)
        }
    }
}

/// What `pod add` creates.
#[derive(Debug, Clone)]
pub struct PodOptions {
    pub key: PodKey,
    pub node: Option<NodeName>,
    pub labels: Labels,
    pub serve: Option<ServeSpec>,
}

/// A row of `pod list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRow {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub labels: Labels,
    /// Security identity, when the node's agent knows the endpoint.
    pub identity: Option<u32>,
    pub netns: String,
}

/// Loads the state of a lab that must be up.
pub fn require_up(lab: &Lab, state: Option<LabState>) -> Result<LabState, PodError> {
    state.ok_or_else(|| PodError::NotUp {
        lab: lab.name().to_string(),
        flag: lab.name_flag(),
    })
}

/// Reads the state of a running lab without taking the lock.
pub fn read_running(lab: &Lab) -> Result<LabState, PodError> {
    let state = state::read(&lab.state_file()).map_err(|source| PodError::State { source })?;
    require_up(lab, state)
}

/// `cilium-lab pod add`.
pub fn add(lab: &Lab, bins: &BinDir, opts: &PodOptions) -> Result<PodState, PodError> {
    let lock = StateLock::acquire(lab).map_err(|source| PodError::State { source })?;
    let mut state = require_up(
        lab,
        lock.load().map_err(|source| PodError::State { source })?,
    )?;
    let pod = opts.key.to_string();
    if state.pod(&opts.key).is_some() {
        return Err(PodError::Exists { pod });
    }
    let node = match opts.node {
        Some(name) => state.node(name).ok_or_else(|| PodError::NoSuchNode {
            node: name.to_string(),
            lab: lab.name().to_string(),
        }),
        None => state.least_loaded_node().ok_or_else(|| PodError::NoNodes {
            lab: lab.name().to_string(),
            flag: lab.name_flag(),
        }),
    }?
    .clone();
    let plugin = CniPlugin::load(&node.cni_conflist).map_err(|source| PodError::Cni {
        pod: pod.clone(),
        source: Box::new(source),
    })?;
    let container_id = new_container_id().map_err(|source| PodError::ContainerId { source })?;
    let netns_name = lab.name().pod_ns(&opts.key);
    let netns_path = netns::path(&netns_name);
    let call = PodCall {
        node_ns: &node.netns,
        container_id: &container_id,
        netns: &netns_path,
        pod: &opts.key,
        labels: &opts.labels,
    };
    let mut server_pids = Vec::new();
    let host = PodHost {
        netns: &netns_name,
        cgroup: node.cgroup.as_deref(),
    };
    let wired = wire(lab, bins, opts, &plugin, call, host, &mut server_pids);
    let attachment = match wired {
        Ok(attachment) => attachment,
        Err(error) => {
            let problems = unwire(lab, bins, Some(&plugin), call, &server_pids);
            return Err(PodError::RolledBack {
                cause: Box::new(error),
                cleanup: CleanupNote(Problems(problems)),
            });
        }
    };
    let record = PodState {
        name: opts.key.name.clone(),
        namespace: opts.key.namespace.clone(),
        node: node.name.clone(),
        netns: netns_name,
        ip: attachment.ip,
        gateway: attachment.gateway,
        labels: opts.labels.clone(),
        container_id,
        serve: opts.serve.clone(),
        server_pids,
    };
    state.pods.push(record.clone());
    lock.save(&state)
        .map_err(|source| PodError::State { source })?;
    Ok(record)
}

/// Where a pod's processes run: its network namespace, and its node's cgroup (socket LB).
#[derive(Debug, Clone, Copy)]
struct PodHost<'a> {
    netns: &'a str,
    cgroup: Option<&'a Path>,
}

/// Creates the namespace, calls CNI ADD and starts the server; records server PIDs as they
/// start so a failure can stop them.
fn wire(
    lab: &Lab,
    bins: &BinDir,
    opts: &PodOptions,
    plugin: &CniPlugin,
    call: PodCall<'_>,
    host: PodHost<'_>,
    server_pids: &mut Vec<u32>,
) -> Result<crate::cni::Attachment, PodError> {
    let pod = opts.key.to_string();
    netns::create(host.netns).map_err(|source| PodError::Netns {
        pod: pod.clone(),
        source,
    })?;
    let attachment = plugin.add(bins, call).map_err(|source| PodError::Cni {
        pod: pod.clone(),
        source: Box::new(source),
    })?;
    if let Some(spec) = &opts.serve {
        start_server(lab, &opts.key, host, spec, server_pids)?;
    }
    Ok(attachment)
}

/// Stops the servers, calls CNI DEL, deletes the namespace and the pod's files; carries on
/// after failures and returns them.
fn unwire(
    lab: &Lab,
    bins: &BinDir,
    plugin: Option<&CniPlugin>,
    call: PodCall<'_>,
    server_pids: &[u32],
) -> Vec<PodError> {
    let pod = call.pod.to_string();
    let mut problems = Vec::new();
    for &pid in server_pids {
        if let Err(source) = process::terminate(pid, bins::LAB, TERM_GRACE) {
            problems.push(PodError::Server {
                pod: pod.clone(),
                source,
            });
        }
    }
    if let Some(plugin) = plugin {
        if let Err(source) = plugin.del(bins, call) {
            problems.push(PodError::Cni {
                pod: pod.clone(),
                source: Box::new(source),
            });
        }
    }
    let netns_name = call
        .netns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if netns::exists(&netns_name) {
        if let Err(source) = netns::delete(&netns_name) {
            problems.push(PodError::Netns {
                pod: pod.clone(),
                source,
            });
        }
    }
    let dir = lab.pod_dir(call.pod);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => problems.push(PodError::PodDir {
            pod,
            path: dir,
            source,
        }),
    }
    problems
}

/// Removes a pod whose node is gone, without CNI DEL (there is no agent left to ask): stops
/// its toolbox servers, deletes its namespace and its files. Returns the problems met.
pub fn discard(lab: &Lab, bins: &BinDir, pod: &PodState) -> Vec<PodError> {
    let key = PodKey {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
    };
    let netns_path = netns::path(&pod.netns);
    let call = PodCall {
        node_ns: "",
        container_id: &pod.container_id,
        netns: &netns_path,
        pod: &key,
        labels: &pod.labels,
    };
    unwire(lab, bins, None, call, &pod.server_pids)
}

/// `cilium-lab pod del`.
pub fn del(lab: &Lab, bins: &BinDir, key: &PodKey) -> Result<PodState, PodError> {
    let lock = StateLock::acquire(lab).map_err(|source| PodError::State { source })?;
    let mut state = require_up(
        lab,
        lock.load().map_err(|source| PodError::State { source })?,
    )?;
    let index = state
        .pods
        .iter()
        .position(|p| p.namespace == key.namespace && p.name == key.name)
        .ok_or_else(|| PodError::NoSuchPod {
            pod: key.to_string(),
            lab: lab.name().to_string(),
        })?;
    let record = state.pods[index].clone();
    let node: Option<&NodeState> = record.node.parse().ok().and_then(|n| state.node(n));
    let mut problems = Vec::new();
    let plugin = match node.map(|n| CniPlugin::load(&n.cni_conflist)) {
        Some(Ok(plugin)) => Some(plugin),
        Some(Err(source)) => {
            problems.push(PodError::Cni {
                pod: key.to_string(),
                source: Box::new(source),
            });
            None
        }
        None => None,
    };
    let netns_path = netns::path(&record.netns);
    let call = PodCall {
        node_ns: node.map(|n| n.netns.as_str()).unwrap_or_default(),
        container_id: &record.container_id,
        netns: &netns_path,
        pod: key,
        labels: &record.labels,
    };
    problems.extend(unwire(
        lab,
        bins,
        plugin.as_ref(),
        call,
        &record.server_pids,
    ));
    state.pods.remove(index);
    lock.save(&state)
        .map_err(|source| PodError::State { source })?;
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(PodError::Incomplete {
            pod: key.to_string(),
            problems: Problems(problems),
        })
    }
}

/// `cilium-lab pod list`: every pod with the identity its node's agent gave it.
pub fn list(lab: &Lab) -> Result<Vec<PodRow>, PodError> {
    let state = read_running(lab)?;
    Ok(rows(&state))
}

/// Pod rows of a lab, asking each node's agent for the endpoints' identities.
pub fn rows(state: &LabState) -> Vec<PodRow> {
    let mut identities: HashMap<String, u32> = HashMap::new();
    for node in &state.nodes {
        if !state.pods.iter().any(|p| p.node == node.name) {
            continue;
        }
        match AgentClient::new(&node.socket)
            .with_timeout(AGENT_QUERY_TIMEOUT)
            .endpoints()
        {
            Ok(endpoints) => identities.extend(endpoints.into_iter().map(|ep| {
                (
                    ep.status.external_identifiers.container_id,
                    ep.status.identity.id,
                )
            })),
            Err(error) => tracing::warn!(node = %node.name, %error, "cannot list endpoints"),
        }
    }
    state
        .pods
        .iter()
        .map(|p| PodRow {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            node: p.node.clone(),
            ip: p.ip,
            labels: p.labels.clone(),
            identity: identities.get(&p.container_id).copied(),
            netns: p.netns.clone(),
        })
        .collect()
}

/// Starts the toolbox server inside the pod, in its node's cgroup, and waits until it
/// listens.
fn start_server(
    lab: &Lab,
    key: &PodKey,
    host: PodHost<'_>,
    spec: &ServeSpec,
    pids: &mut Vec<u32>,
) -> Result<(), PodError> {
    let pod = key.to_string();
    let exe = bins::self_exe().map_err(|source| PodError::ServerBinary {
        pod: pod.clone(),
        source,
    })?;
    let dir = lab.pod_dir(key);
    std::fs::create_dir_all(&dir).map_err(|source| PodError::PodDir {
        pod: pod.clone(),
        path: dir.clone(),
        source,
    })?;
    let ready = dir.join("serve.ready");
    let log = dir.join("serve.log");
    let mut cmd = netns::exec_in(host.netns, exe);
    cmd.arg("serve")
        .arg(spec.to_string())
        .arg("--ready-file")
        .arg(&ready)
        .env(POD_NAME_ENV, &key.name);
    if let Some(path) = host.cgroup {
        cgroup::join_on_exec(&mut cmd, path).map_err(|source| PodError::Cgroup {
            pod: pod.clone(),
            source,
        })?;
    }
    let pid = process::spawn_detached(&mut cmd, &log).map_err(|source| PodError::Server {
        pod: pod.clone(),
        source,
    })?;
    pids.push(pid);
    let deadline = Instant::now() + SERVER_READY_TIMEOUT;
    loop {
        if ready.exists() {
            return Ok(());
        }
        if !process::is_alive(pid) {
            return Err(PodError::ServerExited {
                pod,
                tail: process::log_tail(&log, 10),
            });
        }
        if Instant::now() >= deadline {
            return Err(PodError::ServerNotReady {
                pod,
                timeout: SERVER_READY_TIMEOUT,
                tail: process::log_tail(&log, 10),
            });
        }
        thread::sleep(POLL);
    }
}

/// A random 64-hex-digit container ID, like a container runtime's.
fn new_container_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open(Path::new("/dev/urandom"))?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_unique_hex() {
        let a = new_container_id().unwrap();
        let b = new_container_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
