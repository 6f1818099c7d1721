//! One lab's identity and filesystem layout: where its state, per-node directories, sockets,
//! logs, etcd's data and bpffs roots live, and which namespaces belong to it.

use std::path::{Path, PathBuf};

use crate::names::{LabName, NodeName, PodKey};

/// Directory holding every lab's state (`/run/cilium-lab/<lab>/`).
pub const RUN_ROOT: &str = "/run/cilium-lab";

/// Where bpffs is (or gets) mounted.
pub const BPF_FS: &str = "/sys/fs/bpf";

/// One lab: its name and where its files go.
#[derive(Debug, Clone)]
pub struct Lab {
    name: LabName,
    run_root: PathBuf,
    dir: PathBuf,
    bpf_fs: PathBuf,
}

impl Lab {
    /// The lab `name` with state under `run_root/<name>` and bpffs roots under `bpf_fs`.
    pub fn new(name: LabName, run_root: &Path, bpf_fs: &Path) -> Self {
        let dir = run_root.join(name.as_str());
        Lab {
            name,
            run_root: run_root.to_path_buf(),
            dir,
            bpf_fs: bpf_fs.to_path_buf(),
        }
    }

    pub fn name(&self) -> &LabName {
        &self.name
    }

    /// ` --name LAB` for commands shown to the user; empty for the default lab.
    pub fn name_flag(&self) -> String {
        if self.name == LabName::default() {
            String::new()
        } else {
            format!(" --name {}", self.name)
        }
    }

    /// The lab's state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("state.lock")
    }

    /// Per-node directory: agent state, socket, log and CNI config.
    pub fn node_dir(&self, node: NodeName) -> PathBuf {
        self.dir.join(node.to_string())
    }

    pub fn agent_state_dir(&self, node: NodeName) -> PathBuf {
        self.node_dir(node).join("state")
    }

    pub fn agent_socket(&self, node: NodeName) -> PathBuf {
        self.node_dir(node).join("cilium.sock")
    }

    pub fn agent_log(&self, node: NodeName) -> PathBuf {
        self.node_dir(node).join("agent.log")
    }

    /// The conflist the agent writes once it is ready.
    pub fn cni_conflist(&self, node: NodeName) -> PathBuf {
        self.node_dir(node).join("net.d").join("05-cilium.conflist")
    }

    /// etcd's data directory; it survives `etcd stop` and goes with `down`.
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    /// The Hubble relay's unix socket.
    pub fn relay_socket(&self) -> PathBuf {
        self.dir.join("relay").join("hubble-relay.sock")
    }

    pub fn relay_log(&self) -> PathBuf {
        self.dir.join("relay").join("relay.log")
    }

    pub fn etcd_log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Per-pod directory: toolbox server log and readiness marker.
    pub fn pod_dir(&self, pod: &PodKey) -> PathBuf {
        self.dir
            .join("pods")
            .join(format!("{}_{}", pod.namespace, pod.name))
    }

    /// Prefix (file name) shared by every bpffs root of this lab.
    pub fn bpf_root_prefix(&self) -> String {
        format!("cilium-lab-{}-", self.name)
    }

    /// Directory under bpffs where this node's agent pins maps and links.
    pub fn bpf_root(&self, node: NodeName) -> PathBuf {
        self.bpf_fs
            .join(format!("{}{}", self.bpf_root_prefix(), node))
    }

    /// Lock file shared by all labs for mounting bpffs.
    pub fn bpffs_lock(&self) -> PathBuf {
        self.run_root.join(".bpffs.lock")
    }

    /// The bpffs mount point.
    pub fn bpf_fs(&self) -> &Path {
        &self.bpf_fs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_documented_paths() {
        let lab = Lab::new(
            "default".parse().unwrap(),
            Path::new(RUN_ROOT),
            Path::new(BPF_FS),
        );
        let n1 = NodeName::new(1);
        assert_eq!(
            lab.state_file(),
            Path::new("/run/cilium-lab/default/state.json")
        );
        assert_eq!(
            lab.agent_socket(n1),
            Path::new("/run/cilium-lab/default/node1/cilium.sock")
        );
        assert_eq!(
            lab.agent_log(n1),
            Path::new("/run/cilium-lab/default/node1/agent.log")
        );
        assert_eq!(
            lab.cni_conflist(n1),
            Path::new("/run/cilium-lab/default/node1/net.d/05-cilium.conflist")
        );
        assert_eq!(
            lab.etcd_data_dir(),
            Path::new("/run/cilium-lab/default/etcd")
        );
        assert_eq!(
            lab.bpf_root(n1),
            Path::new("/sys/fs/bpf/cilium-lab-default-node1")
        );
    }
}
