//! CHECK: confirm that what ADD set up is still there: the agent knows the endpoint with
//! the same IP, the host veth exists, and in the pod the interface is up with the IP and
//! the default route through the gateway.

use cilium_api::{AgentClient, ClientError};
use cilium_netlink::{NetNs, Netlink, NetlinkError};
use serde_json::Value;

use crate::agent::code_for;
use crate::env::{ContainerEnv, EnvError};
use crate::error::{CniFailure, ErrorCode, Failure};
use crate::naming::VethNames;
use crate::result::PrevResult;
use crate::veth::pod_routes;

/// Why a CHECK failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("CHECK needs prevResult in the configuration")]
    NoPrevResult,
    #[error("the agent has no endpoint for container {container_id}")]
    UnknownEndpoint { container_id: String },
    #[error("cannot ask the agent about container {container_id}")]
    Agent {
        container_id: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot inspect the {place}")]
    Netlink {
        place: &'static str,
        #[source]
        source: NetlinkError,
    },
    #[error("container {container_id}: {problem}")]
    Mismatch {
        container_id: String,
        problem: String,
    },
}

impl CniFailure for CheckError {
    fn code(&self) -> ErrorCode {
        match self {
            CheckError::NoPrevResult => ErrorCode::InvalidConfig,
            CheckError::Agent { source, .. } => code_for(source),
            CheckError::Netlink { .. } => ErrorCode::Internal,
            CheckError::UnknownEndpoint { .. } | CheckError::Mismatch { .. } => {
                ErrorCode::CheckFailed
            }
        }
    }
}

/// Runs CHECK against the previous result.
pub fn run(
    prev_result: Option<&Value>,
    container: &ContainerEnv,
    agent: &AgentClient,
) -> Result<(), Failure> {
    let prev = PrevResult::parse(
        prev_result.ok_or(CheckError::NoPrevResult)?,
        &container.ifname,
    )?;
    let netns_path = container.require_netns()?;
    let pod_ns = NetNs::open(netns_path).map_err(|source| EnvError::InvalidNetns {
        path: netns_path.to_path_buf(),
        source,
    })?;
    let mismatch = |problem: String| CheckError::Mismatch {
        container_id: container.container_id.clone(),
        problem,
    };

    let endpoint = agent
        .endpoint(&format!("container-id:{}", container.container_id))
        .map_err(|source| match source.status() {
            Some(404) => CheckError::UnknownEndpoint {
                container_id: container.container_id.clone(),
            },
            _ => CheckError::Agent {
                container_id: container.container_id.clone(),
                source,
            },
        })?;
    let ip = prev.address.addr().to_string();
    if !endpoint
        .status
        .networking
        .addressing
        .iter()
        .any(|pair| pair.ipv4 == ip)
    {
        return Err(mismatch(format!(
            "the agent's endpoint {} does not have IP {ip}",
            endpoint.id
        ))
        .into());
    }

    let names = VethNames::for_container(&container.container_id, &container.ifname);
    let host = Netlink::connect().map_err(|source| CheckError::Netlink {
        place: "node namespace",
        source,
    })?;
    let host_link = host
        .link_by_name(&names.host)
        .map_err(|source| CheckError::Netlink {
            place: "node namespace",
            source,
        })?;
    if host_link.is_none() {
        return Err(mismatch(format!("host interface {} is missing", names.host)).into());
    }

    let pod = Netlink::connect_in(&pod_ns).map_err(|source| CheckError::Netlink {
        place: "pod namespace",
        source,
    })?;
    let inspect = |source| CheckError::Netlink {
        place: "pod namespace",
        source,
    };
    let ifname = &container.ifname;
    match pod.link_by_name(ifname).map_err(inspect)? {
        None => return Err(mismatch(format!("interface {ifname} is missing in the pod")).into()),
        Some(link) if !link.up => {
            return Err(mismatch(format!("interface {ifname} is down in the pod")).into())
        }
        Some(_) => {}
    }
    if !pod
        .addresses(ifname)
        .map_err(inspect)?
        .contains(&prev.address)
    {
        return Err(mismatch(format!("interface {ifname} does not have {}", prev.address)).into());
    }
    if let Some(gateway) = prev.gateway {
        let routes = pod.list_routes().map_err(inspect)?;
        let [_, default] = pod_routes(ifname, gateway);
        let present = routes.iter().any(|route| {
            route.dst == default.dst && route.gateway == default.gateway && route.dev == default.dev
        });
        if !present {
            return Err(mismatch(format!("the pod has no route {default}")).into());
        }
    }
    Ok(())
}
