//! Network-namespace handles. `setns(2)` switches only the calling thread, so
//! [`NetNs::run`] does its work on a fresh thread that enters the namespace and ends with the
//! work; the caller's thread never changes namespace.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

/// Failures opening or entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error("cannot open network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a namespace file")]
    NotANamespace { path: PathBuf },
    #[error("cannot inspect {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot enter network namespace {path}")]
    Enter {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot start a thread to enter network namespace {path}")]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An open network namespace (the file stays open, so the namespace stays alive).
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens a namespace by path, e.g. `/run/netns/NAME` or `/proc/PID/ns/net`; fails if
    /// the path is not a namespace file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetNsError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| NetNsError::Open {
            path: path.clone(),
            source,
        })?;
        let stat = fstatfs(&file).map_err(|source| NetNsError::Inspect {
            path: path.clone(),
            source,
        })?;
        if stat.filesystem_type() != NSFS_MAGIC {
            return Err(NetNsError::NotANamespace { path });
        }
        Ok(Self { file, path })
    }

    /// The calling thread's current network namespace.
    pub fn current() -> Result<Self, NetNsError> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has entered this namespace and returns its value. A
    /// panic in `f` is passed on to the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetNsError> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, || {
                    setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        NetNsError::Enter {
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                    Ok(f())
                })
                .map_err(|source| NetNsError::Thread {
                    path: self.path.clone(),
                    source,
                })?;
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_not_a_namespace() {
        let err = NetNs::open("/proc/self/status").unwrap_err();
        assert!(
            matches!(err, NetNsError::NotANamespace { .. }),
            "unexpected error: {err:?}"
        );
    }

    #[test]
    fn a_missing_path_names_the_path() {
        let err = NetNs::open("/nonexistent/netns/x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/netns/x"), "{err}");
    }

    #[test]
    fn the_current_namespace_runs_closures() {
        let ns = NetNs::current().expect("current netns opens");
        assert_eq!(ns.run(|| 41 + 1).expect("run"), 42);
    }
}
