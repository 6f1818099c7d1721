//! STATUS: ready for ADDs when the agent answers its health check with `Ok`.

use std::path::PathBuf;

use cilium_api::{AgentClient, ClientError};

use crate::error::{CniFailure, ErrorCode};

/// Why the plugin is not available.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("the agent at {socket} does not answer its health check")]
    Unreachable {
        socket: PathBuf,
        #[source]
        source: ClientError,
    },
    #[error("the agent reports {state}{}", if msg.is_empty() { String::new() } else { format!(": {msg}") })]
    NotReady { state: String, msg: String },
}

impl CniFailure for StatusError {
    fn code(&self) -> ErrorCode {
        ErrorCode::PluginNotAvailable
    }
}

/// Runs STATUS.
pub fn run(agent: &AgentClient) -> Result<(), StatusError> {
    let health = agent.healthz().map_err(|source| StatusError::Unreachable {
        socket: agent.socket().to_path_buf(),
        source,
    })?;
    if health.cilium.state == "Ok" {
        Ok(())
    } else {
        Err(StatusError::NotReady {
            state: health.cilium.state,
            msg: health.cilium.msg,
        })
    }
}
