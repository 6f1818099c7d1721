//! IPv4 address operations on an interface.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use crate::error::NetlinkError;
use crate::handle::Netlink;

/// The address is already on the interface.
const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;

impl Netlink {
    /// Adds `address/prefix_len` to interface `ifname`.
    pub fn add_address(
        &self,
        ifname: &str,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let index = self.index_of("add address", ifname)?;
        let request = self
            .handle()
            .address()
            .add(index, IpAddr::V4(address), prefix_len);
        self.block_on(request.execute())
            .map_err(|source| NetlinkError::Request {
                operation: "add address",
                target: format!("{address}/{prefix_len} to {ifname}"),
                source: Box::new(source),
            })
    }

    /// Adds `address/prefix_len` to `ifname` unless it is already there (idempotent, for
    /// state that survives restarts).
    pub fn ensure_address(
        &self,
        ifname: &str,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        match self.add_address(ifname, address, prefix_len) {
            Err(error) if error.errno() == Some(EEXIST) => Ok(()),
            other => other,
        }
    }

    /// The IPv4 addresses on interface `ifname`, with their prefix lengths.
    pub fn addresses(&self, ifname: &str) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let index = self.index_of("list addresses", ifname)?;
        let request = self.handle().address().get().set_link_index_filter(index);
        let messages: Vec<AddressMessage> = self
            .block_on(request.execute().try_collect())
            .map_err(|source| NetlinkError::Request {
                operation: "list addresses",
                target: ifname.into(),
                source: Box::new(source),
            })?;
        Ok(messages
            .iter()
            .filter(|message| message.header.index == index)
            .filter_map(|message| {
                message
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        AddressAttribute::Address(IpAddr::V4(ip)) => {
                            Ipv4Net::new(*ip, message.header.prefix_len).ok()
                        }
                        _ => None,
                    })
            })
            .collect())
    }
}
