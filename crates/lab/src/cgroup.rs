//! Per-node cgroups for socket load balancing: each node gets a cgroup v2 directory,
//! `<hierarchy>/cilab-<lab>-<node>`, that its agent attaches the socket-LB hooks to
//! (`--cgroup-root`), and the processes the lab runs for the node and its pods (toolbox
//! servers, `exec`, `node exec`) join it before they exec. Processes outside it — the lab
//! itself, test threads, the machine's own — are never translated.
//!
//! The lab only ever attaches to, and removes, cgroups it created, found by its namespace
//! prefix.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// Where cgroup v2 is mounted: the hybrid layout's `unified` first, then a pure v2 mount.
const HIERARCHIES: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// How long removal waits for a cgroup's exiting processes to leave it.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Errors handling the lab's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move pid {pid} out of cgroup {path}")]
    Evict {
        path: PathBuf,
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list cgroups under {dir}")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot join cgroup {path}")]
    Join {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The cgroup v2 hierarchy of this machine, `None` when none is mounted.
pub fn hierarchy() -> Option<PathBuf> {
    HIERARCHIES
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("cgroup.controllers").exists())
}

/// Creates the cgroup `path` (already there is fine).
pub fn create(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Makes `cmd`'s process join the cgroup `path` between fork and exec, so everything it runs
/// is in it from the first instruction.
pub fn join_on_exec(cmd: &mut Command, path: &Path) -> Result<(), CgroupError> {
    let procs = procs_path(path)?;
    // SAFETY: the closure runs between fork and exec and only calls open(2), write(2) and
    // close(2) (async-signal-safe) on a path prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || write_self(&procs));
    }
    Ok(())
}

/// Moves the calling process into the cgroup `path` (before it execs into a command).
pub fn join_self(path: &Path) -> Result<(), CgroupError> {
    let procs = procs_path(path)?;
    write_self(&procs).map_err(|source| CgroupError::Join {
        path: path.to_path_buf(),
        source,
    })
}

fn procs_path(path: &Path) -> Result<CString, CgroupError> {
    CString::new(path.join("cgroup.procs").as_os_str().as_bytes()).map_err(|e| CgroupError::Join {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// Writes "0" (the writer itself) to a `cgroup.procs` file.
fn write_self(procs: &CString) -> io::Result<()> {
    let fd = open(
        procs.as_c_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    nix::unistd::write(&fd, b"0")?;
    Ok(())
}

/// Removes the cgroup `path`: processes still in it (an `exec` session that outlived its
/// pod) are moved to the hierarchy's root first, then the directory goes once the kernel has
/// let exiting processes leave. A cgroup that is not there is fine.
pub fn remove(path: &Path) -> Result<(), CgroupError> {
    if !path.exists() {
        return Ok(());
    }
    let root = path.parent().unwrap_or(Path::new("/"));
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    loop {
        for pid in members(path) {
            // A process that exited meanwhile cannot be moved, and needs not be.
            if let Err(source) = std::fs::write(root.join("cgroup.procs"), pid.to_string()) {
                if members(path).contains(&pid) {
                    return Err(CgroupError::Evict {
                        path: path.to_path_buf(),
                        pid,
                        source,
                    });
                }
            }
        }
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) if Instant::now() >= deadline => {
                return Err(CgroupError::Remove {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Removes every cgroup of the hierarchy whose name starts with `prefix` (a lab's namespace
/// prefix); carries on past failures and returns them all.
pub fn remove_with_prefix(prefix: &str) -> Vec<CgroupError> {
    let Some(root) = hierarchy() else {
        return Vec::new();
    };
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(source) => return vec![CgroupError::List { dir: root, source }],
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|entry| remove(&entry.path()).err())
        .collect()
}

/// The PIDs in the cgroup `path` (none when it cannot be read).
fn members(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}
