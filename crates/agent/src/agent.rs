//! The agent's shared state and the operations the API exposes, free of HTTP.
//!
//! IPAM and the endpoint manager each sit behind their own mutex; operations that program the
//! datapath run on blocking threads (the API layer uses `spawn_blocking`).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cilium_api::models as api;
use cilium_endpoint::{
    Endpoint, EndpointError, EndpointId, EndpointIdentity, EndpointManager, EndpointSelector,
    FileStore as EndpointFileStore, InvalidRequest, NewEndpoint,
};
use cilium_identity::{Labels, NumericIdentity, ReservedIdentity};
use cilium_ipam::{FileStore as IpamFileStore, HostScopeAllocator, IpamError, ROUTER_OWNER};

use crate::cidr_identity::CidrIdentities;
use crate::cluster::Cluster;
use crate::config::AgentConfig;
use crate::identity::{init_identity, Identities, PodRef, INLINE_RESOLVE_TIMEOUT};
use crate::node_datapath::NodeDatapath;
use crate::pod_metadata::Change;
use crate::policy::{to_map_state, PolicyEngine, PolicyImportError};
use cilium_policy::EnforcementMode;

/// Pods are attached with veth pairs.
const DEVICE_MODE: &str = "veth";

pub type Ipam = HostScopeAllocator<IpamFileStore>;
pub type Endpoints = EndpointManager<NodeDatapath, EndpointFileStore>;

/// Failures of agent operations; the API layer maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    InvalidRequest(#[from] InvalidRequest),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("address family {family:?} is not supported (IPv4 only)")]
    UnsupportedFamily { family: String },
    #[error("invalid policy")]
    InvalidPolicy(#[from] PolicyImportError),
    #[error("{ip} is not in this node's pod CIDR {range}")]
    AddressNotOurs { ip: Ipv4Addr, range: ipnet::Ipv4Net },
}

/// An identity in the API's form.
fn api_identity(id: NumericIdentity, labels: &Labels) -> api::Identity {
    api::Identity {
        id: id.as_u32(),
        labels: labels.to_strings(),
    }
}

/// Whether an endpoint's address was allocated for the request or already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    AlreadyOwned,
    Allocated,
}

/// Everything the API handlers share.
pub struct Agent {
    pub config: AgentConfig,
    pub attach_mode: String,
    pub started: Instant,
    pub ipam: Mutex<Ipam>,
    pub endpoints: Mutex<Endpoints>,
    pub cluster: Cluster,
    pub identities: Arc<Identities>,
    pub identity_cache: cilium_identity::IdentityCache,
    pub policy: PolicyEngine,
    pub services: Arc<crate::services::Services>,
    /// Local endpoints by their network namespace's cookie (for Hubble's socket flows).
    pub netns_cookies: crate::netns_cookie::NetnsCookies,
}

impl Agent {
    /// Health and configuration summary; the kvstore part is filled in by the caller (it
    /// needs to ask the store).
    pub fn status(&self) -> api::StatusResponse {
        let (alloc_range, allocated, capacity) = {
            let ipam = self.ipam.lock().expect("ipam lock");
            (ipam.range().to_string(), ipam.allocated(), ipam.capacity())
        };
        api::StatusResponse {
            cilium: api::Status {
                state: "Ok".into(),
                msg: String::new(),
            },
            node_name: self.config.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            routing_mode: match self.config.routing_mode {
                crate::config::RoutingMode::Tunnel => "Tunnel".into(),
                crate::config::RoutingMode::Native => "Native".into(),
            },
            datapath_mode: DEVICE_MODE.into(),
            attach_mode: self.attach_mode.clone(),
            ipam: api::IpamSummary {
                alloc_range,
                allocated,
                capacity,
            },
            endpoints: self.endpoints.lock().expect("endpoints lock").len(),
            bpf_root: self.config.bpf_root.display().to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            kvstore: None,
            cluster: Some(api::ClusterStatus {
                cluster_name: self.cluster.cluster_name().to_string(),
                nodes: {
                    let mut names: Vec<String> =
                        self.cluster.nodes().into_iter().map(|n| n.name).collect();
                    if !names.contains(&self.config.node_name) {
                        names.push(self.config.node_name.clone());
                        names.sort();
                    }
                    names
                },
            }),
            kube_proxy_replacement: Some(
                self.services
                    .kube_proxy_replacement(self.config.bpf_lb_sock),
            ),
        }
    }

    /// `GET /cluster/nodes`: the nodes known from the kvstore.
    pub fn cluster_nodes(&self) -> api::ClusterNodeStatus {
        api::ClusterNodeStatus {
            self_name: self.config.node_name.clone(),
            nodes_added: self
                .cluster
                .nodes()
                .into_iter()
                .map(|node| api::NodeElement {
                    primary_address: api::NodeAddressing {
                        ipv4: api::NodeAddressingElement {
                            enabled: true,
                            ip: node
                                .internal_ip()
                                .map(|ip| ip.to_string())
                                .unwrap_or_default(),
                            alloc_range: node
                                .ipv4_alloc_cidr
                                .map(|c| c.to_string())
                                .unwrap_or_default(),
                        },
                    },
                    ipv4_alloc_cidr: node
                        .ipv4_alloc_cidr
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    name: node.name,
                    cluster: node.cluster,
                })
                .collect(),
        }
    }

    pub fn daemon_config(&self) -> api::DaemonConfiguration {
        let router = self.ipam.lock().expect("ipam lock").router();
        api::DaemonConfiguration {
            node_name: self.config.node_name.clone(),
            pod_cidr: self.cluster.local().pod_cidr.to_string(),
            router_ip: router.to_string(),
            bpf_root: self.config.bpf_root.display().to_string(),
            state_dir: self.config.state_dir.display().to_string(),
            socket_path: self.config.socket.display().to_string(),
            attach_mode: self.attach_mode.clone(),
            datapath_mode: DEVICE_MODE.into(),
            monitor_aggregation: self.config.monitor_aggregation.name().into(),
            routing_mode: self.config.routing_mode.name().into(),
            cluster_name: self.config.cluster_name.clone(),
            kvstore: self.config.kvstore.name().into(),
            node_ip: self.cluster.local().node_ip.to_string(),
            policy_enforcement: self.policy.enforcement().to_string(),
        }
    }

    /// Switches the policy enforcement mode at runtime (`cilium config
    /// PolicyEnforcement=MODE`) and re-resolves every endpoint when it changed.
    pub fn set_policy_enforcement(&self, mode: EnforcementMode) {
        if self.policy.set_enforcement(mode) {
            tracing::info!(%mode, "policy enforcement mode changed");
            self.apply_policies();
        }
    }

    /// Every identity this agent knows (`GET /v1/identity`): the reserved ones and those in
    /// the cluster's identity cache, sorted by number.
    pub fn list_identities(&self) -> Vec<api::Identity> {
        let mut all: Vec<api::Identity> = ReservedIdentity::ALL
            .into_iter()
            .map(|reserved| api_identity(reserved.id(), &reserved.labels()))
            .chain(
                self.identity_cache
                    .list()
                    .iter()
                    .map(|(id, labels)| api_identity(*id, labels)),
            )
            .chain(
                self.policy
                    .cidr_identities()
                    .into_iter()
                    .map(|(prefix, id)| api::Identity {
                        id,
                        labels: CidrIdentities::labels(prefix),
                    }),
            )
            .collect();
        all.sort_by_key(|identity| identity.id);
        all.dedup_by_key(|identity| identity.id);
        all
    }

    /// Identity `id` (`GET /v1/identity/{id}`), reserved or cached; `None` when unknown.
    pub fn get_identity(&self, id: u32) -> Option<api::Identity> {
        let id = NumericIdentity(id);
        if let Some(reserved) = ReservedIdentity::from_id(id) {
            return Some(api_identity(id, &reserved.labels()));
        }
        if let Some(labels) = self.identity_cache.get(id) {
            return Some(api_identity(id, &labels));
        }
        self.policy
            .cidr_identities()
            .into_iter()
            .find(|(_, cidr_id)| *cidr_id == id.as_u32())
            .map(|(prefix, id)| api::Identity {
                id,
                labels: CidrIdentities::labels(prefix),
            })
    }

    pub fn list_endpoints(&self) -> Vec<api::Endpoint> {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints.list().map(|ep| ep.to_api()).collect()
    }

    pub fn get_endpoint(&self, reference: &str) -> Result<api::Endpoint, AgentError> {
        let selector: EndpointSelector = reference.parse()?;
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints
            .find(&selector)
            .map(|ep| ep.to_api())
            .ok_or_else(|| {
                EndpointError::NotFound {
                    selector: reference.to_string(),
                }
                .into()
            })
    }

    /// `PUT /endpoint/{id}`: validates, makes sure the address is allocated to the container,
    /// programs the datapath and records the endpoint.
    pub fn put_endpoint(
        &self,
        reference: &str,
        request: &api::EndpointChangeRequest,
    ) -> Result<api::Endpoint, AgentError> {
        let mut new = NewEndpoint::try_from(request)?;
        add_namespace_label(&mut new);
        if let EndpointSelector::Id(id) = reference.parse::<EndpointSelector>()? {
            if id.0 != 0 {
                new.id = Some(id);
            }
        }
        let ip = new.ipv4;
        let claimed = self.claim_address(ip, &new.container_id)?;
        let pod = PodRef {
            namespace: new.k8s_namespace.clone(),
            name: new.k8s_pod_name.clone(),
            labels: new.labels.clone(),
        };
        let resolved = tokio::runtime::Handle::current().block_on(async {
            tokio::time::timeout(INLINE_RESOLVE_TIMEOUT, async {
                // Labels derived before the Pods and Namespaces are known could be wrong.
                self.identities.metadata().wait_synced().await;
                let labels = self.identities.labels_of(&pod);
                let identity = self.identities.resolve(&labels).await?;
                Ok::<_, cilium_identity::AllocatorError>((identity, labels))
            })
            .await
        });
        let (identity, held) = match resolved {
            Ok(Ok((identity, labels))) => (identity, Some(labels)),
            Ok(Err(error)) => {
                tracing::warn!(error = %crate::api::chain(&error), "identity not resolved yet; starting with reserved:init");
                (init_identity(), None)
            }
            Err(_) => {
                tracing::warn!("kvstore slow; endpoint starts with reserved:init");
                (init_identity(), None)
            }
        };
        let created = {
            let mut endpoints = self.endpoints.lock().expect("endpoints lock");
            let created = endpoints.create(new, identity);
            if let Ok(endpoint) = &created {
                // A repeated ADD replaces the endpoint: its old reference goes.
                match &held {
                    Some(labels) => self.identities.hold(endpoint.id, labels.clone()),
                    None => self.identities.forget(endpoint.id),
                }
            }
            created
        };
        let endpoint = match created {
            Ok(endpoint) => endpoint,
            Err(error) => {
                if claimed == Claim::Allocated {
                    // Refused requests change nothing: give back what was taken for them.
                    let _ = self.ipam.lock().expect("ipam lock").release(ip);
                }
                if let Some(labels) = held {
                    self.identities.release(labels);
                }
                return Err(error.into());
            }
        };
        if held.is_none() {
            self.identities
                .resolve_later(EndpointSelector::Id(endpoint.id));
        }
        self.apply_endpoint_policy(endpoint.id);
        self.netns_cookies.learn(endpoint.id, &endpoint.netns);
        self.cluster.endpoint_up(
            endpoint.ipv4,
            endpoint.identity,
            &endpoint.k8s_namespace,
            &endpoint.k8s_pod_name,
        );
        tracing::info!(
            endpoint = %endpoint.id,
            identity = endpoint.identity,
            container = %endpoint.container_id,
            ip = %endpoint.ipv4,
            interface = %endpoint.host_ifname,
            "endpoint created"
        );
        Ok(endpoint.to_api())
    }

    pub fn delete_endpoint(&self, reference: &str) -> Result<(), AgentError> {
        let selector: EndpointSelector = reference.parse()?;
        let removed = {
            let mut endpoints = self.endpoints.lock().expect("endpoints lock");
            let id = endpoints.find(&selector).map(|ep| ep.id);
            let removed = endpoints.delete(&selector);
            // Forgotten even when the datapath teardown failed: release its identity too.
            if let Some(id) = id.filter(|&id| endpoints.find(&EndpointSelector::Id(id)).is_none()) {
                self.identities.forget(id);
            }
            removed?
        };
        self.netns_cookies.forget(removed.id);
        self.cluster.endpoint_down(removed.ipv4);
        tracing::info!(endpoint = %removed.id, container = %removed.container_id, "endpoint deleted");
        Ok(())
    }

    /// The ID of an endpoint, if it exists.
    pub fn endpoint_id(&self, selector: &EndpointSelector) -> Option<EndpointId> {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints.find(selector).map(|ep| ep.id)
    }

    /// The pod an endpoint stands for, if the endpoint still exists.
    pub fn endpoint_pod(&self, selector: &EndpointSelector) -> Option<PodRef> {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints.find(selector).map(|ep| PodRef {
            namespace: ep.k8s_namespace.clone(),
            name: ep.k8s_pod_name.clone(),
            labels: ep.labels.clone(),
        })
    }

    /// Gives endpoint `id` the identity resolved for `labels` (regenerating it when the
    /// number changed), moves its allocator reference to `labels`, and publishes the address
    /// with the identity.
    pub fn apply_identity(
        &self,
        id: EndpointId,
        identity: EndpointIdentity,
        labels: Labels,
    ) -> Result<(), AgentError> {
        let selector = EndpointSelector::Id(id);
        let endpoint = {
            let mut endpoints = self.endpoints.lock().expect("endpoints lock");
            let result = endpoints.set_identity(&selector, identity.clone());
            let carries = endpoints
                .find(&selector)
                .is_some_and(|ep| ep.identity_labels == identity.labels);
            if carries {
                self.identities.hold(id, labels);
            } else {
                self.identities.release(labels);
            }
            result?
        };
        self.cluster.endpoint_up(
            endpoint.ipv4,
            endpoint.identity,
            &endpoint.k8s_namespace,
            &endpoint.k8s_pod_name,
        );
        tracing::info!(endpoint = %endpoint.id, identity = endpoint.identity, "identity resolved");
        self.apply_endpoint_policy(endpoint.id);
        Ok(())
    }

    /// Pods or Namespaces changed in the resource model: the local endpoints concerned get
    /// their identity derived again, and named ports (their own and the cluster's) may have
    /// changed, so policies are resolved again.
    pub fn pod_metadata_changed(&self, changes: &[Change]) {
        {
            let endpoints = self.endpoints.lock().expect("endpoints lock");
            for endpoint in endpoints.list() {
                let concerned = changes.iter().any(|change| match change {
                    Change::Pod { namespace, name } => {
                        endpoint.k8s_namespace == *namespace && endpoint.k8s_pod_name == *name
                    }
                    Change::Namespace { name } => endpoint.k8s_namespace == *name,
                });
                if concerned {
                    self.identities
                        .resolve_later(EndpointSelector::Id(endpoint.id));
                }
            }
        }
        if changes.iter().any(|c| matches!(c, Change::Pod { .. })) {
            self.apply_policies();
        }
    }

    /// `PUT /policy`: stores the policies in `text` and enforces them.
    pub fn import_policy(&self, text: &str) -> Result<u64, AgentError> {
        let revision = self.policy.import("request", text)?;
        self.apply_policies();
        Ok(revision)
    }

    /// `DELETE /policy`: removes every policy.
    pub fn delete_policies(&self) -> u64 {
        let revision = self.policy.delete_all();
        self.apply_policies();
        revision
    }

    /// Feeds the cluster's current identities to the policy engine.
    fn sync_policy_identities(&self) {
        let snapshot = self
            .identity_cache
            .list()
            .into_iter()
            .map(|(id, labels)| (id.as_u32(), labels.to_strings()))
            .collect();
        self.policy.sync_identities(snapshot);
    }

    /// Resolves every local endpoint's policy and writes it into its policy map in place.
    /// Identities and the rules' CIDR identities are brought up to date first.
    pub fn apply_policies(&self) {
        self.sync_policy_identities();
        if let Some(prefixes) = self.policy.sync_cidr_identities() {
            self.cluster.set_policy_prefixes(prefixes);
        }
        self.apply_policies_where(|_| true);
    }

    /// Resolves one endpoint's policy (a new endpoint, or one with a new identity): the
    /// others' policies only change when the set of identities does, and the identity cache
    /// triggers [`apply_policies`](Self::apply_policies) for that.
    /// It takes no identity snapshot: the engine already knows the cluster's identities.
    fn apply_endpoint_policy(&self, id: EndpointId) {
        self.apply_policies_where(|endpoint| endpoint.id == id);
    }

    fn apply_policies_where(&self, wanted: impl Fn(&Endpoint) -> bool) {
        let metadata = self.identities.metadata();
        let peer_ports = metadata.peer_named_ports();
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        for endpoint in endpoints.list().filter(|endpoint| wanted(endpoint)) {
            let own_ports = metadata
                .pod(&endpoint.k8s_namespace, &endpoint.k8s_pod_name)
                .map(|pod| pod.named_ports)
                .unwrap_or_default();
            let policy = self
                .policy
                .resolve(&endpoint.identity_labels, &own_ports, &peer_ports);
            let (enforcement, entries) = to_map_state(&policy);
            if let Err(error) =
                endpoints
                    .datapath()
                    .bpf()
                    .set_policy(endpoint.id.0, enforcement, &entries)
            {
                tracing::warn!(endpoint = %endpoint.id, error = %crate::api::chain(&error), "programming the policy map failed");
            }
        }
    }

    pub fn allocate_ip(&self, family: &str, owner: &str) -> Result<api::IpamResponse, AgentError> {
        if !family.is_empty() && family != "ipv4" {
            return Err(AgentError::UnsupportedFamily {
                family: family.to_string(),
            });
        }
        let mut ipam = self.ipam.lock().expect("ipam lock");
        let ip = ipam.allocate_next(owner)?;
        tracing::info!(%ip, owner, "address allocated");
        let range = ipam.range().to_string();
        let router = ipam.router().to_string();
        Ok(api::IpamResponse {
            address: api::AddressPair {
                ipv4: ip.to_string(),
                ..Default::default()
            },
            ipv4: api::IpamAddressResponse {
                ip: ip.to_string(),
                gateway: router.clone(),
                cidrs: vec![range.clone()],
                expiration_uuid: String::new(),
            },
            host_addressing: api::NodeAddressing {
                ipv4: api::NodeAddressingElement {
                    enabled: true,
                    ip: router,
                    alloc_range: range,
                },
            },
        })
    }

    /// `DELETE /ipam/{ip}` or `DELETE /ipam/owner:{owner}`.
    pub fn release_ip(&self, what: &str) -> Result<(), AgentError> {
        let mut ipam = self.ipam.lock().expect("ipam lock");
        match what.strip_prefix("owner:") {
            Some(owner) => {
                let ip = ipam.release_owner(owner)?;
                tracing::info!(%ip, owner, "address released");
            }
            None => {
                let ip: Ipv4Addr = what.parse().map_err(|_| InvalidRequest::Ipv4 {
                    value: what.to_string(),
                })?;
                let owner = ipam.release(ip)?;
                tracing::info!(%ip, owner, "address released");
            }
        }
        Ok(())
    }

    pub fn ipam_status(&self) -> api::IpamStatus {
        let ipam = self.ipam.lock().expect("ipam lock");
        api::IpamStatus {
            alloc_range: ipam.range().to_string(),
            router_ip: ipam.router().to_string(),
            allocations: ipam
                .allocations()
                .iter()
                .map(|(ip, owner)| (ip.to_string(), owner.clone()))
                .collect(),
        }
    }

    /// The endpoint's address must be ours and belong to its container; an address not yet
    /// allocated (an endpoint created without the IPAM call) is allocated now.
    fn claim_address(&self, ip: Ipv4Addr, container_id: &str) -> Result<Claim, AgentError> {
        let mut ipam = self.ipam.lock().expect("ipam lock");
        if !ipam.range().contains(&ip) {
            return Err(AgentError::AddressNotOurs {
                ip,
                range: ipam.range(),
            });
        }
        match ipam.allocations().get(&ip) {
            Some(owner) if owner == container_id => Ok(Claim::AlreadyOwned),
            Some(owner) if owner == ROUTER_OWNER => Err(IpamError::Reserved { ip }.into()),
            _ => {
                ipam.allocate_specific(ip, container_id)?;
                Ok(Claim::Allocated)
            }
        }
    }
}

/// Pods carry their namespace as a label (`k8s:io.kubernetes.pod.namespace=<ns>`), as in
/// Cilium, so that it shows with the endpoint and later selects it.
fn add_namespace_label(endpoint: &mut NewEndpoint) {
    if endpoint.k8s_namespace.is_empty() {
        return;
    }
    let label = format!("{NAMESPACE_LABEL}={}", endpoint.k8s_namespace);
    let prefix = format!("{NAMESPACE_LABEL}=");
    if !endpoint.labels.iter().any(|l| l.starts_with(&prefix)) {
        endpoint.labels.push(label);
        endpoint.labels.sort();
    }
}

const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";
