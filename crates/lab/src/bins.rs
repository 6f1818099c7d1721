//! Finding the project's binaries (next to the running `cilium-lab`, or in
//! `$CILIUM_LAB_BIN_DIR`) and the system's `etcd` (in `PATH`).

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where the binaries are.
pub const BIN_DIR_ENV: &str = "CILIUM_LAB_BIN_DIR";

pub const AGENT: &str = "cilium-agent";
pub const CNI: &str = "cilium-cni";
pub const CLI: &str = "cilium";
/// The kvstore server (Debian's `etcd-server` package).
pub const ETCD: &str = "etcd";
/// The Debian package that provides [`ETCD`].
const ETCD_PACKAGE: &str = "etcd-server";
/// This binary's name, for recognising the toolbox servers it starts.
pub const LAB: &str = "cilium-lab";
/// The lab's Hubble relay.
pub const RELAY: &str = "hubble-relay";
/// The Hubble CLI (`cilium-lab hubble`).
pub const HUBBLE: &str = "hubble";

/// Errors locating binaries.
#[derive(Debug, thiserror::Error)]
pub enum BinError {
    #[error("cannot find the running executable")]
    CurrentExe {
        #[source]
        source: io::Error,
    },
    #[error("{name} is not in PATH (install it with `apt-get install {package}`)")]
    NotInstalled { name: String, package: String },
    #[error("{name} not found in {dir} (build it with `cargo build --workspace`, or point {BIN_DIR_ENV} at the directory holding it)")]
    Missing { name: String, dir: PathBuf },
}

/// The directory the lab takes its binaries from.
#[derive(Debug, Clone)]
pub struct BinDir(PathBuf);

impl BinDir {
    /// `$CILIUM_LAB_BIN_DIR` if set, else the running executable's directory.
    pub fn locate() -> Result<Self, BinError> {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(BinDir(PathBuf::from(dir)));
        }
        let exe = self_exe()?;
        Ok(BinDir(
            exe.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into()),
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Path of binary `name`, which must exist.
    pub fn require(&self, name: &str) -> Result<PathBuf, BinError> {
        let path = self.0.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(BinError::Missing {
                name: name.to_string(),
                dir: self.0.clone(),
            })
        }
    }

    /// `PATH` with this directory and then the running `cilium-lab`'s directory first, so
    /// `cilium` and `cilium-lab` resolve inside namespaces.
    pub fn search_path(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.0.clone()];
        if let Some(own) = self_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(own);
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).unwrap_or_else(|_| self.0.clone().into_os_string())
    }
}

/// The system's `etcd`, found in `PATH`.
pub fn etcd() -> Result<PathBuf, BinError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    in_path(ETCD, &path).ok_or_else(|| BinError::NotInstalled {
        name: ETCD.to_string(),
        package: ETCD_PACKAGE.to_string(),
    })
}

/// The first file named `name` in the directories of `path`.
fn in_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The running `cilium-lab` binary (used to start toolbox servers inside pods).
pub fn self_exe() -> Result<PathBuf, BinError> {
    std::env::current_exe().map_err(|source| BinError::CurrentExe { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_directory_and_the_override() {
        let dir = tempfile::tempdir().unwrap();
        let bins = BinDir(dir.path().to_path_buf());
        let err = bins.require(AGENT).unwrap_err().to_string();
        assert!(
            err.contains("cilium-agent") && err.contains(BIN_DIR_ENV),
            "{err}"
        );
        std::fs::write(dir.path().join(AGENT), "").unwrap();
        assert_eq!(bins.require(AGENT).unwrap(), dir.path().join(AGENT));
    }

    #[test]
    fn programs_are_found_in_the_first_path_directory_holding_them() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(b.path().join(ETCD), "").unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(in_path(ETCD, &path), Some(b.path().join(ETCD)));
        assert_eq!(in_path("no-such-program", &path), None);
    }

    #[test]
    fn search_path_puts_the_bin_dir_first() {
        let bins = BinDir(PathBuf::from("/opt/lab/bin"));
        let path = bins.search_path();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, Path::new("/opt/lab/bin"));
    }
}
