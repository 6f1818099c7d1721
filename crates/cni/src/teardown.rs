//! Undoing a pod's networking: the agent endpoint, the IP, the host veth. Used by DEL, by
//! GC and to roll back a failed ADD. Every step runs even when an earlier one failed, and
//! every failure is reported; "already gone" is success.

use cilium_api::{AgentClient, ClientError};
use cilium_netlink::{Netlink, NetlinkError};

use crate::agent::{code_for, ignore_not_found};
use crate::error::{CniFailure, ErrorCode};

/// One teardown step that failed.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("cannot delete agent endpoint {endpoint}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot release the IP held by {owner}")]
    ReleaseOwner {
        owner: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot release IP {ip}")]
    ReleaseIp {
        ip: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot delete host interface {name}")]
    Link {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("cannot open netlink in the node's namespace")]
    Netlink {
        #[source]
        source: NetlinkError,
    },
}

impl CniFailure for TeardownError {
    fn code(&self) -> ErrorCode {
        match self {
            TeardownError::Endpoint { source, .. }
            | TeardownError::ReleaseOwner { source, .. }
            | TeardownError::ReleaseIp { source, .. } => code_for(source),
            TeardownError::Link { .. } | TeardownError::Netlink { .. } => ErrorCode::Internal,
        }
    }
}

/// The code for a list of failures: retry if any step may succeed later, else internal.
pub fn code_for_all(failures: &[TeardownError]) -> ErrorCode {
    if failures
        .iter()
        .any(|failure| failure.code() == ErrorCode::TryAgainLater)
    {
        ErrorCode::TryAgainLater
    } else {
        ErrorCode::Internal
    }
}

/// `a; b; c` for error messages.
pub fn describe_all(failures: &[TeardownError]) -> String {
    failures
        .iter()
        .map(|failure| crate::error::cause_chain(failure))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Removes everything a container may hold: its agent endpoint, its IP and its host veth.
pub fn container(agent: &AgentClient, container_id: &str, host_veth: &str) -> Vec<TeardownError> {
    let mut failures = Vec::new();
    let endpoint = format!("container-id:{container_id}");
    if let Err(source) = ignore_not_found(agent.delete_endpoint(&endpoint)) {
        failures.push(TeardownError::Endpoint { endpoint, source });
    }
    if let Err(source) = ignore_not_found(agent.ipam_release_owner(container_id)) {
        failures.push(TeardownError::ReleaseOwner {
            owner: container_id.into(),
            source,
        });
    }
    if let Err(failure) = host_link(host_veth) {
        failures.push(failure);
    }
    failures
}

/// Deletes a host-side interface in the node's namespace if it exists.
pub fn host_link(name: &str) -> Result<(), TeardownError> {
    let host = Netlink::connect().map_err(|source| TeardownError::Netlink { source })?;
    host.delete_link(name)
        .map(|_| ())
        .map_err(|source| TeardownError::Link {
            name: name.into(),
            source,
        })
}
