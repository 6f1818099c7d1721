//! `state.json`: what a lab consists of (etcd, nodes, pods, the processes it started), and the
//! lock
//! that serialises commands changing it.
//!
//! Writers hold an exclusive `flock` on `state.lock` for the whole command, so two `pod add`
//! at once neither lose an update nor pick the same node blindly. The file is replaced
//! atomically, so readers (`status`, `pod list`) need no lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::lab::Lab;
use crate::labels::Labels;
use crate::names::{NodeName, PodKey};
use crate::toolbox::spec::ServeSpec;

/// Errors reading, writing or locking the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How pods on different nodes reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// VXLAN between nodes, identity in the VNI.
    Tunnel,
    /// Plain routes over the underlay.
    Native,
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Routing::Tunnel => "tunnel",
            Routing::Native => "native",
        })
    }
}

/// Everything one lab consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub routing: Routing,
    /// The agents' `--kvstore-lease-ttl`, in seconds.
    pub lease_ttl_secs: u32,
    pub etcd: EtcdState,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
    /// Index of the node `node add` creates when not told which: one past the highest ever
    /// used, so a new node never takes the name of one that died.
    pub next_node: u8,
    /// Extra flags every agent gets (`up --agent-arg`), after the lab's own.
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// The lab's Hubble relay, once started.
    #[serde(default)]
    pub relay: Option<RelayState>,
}

impl LabState {
    pub fn node(&self, name: NodeName) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name.to_string())
    }

    pub fn pod(&self, key: &PodKey) -> Option<&PodState> {
        self.pods
            .iter()
            .find(|p| p.namespace == key.namespace && p.name == key.name)
    }

    /// The node with the fewest pods (the first of them on a tie).
    pub fn least_loaded_node(&self) -> Option<&NodeState> {
        self.nodes
            .iter()
            .min_by_key(|n| self.pods.iter().filter(|p| p.node == n.name).count())
    }
}

/// The lab's etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdState {
    pub netns: String,
    pub ip: Ipv4Addr,
    /// What agents pass as `--kvstore-endpoints`.
    pub client_url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Its PID while the lab runs it (`None` after `etcd stop`).
    pub pid: Option<u32>,
}

/// The Hubble relay: in etcd's namespace, on TCP next to etcd and on a unix socket in the
/// lab's directory (reachable from the root namespace, so `hubble` needs no namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayState {
    pub netns: String,
    pub address: std::net::SocketAddrV4,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub pid: Option<u32>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    pub underlay_ip: Ipv4Addr,
    /// The pod CIDR the agent got from the cluster pool, once it has reported it.
    pub pod_cidr: Option<Ipv4Net>,
    /// Per-node directory under the lab's state directory.
    pub dir: PathBuf,
    /// The agent's `--state-dir`.
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Where the agent writes the CNI conflist once ready.
    pub cni_conflist: PathBuf,
    pub bpf_root: PathBuf,
    /// The agent's PID once started.
    pub agent_pid: Option<u32>,
    /// The node's cgroup v2 directory (socket-LB hooks; the node's and its pods' processes),
    /// absent on a machine without cgroup v2 and in labs brought up before it existed.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The pod's default gateway, as the CNI result gave it.
    pub gateway: Option<Ipv4Addr>,
    pub labels: Labels,
    pub container_id: String,
    pub serve: Option<ServeSpec>,
    pub server_pids: Vec<u32>,
}

/// Reads a state file; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<LabState>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes a state file atomically (temporary file, then rename).
pub fn write(path: &Path, state: &LabState) -> Result<(), StateError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).expect("the state always serializes");
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Exclusive access to one lab's state for the life of the value.
pub struct StateLock {
    _lock: Flock<File>,
    state_file: PathBuf,
}

impl StateLock {
    /// Creates the lab directory if needed and waits for the lock.
    pub fn acquire(lab: &Lab) -> Result<Self, StateError> {
        std::fs::create_dir_all(lab.dir()).map_err(|source| StateError::CreateDir {
            path: lab.dir().to_path_buf(),
            source,
        })?;
        let path = lab.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Open {
                path: path.clone(),
                source,
            })?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| StateError::Lock {
                path: path.clone(),
                source,
            })?;
        Ok(StateLock {
            _lock: lock,
            state_file: lab.state_file(),
        })
    }

    pub fn load(&self) -> Result<Option<LabState>, StateError> {
        read(&self.state_file)
    }

    pub fn save(&self, state: &LabState) -> Result<(), StateError> {
        write(&self.state_file, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LabState {
        LabState {
            name: "default".into(),
            routing: Routing::Tunnel,
            lease_ttl_secs: 20,
            etcd: EtcdState {
                netns: "cilab-default-etcd".into(),
                ip: Ipv4Addr::new(172, 18, 0, 2),
                client_url: "http://172.18.0.2:2379".into(),
                data_dir: "/run/cilium-lab/default/etcd".into(),
                log: "/run/cilium-lab/default/etcd.log".into(),
                pid: Some(41),
            },
            next_node: 2,
            agent_args: vec!["--enable-hubble=false".into()],
            relay: None,
            nodes: vec![NodeState {
                name: "node1".into(),
                netns: "cilab-default-node1".into(),
                underlay_ip: Ipv4Addr::new(172, 18, 0, 11),
                pod_cidr: Some("10.0.1.0/24".parse().unwrap()),
                dir: "/run/cilium-lab/default/node1".into(),
                state_dir: "/run/cilium-lab/default/node1/state".into(),
                socket: "/run/cilium-lab/default/node1/cilium.sock".into(),
                log: "/run/cilium-lab/default/node1/agent.log".into(),
                cni_conflist: "/run/cilium-lab/default/node1/net.d/05-cilium.conflist".into(),
                bpf_root: "/sys/fs/bpf/cilium-lab-default-node1".into(),
                agent_pid: Some(42),
                cgroup: None,
            }],
            pods: vec![PodState {
                name: "server".into(),
                namespace: "default".into(),
                node: "node1".into(),
                netns: "cilab-default-p-default-server".into(),
                ip: Ipv4Addr::new(10, 0, 1, 7),
                gateway: Some(Ipv4Addr::new(10, 0, 1, 1)),
                labels: "app=server".parse().unwrap(),
                container_id: "abc".into(),
                serve: Some("80/tcp,80/udp".parse().unwrap()),
                server_pids: vec![43],
            }],
        }
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &sample()).unwrap();
        assert_eq!(read(&path).unwrap(), Some(sample()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""routing": "tunnel""#), "{text}");
        assert!(text.contains(r#""serve": "80/tcp,80/udp""#), "{text}");
        assert!(text.contains(r#""pod_cidr": "10.0.1.0/24""#), "{text}");
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }

    #[test]
    fn fewest_pods_wins_and_ties_go_to_the_first_node() {
        let mut state = sample();
        let mut node2 = state.nodes[0].clone();
        node2.name = "node2".into();
        state.nodes.push(node2);
        assert_eq!(state.least_loaded_node().unwrap().name, "node2");
        state.pods.clear();
        assert_eq!(state.least_loaded_node().unwrap().name, "node1");
    }

    #[test]
    fn the_lock_serialises_writers() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::new("t".parse().unwrap(), dir.path(), dir.path());
        let first = StateLock::acquire(&lab).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lab2 = lab.clone();
        let waiter = std::thread::spawn(move || {
            let _second = StateLock::acquire(&lab2).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "a second writer got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second writer gets the lock once the first lets go");
        waiter.join().unwrap();
    }
}
