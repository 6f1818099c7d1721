//! The endpoint controller's job: the EndpointSlices of a Service with a selector,
//! derived from the Pods it selects, as Kubernetes' EndpointSlice controller writes them.
//! Each agent derives them itself from the same Pods, so a user applies only the Service.
//!
//! Pods come as [`PodInfo`], which the agent fills from the Pod objects in the store
//! (labels, named container ports) and the endpoints it knows (IP, node). Named
//! `targetPort`s are resolved per pod; a pod without the named port serves the other
//! ports only. Pods that resolve the service's ports the same way share a slice.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::names::{ObjectName, Protocol};
use crate::resource::{
    AddressType, Conditions, EndpointSlice, Service, SliceEndpoint, SlicePort, TargetPort,
};

/// A named container port of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// `containers[].ports[].name`.
    pub name: String,
    /// `containerPort`.
    pub port: u16,
    /// `protocol`.
    pub protocol: Protocol,
}

/// What the endpoint controller needs to know about a running pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// The node it runs on.
    pub node: String,
    /// Its named container ports.
    pub ports: Vec<NamedPort>,
    /// Whether it is shutting down (serving existing connections only).
    pub terminating: bool,
}

impl PodInfo {
    /// `namespace/name`.
    pub fn object_name(&self) -> ObjectName {
        ObjectName::new(self.namespace.clone(), self.name.clone())
    }

    /// The port a service port's `targetPort` means on this pod.
    fn resolve(&self, target: &TargetPort, protocol: Protocol) -> Option<u16> {
        match target {
            TargetPort::Number(port) => Some(*port),
            TargetPort::Name(name) => self
                .ports
                .iter()
                .find(|p| p.name == *name && p.protocol == protocol)
                .map(|p| p.port),
        }
    }
}

/// The EndpointSlices of `service` derived from `pods`: one per distinct resolution of
/// the service's ports, named `<service>-<hash of the ports>`, endpoints ordered by pod
/// name. Empty for a service without a selector (its slices are managed by hand).
pub fn derive_endpoint_slices<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a PodInfo>,
) -> Vec<EndpointSlice> {
    if !service.has_selector() {
        return Vec::new();
    }
    let mut groups: BTreeMap<Vec<(String, Protocol, u16)>, Vec<&PodInfo>> = BTreeMap::new();
    for pod in pods {
        if pod.namespace != service.name.namespace || !service.selects(&pod.labels) {
            continue;
        }
        let ports = service
            .ports
            .iter()
            .filter_map(|port| {
                pod.resolve(&port.target_port, port.protocol)
                    .map(|number| (port.name.clone(), port.protocol, number))
            })
            .collect();
        groups.entry(ports).or_default().push(pod);
    }
    groups
        .into_iter()
        .map(|(ports, mut pods)| {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
            EndpointSlice {
                name: ObjectName::new(
                    service.name.namespace.clone(),
                    format!("{}-{:08x}", service.name.name, ports_hash(&ports)),
                ),
                service: Some(service.name.clone()),
                address_type: AddressType::Ipv4,
                endpoints: pods.into_iter().map(endpoint).collect(),
                ports: ports
                    .into_iter()
                    .map(|(name, protocol, port)| SlicePort {
                        name,
                        protocol,
                        port: Some(port),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn endpoint(pod: &PodInfo) -> SliceEndpoint {
    SliceEndpoint {
        addresses: vec![pod.ip],
        conditions: Conditions {
            ready: !pod.terminating,
            serving: true,
            terminating: pod.terminating,
        },
        node_name: Some(pod.node.clone()),
        pod: Some(pod.name.clone()),
    }
}

/// FNV-1a over the port list: a slice name that stays the same while its ports do.
fn ports_hash(ports: &[(String, Protocol, u16)]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for (name, protocol, port) in ports {
        for byte in name
            .bytes()
            .chain([0, protocol.number()])
            .chain(port.to_be_bytes())
        {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::backend::BackendState;

    fn pod(name: &str, ip: [u8; 4], node: &str, labels: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: "shop".into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ip: Ipv4Addr::from(ip),
            node: node.into(),
            ports: vec![NamedPort {
                name: "web".into(),
                port: 8080,
                protocol: Protocol::Tcp,
            }],
            terminating: false,
        }
    }

    fn web_service(ports: serde_json::Value) -> Service {
        Service::from_json(&json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "web"}, "ports": ports}}))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn selected_pods_become_endpoints_with_resolved_ports() {
        let service = web_service(json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9090}
        ]));
        let mut b = pod("web-b", [10, 0, 2, 5], "node-2", &[("app", "web")]);
        b.terminating = true;
        let pods = vec![
            b,
            pod(
                "web-a",
                [10, 0, 1, 5],
                "node-1",
                &[("app", "web"), ("v", "1")],
            ),
            pod("db", [10, 0, 1, 9], "node-1", &[("app", "db")]),
            PodInfo {
                namespace: "other".into(),
                ..pod("web-x", [10, 0, 3, 5], "node-3", &[("app", "web")])
            },
        ];
        let slices = derive_endpoint_slices(&service, &pods);
        assert_eq!(slices.len(), 1, "{slices:#?}");
        let slice = &slices[0];
        assert_eq!(slice.service, Some(ObjectName::new("shop", "web")));
        assert!(slice.name.name.starts_with("web-"), "{}", slice.name);
        assert_eq!(
            slice.ports,
            vec![
                SlicePort {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: Some(8080)
                },
                SlicePort {
                    name: "metrics".into(),
                    protocol: Protocol::Tcp,
                    port: Some(9090)
                },
            ]
        );
        let seen: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.pod.as_deref().unwrap_or("?"),
                    e.addresses[0],
                    e.node_name.as_deref(),
                    e.state(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "web-a",
                    Ipv4Addr::new(10, 0, 1, 5),
                    Some("node-1"),
                    Some(BackendState::Active)
                ),
                (
                    "web-b",
                    Ipv4Addr::new(10, 0, 2, 5),
                    Some("node-2"),
                    Some(BackendState::Terminating)
                ),
            ]
        );
    }

    #[test]
    fn pods_resolving_named_ports_differently_get_separate_slices() {
        let service = web_service(json!([{"name": "http", "port": 80, "targetPort": "web"}]));
        let mut other_port = pod("web-b", [10, 0, 2, 5], "node-2", &[("app", "web")]);
        other_port.ports[0].port = 9000;
        let mut unnamed = pod("web-c", [10, 0, 2, 6], "node-2", &[("app", "web")]);
        unnamed.ports.clear();
        let pods = [
            pod("web-a", [10, 0, 1, 5], "node-1", &[("app", "web")]),
            other_port,
            unnamed,
        ];
        let slices = derive_endpoint_slices(&service, &pods);
        // (ports, pods) per slice.
        type Summary = (Vec<Option<u16>>, Vec<Option<String>>);
        let summary: Vec<Summary> = slices
            .iter()
            .map(|s| {
                (
                    s.ports.iter().map(|p| p.port).collect(),
                    s.endpoints.iter().map(|e| e.pod.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (vec![], vec![Some("web-c".to_string())]),
                (vec![Some(8080)], vec![Some("web-a".to_string())]),
                (vec![Some(9000)], vec![Some("web-b".to_string())]),
            ]
        );
        let names: std::collections::BTreeSet<_> = slices.iter().map(|s| &s.name).collect();
        assert_eq!(names.len(), 3, "slice names are distinct");
    }

    #[test]
    fn named_port_must_match_protocol() {
        let service = web_service(
            json!([{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "web"}]),
        );
        let pods = [pod("web-a", [10, 0, 1, 5], "node-1", &[("app", "web")])];
        let slices = derive_endpoint_slices(&service, &pods);
        assert!(
            slices[0].ports.is_empty(),
            "the pod's `web` port is TCP, the service port UDP"
        );
    }

    #[test]
    fn services_without_selector_derive_nothing() {
        let service = Service::from_json(&json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}))
        .unwrap_or_else(|e| panic!("{e}"));
        let pods = [pod("web-a", [10, 0, 1, 5], "node-1", &[("app", "web")])];
        assert!(derive_endpoint_slices(&service, &pods).is_empty());
    }

    #[test]
    fn slice_names_are_stable() {
        let service = web_service(json!([{"name": "http", "port": 80, "targetPort": "web"}]));
        let pods = [pod("web-a", [10, 0, 1, 5], "node-1", &[("app", "web")])];
        let first = derive_endpoint_slices(&service, &pods);
        let more = [
            pods[0].clone(),
            pod("web-b", [10, 0, 1, 6], "node-1", &[("app", "web")]),
        ];
        let second = derive_endpoint_slices(&service, &more);
        assert_eq!(first[0].name, second[0].name);
    }
}
