//! Named network namespaces, managed with iproute2 (`ip netns`), and commands that run inside
//! them.
//!
//! Three ways in: [`exec_in`] uses `ip netns exec`, which also mounts a `/sys` for the
//! namespace (right for pods and the CNI plugin) but hides the bpffs mounted at `/sys/fs/bpf`;
//! [`enter_net`] uses `nsenter --net`, which switches only the network namespace, so agents and
//! `cilium bpf ...` still see their pinned maps; [`run_in`] runs a closure on a thread of this
//! process that joined the namespace (setns is per thread).

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{setns, CloneFlags};

use crate::run::{self, RunError};

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Errors managing namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name}")]
    Command {
        name: String,
        #[source]
        source: RunError,
    },
    #[error("cannot list {dir}")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network namespace {name} already exists")]
    Exists { name: String },
    #[error("cannot open network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter network namespace {name}")]
    Enter {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot start a thread for network namespace {name}")]
    Thread {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// The path a runtime passes as `CNI_NETNS`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Creates the namespace and brings its loopback up.
pub fn create(name: &str) -> Result<(), NetnsError> {
    if exists(name) {
        return Err(NetnsError::Exists {
            name: name.to_string(),
        });
    }
    ip_global(name, &["netns", "add", name])?;
    ip(name, &["link", "set", "lo", "up"])
}

/// Deletes the namespace.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    ip_global(name, &["netns", "delete", name])
}

/// Every namespace whose name starts with `prefix`, sorted.
pub fn list_with_prefix(prefix: &str) -> Result<Vec<String>, NetnsError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetnsError::List {
                dir: NETNS_DIR.into(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetnsError::List {
            dir: NETNS_DIR.into(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Processes whose network namespace is `name`.
pub fn pids(name: &str) -> Result<Vec<u32>, NetnsError> {
    let out = ip_output(name, &["netns", "pids", name])?;
    Ok(String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Runs `ip -n <name> ARGS...`.
pub fn ip(name: &str, args: &[&str]) -> Result<(), NetnsError> {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(name).args(args);
    run::check(&mut cmd)
        .map(|_| ())
        .map_err(|source| NetnsError::Command {
            name: name.to_string(),
            source,
        })
}

/// Sets a sysctl inside the namespace.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<(), NetnsError> {
    let mut cmd = exec_in(name, "sysctl");
    cmd.args(["-q", "-w", &format!("{key}={value}")]);
    run::check(&mut cmd)
        .map(|_| ())
        .map_err(|source| NetnsError::Command {
            name: name.to_string(),
            source,
        })
}

/// `ip netns exec <name> <program>`: the namespace plus its own `/sys`.
pub fn exec_in(name: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", name]).arg(program);
    cmd
}

/// `nsenter --net=/run/netns/<name> -- <program>`: only the network namespace changes.
pub fn enter_net(name: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    let mut net = std::ffi::OsString::from("--net=");
    net.push(path(name));
    cmd.arg(net).arg("--").arg(program);
    cmd
}

/// Runs `f` on a new thread inside network namespace `name` and returns what it returns. Only
/// that thread changes namespace; it ends with `f`.
pub fn run_in<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns_path = path(name);
    let file = std::fs::File::open(&ns_path).map_err(|source| NetnsError::Open {
        path: ns_path,
        source,
    })?;
    let owned = name.to_string();
    let handle = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                name: owned,
                source,
            })?;
            Ok(f())
        })
        .map_err(|source| NetnsError::Thread {
            name: name.to_string(),
            source,
        })?;
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn ip_global(name: &str, args: &[&str]) -> Result<(), NetnsError> {
    ip_output(name, args).map(|_| ())
}

fn ip_output(name: &str, args: &[&str]) -> Result<Vec<u8>, NetnsError> {
    run::check(Command::new("ip").args(args))
        .map(|o| o.stdout)
        .map_err(|source| NetnsError::Command {
            name: name.to_string(),
            source,
        })
}
