//! Finding the agent and classifying its failures into CNI error codes.

use std::path::PathBuf;

use cilium_api::paths::{AGENT_SOCKET_ENV, DEFAULT_AGENT_SOCKET};
use cilium_api::{AgentClient, ClientError};

use crate::config::NetConf;
use crate::env::Lookup;
use crate::error::ErrorCode;

/// The agent socket: `agent-socket` from the configuration, else `CILIUM_SOCK`, else
/// Cilium's default `/var/run/cilium/cilium.sock`.
pub fn socket_path(conf: &NetConf, lookup: Lookup<'_>) -> PathBuf {
    conf.agent_socket
        .clone()
        .or_else(|| {
            lookup(AGENT_SOCKET_ENV)
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_SOCKET))
}

/// A client for the agent named by the configuration and environment.
pub fn client(conf: &NetConf, lookup: Lookup<'_>) -> AgentClient {
    AgentClient::new(socket_path(conf, lookup))
}

/// Transient agent failures (not running, not answering, overloaded) ask the runtime to
/// retry (11); anything the agent refused is an internal error (999).
pub fn code_for(error: &ClientError) -> ErrorCode {
    match error {
        ClientError::Connect { .. } | ClientError::Io { .. } => ErrorCode::TryAgainLater,
        ClientError::Status {
            status: 429 | 502 | 503 | 504,
            ..
        } => ErrorCode::TryAgainLater,
        _ => ErrorCode::Internal,
    }
}

/// `Ok` for success and for "not found": what teardown steps want.
pub fn ignore_not_found(result: Result<(), ClientError>) -> Result<(), ClientError> {
    match result {
        Err(error) if error.status() == Some(404) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn conf(agent_socket: Option<&str>) -> NetConf {
        let mut value =
            serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "cilium-cni"});
        if let Some(path) = agent_socket {
            value["agent-socket"] = path.into();
        }
        NetConf::parse(value.to_string().as_bytes()).expect("valid config")
    }

    #[test]
    fn the_socket_comes_from_config_then_env_then_default() {
        let env: HashMap<&str, &str> = [("CILIUM_SOCK", "/env.sock")].into();
        let with_env = |key: &str| env.get(key).map(|v| v.to_string());
        let without_env = |_: &str| None;
        assert_eq!(
            socket_path(&conf(Some("/conf.sock")), &with_env),
            PathBuf::from("/conf.sock")
        );
        assert_eq!(
            socket_path(&conf(None), &with_env),
            PathBuf::from("/env.sock")
        );
        assert_eq!(
            socket_path(&conf(None), &without_env),
            PathBuf::from(DEFAULT_AGENT_SOCKET)
        );
    }

    #[test]
    fn unreachable_agents_mean_try_again() {
        let err = AgentClient::new("/nonexistent/agent.sock")
            .healthz()
            .unwrap_err();
        assert_eq!(code_for(&err), ErrorCode::TryAgainLater);
        let refused = ClientError::Status {
            method: "PUT",
            path: "/v1/endpoint/0".into(),
            status: 400,
            message: "bad".into(),
        };
        assert_eq!(code_for(&refused), ErrorCode::Internal);
        assert!(ignore_not_found(Err(refused)).is_err());
        let missing = ClientError::Status {
            method: "DELETE",
            path: "/v1/endpoint/x".into(),
            status: 404,
            message: "gone".into(),
        };
        assert!(ignore_not_found(Err(missing)).is_ok());
    }
}
