//! Hubble in the agent: the flow context over the agent's state (local endpoints, also by
//! their network namespace's cookie, the cluster's pods from the kvstore's IP entries, their workloads from the Pod objects'
//! owner references, identities, the load balancer's frontends), the decoder fed by the event
//! drain, and the Observer API on the unix socket next to the agent's API socket and, with
//! `--hubble-listen-address`, on TCP (published in the kvstore as the node's Hubble peer,
//! for the relay).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use cilium_endpoint::{Endpoint, EndpointId, EndpointSelector};
use cilium_hubble::flow::Service;
use cilium_hubble::peer::{self, PeerRecord};
use cilium_hubble::workload::pod_workloads;
use cilium_hubble::{
    serve, EndpointInfo, EventSender, FlowContext, FlowDecoder, FrontendProtocol, Observer,
    ObserverService,
};
use cilium_kvstore::{keys, KvStore, WatchEvent};
use cilium_loadbalancer::{FrontendAddr, ObjectName, Protocol};

use crate::agent::{Agent, Endpoints};
use crate::cluster::records::IpIdentityPair;

/// Hubble could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HubbleError {
    #[error("setting up the Hubble socket")]
    Socket {
        #[source]
        source: serve::ServeError,
    },
    #[error("--hubble-listen-address {address:?} is not [HOST]:PORT")]
    ListenAddress {
        address: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("listening for Hubble clients on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Starts Hubble when enabled; the returned sender takes the drain's raw records.
pub async fn start(agent: &Arc<Agent>) -> Result<Option<EventSender>, HubbleError> {
    let config = &agent.config;
    if !config.enable_hubble {
        return Ok(None);
    }
    // Cilium's absolute node name: flows and `hubble list nodes` say `cluster/node`.
    let node_name = format!("{}/{}", config.cluster_name, config.node_name);
    let pods = Arc::new(ClusterPods::default());
    tokio::spawn(follow_cluster_pods(
        Arc::clone(agent.cluster.store()),
        agent.cluster.cluster_name().to_string(),
        Arc::clone(&pods),
    ));
    let context = Arc::new(AgentContext {
        agent: Arc::clone(agent),
        pods,
    });
    let observer = Arc::new(Observer::new(
        FlowDecoder::new(node_name.as_str(), context),
        config.hubble_event_buffer_capacity,
    ));
    let sender = EventSender::new(Arc::clone(&observer));

    let socket = config.hubble_socket();
    let listener = serve::bind_unix(&socket).map_err(|source| HubbleError::Socket { source })?;
    let service = ObserverService::new(
        Arc::clone(&observer),
        format!("unix://{}", socket.display()),
    );
    tokio::spawn(async move {
        if let Err(error) = serve::serve_unix(listener, service, std::future::pending()).await {
            tracing::error!(error = %crate::api::chain(&error), "Hubble socket server stopped");
        }
    });
    if let Some(text) = &config.hubble_listen_address {
        let address = listen_address(text)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| HubbleError::Listen { address, source })?;
        let service = ObserverService::new(Arc::clone(&observer), address.to_string());
        tokio::spawn(async move {
            if let Err(error) = serve::serve_tcp(listener, service, std::future::pending()).await {
                tracing::error!(error = %crate::api::chain(&error), "Hubble TCP server stopped");
            }
        });
        tracing::info!(%address, "Hubble listening on TCP");
        publish_peer(agent, address);
    }
    tracing::info!(
        socket = %socket.display(),
        capacity = config.hubble_event_buffer_capacity.get(),
        "Hubble started"
    );
    Ok(Some(sender))
}

/// Publishes where this node's Hubble TCP server is (on the node's lease), for the relay;
/// an unspecified listen address is published as the node's own address.
fn publish_peer(agent: &Arc<Agent>, listening: SocketAddr) {
    let local = agent.cluster.local();
    let ip = match listening.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(local.node_ip),
        ip => ip,
    };
    let cluster = agent.cluster.cluster_name().to_string();
    let record = PeerRecord {
        name: local.name.clone(),
        cluster: cluster.clone(),
        address: SocketAddr::new(ip, listening.port()).to_string(),
    };
    let key = peer::key(&cluster, &record.name);
    let owned = Arc::clone(agent.cluster.owned_keys());
    tokio::spawn(async move {
        let value = serde_json::to_vec(&record).expect("a peer record serializes");
        if let Err(error) = owned.put(&key, value).await {
            tracing::warn!(%key, error = %crate::api::chain(&error), "publishing the Hubble peer record failed");
        }
    });
}

/// Cilium's form `:4244` (every address) or `HOST:PORT`.
fn listen_address(text: &str) -> Result<SocketAddr, HubbleError> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map_err(|source| HubbleError::ListenAddress {
        address: text.to_string(),
        source,
    })
}

/// Every pod of the cluster by address, as published in the kvstore's IP entries: what
/// names the remote end of a flow.
#[derive(Default)]
struct ClusterPods(RwLock<HashMap<Ipv4Addr, IpIdentityPair>>);

impl ClusterPods {
    fn get(&self, ip: Ipv4Addr) -> Option<IpIdentityPair> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .cloned()
    }

    fn apply(&self, prefix: &str, event: WatchEvent) {
        let Some(ip) = keys::leaf(prefix, event.key()).and_then(|leaf| leaf.parse().ok()) else {
            return;
        };
        let mut pods = self.0.write().unwrap_or_else(|p| p.into_inner());
        match event {
            WatchEvent::Put(kv) => match serde_json::from_slice::<IpIdentityPair>(&kv.value) {
                Ok(pair) => {
                    pods.insert(ip, pair);
                }
                Err(error) => tracing::debug!(key = kv.key, %error, "IP entry not readable"),
            },
            WatchEvent::Delete { .. } => {
                pods.remove(&ip);
            }
        }
    }
}

/// Mirrors the cluster's IP entries (the watch replays current entries, then follows).
async fn follow_cluster_pods(store: Arc<dyn KvStore>, cluster: String, pods: Arc<ClusterPods>) {
    let prefix = keys::ip_prefix(&cluster);
    let mut watcher = store.watch(&prefix, 0);
    while let Some(event) = watcher.recv().await {
        pods.apply(&prefix, event);
    }
}

/// The agent's state as the decoder sees it.
struct AgentContext {
    agent: Arc<Agent>,
    pods: Arc<ClusterPods>,
}

fn local_endpoint(endpoint: &Endpoint) -> EndpointInfo {
    EndpointInfo {
        id: u32::from(endpoint.id.0),
        identity: endpoint.identity,
        namespace: endpoint.k8s_namespace.clone(),
        pod_name: endpoint.k8s_pod_name.clone(),
        workloads: Vec::new(),
        ip: Some(IpAddr::V4(endpoint.ipv4)),
    }
}

impl AgentContext {
    /// Runs `look` on the endpoint manager under its lock.
    fn endpoints<T>(&self, look: impl FnOnce(&Endpoints) -> T) -> T {
        let endpoints = self.agent.endpoints.lock().expect("endpoints lock");
        look(&endpoints)
    }

    /// `info` with the workloads of its pod, from the Pod object's owner references.
    fn with_workloads(&self, mut info: EndpointInfo) -> EndpointInfo {
        if !info.pod_name.is_empty() {
            let owners = self
                .agent
                .identities
                .metadata()
                .pod_owners(&info.namespace, &info.pod_name);
            info.workloads = pod_workloads(&owners);
        }
        info
    }
}

fn flow_service(name: ObjectName) -> Service {
    Service {
        name: name.name,
        namespace: name.namespace,
    }
}

impl FlowContext for AgentContext {
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
        let IpAddr::V4(ip) = ip else {
            return None;
        };
        let local = self.endpoints(|eps| eps.list().find(|ep| ep.ipv4 == ip).map(local_endpoint));
        local
            .or_else(|| {
                self.pods.get(ip).map(|pair| EndpointInfo {
                    id: 0,
                    identity: pair.id,
                    namespace: pair.k8s_namespace,
                    pod_name: pair.k8s_pod_name,
                    workloads: Vec::new(),
                    ip: Some(IpAddr::V4(ip)),
                })
            })
            .map(|info| self.with_workloads(info))
    }

    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
        self.endpoints(|eps| {
            eps.find(&EndpointSelector::Id(EndpointId(id)))
                .map(local_endpoint)
        })
        .map(|info| self.with_workloads(info))
    }

    fn endpoint_by_netns_cookie(&self, cookie: u64) -> Option<EndpointInfo> {
        let id = self.agent.netns_cookies.endpoint(cookie)?;
        self.endpoint_by_id(id.0)
    }

    fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
        if let Some(known) = self.agent.get_identity(identity) {
            return Some(known.labels);
        }
        // Just allocated and not yet in the cache: a local endpoint knows its labels.
        self.endpoints(|eps| {
            eps.list()
                .find(|ep| ep.identity == identity)
                .map(|ep| ep.identity_labels.clone())
        })
    }

    fn interface_name(&self, ifindex: u32) -> Option<String> {
        let veth = self.endpoints(|eps| {
            eps.list()
                .find(|ep| ep.host_ifindex == ifindex)
                .map(|ep| ep.host_ifname.clone())
        });
        veth.or_else(|| {
            nix::net::if_::if_indextoname(ifindex)
                .ok()
                .and_then(|name| name.into_string().ok())
        })
    }

    fn service_by_frontend(
        &self,
        ip: IpAddr,
        port: u16,
        protocol: FrontendProtocol,
    ) -> Option<Service> {
        let IpAddr::V4(ip) = ip else {
            return None;
        };
        let protocol = match protocol {
            FrontendProtocol::Tcp => Protocol::Tcp,
            FrontendProtocol::Udp => Protocol::Udp,
        };
        self.agent
            .services
            .service_by_frontend(FrontendAddr { ip, port, protocol })
            .map(flow_service)
    }

    fn service_by_rev_nat(&self, index: u16) -> Option<Service> {
        self.agent
            .services
            .service_by_rev_nat(index)
            .map(flow_service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_read_like_cilium_flags() {
        assert_eq!(
            listen_address(":4244").expect("valid"),
            "0.0.0.0:4244".parse::<SocketAddr>().expect("valid")
        );
        assert_eq!(
            listen_address("127.0.0.1:4245").expect("valid").port(),
            4245
        );
        let err = listen_address("4244").expect_err("no colon");
        assert!(err.to_string().contains("4244"), "{err}");
    }

    #[test]
    fn cluster_pods_follow_ip_entries() {
        let pods = ClusterPods::default();
        let prefix = keys::ip_prefix("default");
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        let pair = IpIdentityPair {
            ip,
            id: 1234,
            host_ip: Ipv4Addr::new(192, 168, 0, 2),
            key: 0,
            k8s_namespace: "default".into(),
            k8s_pod_name: "xwing".into(),
        };
        let key = keys::ip("default", ip.into());
        pods.apply(
            &prefix,
            WatchEvent::Put(cilium_kvstore::KeyValue {
                key: key.clone(),
                value: serde_json::to_vec(&pair).expect("serializes"),
                mod_revision: 1,
                lease: None,
            }),
        );
        assert_eq!(pods.get(ip), Some(pair));
        pods.apply(
            &prefix,
            WatchEvent::Delete {
                key,
                mod_revision: 2,
            },
        );
        assert_eq!(pods.get(ip), None);
    }
}
