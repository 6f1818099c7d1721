//! JSON models of the agent API. Field names follow Cilium's OpenAPI spec (kebab-case), so
//! tools that read Cilium's `endpoint get` or `/v1/healthz` output keep working.

use serde::{Deserialize, Serialize};

/// Body of `PUT /v1/endpoint/{id}` (Cilium's `EndpointChangeRequest`), sent by the CNI plugin
/// once the veth pair exists and the pod side is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointChangeRequest {
    /// Endpoint ID; 0 asks the agent to pick one.
    #[serde(default)]
    pub id: u16,
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    /// Interface name inside the pod (CNI_IFNAME).
    #[serde(default)]
    pub container_interface_name: String,
    /// Host-side veth name (`lxc...`).
    pub interface_name: String,
    /// Host-side veth ifindex.
    pub interface_index: u32,
    /// MAC of the pod-side interface.
    pub mac: String,
    /// MAC of the host-side veth; the pod's gateway answers with it.
    pub host_mac: String,
    pub addressing: AddressPair,
    /// Path of the pod's network namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub k8s_namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub k8s_pod_name: String,
    /// Labels in Cilium's `source:key=value` form.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Wait for the datapath to be programmed before answering.
    #[serde(default)]
    pub sync_build_endpoint: bool,
}

/// Addresses of one endpoint (Cilium's `AddressPair`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddressPair {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_expiration_uuid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
}

/// An endpoint as returned by `GET /v1/endpoint` and `GET /v1/endpoint/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Endpoint {
    pub id: u16,
    pub status: EndpointStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointStatus {
    /// `waiting-for-identity`, `regenerating`, `ready`, `disconnecting`, ...
    pub state: String,
    pub identity: EndpointIdentity,
    pub networking: EndpointNetworking,
    pub external_identifiers: EndpointIdentifiers,
    pub labels: EndpointLabels,
    pub policy: EndpointPolicyStatus,
    /// Number of times the datapath was (re)generated for this endpoint.
    pub realized_generation: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointIdentity {
    pub id: u32,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointNetworking {
    pub addressing: Vec<AddressPair>,
    pub host_mac: String,
    pub mac: String,
    pub interface_index: u32,
    pub interface_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointIdentifiers {
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub k8s_namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub k8s_pod_name: String,
    /// `namespace/name`, as Cilium shows it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointLabels {
    /// Labels the runtime asked for (`source:key=value`).
    pub realized: Vec<String>,
}

/// Policy enforcement state per direction: `Disabled`, `Enabled` or `Disabled (Audit)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndpointPolicyStatus {
    pub ingress_enforcement: String,
    pub egress_enforcement: String,
}

impl Default for EndpointPolicyStatus {
    fn default() -> Self {
        Self {
            ingress_enforcement: "Disabled".into(),
            egress_enforcement: "Disabled".into(),
        }
    }
}

/// Response of `POST /v1/ipam` (Cilium's `IPAMResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpamResponse {
    pub address: AddressPair,
    pub ipv4: IpamAddressResponse,
    pub host_addressing: NodeAddressing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpamAddressResponse {
    pub ip: String,
    pub gateway: String,
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub expiration_uuid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeAddressing {
    pub ipv4: NodeAddressingElement,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeAddressingElement {
    pub enabled: bool,
    /// The router (gateway) IP on `cilium_host`.
    pub ip: String,
    pub alloc_range: String,
}

/// Response of `GET /v1/ipam`: what the node allocator holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpamStatus {
    pub alloc_range: String,
    pub router_ip: String,
    /// IP → owner (container ID or `router`).
    pub allocations: std::collections::BTreeMap<String, String>,
}

/// Response of `GET /v1/healthz` (subset of Cilium's `StatusResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatusResponse {
    pub cilium: Status,
    pub node_name: String,
    pub version: String,
    /// How pod traffic crosses nodes: `Native` or `Tunnel` (Cilium's `Routing: Network:`).
    pub routing_mode: String,
    /// How pods are attached: `veth` (Cilium's `Device Mode`).
    pub datapath_mode: String,
    /// `TCX` or `Legacy TC`.
    pub attach_mode: String,
    pub ipam: IpamSummary,
    pub endpoints: usize,
    pub bpf_root: String,
    pub uptime_seconds: u64,
    /// Health of the kvstore connection (`etcd: 1/1 connected …` or `embedded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvstore: Option<Status>,
    /// The cluster as this node sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// What the agent does in kube-proxy's place (absent from agents that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy_replacement: Option<KubeProxyReplacement>,
}

/// The service handling the agent does in eBPF (a subset of Cilium's `KubeProxyReplacement`
/// status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KubeProxyReplacement {
    /// `True` when the agent handles every service type it offers without kube-proxy,
    /// `False` when only in-cluster (ClusterIP) traffic is translated, as Cilium's
    /// `kubeProxyReplacement=false`.
    pub mode: String,
    /// Connect-time translation in cgroup socket hooks.
    pub socket_lb: bool,
    /// Transport protocols services are translated for (`TCP`, `UDP`).
    pub protocols: Vec<String>,
    /// Backend selection for services without the `service.cilium.io/lb-algorithm`
    /// annotation: `Random` or `Maglev`.
    pub backend_selection: String,
    /// `sessionAffinity: ClientIP` is honoured.
    pub session_affinity: bool,
    /// ClusterIP frontends are translated.
    pub cluster_ip: bool,
    /// The node-port range when NodePort frontends are translated on the node's devices;
    /// absent when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<NodePortRange>,
}

/// The ports NodePort services are given (Cilium's `nodePort.range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodePortRange {
    pub min: u16,
    pub max: u16,
}

/// The nodes a node knows of (Cilium's `ClusterStatus`, names only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterStatus {
    pub cluster_name: String,
    /// Names of all known nodes, this one included, sorted.
    pub nodes: Vec<String>,
}

/// Response of `GET /v1/cluster/nodes` (Cilium's `ClusterNodeStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterNodeStatus {
    /// Name of the answering node.
    #[serde(rename = "self")]
    pub self_name: String,
    pub nodes_added: Vec<NodeElement>,
}

/// One node of the cluster (Cilium's `NodeElement`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeElement {
    pub name: String,
    pub cluster: String,
    pub primary_address: NodeAddressing,
    /// The node's pod CIDR.
    #[serde(default)]
    pub ipv4_alloc_cidr: String,
}

/// One kvstore entry, as `GET /v1/kvstore/{key}` returns it (this project's extension, so
/// `cilium kvstore get` works with the embedded store too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KvPair {
    pub key: String,
    /// The value as text (values are JSON or plain strings).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    /// `Ok`, `Warning`, `Failure` or `Disabled`.
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpamSummary {
    pub alloc_range: String,
    pub allocated: usize,
    pub capacity: usize,
}

/// Response of `GET /v1/config` (subset of Cilium's `DaemonConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DaemonConfiguration {
    pub node_name: String,
    pub pod_cidr: String,
    pub router_ip: String,
    pub bpf_root: String,
    pub state_dir: String,
    pub socket_path: String,
    pub attach_mode: String,
    pub datapath_mode: String,
    pub monitor_aggregation: String,
    /// `tunnel` or `native`.
    #[serde(default)]
    pub routing_mode: String,
    #[serde(default)]
    pub cluster_name: String,
    /// `embedded` or `etcd`.
    #[serde(default)]
    pub kvstore: String,
    /// The node's underlay (InternalIP) address.
    #[serde(default)]
    pub node_ip: String,
    /// `default`, `always` or `never` (`enable-policy`).
    #[serde(default, rename = "policy-enforcement")]
    pub policy_enforcement: String,
}

/// A change to the agent's configuration (`PATCH /v1/config`), as Cilium's
/// `DaemonConfigurationSpec`: `policy-enforcement` and mutable `options` (none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConfigurationSpec {
    #[serde(
        default,
        rename = "policy-enforcement",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_enforcement: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
}

/// A security identity and the labels it stands for (`GET /v1/identity`), as in Cilium's
/// `Identity` model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: u32,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Error body for non-2xx answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// What `cilium policy trace` asks (`GET /v1/policy/resolve`), as Cilium's `TraceSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSelector {
    pub from: TraceFrom,
    pub to: TraceTo,
}

/// The traced source: its identity labels (`source:key=value`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFrom {
    #[serde(default)]
    pub labels: Vec<String>,
}

/// The traced destination: its identity labels and the destination ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceTo {
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub dports: Vec<TracePort>,
}

/// One destination port and its protocol (`TCP`, `UDP`, `SCTP`, `ICMP`; ICMP's port is the
/// type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracePort {
    pub port: u16,
    pub protocol: String,
}

/// The answer of a trace, as Cilium's `PolicyTraceResult` (`log`, `verdict`) plus the verdict
/// of every traced port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTraceResult {
    /// `allowed` or `denied`: allowed only when every traced port is.
    pub verdict: String,
    /// The explanation, as `cilium policy trace` prints it.
    pub log: String,
    #[serde(default)]
    pub ports: Vec<TracedPort>,
}

/// The verdict for one traced port, per side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedPort {
    pub port: TracePort,
    pub allowed: bool,
    pub egress: TraceSide,
    pub ingress: TraceSide,
}

/// What one side's policy (source egress or destination ingress) decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSide {
    pub allowed: bool,
    pub enforced: bool,
    /// The rules that decided it.
    #[serde(default)]
    pub rules: Vec<String>,
    pub reason: String,
}

/// A frontend of a service (Cilium's `FrontendAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FrontendAddress {
    pub ip: String,
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `external` (default) or `internal`.
    #[serde(default)]
    pub scope: String,
}

/// A backend of a service (Cilium's `BackendAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackendAddress {
    pub ip: String,
    pub port: u16,
    pub protocol: String,
    /// `active` or `terminating`.
    pub state: String,
    /// The node-local backend ID of the datapath's maps.
    #[serde(default)]
    pub id: u32,
}

/// What kind of frontend a service entry is, and whose (Cilium's `ServiceSpec.flags`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceSpecFlags {
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalIPs`.
    #[serde(rename = "type")]
    pub service_type: String,
    pub name: String,
    pub namespace: String,
    /// `random` or `maglev`.
    #[serde(default)]
    pub algorithm: String,
    /// Session-affinity timeout in seconds with `sessionAffinity: ClientIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_timeout: Option<u32>,
}

/// One frontend with its backends (Cilium's `ServiceSpec`); `id` is the reverse-NAT index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceSpec {
    pub id: u16,
    pub frontend_address: FrontendAddress,
    #[serde(default)]
    pub backend_addresses: Vec<BackendAddress>,
    pub flags: ServiceSpecFlags,
}

/// `GET /v1/service` element (Cilium's `Service`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub spec: ServiceSpec,
}
