//! What the flow decoder asks the agent: who is behind an address, an endpoint ID or a
//! network namespace (by its cookie), which labels an identity carries, what an interface is called, which Service a frontend
//! belongs to.
//!
//! The agent implements [`FlowContext`] over its endpoint manager, identity cache, the
//! cluster's IP entries (remote pods included) and its load balancer's plan; tests implement
//! it with a table.

use std::net::IpAddr;

use cilium_hubble_proto::flow::{Service, Workload};

/// One end of a flow as the agent knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Endpoint ID on this node; 0 when the address is not one of this node's endpoints.
    pub id: u32,
    /// Security identity (0 when unknown).
    pub identity: u32,
    /// Kubernetes namespace of the pod, if the address is a pod's.
    pub namespace: String,
    /// Pod name, if the address is a pod's.
    pub pod_name: String,
    /// Controllers owning the pod (Deployment, ...), when known.
    pub workloads: Vec<Workload>,
    /// The pod's address, when known: what names a socket that has no address of its own
    /// yet, found by its network namespace.
    pub ip: Option<IpAddr>,
}

/// The transport protocol of a service frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrontendProtocol {
    Tcp,
    Udp,
}

/// The agent's state as the decoder needs it. Called from the decoder's own thread, never
/// from the datapath's event drain; implementations may take locks.
pub trait FlowContext: Send + Sync {
    /// The endpoint or pod with address `ip`: a local endpoint first, else a pod known from
    /// the cluster (ID 0). `None` for addresses that are not pods.
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo>;

    /// The local endpoint with this ID.
    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo>;

    /// The local endpoint whose network namespace has this cookie (`SO_NETNS_COOKIE`, what
    /// `bpf_get_netns_cookie()` reports for its sockets), with its address. `None` when no
    /// endpoint's namespace is known to have it.
    fn endpoint_by_netns_cookie(&self, cookie: u64) -> Option<EndpointInfo>;

    /// Labels of a security identity, `source:key=value`, sorted (reserved identities
    /// included, e.g. `reserved:world`). `None` when the identity is unknown.
    fn identity_labels(&self, identity: u32) -> Option<Vec<String>>;

    /// Name of the interface with this index in the node's network namespace.
    fn interface_name(&self, ifindex: u32) -> Option<String>;

    /// The Service with a frontend at `ip:port` for `protocol` (ClusterIP, external or
    /// load-balancer IP), as Cilium's Hubble looks services up by address and port.
    fn service_by_frontend(
        &self,
        ip: IpAddr,
        port: u16,
        protocol: FrontendProtocol,
    ) -> Option<Service>;

    /// The Service whose frontend has this reverse-NAT index (the ID the datapath reports
    /// on the traces of a request it translated).
    fn service_by_rev_nat(&self, index: u16) -> Option<Service>;
}

/// A context that knows nothing: flows carry only what the datapath reported (for tests and
/// benchmarks of the decoder alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContext;

impl FlowContext for NoContext {
    fn endpoint_by_ip(&self, _ip: IpAddr) -> Option<EndpointInfo> {
        None
    }

    fn endpoint_by_id(&self, _id: u16) -> Option<EndpointInfo> {
        None
    }

    fn endpoint_by_netns_cookie(&self, _cookie: u64) -> Option<EndpointInfo> {
        None
    }

    fn identity_labels(&self, _identity: u32) -> Option<Vec<String>> {
        None
    }

    fn interface_name(&self, _ifindex: u32) -> Option<String> {
        None
    }

    fn service_by_frontend(
        &self,
        _ip: IpAddr,
        _port: u16,
        _protocol: FrontendProtocol,
    ) -> Option<Service> {
        None
    }

    fn service_by_rev_nat(&self, _index: u16) -> Option<Service> {
        None
    }
}
