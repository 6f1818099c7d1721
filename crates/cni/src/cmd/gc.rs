//! GC: remove agent endpoints, host veths and IPs of containers the runtime no longer
//! lists in `cni.dev/valid-attachments`. Endpoints without a container ID (host, health)
//! and the agent's own IP owners (`router`, `health`) are never touched.

use std::collections::HashSet;

use cilium_api::{AgentClient, ClientError};
use tracing::info;

use crate::agent::{code_for, ignore_not_found};
use crate::config::Attachment;
use crate::error::{CniFailure, ErrorCode};
use crate::teardown::{self, code_for_all, describe_all, TeardownError};

/// IP owners that belong to the agent itself.
pub const AGENT_OWNERS: [&str; 2] = ["router", "health"];

/// Why a GC did not finish.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("GC needs cni.dev/valid-attachments in the configuration")]
    MissingAttachments,
    #[error("cannot list the agent's {what}")]
    List {
        what: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("garbage collection is incomplete: {}", describe_all(.failures))]
    Incomplete { failures: Vec<TeardownError> },
}

impl CniFailure for GcError {
    fn code(&self) -> ErrorCode {
        match self {
            GcError::MissingAttachments => ErrorCode::InvalidConfig,
            GcError::List { source, .. } => code_for(source),
            GcError::Incomplete { failures } => code_for_all(failures),
        }
    }
}

/// Runs GC.
pub fn run(valid: Option<&[Attachment]>, agent: &AgentClient) -> Result<(), GcError> {
    let valid: HashSet<&str> = valid
        .ok_or(GcError::MissingAttachments)?
        .iter()
        .map(|attachment| attachment.container_id.as_str())
        .collect();
    let mut failures = Vec::new();

    let endpoints = agent.endpoints().map_err(|source| GcError::List {
        what: "endpoints",
        source,
    })?;
    for endpoint in endpoints {
        let container_id = &endpoint.status.external_identifiers.container_id;
        if container_id.is_empty() || valid.contains(container_id.as_str()) {
            continue;
        }
        info!(endpoint = endpoint.id, container_id = %container_id, "removing stale endpoint");
        let id = endpoint.id.to_string();
        if let Err(source) = ignore_not_found(agent.delete_endpoint(&id)) {
            failures.push(TeardownError::Endpoint {
                endpoint: id,
                source,
            });
        }
        let host_veth = &endpoint.status.networking.interface_name;
        if host_veth.starts_with("lxc") {
            if let Err(failure) = teardown::host_link(host_veth) {
                failures.push(failure);
            }
        }
    }

    let ipam = agent.ipam_status().map_err(|source| GcError::List {
        what: "IP allocations",
        source,
    })?;
    for (ip, owner) in ipam.allocations {
        if AGENT_OWNERS.contains(&owner.as_str()) || valid.contains(owner.as_str()) {
            continue;
        }
        info!(%ip, %owner, "releasing stale IP");
        if let Err(source) = ignore_not_found(agent.ipam_release(&ip)) {
            failures.push(TeardownError::ReleaseIp { ip, source });
        }
    }

    if failures.is_empty() {
        Ok(())
    } else {
        Err(GcError::Incomplete { failures })
    }
}
