//! The agent's implementation of the endpoint manager's datapath trait: BPF programs and the
//! `cilium_lxc` entry through `cilium-datapath`, plus the node route that sends the host's
//! own traffic for the pod out of its veth.

use std::net::Ipv4Addr;

use cilium_datapath::{Datapath, DatapathError, EndpointDatapathConfig};
use cilium_endpoint::{Endpoint, EndpointDatapath};
use cilium_netlink::NetlinkError;

#[derive(Debug, thiserror::Error)]
pub enum NodeDatapathError {
    #[error("endpoint {id}: BPF datapath")]
    Bpf {
        id: u16,
        #[source]
        source: DatapathError,
    },
    #[error("endpoint {id}: route to {ip} via {interface}")]
    Route {
        id: u16,
        ip: Ipv4Addr,
        interface: String,
        #[source]
        source: NetlinkError,
    },
    #[error("endpoint {id}: {count} teardown step(s) failed: {messages}")]
    Teardown {
        id: u16,
        count: usize,
        messages: String,
    },
}

/// BPF datapath plus node routes for endpoints.
pub struct NodeDatapath {
    datapath: Datapath,
}

impl NodeDatapath {
    pub fn new(datapath: Datapath) -> Self {
        Self { datapath }
    }

    pub fn bpf(&self) -> &Datapath {
        &self.datapath
    }
}

impl EndpointDatapath for NodeDatapath {
    type Error = NodeDatapathError;

    fn install(&self, ep: &Endpoint) -> Result<(), NodeDatapathError> {
        let id = ep.id.0;
        let was_attached = self.datapath.endpoint_attached(id);
        let installed = self.datapath.install_endpoint(&EndpointDatapathConfig {
            id,
            identity: ep.identity,
            ipv4: ep.ipv4,
            mac: ep.mac.0,
            node_mac: ep.host_mac.0,
            ifindex: ep.host_ifindex,
            ifname: ep.host_ifname.clone(),
        });
        if let Err(source) = installed {
            // A first install that failed half-way is undone; a failed regeneration keeps the
            // programs that were running.
            if !was_attached {
                let _ = self.datapath.remove_endpoint(id, ep.ipv4);
            }
            return Err(NodeDatapathError::Bpf { id, source });
        }
        cilium_netlink::replace_host_route(ep.ipv4, &ep.host_ifname).map_err(|source| {
            NodeDatapathError::Route {
                id,
                ip: ep.ipv4,
                interface: ep.host_ifname.clone(),
                source,
            }
        })
    }

    /// Removes programs, map entries and the route; every step is tried and every failure
    /// reported.
    fn remove(&self, ep: &Endpoint) -> Result<(), NodeDatapathError> {
        let id = ep.id.0;
        let mut failures = Vec::new();
        if let Err(e) = self.datapath.remove_endpoint(id, ep.ipv4) {
            failures.push(crate::api::chain(&e));
        }
        if let Err(e) = cilium_netlink::delete_host_route(ep.ipv4) {
            failures.push(crate::api::chain(&e));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(NodeDatapathError::Teardown {
                id,
                count: failures.len(),
                messages: failures.join("; "),
            })
        }
    }

    /// Installed means: programs still attached, and the veth they are attached to is the one
    /// the endpoint was created with.
    fn is_installed(&self, ep: &Endpoint) -> bool {
        let same_link = matches!(
            cilium_netlink::link_by_name(&ep.host_ifname),
            Ok(Some(link)) if link.index == ep.host_ifindex
        );
        same_link && self.datapath.endpoint_attached(ep.id.0)
    }
}
