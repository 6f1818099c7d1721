//! The BPF filesystem the agents pin into: mounted on demand, and each lab node's root
//! directory removed at teardown.
//!
//! Agents run with only their network namespace switched, so they and `cilium bpf ...` all see
//! the one bpffs at `/sys/fs/bpf`. When it is not mounted yet (as on a fresh machine), the lab
//! mounts it, as Cilium's own init does; the mount is shared and left in place.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::statfs;

/// `BPF_FS_MAGIC` from `<linux/magic.h>`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors handling bpffs.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    #[error("cannot inspect {path}")]
    Statfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount bpffs on {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Mounts bpffs on `path` unless it already is one. `lock` (a file) serialises labs coming
/// up at the same time, so bpffs is never mounted twice on top of itself.
pub fn ensure_mounted(path: &Path, lock: &Path) -> Result<(), BpffsError> {
    let lock_err = |source| BpffsError::Lock {
        path: lock.to_path_buf(),
        source,
    };
    if let Some(dir) = lock.parent() {
        std::fs::create_dir_all(dir).map_err(lock_err)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(lock_err)?;
    let _guard = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| lock_err(io::Error::from(errno)))?;
    let fs = statfs(path).map_err(|source| BpffsError::Statfs {
        path: path.to_path_buf(),
        source,
    })?;
    // The field's integer type differs between libc targets.
    #[allow(clippy::useless_conversion)]
    let magic = i64::from(fs.filesystem_type().0);
    if magic == BPF_FS_MAGIC {
        return Ok(());
    }
    tracing::info!(path = %path.display(), "mounting bpffs");
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| BpffsError::Mount {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes every entry of `bpf_fs` whose name starts with `prefix` (pins, and directories of
/// pins); a missing bpffs means there is nothing to remove.
pub fn remove_with_prefix(bpf_fs: &Path, prefix: &str) -> Vec<BpffsError> {
    let entries = match std::fs::read_dir(bpf_fs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(source) => {
            return vec![BpffsError::List {
                path: bpf_fs.to_path_buf(),
                source,
            }]
        }
    };
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => errors.push(BpffsError::Remove { path, source }),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_entries_with_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cilium-lab-a-node1/tc/globals")).unwrap();
        std::fs::write(dir.path().join("cilium-lab-a-node1/tc/globals/map"), "").unwrap();
        std::fs::create_dir(dir.path().join("cilium-lab-ab-node1")).unwrap();
        assert!(remove_with_prefix(dir.path(), "cilium-lab-a-").is_empty());
        assert!(!dir.path().join("cilium-lab-a-node1").exists());
        assert!(dir.path().join("cilium-lab-ab-node1").exists());
        assert!(remove_with_prefix(&dir.path().join("missing"), "x").is_empty());
    }
}
