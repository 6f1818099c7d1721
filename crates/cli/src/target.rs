//! Where the agent is: the API socket from `-H`/`CILIUM_SOCK`/the default, the monitor socket
//! next to it, and the bpffs root from `--bpf-root`/`CILIUM_BPF_ROOT` or the agent's config.

use std::path::{Path, PathBuf};

use cilium_api::paths::{monitor_socket_for, DEFAULT_AGENT_SOCKET};
use cilium_api::{AgentClient, ClientError};

/// Errors locating the agent or its state.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unsupported agent address {host:?}: use unix:///path/to/cilium.sock or a path")]
    UnsupportedHost { host: String },
    #[error(
        "cannot determine the agent's bpf root: pass --bpf-root or set CILIUM_BPF_ROOT \
         (asking the agent failed)"
    )]
    BpfRootUnknown {
        #[source]
        source: ClientError,
    },
}

/// The agent this invocation talks to.
#[derive(Debug, Clone)]
pub struct AgentTarget {
    socket: PathBuf,
}

impl AgentTarget {
    /// Resolves `-H`/`CILIUM_SOCK` (already merged by clap) or the default socket.
    pub fn from_host(host: Option<&str>) -> Result<Self, TargetError> {
        let socket = match host {
            None => PathBuf::from(DEFAULT_AGENT_SOCKET),
            Some(host) => parse_host(host)?,
        };
        Ok(Self { socket })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn client(&self) -> AgentClient {
        AgentClient::new(&self.socket)
    }

    pub fn monitor_socket(&self) -> PathBuf {
        monitor_socket_for(&self.socket)
    }

    /// The bpffs root: the explicit one if given (works while the agent is down), else the
    /// agent's `bpf-root` setting.
    pub fn bpf_root(&self, explicit: Option<&Path>) -> Result<PathBuf, TargetError> {
        if let Some(root) = explicit {
            return Ok(root.to_path_buf());
        }
        self.client()
            .config()
            .map(|config| PathBuf::from(config.bpf_root))
            .map_err(|source| TargetError::BpfRootUnknown { source })
    }
}

fn parse_host(host: &str) -> Result<PathBuf, TargetError> {
    let unsupported = || TargetError::UnsupportedHost {
        host: host.to_string(),
    };
    let path = match host.split_once("://") {
        Some(("unix", path)) => path,
        Some(_) => return Err(unsupported()),
        None => host,
    };
    if path.is_empty() {
        return Err(unsupported());
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let socket = |host: Option<&str>| {
            AgentTarget::from_host(host)
                .unwrap_or_else(|e| panic!("{host:?}: {e}"))
                .socket()
                .to_path_buf()
        };
        assert_eq!(socket(None), PathBuf::from("/var/run/cilium/cilium.sock"));
        assert_eq!(
            socket(Some("unix:///run/a/cilium.sock")),
            PathBuf::from("/run/a/cilium.sock")
        );
        assert_eq!(socket(Some("rel/b.sock")), PathBuf::from("rel/b.sock"));
        for bad in ["tcp://127.0.0.1:80", "unix://", ""] {
            let err = AgentTarget::from_host(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("unsupported"), "{bad}: {err}");
        }
    }

    #[test]
    fn monitor_socket_sits_next_to_the_api_socket() {
        let target = AgentTarget::from_host(Some("/run/x/cilium.sock")).unwrap();
        assert_eq!(
            target.monitor_socket(),
            PathBuf::from("/run/x/monitor1_2.sock")
        );
    }

    #[test]
    fn explicit_bpf_root_needs_no_agent() {
        let target = AgentTarget::from_host(Some("/nonexistent/cilium.sock")).unwrap();
        assert_eq!(
            target.bpf_root(Some(Path::new("/sys/fs/bpf/x"))).unwrap(),
            PathBuf::from("/sys/fs/bpf/x")
        );
        let err = target.bpf_root(None).unwrap_err();
        assert!(err.to_string().contains("--bpf-root"), "{err}");
    }
}
