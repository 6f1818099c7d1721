//! The agent's service load balancer: keeps a [`Catalog`] of the cluster's Services,
//! EndpointSlices and running pods, plans the node's frontends and backends with a
//! [`Planner`], and moves the pinned load-balancing maps to the plan with the ordered
//! operations of [`diff`].
//!
//! Sources: Services and EndpointSlices come from the resource follower
//! ([`crate::resources`]); running pods are the cluster's IP records
//! (`cilium/state/ip/v1/...`: address, namespace, pod name, hosting node's underlay address),
//! joined with the Pod objects' labels and named ports ([`crate::pod_metadata`]). Changes
//! mark the state dirty and wake one task, which re-plans after a short coalescing pause.
//!
//! On start the maps are read back and the planner keeps their backend IDs and
//! reverse-NAT indexes ([`Planner::restore`]); nothing is written until the first resource
//! listing and IP listing are in, so a restart changes nothing that did not change.

pub mod alloc;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cilium_api::models as api;
use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{LbMaps, MapsError};
use cilium_kvstore::{keys, KvStore, WatchEvent};
use cilium_loadbalancer::{
    apply_ops, diff, Algorithm, ApplyError, Catalog, EndpointSlice, FrontendAddr, FrontendKey,
    LbConfig, LbState, MapState, NamedPort, ObjectName, Planner, PodInfo, Protocol, RevNatIndex,
    Scope, Service,
};
use serde_json::Value;
use tokio::sync::Notify;

use crate::agent::Agent;
use crate::cluster::records::{IpIdentityPair, NodeRecord};
use crate::pod_metadata::PodMetadata;
use cilium_identity::IdentityCache;

/// Pause between a change and the re-plan, so that a burst of changes is planned once. The
/// pause is stretched to the last re-plan's duration: a re-plan covers every service, so
/// while thousands of services stream in, each one takes in all changes that arrived during
/// the previous one and planning keeps at most half of a core busy.
const COALESCE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("opening the load-balancing maps")]
    Open {
        #[source]
        source: MapsError,
    },
    #[error("reading the load-balancing maps back")]
    Read {
        #[source]
        source: MapsError,
    },
    #[error("programming the load-balancing maps")]
    Apply {
        #[source]
        source: ApplyError<MapsError>,
    },
}

/// The objects and records the plan is made from.
#[derive(Default)]
struct Inputs {
    catalog: Catalog,
    /// Stored Service and EndpointSlice objects by kvstore key, so deletes by key work.
    objects: BTreeMap<String, StoredKind>,
    /// The cluster's pod addresses.
    ips: BTreeMap<Ipv4Addr, IpIdentityPair>,
    /// Node names by underlay address.
    nodes: BTreeMap<Ipv4Addr, String>,
}

#[derive(Debug, Clone)]
enum StoredKind {
    Service(ObjectName),
    EndpointSlice(ObjectName),
}

/// The datapath side: the planner (with its stable IDs), the maps and what they hold.
struct Programmer {
    planner: Planner,
    maps: LbMaps,
    applied: MapState,
    desired: LbState,
}

/// The node's service load balancer.
pub struct Services {
    inputs: Mutex<Inputs>,
    programmer: Mutex<Programmer>,
    wake: Notify,
}

impl Services {
    /// Opens the pinned maps under `paths` and picks up what they hold.
    pub fn open(config: LbConfig, paths: &BpfPaths) -> Result<Self, ServicesError> {
        let maps = LbMaps::open(paths).map_err(|source| ServicesError::Open { source })?;
        let (applied, unreadable) = maps
            .read_state()
            .map_err(|source| ServicesError::Read { source })?;
        if unreadable != Default::default() {
            tracing::warn!(?unreadable, "load-balancing map entries left as they are");
        }
        let planner = Planner::restore(config, &applied);
        Ok(Services {
            inputs: Mutex::new(Inputs::default()),
            programmer: Mutex::new(Programmer {
                planner,
                maps,
                applied,
                desired: LbState::default(),
            }),
            wake: Notify::new(),
        })
    }

    /// A stored object changed: Services and EndpointSlices are taken in (others, Pods
    /// among them, only wake the planner, since pod labels feed the selection).
    pub fn upsert_object(&self, key: &str, kind: &str, raw: &Value) {
        let mut inputs = self.inputs.lock().expect("services lock");
        match kind {
            "Service" => match Service::from_json(raw) {
                Ok(service) => {
                    inputs
                        .objects
                        .insert(key.into(), StoredKind::Service(service.name.clone()));
                    inputs.catalog.upsert_service(service);
                }
                Err(error) => {
                    tracing::warn!(key, error = %crate::api::chain(&error), "ignoring an invalid Service")
                }
            },
            "EndpointSlice" => match EndpointSlice::from_json(raw) {
                Ok(slice) => {
                    inputs
                        .objects
                        .insert(key.into(), StoredKind::EndpointSlice(slice.name.clone()));
                    inputs.catalog.upsert_endpoint_slice(slice);
                }
                Err(error) => {
                    tracing::warn!(key, error = %crate::api::chain(&error), "ignoring an invalid EndpointSlice")
                }
            },
            _ => {}
        }
        drop(inputs);
        self.wake.notify_one();
    }

    /// A stored object was deleted.
    pub fn remove_object(&self, key: &str) {
        let mut inputs = self.inputs.lock().expect("services lock");
        match inputs.objects.remove(key) {
            Some(StoredKind::Service(name)) => {
                inputs.catalog.remove_service(&name);
            }
            Some(StoredKind::EndpointSlice(name)) => {
                inputs.catalog.remove_endpoint_slice(&name);
            }
            None => {}
        }
        drop(inputs);
        self.wake.notify_one();
    }

    /// Every frontend of the last plan, in Cilium's `GET /v1/service` shape.
    pub fn list(&self) -> Vec<api::Service> {
        let programmer = self.programmer.lock().expect("services programmer lock");
        api_services(&programmer.desired)
    }

    /// The Service of frontend `addr` in the last plan (either scope), for Hubble's flows.
    pub fn service_by_frontend(&self, addr: FrontendAddr) -> Option<ObjectName> {
        let programmer = self.programmer.lock().expect("services programmer lock");
        [Scope::External, Scope::Internal]
            .into_iter()
            .find_map(|scope| {
                programmer
                    .desired
                    .frontends
                    .get(&FrontendKey { addr, scope })
            })
            .map(|entry| entry.service.clone())
    }

    /// The Service whose frontend holds reverse-NAT index `index` in the maps, for Hubble's
    /// flows (the datapath reports the index on traces of translated requests).
    pub fn service_by_rev_nat(&self, index: u16) -> Option<ObjectName> {
        let addr = {
            let programmer = self.programmer.lock().expect("services programmer lock");
            *programmer.applied.rev_nat.get(&RevNatIndex(index))?
        };
        self.service_by_frontend(addr)
    }

    /// The kube-proxy-replacement facts of this load balancer for `cilium status`: ClusterIP
    /// translation per packet at pod egress and NodePort (with externalIPs and load-balancer
    /// IPs) on the node's underlay device (`bpf_host`), for TCP and UDP, with session
    /// affinity; `socket_lb` when the cgroup socket hooks are attached. Every service type is
    /// handled without kube-proxy: Cilium's `kubeProxyReplacement=true`.
    pub fn kube_proxy_replacement(&self, socket_lb: bool) -> api::KubeProxyReplacement {
        let programmer = self.programmer.lock().expect("services programmer lock");
        let backend_selection = match programmer.planner.config().default_algorithm {
            Algorithm::Random => "Random",
            Algorithm::Maglev => "Maglev",
        };
        api::KubeProxyReplacement {
            mode: "True".into(),
            socket_lb,
            protocols: vec!["TCP".into(), "UDP".into()],
            backend_selection: backend_selection.into(),
            session_affinity: true,
            cluster_ip: true,
            node_port: Some(api::NodePortRange {
                min: *alloc::NODE_PORTS.start(),
                max: *alloc::NODE_PORTS.end(),
            }),
        }
    }

    /// Re-plans from the current inputs and brings the maps to the plan.
    fn sync(
        &self,
        metadata: &PodMetadata,
        identities: &IdentityCache,
    ) -> Result<(), ServicesError> {
        let catalog = {
            let mut inputs = self.inputs.lock().expect("services lock");
            let pods = running_pods(&inputs, metadata, identities);
            inputs.catalog.set_pods(pods);
            inputs.catalog.clone()
        };
        let mut programmer = self.programmer.lock().expect("services programmer lock");
        let desired = programmer.planner.desired(&catalog);
        for problem in &desired.problems {
            tracing::warn!(%problem, "service left out");
        }
        let target = desired.state.map_state();
        let ops = diff(&programmer.applied, &target);
        match apply_ops(&mut programmer.maps, &ops) {
            Ok(()) => {
                programmer.applied = target;
                programmer.desired = desired.state;
                if !ops.is_empty() {
                    tracing::info!(operations = ops.len(), "load-balancing maps updated");
                }
                Ok(())
            }
            Err(source) => {
                // Part of the operations went in: read back what the maps hold now.
                if let Ok((now, _)) = programmer.maps.read_state() {
                    programmer.applied = now;
                }
                Err(ServicesError::Apply { source })
            }
        }
    }
}

/// The pod labels an identity carries (its `k8s:` labels, minus those Kubernetes and Cilium
/// add about the pod's namespace and service account).
fn identity_pod_labels(identities: &IdentityCache, id: u32) -> BTreeMap<String, String> {
    identities
        .get(id.into())
        .map(|labels| {
            labels
                .iter()
                .filter(|l| l.source == "k8s")
                .filter(|l| {
                    !l.key.starts_with("io.kubernetes.") && !l.key.starts_with("io.cilium.")
                })
                .map(|l| (l.key.clone(), l.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The pods the cluster's IP records name, with their Pod objects' labels and ports (the
/// labels of their identity for pods without a stored Pod object, such as those wired
/// straight through the CNI plugin).
fn running_pods(
    inputs: &Inputs,
    metadata: &PodMetadata,
    identities: &IdentityCache,
) -> Vec<PodInfo> {
    inputs
        .ips
        .values()
        .filter(|pair| !pair.k8s_pod_name.is_empty())
        .map(|pair| {
            let namespace = if pair.k8s_namespace.is_empty() {
                cilium_loadbalancer::names::DEFAULT_NAMESPACE
            } else {
                pair.k8s_namespace.as_str()
            };
            let object = metadata
                .pod(namespace, &pair.k8s_pod_name)
                .unwrap_or_else(|| crate::pod_metadata::PodInfo {
                    labels: identity_pod_labels(identities, pair.id),
                    ..Default::default()
                });
            PodInfo {
                namespace: namespace.to_string(),
                name: pair.k8s_pod_name.clone(),
                labels: object.labels,
                ip: pair.ip,
                node: inputs.nodes.get(&pair.host_ip).cloned().unwrap_or_default(),
                ports: object
                    .named_ports
                    .iter()
                    .filter_map(|(name, (port, protocol))| {
                        let protocol = match protocol {
                            cilium_policy::Protocol::Tcp => Protocol::Tcp,
                            cilium_policy::Protocol::Udp => Protocol::Udp,
                            _ => return None,
                        };
                        Some(NamedPort {
                            name: name.clone(),
                            port: *port,
                            protocol,
                        })
                    })
                    .collect(),
                terminating: object.terminating,
            }
        })
        .collect()
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// The plan in the API's terms, one element per frontend and scope.
fn api_services(state: &LbState) -> Vec<api::Service> {
    state
        .frontends
        .iter()
        .map(|(key, entry)| {
            let backend = |id: &cilium_loadbalancer::BackendId| {
                state.backends.get(id).map(|b| api::BackendAddress {
                    ip: b.addr.ip.to_string(),
                    port: b.addr.port,
                    protocol: protocol_name(b.addr.protocol).into(),
                    state: b.state.to_string(),
                    id: id.0,
                })
            };
            api::Service {
                spec: api::ServiceSpec {
                    id: entry.rev_nat.0,
                    frontend_address: api::FrontendAddress {
                        ip: key.addr.ip.to_string(),
                        port: key.addr.port,
                        protocol: protocol_name(key.addr.protocol).into(),
                        scope: match key.scope {
                            Scope::External => "external",
                            Scope::Internal => "internal",
                        }
                        .into(),
                    },
                    backend_addresses: entry
                        .slots
                        .iter()
                        .chain(&entry.terminating)
                        .filter_map(backend)
                        .collect(),
                    flags: api::ServiceSpecFlags {
                        service_type: entry.kind.to_string(),
                        name: entry.service.name.clone(),
                        namespace: entry.service.namespace.clone(),
                        algorithm: match entry.algorithm {
                            Algorithm::Random => "random",
                            Algorithm::Maglev => "maglev",
                        }
                        .into(),
                        affinity_timeout: entry.affinity_timeout,
                    },
                },
            }
        })
        .collect()
}

/// Follows the cluster's IP records, node records and identities, and re-plans whenever anything
/// changed. Writes nothing before the first resource listing is in.
pub async fn run(agent: Arc<Agent>) {
    let services = Arc::clone(&agent.services);
    let store: Arc<dyn KvStore> = Arc::clone(agent.cluster.store());
    let cluster = agent.cluster.cluster_name().to_string();
    let ips_prefix = keys::ip_prefix(&cluster);
    let nodes_prefix = keys::nodes_prefix(&cluster);
    let (ip_watch, node_watch) = loop {
        match (
            store.list(&ips_prefix).await,
            store.list(&nodes_prefix).await,
        ) {
            (Ok((ips, ip_rev)), Ok((nodes, node_rev))) => {
                let mut inputs = services.inputs.lock().expect("services lock");
                for kv in ips {
                    apply_ip(&mut inputs, &ips_prefix, WatchEvent::Put(kv));
                }
                for kv in nodes {
                    apply_node(&mut inputs, &nodes_prefix, WatchEvent::Put(kv));
                }
                break (
                    store.watch(&ips_prefix, ip_rev + 1),
                    store.watch(&nodes_prefix, node_rev + 1),
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    agent.identities.metadata().wait_synced().await;
    let follower = tokio::spawn(follow_records(
        Arc::clone(&services),
        agent.identity_cache.subscribe(),
        ip_watch,
        node_watch,
        ips_prefix,
        nodes_prefix,
    ));
    loop {
        let agent_now = Arc::clone(&agent);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            agent_now
                .services
                .sync(agent_now.identities.metadata(), &agent_now.identity_cache)
        })
        .await;
        let took = started.elapsed();
        if let Ok(Err(error)) = result {
            tracing::warn!(error = %crate::api::chain(&error), "services not fully programmed; retried at the next change");
        }
        services.wake.notified().await;
        tokio::time::sleep(COALESCE.max(took)).await;
        if follower.is_finished() {
            return;
        }
    }
}

async fn follow_records(
    services: Arc<Services>,
    mut identities: tokio::sync::watch::Receiver<u64>,
    mut ip_watch: cilium_kvstore::Watcher,
    mut node_watch: cilium_kvstore::Watcher,
    ips_prefix: String,
    nodes_prefix: String,
) {
    loop {
        tokio::select! {
            event = ip_watch.recv() => match event {
                Some(event) => apply_ip(&mut services.inputs.lock().expect("services lock"), &ips_prefix, event),
                None => return,
            },
            event = node_watch.recv() => match event {
                Some(event) => apply_node(&mut services.inputs.lock().expect("services lock"), &nodes_prefix, event),
                None => return,
            },
            // New identities may carry the labels of pods that have no Pod object.
            changed = identities.changed() => if changed.is_err() { return },
        }
        services.wake.notify_one();
    }
}

fn apply_ip(inputs: &mut Inputs, prefix: &str, event: WatchEvent) {
    let Some(ip) = keys::leaf(prefix, event.key()).and_then(|leaf| leaf.parse::<Ipv4Addr>().ok())
    else {
        return;
    };
    match event {
        WatchEvent::Put(kv) => {
            if let Ok(pair) = serde_json::from_slice::<IpIdentityPair>(&kv.value) {
                inputs.ips.insert(ip, pair);
            }
        }
        WatchEvent::Delete { .. } => {
            inputs.ips.remove(&ip);
        }
    }
}

fn apply_node(inputs: &mut Inputs, prefix: &str, event: WatchEvent) {
    let Some(name) = keys::leaf(prefix, event.key()).map(str::to_string) else {
        return;
    };
    match event {
        WatchEvent::Put(kv) => {
            if let Ok(record) = serde_json::from_slice::<NodeRecord>(&kv.value) {
                inputs.nodes.retain(|_, n| *n != name);
                if let Some(ip) = record.internal_ip() {
                    inputs.nodes.insert(ip, name);
                }
            }
        }
        WatchEvent::Delete { .. } => inputs.nodes.retain(|_, n| *n != name),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use cilium_loadbalancer::{LbConfig, Planner};
    use serde_json::json;

    use super::*;

    #[test]
    fn the_api_lists_each_frontend_with_its_backends() {
        let mut catalog = Catalog::new();
        catalog.upsert_service(
            Service::from_json(&json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "web"},
                         "ports": [{"port": 80, "targetPort": 8080}]}}))
            .expect("valid service"),
        );
        catalog.upsert_pod(PodInfo {
            namespace: "shop".into(),
            name: "web-a".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ip: Ipv4Addr::new(10, 0, 1, 5),
            node: "node1".into(),
            ports: Vec::new(),
            terminating: false,
        });
        let mut planner = Planner::new(LbConfig {
            node_name: "node1".into(),
            node_ips: vec![Ipv4Addr::new(192, 168, 0, 1)],
            default_algorithm: Algorithm::Random,
            maglev: Default::default(),
        });
        let listed = api_services(&planner.desired(&catalog).state);
        assert_eq!(listed.len(), 1, "{listed:?}");
        let spec = &listed[0].spec;
        assert_eq!(
            (
                spec.frontend_address.ip.as_str(),
                spec.frontend_address.port
            ),
            ("10.96.0.10", 80)
        );
        assert_eq!(spec.flags.service_type, "ClusterIP");
        assert_eq!(spec.backend_addresses.len(), 1);
        assert_eq!(
            (
                spec.backend_addresses[0].ip.as_str(),
                spec.backend_addresses[0].port
            ),
            ("10.0.1.5", 8080)
        );
    }
}
