//! What the flow decoder asks the agent: who is behind an address or an endpoint ID, which
//! labels an identity carries, what an interface is called.
//!
//! The agent implements [`FlowContext`] over its endpoint manager, identity cache and the
//! cluster's IP entries (remote pods included); tests implement it with a table.

use std::net::IpAddr;

use cilium_hubble_proto::flow::Workload;

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
}

/// The agent's state as the decoder needs it. Called from the decoder's own thread, never
/// from the datapath's event drain; implementations may take locks.
pub trait FlowContext: Send + Sync {
    /// The endpoint or pod with address `ip`: a local endpoint first, else a pod known from
    /// the cluster (ID 0). `None` for addresses that are not pods.
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo>;

    /// The local endpoint with this ID.
    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo>;

    /// Labels of a security identity, `source:key=value`, sorted (reserved identities
    /// included, e.g. `reserved:world`). `None` when the identity is unknown.
    fn identity_labels(&self, identity: u32) -> Option<Vec<String>>;

    /// Name of the interface with this index in the node's network namespace.
    fn interface_name(&self, ifindex: u32) -> Option<String>;
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

    fn identity_labels(&self, _identity: u32) -> Option<Vec<String>> {
        None
    }

    fn interface_name(&self, _ifindex: u32) -> Option<String> {
        None
    }
}
