//! ADD: allocate an IP from the agent, plumb the veth pair, register the endpoint, and
//! return the result. Any failure after the allocation undoes everything done so far.

use std::net::Ipv4Addr;

use cilium_api::models::IpamResponse;
use cilium_api::{AgentClient, ClientError};
use cilium_netlink::{NetNs, Netlink, NetlinkError};
use serde_json::Value;
use tracing::{info, warn};

use crate::agent::code_for;
use crate::config::NetConf;
use crate::endpoint_request::{self, PlumbedPod};
use crate::env::{ContainerEnv, EnvError};
use crate::error::{cause_chain, CniFailure, ErrorCode, Failure};
use crate::naming::VethNames;
use crate::result::render_add;
use crate::teardown;
use crate::veth::{plumb, PodAddressing};

/// Why an ADD failed.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("cannot open netlink ({place})")]
    Netlink {
        place: &'static str,
        #[source]
        source: NetlinkError,
    },
    #[error("host interface {name} already exists: container {container_id} interface {ifname} was added before without a DEL")]
    HostLinkExists {
        name: String,
        container_id: String,
        ifname: String,
    },
    #[error("interface {ifname} already exists in {netns}")]
    PodInterfaceExists { ifname: String, netns: String },
    #[error("the agent could not allocate an IP for container {container_id}")]
    Allocate {
        container_id: String,
        #[source]
        source: ClientError,
    },
    #[error("the agent returned an invalid {field} {value:?}")]
    BadAllocation {
        field: &'static str,
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("cannot set up the network of container {container_id}")]
    Plumb {
        container_id: String,
        #[source]
        source: NetlinkError,
    },
    #[error("the agent did not accept the endpoint of container {container_id}")]
    Register {
        container_id: String,
        #[source]
        source: ClientError,
    },
}

impl CniFailure for AddError {
    fn code(&self) -> ErrorCode {
        match self {
            AddError::Allocate { source, .. } | AddError::Register { source, .. } => {
                code_for(source)
            }
            _ => ErrorCode::Internal,
        }
    }
}

/// Runs ADD and returns the CNI result.
pub fn run(
    conf: &NetConf,
    container: &ContainerEnv,
    agent: &AgentClient,
) -> Result<Value, Failure> {
    let netns_path = container.require_netns()?;
    let pod_ns = NetNs::open(netns_path).map_err(|source| EnvError::InvalidNetns {
        path: netns_path.to_path_buf(),
        source,
    })?;
    let netns = netns_path.display().to_string();
    let names = VethNames::for_container(&container.container_id, &container.ifname);
    let host = Netlink::connect().map_err(|source| AddError::Netlink {
        place: "node namespace",
        source,
    })?;
    let pod = Netlink::connect_in(&pod_ns).map_err(|source| AddError::Netlink {
        place: "pod namespace",
        source,
    })?;
    ensure_absent(&host, &pod, &names, container, &netns)?;

    let allocation = agent
        .ipam_allocate(&container.container_id)
        .map_err(|source| AddError::Allocate {
            container_id: container.container_id.clone(),
            source,
        })?;
    info!(ip = %allocation.ipv4.ip, gateway = %allocation.ipv4.gateway, "allocated");

    let attempt = || -> Result<PlumbedPod, AddError> {
        let addressing = addressing_of(&allocation, conf.mtu)?;
        let plumbed = plumb(&host, &pod, &pod_ns, &names, &container.ifname, &addressing).map_err(
            |source| AddError::Plumb {
                container_id: container.container_id.clone(),
                source,
            },
        )?;
        let request = endpoint_request::build(container, &netns, &plumbed, &conf.labels);
        let endpoint = agent
            .put_endpoint("0", &request)
            .map_err(|source| AddError::Register {
                container_id: container.container_id.clone(),
                source,
            })?;
        info!(endpoint = endpoint.id, host_veth = %plumbed.host.name, "endpoint registered");
        Ok(plumbed)
    };
    match attempt() {
        Ok(plumbed) => Ok(render_add(
            conf.cni_version,
            &container.ifname,
            &netns,
            &plumbed,
        )),
        Err(error) => {
            warn!(error = %cause_chain(&error), "ADD failed, rolling back");
            for failure in teardown::container(agent, &container.container_id, &names.host) {
                warn!(error = %cause_chain(&failure), "rollback step failed");
            }
            Err(error.into())
        }
    }
}

/// Refuses to start when the interfaces this ADD would create already exist: they belong
/// to a live container, and a rollback must never remove what this ADD did not create.
fn ensure_absent(
    host: &Netlink,
    pod: &Netlink,
    names: &VethNames,
    container: &ContainerEnv,
    netns: &str,
) -> Result<(), AddError> {
    let host_exists = host
        .link_by_name(&names.host)
        .map_err(|source| AddError::Netlink {
            place: "node namespace",
            source,
        })?
        .is_some();
    if host_exists {
        return Err(AddError::HostLinkExists {
            name: names.host.clone(),
            container_id: container.container_id.clone(),
            ifname: container.ifname.clone(),
        });
    }
    let pod_exists = pod
        .link_by_name(&container.ifname)
        .map_err(|source| AddError::Netlink {
            place: "pod namespace",
            source,
        })?
        .is_some();
    if pod_exists {
        return Err(AddError::PodInterfaceExists {
            ifname: container.ifname.clone(),
            netns: netns.into(),
        });
    }
    Ok(())
}

/// The pod's IP and gateway from the agent's answer (the gateway falls back to the
/// router IP when the answer leaves it empty).
fn addressing_of(allocation: &IpamResponse, mtu: u32) -> Result<PodAddressing, AddError> {
    let parse = |field: &'static str, value: &str| -> Result<Ipv4Addr, AddError> {
        value.parse().map_err(|source| AddError::BadAllocation {
            field,
            value: value.into(),
            source,
        })
    };
    let gateway = if allocation.ipv4.gateway.is_empty() {
        &allocation.host_addressing.ipv4.ip
    } else {
        &allocation.ipv4.gateway
    };
    Ok(PodAddressing {
        ip: parse("ip", &allocation.ipv4.ip)?,
        gateway: parse("gateway", gateway)?,
        mtu,
    })
}
