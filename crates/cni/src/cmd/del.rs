//! DEL: idempotent removal of a container's endpoint, IP and host veth. An unknown
//! container is a success; an unreachable agent asks the runtime to retry.

use cilium_api::AgentClient;
use tracing::info;

use crate::env::ContainerEnv;
use crate::error::{CniFailure, ErrorCode};
use crate::naming::VethNames;
use crate::teardown::{self, code_for_all, describe_all, TeardownError};

/// Why a DEL did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DelError {
    #[error("cleanup of container {container_id} is incomplete: {}", describe_all(.failures))]
    Incomplete {
        container_id: String,
        failures: Vec<TeardownError>,
    },
}

impl CniFailure for DelError {
    fn code(&self) -> ErrorCode {
        match self {
            DelError::Incomplete { failures, .. } => code_for_all(failures),
        }
    }
}

/// Runs DEL; every step runs even if an earlier one failed.
pub fn run(container: &ContainerEnv, agent: &AgentClient) -> Result<(), DelError> {
    let names = VethNames::for_container(&container.container_id, &container.ifname);
    let failures = teardown::container(agent, &container.container_id, &names.host);
    if failures.is_empty() {
        info!(host_veth = %names.host, "deleted");
        Ok(())
    } else {
        Err(DelError::Incomplete {
            container_id: container.container_id.clone(),
            failures,
        })
    }
}
