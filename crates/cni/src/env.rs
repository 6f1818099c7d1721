//! The `CNI_*` environment: which command to run and, for ADD/DEL/CHECK, which container
//! and interface. Reads through a lookup function so tests can feed a map.

use std::path::{Path, PathBuf};

use crate::args::{self, ArgsError, CniArgs};
use crate::error::{CniFailure, ErrorCode};

/// A way to read environment variables (`std::env::var` in the binary, a map in tests).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The CNI operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        })
    }
}

/// A missing or invalid `CNI_*` variable.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{variable} is not set")]
    Missing { variable: &'static str },
    #[error("CNI_COMMAND {value:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC")]
    UnknownCommand { value: String },
    #[error("CNI_CONTAINERID {value:?} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")]
    InvalidContainerId { value: String },
    #[error("CNI_IFNAME {value:?} is not a valid interface name: {reason}")]
    InvalidIfName { value: String, reason: &'static str },
    #[error("CNI_NETNS {path} is not a network namespace")]
    InvalidNetns {
        path: PathBuf,
        #[source]
        source: cilium_netlink::NetNsError,
    },
    #[error("invalid CNI_ARGS")]
    Args {
        #[source]
        source: ArgsError,
    },
}

impl CniFailure for EnvError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidEnvironment
    }
}

/// Reads `CNI_COMMAND`.
pub fn command(lookup: Lookup<'_>) -> Result<Command, EnvError> {
    let value = lookup("CNI_COMMAND").ok_or(EnvError::Missing {
        variable: "CNI_COMMAND",
    })?;
    Ok(match value.as_str() {
        "ADD" => Command::Add,
        "DEL" => Command::Del,
        "CHECK" => Command::Check,
        "VERSION" => Command::Version,
        "STATUS" => Command::Status,
        "GC" => Command::Gc,
        _ => return Err(EnvError::UnknownCommand { value }),
    })
}

/// The container an ADD, DEL or CHECK is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEnv {
    pub container_id: String,
    pub ifname: String,
    /// `CNI_NETNS`; DEL may come without one (containerd sends a second DEL with it empty).
    pub netns: Option<PathBuf>,
    pub args: CniArgs,
}

impl ContainerEnv {
    /// Reads and validates `CNI_CONTAINERID`, `CNI_IFNAME`, `CNI_NETNS` and `CNI_ARGS`.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, EnvError> {
        let container_id = lookup("CNI_CONTAINERID")
            .filter(|value| !value.is_empty())
            .ok_or(EnvError::Missing {
                variable: "CNI_CONTAINERID",
            })?;
        if !valid_container_id(&container_id) {
            return Err(EnvError::InvalidContainerId {
                value: container_id,
            });
        }
        let ifname = lookup("CNI_IFNAME")
            .filter(|value| !value.is_empty())
            .ok_or(EnvError::Missing {
                variable: "CNI_IFNAME",
            })?;
        if let Err(reason) = check_ifname(&ifname) {
            return Err(EnvError::InvalidIfName {
                value: ifname,
                reason,
            });
        }
        let netns = lookup("CNI_NETNS")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let args = args::parse(&lookup("CNI_ARGS").unwrap_or_default())
            .map_err(|source| EnvError::Args { source })?;
        Ok(Self {
            container_id,
            ifname,
            netns,
            args,
        })
    }

    /// `CNI_NETNS`, which ADD and CHECK cannot do without.
    pub fn require_netns(&self) -> Result<&Path, EnvError> {
        self.netns.as_deref().ok_or(EnvError::Missing {
            variable: "CNI_NETNS",
        })
    }
}

/// The spec's container ID rule: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The kernel's interface name rules (`dev_valid_name`).
fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.len() > 15 {
        return Err("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn commands_are_read() {
        assert_eq!(
            command(&env(&[("CNI_COMMAND", "GC")])).unwrap(),
            Command::Gc
        );
        assert!(matches!(
            command(&env(&[])),
            Err(EnvError::Missing {
                variable: "CNI_COMMAND"
            })
        ));
        let err = command(&env(&[("CNI_COMMAND", "add")])).unwrap_err();
        assert_eq!(err.code().number(), 4);
    }

    #[test]
    fn container_env_is_validated() {
        let ok = ContainerEnv::from_lookup(&env(&[
            ("CNI_CONTAINERID", "abc-1.2_3"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=ns"),
        ]))
        .expect("valid env");
        assert_eq!(ok.netns.as_deref(), Some(Path::new("/run/netns/x")));
        assert_eq!(ok.args.k8s_namespace.as_deref(), Some("ns"));

        let cases: [&[(&str, &str)]; 5] = [
            &[("CNI_IFNAME", "eth0")],
            &[("CNI_CONTAINERID", "-bad"), ("CNI_IFNAME", "eth0")],
            &[("CNI_CONTAINERID", "abc")],
            &[
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "a-very-long-ifname"),
            ],
            &[
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "X=1"),
            ],
        ];
        for case in cases {
            let err = ContainerEnv::from_lookup(&env(case)).unwrap_err();
            assert_eq!(err.code().number(), 4, "{case:?}: {err}");
        }
    }

    #[test]
    fn an_empty_netns_is_absent_and_required_only_on_demand() {
        let del = ContainerEnv::from_lookup(&env(&[
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ]))
        .expect("DEL without netns");
        assert_eq!(del.netns, None);
        assert!(matches!(
            del.require_netns(),
            Err(EnvError::Missing {
                variable: "CNI_NETNS"
            })
        ));
    }
}
