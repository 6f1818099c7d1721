//! `v1` Service: the frontends a service asks for (cluster IP, node ports, load-balancer
//! and external IPs, per port and protocol), how its backends are picked (session
//! affinity, traffic policies, Cilium's `service.cilium.io/lb-algorithm` annotation) and
//! the selector its EndpointSlices are derived from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use super::{Object, ResourceError, Shown};
use crate::frontend::Algorithm;
use crate::names::{ObjectName, Protocol};

/// Cilium's per-service backend selection annotation: `random` or `maglev`.
pub const LB_ALGORITHM_ANNOTATION: &str = "service.cilium.io/lb-algorithm";
/// Session-affinity timeout when `sessionAffinityConfig` names none: 3 hours.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// The longest session-affinity timeout the API server accepts: one day.
pub const MAX_AFFINITY_TIMEOUT: u32 = 86_400;

/// `spec.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// `ClusterIP` (the default): reachable inside the cluster.
    ClusterIp,
    /// `NodePort`: also on every node's addresses at `nodePort`.
    NodePort,
    /// `LoadBalancer`: also on its load-balancer IPs (and node ports).
    LoadBalancer,
    /// `ExternalName`: a DNS alias, nothing to load-balance.
    ExternalName,
}

/// The service's IPv4 cluster IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIp {
    /// An address was given.
    Assigned(Ipv4Addr),
    /// `None`: a headless service, which the load balancer does not translate.
    Headless,
    /// No IPv4 cluster IP: none was given (the API server would allocate one), or only
    /// IPv6 ones.
    NotAssigned,
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// `Cluster` (the default): every ready backend.
    #[default]
    Cluster,
    /// `Local`: only backends on the node the traffic arrives at.
    Local,
}

/// `spec.ports[].targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number on the backend.
    Number(u16),
    /// The name of a container port, resolved per pod.
    Name(String),
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (empty for the single unnamed port); EndpointSlice ports match on it.
    pub name: String,
    /// `protocol`, `TCP` by default.
    pub protocol: Protocol,
    /// `port`: the frontend port on the cluster IP, load-balancer and external IPs.
    pub port: u16,
    /// `targetPort`, `port` by default.
    pub target_port: TargetPort,
    /// `nodePort`, used by NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

/// A parsed `v1` Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `metadata.namespace/name`.
    pub name: ObjectName,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// `spec.clusterIP` / `spec.clusterIPs`.
    pub cluster_ip: ClusterIp,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.externalIPs` (IPv4 ones).
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` and `spec.loadBalancerIP` (IPv4 ones, no
    /// duplicates); used by LoadBalancer services only.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// With `sessionAffinity: ClientIP`: the affinity timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.internalTrafficPolicy`.
    pub internal_traffic_policy: TrafficPolicy,
    /// `spec.selector`; empty when the service's EndpointSlices are managed by hand.
    pub selector: BTreeMap<String, String>,
    /// [`LB_ALGORITHM_ANNOTATION`], when set.
    pub algorithm: Option<Algorithm>,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    metadata: RawMetadata,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(rename = "type")]
    service_type: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    ports: Option<Vec<RawPort>>,
    #[serde(rename = "externalIPs")]
    external_ips: Option<Vec<String>>,
    #[serde(rename = "loadBalancerIP")]
    load_balancer_ip: Option<String>,
    session_affinity: Option<String>,
    session_affinity_config: Option<RawAffinityConfig>,
    external_traffic_policy: Option<String>,
    internal_traffic_policy: Option<String>,
    selector: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPort {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
    target_port: Option<IntOrString>,
    node_port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAffinityConfig {
    #[serde(rename = "clientIP")]
    client_ip: Option<RawClientIpConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClientIpConfig {
    timeout_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    load_balancer: Option<RawLoadBalancerStatus>,
}

#[derive(Deserialize)]
struct RawLoadBalancerStatus {
    ingress: Option<Vec<RawIngress>>,
}

#[derive(Deserialize)]
struct RawIngress {
    ip: Option<String>,
}

impl Service {
    /// Parses and checks a stored Service object.
    pub fn from_json(value: &Value) -> Result<Self, ResourceError> {
        let object = Object::check(value, "v1", "Service")?;
        let raw: RawService = object.parse(value)?;
        let spec = raw.spec;
        let service_type = match spec.service_type.as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIp,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => ServiceType::ExternalName,
            Some(other) => {
                return Err(object.invalid(
                    "spec.type",
                    Shown::Text(other),
                    "ClusterIP, NodePort, LoadBalancer or ExternalName",
                ))
            }
        };
        let cluster_ip = cluster_ip(&object, spec.cluster_ip, spec.cluster_ips)?;
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, port)| service_port(&object, index, port))
            .collect::<Result<Vec<_>, _>>()?;
        check_ports_unique(&object, &ports)?;
        let external_ips = ipv4_list(&object, "spec.externalIPs", spec.external_ips)?;
        let mut load_balancer_ips = Vec::new();
        let ingress = raw
            .status
            .load_balancer
            .and_then(|lb| lb.ingress)
            .unwrap_or_default();
        for (index, entry) in ingress.iter().enumerate() {
            if let Some(text) = entry.ip.as_deref() {
                let field = format!("status.loadBalancer.ingress[{index}].ip");
                load_balancer_ips.extend(object.ipv4(&field, text)?);
            }
        }
        if let Some(text) = spec.load_balancer_ip.as_deref().filter(|t| !t.is_empty()) {
            load_balancer_ips.extend(object.ipv4("spec.loadBalancerIP", text)?);
        }
        let mut seen = BTreeSet::new();
        load_balancer_ips.retain(|ip| seen.insert(*ip));
        let affinity_timeout = affinity(
            &object,
            spec.session_affinity.as_deref(),
            spec.session_affinity_config,
        )?;
        let algorithm = match raw
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LB_ALGORITHM_ANNOTATION))
        {
            None => None,
            Some(text) => Some(Algorithm::parse(text).ok_or_else(|| {
                object.invalid(
                    format!("metadata.annotations[{LB_ALGORITHM_ANNOTATION}]"),
                    Shown::Text(text),
                    "random or maglev",
                )
            })?),
        };
        Ok(Service {
            name: object.name().clone(),
            service_type,
            cluster_ip,
            ports,
            external_ips,
            load_balancer_ips,
            affinity_timeout,
            external_traffic_policy: traffic_policy(
                &object,
                "spec.externalTrafficPolicy",
                spec.external_traffic_policy.as_deref(),
            )?,
            internal_traffic_policy: traffic_policy(
                &object,
                "spec.internalTrafficPolicy",
                spec.internal_traffic_policy.as_deref(),
            )?,
            selector: spec.selector.unwrap_or_default(),
            algorithm,
        })
    }

    /// Whether the service's EndpointSlices are derived from the Pods it selects.
    pub fn has_selector(&self) -> bool {
        !self.selector.is_empty()
    }

    /// Whether `labels` (a pod's) match every pair of the selector.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.has_selector() && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

fn cluster_ip(
    object: &Object,
    cluster_ip: Option<String>,
    cluster_ips: Option<Vec<String>>,
) -> Result<ClusterIp, ResourceError> {
    match cluster_ip.as_deref() {
        Some("None") => return Ok(ClusterIp::Headless),
        Some(text) if !text.is_empty() => {
            if let Some(ip) = object.ipv4("spec.clusterIP", text)? {
                return Ok(ClusterIp::Assigned(ip));
            }
        }
        _ => {}
    }
    for (index, text) in cluster_ips.unwrap_or_default().iter().enumerate() {
        if text == "None" {
            return Ok(ClusterIp::Headless);
        }
        if let Some(ip) = object.ipv4(&format!("spec.clusterIPs[{index}]"), text)? {
            return Ok(ClusterIp::Assigned(ip));
        }
    }
    Ok(ClusterIp::NotAssigned)
}

fn service_port(object: &Object, index: usize, raw: RawPort) -> Result<ServicePort, ResourceError> {
    let field = |name: &str| format!("spec.ports[{index}].{name}");
    let name = raw.name.unwrap_or_default();
    if !name.is_empty() && !is_dns_label(&name) {
        return Err(object.invalid(
            field("name"),
            Shown::Text(&name),
            "a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)",
        ));
    }
    let protocol = match raw.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(text) => Protocol::parse(text)
            .ok_or_else(|| object.invalid(field("protocol"), Shown::Text(text), "TCP or UDP"))?,
    };
    let port = object.port(&field("port"), raw.port)?;
    let target_port = match raw.target_port {
        None | Some(IntOrString::Int(0)) => TargetPort::Number(port),
        Some(IntOrString::Int(number)) => {
            TargetPort::Number(object.port(&field("targetPort"), Some(number))?)
        }
        Some(IntOrString::Str(text)) if is_port_name(&text) => TargetPort::Name(text),
        Some(IntOrString::Str(text)) => {
            return Err(object.invalid(
                field("targetPort"),
                Shown::Text(&text),
                "a port number or a port name (1-15 of a-z, 0-9, '-', with a letter)",
            ))
        }
    };
    let node_port = match raw.node_port {
        None | Some(0) => None,
        number => Some(object.port(&field("nodePort"), number)?),
    };
    Ok(ServicePort {
        name,
        protocol,
        port,
        target_port,
        node_port,
    })
}

/// The API server's rules: names are required when there are several ports, and names,
/// port/protocol pairs and node ports are unique.
fn check_ports_unique(object: &Object, ports: &[ServicePort]) -> Result<(), ResourceError> {
    let mut names = BTreeSet::new();
    let mut frontends = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        if ports.len() > 1 && port.name.is_empty() {
            return Err(object.invalid(
                format!("spec.ports[{index}].name"),
                Shown::Missing,
                "a name, as the service has several ports",
            ));
        }
        if !names.insert(&port.name) {
            return Err(object.invalid(
                format!("spec.ports[{index}].name"),
                Shown::Text(&port.name),
                "a name no other port of the service has",
            ));
        }
        if !frontends.insert((port.port, port.protocol)) {
            return Err(object.invalid(
                format!("spec.ports[{index}].port"),
                Shown::Number(port.port.into()),
                "a port/protocol pair no other port of the service has",
            ));
        }
        if let Some(node_port) = port.node_port {
            if !node_ports.insert((node_port, port.protocol)) {
                return Err(object.invalid(
                    format!("spec.ports[{index}].nodePort"),
                    Shown::Number(node_port.into()),
                    "a node port no other port of the service has",
                ));
            }
        }
    }
    Ok(())
}

fn ipv4_list(
    object: &Object,
    field: &str,
    list: Option<Vec<String>>,
) -> Result<Vec<Ipv4Addr>, ResourceError> {
    let mut out = Vec::new();
    for (index, text) in list.unwrap_or_default().iter().enumerate() {
        if let Some(ip) = object.ipv4(&format!("{field}[{index}]"), text)? {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

fn affinity(
    object: &Object,
    session_affinity: Option<&str>,
    config: Option<RawAffinityConfig>,
) -> Result<Option<u32>, ResourceError> {
    match session_affinity {
        None | Some("None") => Ok(None),
        Some("ClientIP") => {
            let timeout = config
                .and_then(|c| c.client_ip)
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => Ok(Some(DEFAULT_AFFINITY_TIMEOUT)),
                Some(seconds) => u32::try_from(seconds)
                    .ok()
                    .filter(|s| (1..=MAX_AFFINITY_TIMEOUT).contains(s))
                    .map(Some)
                    .ok_or_else(|| {
                        object.invalid(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            Shown::Number(seconds),
                            "1-86400 seconds",
                        )
                    }),
            }
        }
        Some(other) => Err(object.invalid(
            "spec.sessionAffinity",
            Shown::Text(other),
            "None or ClientIP",
        )),
    }
}

fn traffic_policy(
    object: &Object,
    field: &str,
    text: Option<&str>,
) -> Result<TrafficPolicy, ResourceError> {
    match text {
        None | Some("Cluster") => Ok(TrafficPolicy::Cluster),
        Some("Local") => Ok(TrafficPolicy::Local),
        Some(other) => Err(object.invalid(field, Shown::Text(other), "Cluster or Local")),
    }
}

/// RFC 1123 label: what a port name must be.
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// IANA service name: what a named `targetPort` (a container port's name) must be.
fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && is_dns_label(name)
        && !name.contains("--")
        && name.bytes().any(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Service {
        Service::from_json(&value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(value: Value) -> String {
        match Service::from_json(&value) {
            Ok(service) => panic!("accepted an invalid service: {service:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
    }

    #[test]
    fn cluster_ip_service_with_defaults() {
        let svc = parse(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80}]}}));
        assert_eq!(svc.name, ObjectName::new("default", "web"));
        assert_eq!(svc.service_type, ServiceType::ClusterIp);
        assert_eq!(
            svc.cluster_ip,
            ClusterIp::Assigned(Ipv4Addr::new(10, 96, 0, 10))
        );
        assert_eq!(
            svc.ports,
            vec![ServicePort {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                target_port: TargetPort::Number(80),
                node_port: None,
            }]
        );
        assert_eq!(svc.affinity_timeout, None);
        assert_eq!(svc.external_traffic_policy, TrafficPolicy::Cluster);
        assert_eq!(svc.internal_traffic_policy, TrafficPolicy::Cluster);
        assert_eq!(svc.algorithm, None);
        assert!(svc.has_selector());
    }

    #[test]
    fn load_balancer_service_with_everything() {
        let mut value = service(json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20", "fd00::20"],
            "externalIPs": ["192.0.2.7", "2001:db8::7"],
            "loadBalancerIP": "198.51.100.1",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "externalTrafficPolicy": "Local",
            "internalTrafficPolicy": "Local",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353}
            ]
        }));
        value["metadata"]["annotations"] = json!({"service.cilium.io/lb-algorithm": "maglev"});
        value["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "198.51.100.2"}, {"hostname": "lb.example"}, {"ip": "198.51.100.1"}]}});
        let svc = parse(value);
        assert_eq!(svc.service_type, ServiceType::LoadBalancer);
        assert_eq!(svc.external_ips, vec![Ipv4Addr::new(192, 0, 2, 7)]);
        assert_eq!(
            svc.load_balancer_ips,
            vec![
                Ipv4Addr::new(198, 51, 100, 2),
                Ipv4Addr::new(198, 51, 100, 1)
            ]
        );
        assert_eq!(svc.affinity_timeout, Some(60));
        assert_eq!(svc.external_traffic_policy, TrafficPolicy::Local);
        assert_eq!(svc.internal_traffic_policy, TrafficPolicy::Local);
        assert_eq!(svc.algorithm, Some(Algorithm::Maglev));
        assert_eq!(svc.ports[0].target_port, TargetPort::Name("web".into()));
        assert_eq!(svc.ports[0].node_port, Some(30080));
        assert_eq!(svc.ports[1].protocol, Protocol::Udp);
        assert_eq!(svc.ports[1].target_port, TargetPort::Number(5353));
        assert!(!svc.has_selector());
    }

    #[test]
    fn headless_unassigned_and_ipv6_only_cluster_ips() {
        let headless = parse(service(
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        ));
        assert_eq!(headless.cluster_ip, ClusterIp::Headless);
        let unassigned = parse(service(json!({"ports": [{"port": 80}]})));
        assert_eq!(unassigned.cluster_ip, ClusterIp::NotAssigned);
        let dual = parse(service(
            json!({"clusterIP": "fd00::1", "clusterIPs": ["fd00::1", "10.96.1.1"]}),
        ));
        assert_eq!(
            dual.cluster_ip,
            ClusterIp::Assigned(Ipv4Addr::new(10, 96, 1, 1))
        );
        let v6 = parse(service(json!({"clusterIP": "fd00::1"})));
        assert_eq!(v6.cluster_ip, ClusterIp::NotAssigned);
    }

    #[test]
    fn client_ip_affinity_defaults_to_three_hours() {
        let svc = parse(service(
            json!({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
        ));
        assert_eq!(svc.affinity_timeout, Some(10_800));
    }

    #[test]
    fn selector_matches_every_pair() {
        let svc = parse(service(
            json!({"selector": {"app": "web", "tier": "front"}}),
        ));
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(svc.selects(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!svc.selects(&labels(&[("app", "web")])));
        let no_selector = parse(service(json!({})));
        assert!(!no_selector.selects(&labels(&[("app", "web")])));
    }

    #[test]
    fn errors_name_the_object_and_field() {
        let cases = [
            (json!({"type": "Magic"}), "Service shop/web: spec.type is \"Magic\", expected ClusterIP, NodePort, LoadBalancer or ExternalName"),
            (json!({"ports": [{"port": 80, "protocol": "SCTP"}]}), "Service shop/web: spec.ports[0].protocol is \"SCTP\", expected TCP or UDP"),
            (json!({"ports": [{"name": "a"}]}), "Service shop/web: spec.ports[0].port is missing, expected a port number 1-65535"),
            (json!({"ports": [{"port": 70000}]}), "Service shop/web: spec.ports[0].port is 70000, expected a port number 1-65535"),
            (json!({"ports": [{"port": 80, "targetPort": "Web_Port"}]}), "Service shop/web: spec.ports[0].targetPort is \"Web_Port\", expected a port number or a port name (1-15 of a-z, 0-9, '-', with a letter)"),
            (json!({"ports": [{"port": 80}, {"name": "b", "port": 81}]}), "Service shop/web: spec.ports[0].name is missing, expected a name, as the service has several ports"),
            (json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}), "Service shop/web: spec.ports[1].name is \"a\", expected a name no other port of the service has"),
            (json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}), "Service shop/web: spec.ports[1].port is 80, expected a port/protocol pair no other port of the service has"),
            (json!({"sessionAffinity": "Sticky"}), "Service shop/web: spec.sessionAffinity is \"Sticky\", expected None or ClientIP"),
            (json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}), "Service shop/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds is 0, expected 1-86400 seconds"),
            (json!({"externalTrafficPolicy": "Nearby"}), "Service shop/web: spec.externalTrafficPolicy is \"Nearby\", expected Cluster or Local"),
            (json!({"internalTrafficPolicy": "local"}), "Service shop/web: spec.internalTrafficPolicy is \"local\", expected Cluster or Local"),
            (json!({"clusterIP": "10.96.0.300"}), "Service shop/web: spec.clusterIP is \"10.96.0.300\", not an IP address"),
            (json!({"externalIPs": ["1.2.3.4", "nope"]}), "Service shop/web: spec.externalIPs[1] is \"nope\", not an IP address"),
            (json!({"ports": [{"port": "eighty"}]}), "Service shop/web: spec.ports[0].port does not fit the Service schema"),
        ];
        for (spec, expected) in cases {
            assert_eq!(error(service(spec)), expected);
        }
        let mut annotated = service(json!({}));
        annotated["metadata"]["annotations"] =
            json!({"service.cilium.io/lb-algorithm": "round-robin"});
        assert_eq!(
            error(annotated),
            "Service shop/web: metadata.annotations[service.cilium.io/lb-algorithm] is \"round-robin\", expected random or maglev"
        );
        assert_eq!(
            error(json!({"apiVersion": "v1", "kind": "Service", "metadata": {}})),
            "Service default/(unnamed): metadata.name is missing, expected the object's name"
        );
        assert_eq!(
            error(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})),
            "Service default/p: kind is \"Pod\", expected Service"
        );
    }
}
