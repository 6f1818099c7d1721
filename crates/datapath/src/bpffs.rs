//! The datapath's bpffs directory: where pinned maps and links live, and
//! making sure that directory is on a mounted BPF filesystem.
//!
//! Layout under the root (default `/sys/fs/bpf`):
//! `tc/globals/<map>` for the node-wide maps, `endpoints/<id>/<pin>` for the
//! links (or programs) that keep an endpoint's datapath attached, and
//! `devices/<ifname>/<pin>` for those of node devices (the tunnel device).

use std::{
    io,
    path::{Path, PathBuf},
    sync::Mutex,
};

use thiserror::Error;

use crate::abi::{DEVICES_DIR, ENDPOINTS_DIR, GLOBALS_DIR};

/// `BPF_FS_MAGIC` from `<linux/magic.h>`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is mounted when nothing is.
const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Failures preparing the bpffs directory.
#[derive(Debug, Error)]
pub enum BpffsError {
    /// statfs on the directory (or its closest existing ancestor) failed.
    #[error("cannot inspect the filesystem of {path}")]
    Statfs {
        /// Path inspected.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: nix::Error,
    },
    /// Mounting bpffs failed.
    #[error("cannot mount bpffs at {path}")]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: nix::Error,
    },
    /// The root is not on bpffs and is not below the default mount point.
    #[error("{path} is not on a BPF filesystem; mount bpffs there or choose a root under {DEFAULT_BPFFS}")]
    NotBpffs {
        /// The configured root.
        path: PathBuf,
    },
    /// Creating a directory failed.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// Directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// Paths of the pinned objects under one bpffs root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfPaths {
    root: PathBuf,
}

impl BpfPaths {
    /// Paths under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of the node-wide pinned maps (`<root>/tc/globals`).
    pub fn globals(&self) -> PathBuf {
        self.root.join(GLOBALS_DIR)
    }

    /// Pin path of the node-wide map `name`.
    pub fn map(&self, name: &str) -> PathBuf {
        self.globals().join(name)
    }

    /// Directory holding every endpoint's pins.
    pub fn endpoints(&self) -> PathBuf {
        self.root.join(ENDPOINTS_DIR)
    }

    /// Directory of endpoint `id`'s pins.
    pub fn endpoint(&self, id: u16) -> PathBuf {
        self.endpoints().join(id.to_string())
    }

    /// Directory holding every node device's pins.
    pub fn devices(&self) -> PathBuf {
        self.root.join(DEVICES_DIR)
    }

    /// Directory of device `ifname`'s pins.
    pub fn device(&self, ifname: &str) -> PathBuf {
        self.devices().join(ifname)
    }

    /// Makes sure the root is on bpffs (mounting it at `/sys/fs/bpf` when the
    /// root is below that and nothing is mounted there) and creates the
    /// globals, endpoints and devices directories.
    pub fn prepare(&self) -> Result<(), BpffsError> {
        // Two threads mounting at once would stack two bpffs instances, the
        // second hiding the first one's pins: check and mount under a lock.
        static MOUNT_LOCK: Mutex<()> = Mutex::new(());
        let _guard = MOUNT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !is_bpffs(&self.root)? {
            let default = Path::new(DEFAULT_BPFFS);
            if !self.root.starts_with(default) {
                return Err(BpffsError::NotBpffs {
                    path: self.root.clone(),
                });
            }
            mount_bpffs(default)?;
        }
        for dir in [self.globals(), self.endpoints(), self.devices()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| BpffsError::CreateDir { path: dir, source })?;
        }
        Ok(())
    }
}

/// Whether `path` (or its closest existing ancestor) is on bpffs.
fn is_bpffs(path: &Path) -> Result<bool, BpffsError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = nix::sys::statfs::statfs(existing).map_err(|source| BpffsError::Statfs {
        path: existing.to_path_buf(),
        source,
    })?;
    Ok(stat.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}

fn mount_bpffs(target: &Path) -> Result<(), BpffsError> {
    std::fs::create_dir_all(target).map_err(|source| BpffsError::CreateDir {
        path: target.to_path_buf(),
        source,
    })?;
    nix::mount::mount(
        Some("bpffs"),
        target,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| BpffsError::Mount {
        path: target.to_path_buf(),
        source,
    })?;
    tracing::info!(path = %target.display(), "mounted bpffs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_cilium() {
        let paths = BpfPaths::new("/sys/fs/bpf/x");
        assert_eq!(paths.globals(), Path::new("/sys/fs/bpf/x/tc/globals"));
        assert_eq!(
            paths.map("cilium_lxc"),
            Path::new("/sys/fs/bpf/x/tc/globals/cilium_lxc")
        );
        assert_eq!(paths.endpoint(42), Path::new("/sys/fs/bpf/x/endpoints/42"));
        assert_eq!(
            paths.device("cilium_vxlan"),
            Path::new("/sys/fs/bpf/x/devices/cilium_vxlan")
        );
    }

    #[test]
    fn a_root_outside_bpffs_is_refused() {
        let paths = BpfPaths::new("/tmp/not-bpffs-root");
        assert!(matches!(paths.prepare(), Err(BpffsError::NotBpffs { .. })));
    }
}
