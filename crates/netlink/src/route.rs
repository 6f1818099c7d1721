//! IPv4 routes in the main table: add, delete, list.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use crate::error::{errno_of, NetlinkError};
use crate::handle::Netlink;

/// An IPv4 route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// Output interface; empty for listed routes that have none.
    pub dev: String,
    /// `scope link`: the destination is directly reachable on `dev`.
    pub scope_link: bool,
    /// `onlink`: use the gateway even though no address on `dev` covers it.
    pub onlink: bool,
    /// `src`: the source address for packets the node sends on this route.
    pub src: Option<Ipv4Addr>,
}

impl std::fmt::Display for Route {
    /// `ip route` style: `0.0.0.0/0 via 10.0.0.1 dev eth0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if !self.dev.is_empty() {
            write!(f, " dev {}", self.dev)?;
        }
        if self.scope_link {
            write!(f, " scope link")?;
        }
        if self.onlink {
            write!(f, " onlink")?;
        }
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        Ok(())
    }
}

/// No such route (`ESRCH`).
const ESRCH: i32 = nix::errno::Errno::ESRCH as i32;

impl Netlink {
    /// Adds `route` to the main table; fails if an equal route exists.
    pub fn add_route(&self, route: &Route) -> Result<(), NetlinkError> {
        let message = self.route_message("add route", route)?;
        self.block_on(self.handle().route().add(message).execute())
            .map_err(|source| NetlinkError::Request {
                operation: "add route",
                target: route.to_string(),
                source: Box::new(source),
            })
    }

    /// Adds `route` to the main table or replaces the route to the same destination
    /// (`ip route replace`).
    pub fn replace_route(&self, route: &Route) -> Result<(), NetlinkError> {
        let message = self.route_message("replace route", route)?;
        self.block_on(self.handle().route().add(message).replace().execute())
            .map_err(|source| NetlinkError::Request {
                operation: "replace route",
                target: route.to_string(),
                source: Box::new(source),
            })
    }

    fn route_message(
        &self,
        operation: &'static str,
        route: &Route,
    ) -> Result<RouteMessage, NetlinkError> {
        let index = self.index_of(operation, &route.dev)?;
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .output_interface(index);
        if let Some(gateway) = route.gateway {
            builder = builder.gateway(gateway);
        }
        if route.scope_link {
            builder = builder.scope(RouteScope::Link);
        }
        if route.onlink {
            builder = builder.onlink();
        }
        if let Some(src) = route.src {
            builder = builder.pref_source(src);
        }
        Ok(builder.build())
    }

    /// Deletes `route` from the main table, matching destination, gateway and device
    /// whatever the protocol and scope. Returns `false` if there was no such route.
    pub fn delete_route(&self, route: &Route) -> Result<bool, NetlinkError> {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .protocol(RouteProtocol::Unspec)
            .scope(RouteScope::NoWhere)
            .kind(RouteType::Unspec);
        if !route.dev.is_empty() {
            let Some(link) = self.link_by_name(&route.dev)? else {
                return Ok(false);
            };
            builder = builder.output_interface(link.index);
        }
        if let Some(gateway) = route.gateway {
            builder = builder.gateway(gateway);
        }
        match self.block_on(self.handle().route().del(builder.build()).execute()) {
            Ok(()) => Ok(true),
            Err(source) if errno_of(&source) == Some(ESRCH) => Ok(false),
            Err(source) => Err(NetlinkError::Request {
                operation: "delete route",
                target: route.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// The IPv4 routes of the main table.
    pub fn list_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let names: HashMap<u32, String> = self
            .links()?
            .into_iter()
            .map(|link| (link.index, link.name))
            .collect();
        let request = self
            .handle()
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build());
        let messages: Vec<RouteMessage> =
            self.block_on(request.execute().try_collect())
                .map_err(|source| NetlinkError::Request {
                    operation: "list routes",
                    target: "in the main table".into(),
                    source: Box::new(source),
                })?;
        Ok(messages
            .iter()
            .filter(|message| {
                message.header.address_family == AddressFamily::Inet
                    && table_of(message) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .map(|message| route_from_message(message, &names))
            .collect())
    }
}

/// The table a route belongs to: `RTA_TABLE` when present (tables above 255), else the
/// header field.
fn table_of(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

fn route_from_message(message: &RouteMessage, names: &HashMap<u32, String>) -> Route {
    let mut destination = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut dev = String::new();
    let mut src = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::PrefSource(RouteAddress::Inet(ip)) => src = Some(*ip),
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(index) => dev = names.get(index).cloned().unwrap_or_default(),
            _ => {}
        }
    }
    Route {
        // The kernel only reports valid prefix lengths (0..=32) for IPv4 routes.
        dst: Ipv4Net::new(destination, message.header.destination_prefix_length)
            .unwrap_or_default(),
        gateway,
        dev,
        scope_link: message.header.scope == RouteScope::Link,
        onlink: message.header.flags.contains(RouteFlags::Onlink),
        src,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_print_like_ip_route() {
        let route = Route {
            dst: "10.0.0.1/32".parse().unwrap(),
            gateway: None,
            dev: "eth0".into(),
            scope_link: true,
            onlink: false,
            src: None,
        };
        assert_eq!(route.to_string(), "10.0.0.1/32 dev eth0 scope link");
        let default = Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("10.0.0.1".parse().unwrap()),
            dev: "eth0".into(),
            scope_link: false,
            onlink: true,
            src: None,
        };
        assert_eq!(
            default.to_string(),
            "0.0.0.0/0 via 10.0.0.1 dev eth0 onlink"
        );
    }
}
