//! Finding the node's own address: the IPv4 address of the device facing the other nodes
//! (`--direct-routing-device`, or the first device with one that is not one of ours).

use cilium_datapath::Underlay;
use cilium_netlink::{Netlink, NetlinkError};

#[derive(Debug, thiserror::Error)]
pub enum NodeAddressError {
    #[error("reading the addresses of {device}")]
    Netlink {
        device: String,
        #[source]
        source: NetlinkError,
    },
    #[error("direct routing device {device} has no IPv4 address")]
    NoAddress { device: String },
}

/// Devices that are ours, never the underlay.
fn is_ours(name: &str) -> bool {
    name == "lo" || name.starts_with("cilium_") || name.starts_with("lxc")
}

/// The underlay device and address; `None` when the node has no device but ours (a lone node
/// without an underlay). Must not run on an async runtime thread.
pub fn detect(device: Option<&str>) -> Result<Option<Underlay>, NodeAddressError> {
    let fail = |device: &str| {
        let device = device.to_string();
        move |source| NodeAddressError::Netlink { device, source }
    };
    let netlink = Netlink::connect().map_err(fail("the node"))?;
    let candidates: Vec<String> = match device {
        Some(device) => vec![device.to_string()],
        None => netlink
            .links()
            .map_err(fail("the node"))?
            .into_iter()
            .map(|link| link.name)
            .filter(|name| !is_ours(name))
            .collect(),
    };
    for name in &candidates {
        let addresses = netlink.addresses(name).map_err(fail(name))?;
        if let Some(address) = addresses.first() {
            return Ok(Some(Underlay {
                device: name.clone(),
                address: *address,
            }));
        }
    }
    match device {
        Some(device) => Err(NodeAddressError::NoAddress {
            device: device.to_string(),
        }),
        None => Ok(None),
    }
}
