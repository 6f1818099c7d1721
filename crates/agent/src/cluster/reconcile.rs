//! Applies the cluster view to the node: ipcache entries into the BPF map and routes to the
//! other nodes' pod CIDRs. Only differences from what was applied last
//! are written, and a failed write is retried at the next change.

use std::collections::BTreeMap;

use cilium_datapath::abi::RemoteEndpointInfo;
use cilium_datapath::maps::IpcacheMap;
use ipnet::Ipv4Net;

use crate::cluster::view::{ClusterView, PodCidrRoute};

/// Where the reconciler writes.
pub trait ClusterDatapath {
    fn upsert_ipcache(&mut self, prefix: Ipv4Net, info: &RemoteEndpointInfo) -> Result<(), String>;
    fn delete_ipcache(&mut self, prefix: Ipv4Net) -> Result<(), String>;
    fn replace_route(&mut self, cidr: Ipv4Net, route: PodCidrRoute) -> Result<(), String>;
    fn delete_route(&mut self, cidr: Ipv4Net) -> Result<(), String>;
}

/// The node's BPF ipcache and routing table.
pub struct NodeClusterDatapath {
    pub ipcache: IpcacheMap,
    /// Device native routes to other nodes go out of (the underlay).
    pub device: String,
    /// The tunnel device, in tunnel mode.
    pub tunnel_device: String,
}

impl ClusterDatapath for NodeClusterDatapath {
    fn upsert_ipcache(&mut self, prefix: Ipv4Net, info: &RemoteEndpointInfo) -> Result<(), String> {
        self.ipcache
            .upsert(prefix, info)
            .map_err(|e| crate::api::chain(&e))
    }

    fn delete_ipcache(&mut self, prefix: Ipv4Net) -> Result<(), String> {
        self.ipcache
            .delete(prefix)
            .map(drop)
            .map_err(|e| crate::api::chain(&e))
    }

    fn replace_route(&mut self, cidr: Ipv4Net, route: PodCidrRoute) -> Result<(), String> {
        match route {
            PodCidrRoute::Via(via) => {
                cilium_netlink::replace_gateway_route(cidr, via, &self.device)
            }
            PodCidrRoute::Tunnel { src } => {
                cilium_netlink::replace_device_route(cidr, &self.tunnel_device, src)
            }
        }
        .map_err(|e| crate::api::chain(&e))
    }

    fn delete_route(&mut self, cidr: Ipv4Net) -> Result<(), String> {
        cilium_netlink::delete_route_to(cidr)
            .map(drop)
            .map_err(|e| crate::api::chain(&e))
    }
}

/// What was applied, to diff the next view against.
#[derive(Debug, Default)]
pub struct Reconciler {
    ipcache: BTreeMap<Ipv4Net, RemoteEndpointInfo>,
    routes: BTreeMap<Ipv4Net, PodCidrRoute>,
}

impl Reconciler {
    /// Takes what the map already holds as applied (after an agent restart the pinned map
    /// keeps the previous agent's entries), so entries no longer wanted get deleted.
    pub fn adopt(&mut self, ipcache: &IpcacheMap) {
        match ipcache.entries() {
            Ok(entries) => {
                self.ipcache = entries.into_iter().map(|e| (e.prefix, e.info)).collect();
            }
            Err(error) => {
                tracing::warn!(error = %crate::api::chain(&error), "cannot read the ipcache; stale entries may stay");
            }
        }
    }

    /// Brings the datapath to `view`; returns the failures (each retried next time).
    pub fn apply(
        &mut self,
        view: &ClusterView,
        datapath: &mut impl ClusterDatapath,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        let want_ipcache = view.desired_ipcache();
        let want_routes = view.desired_routes();

        for (prefix, info) in &want_ipcache {
            if self.ipcache.get(prefix) != Some(info) {
                match datapath.upsert_ipcache(*prefix, info) {
                    Ok(()) => {
                        self.ipcache.insert(*prefix, *info);
                    }
                    Err(e) => failures.push(format!("ipcache {prefix}: {e}")),
                }
            }
        }
        let stale: Vec<Ipv4Net> = self
            .ipcache
            .keys()
            .filter(|p| !want_ipcache.contains_key(p))
            .copied()
            .collect();
        for prefix in stale {
            match datapath.delete_ipcache(prefix) {
                Ok(()) => {
                    self.ipcache.remove(&prefix);
                }
                Err(e) => failures.push(format!("ipcache {prefix}: {e}")),
            }
        }

        for (cidr, route) in &want_routes {
            if self.routes.get(cidr) != Some(route) {
                match datapath.replace_route(*cidr, *route) {
                    Ok(()) => {
                        self.routes.insert(*cidr, *route);
                    }
                    Err(e) => failures.push(format!("route {cidr} ({route:?}): {e}")),
                }
            }
        }
        let stale: Vec<Ipv4Net> = self
            .routes
            .keys()
            .filter(|c| !want_routes.contains_key(c))
            .copied()
            .collect();
        for cidr in stale {
            match datapath.delete_route(cidr) {
                Ok(()) => {
                    self.routes.remove(&cidr);
                }
                Err(e) => failures.push(format!("route {cidr}: {e}")),
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::LocalNode;
    use crate::config::RoutingMode;

    #[derive(Default)]
    struct Fake {
        ipcache: BTreeMap<Ipv4Net, RemoteEndpointInfo>,
        routes: BTreeMap<Ipv4Net, PodCidrRoute>,
        writes: usize,
    }

    impl ClusterDatapath for Fake {
        fn upsert_ipcache(&mut self, p: Ipv4Net, i: &RemoteEndpointInfo) -> Result<(), String> {
            self.writes += 1;
            self.ipcache.insert(p, *i);
            Ok(())
        }
        fn delete_ipcache(&mut self, p: Ipv4Net) -> Result<(), String> {
            self.writes += 1;
            self.ipcache.remove(&p);
            Ok(())
        }
        fn replace_route(&mut self, c: Ipv4Net, r: PodCidrRoute) -> Result<(), String> {
            self.writes += 1;
            self.routes.insert(c, r);
            Ok(())
        }
        fn delete_route(&mut self, c: Ipv4Net) -> Result<(), String> {
            self.writes += 1;
            self.routes.remove(&c);
            Ok(())
        }
    }

    #[test]
    fn only_differences_are_written_and_stale_entries_go() {
        let mut view = ClusterView::new(LocalNode {
            name: "node1".into(),
            node_ip: "172.18.0.11".parse().unwrap(),
            router_ip: "10.0.0.1".parse().unwrap(),
            pod_cidr: "10.0.0.0/24".parse().unwrap(),
            routing: RoutingMode::Native,
        });
        let mut reconciler = Reconciler::default();
        let mut fake = Fake::default();
        assert!(reconciler.apply(&view, &mut fake).is_empty());
        assert_eq!(fake.ipcache.len(), 2, "node IP and router IP");
        let writes = fake.writes;
        reconciler.apply(&view, &mut fake);
        assert_eq!(fake.writes, writes, "nothing changed, nothing written");

        view.local.router_ip = "10.0.0.2".parse().unwrap();
        reconciler.apply(&view, &mut fake);
        assert!(fake.ipcache.contains_key(&"10.0.0.2/32".parse().unwrap()));
        assert!(!fake.ipcache.contains_key(&"10.0.0.1/32".parse().unwrap()));
        assert!(fake.routes.is_empty());
    }
}
