//! The node's place in the cluster: the kvstore connection, this node's entries in it (node
//! record, pod CIDR claim, its pods' addresses — all on one lease), and the sync task that
//! mirrors the other nodes and their pods into the datapath.
//!
//! Nothing here sits on the forwarding path: when the kvstore is unreachable the datapath
//! keeps what it has, writes are retried by [`LeasedKeys`], and the watches resume and catch
//! up when it returns.

pub mod pod_cidr;
pub mod reconcile;
pub mod records;
pub mod view;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cilium_kvstore::{keys, KvError, KvStore, LeasedKeys, StoreStatus, WatchEvent, Watcher};
use ipnet::Ipv4Net;
use tokio::sync::{mpsc, watch};

use reconcile::{NodeClusterDatapath, Reconciler};
use records::{IpIdentityPair, NodeAddress, NodeRecord, CILIUM_INTERNAL_IP, INTERNAL_IP};
use view::{ClusterView, LocalNode};

/// Longest pause between retries of the initial listing while the kvstore is unreachable.
const LIST_RETRY_MAX: Duration = Duration::from_secs(5);

/// A change to this node's own published entries.
enum Publication {
    EndpointUp(IpIdentityPair),
    EndpointDown(Ipv4Addr),
}

/// Handle on the cluster membership of this node.
pub struct Cluster {
    store: Arc<dyn KvStore>,
    cluster_name: String,
    local: LocalNode,
    nodes: Arc<Mutex<BTreeMap<String, NodeRecord>>>,
    publications: mpsc::UnboundedSender<Publication>,
    owned: Arc<LeasedKeys>,
    /// Prefixes local policies give CIDR identities, for the ipcache.
    policy_prefixes: watch::Sender<BTreeMap<Ipv4Net, u32>>,
}

impl Cluster {
    /// Registers this node (node record and, when it came from the pool, the pod CIDR
    /// claim) on a lease of `lease_ttl`, and starts mirroring the cluster into `datapath`.
    /// Needs a tokio runtime; never waits for the kvstore.
    pub fn start(
        store: Arc<dyn KvStore>,
        cluster_name: &str,
        local: LocalNode,
        lease_ttl: Duration,
        pod_cidr_claim: Option<String>,
        datapath: NodeClusterDatapath,
    ) -> Cluster {
        let nodes = Arc::new(Mutex::new(BTreeMap::new()));
        let (publications, queue) = mpsc::unbounded_channel();
        let record = NodeRecord {
            name: local.name.clone(),
            cluster: cluster_name.to_string(),
            ip_addresses: vec![
                NodeAddress {
                    address_type: INTERNAL_IP.into(),
                    ip: local.node_ip,
                },
                NodeAddress {
                    address_type: CILIUM_INTERNAL_IP.into(),
                    ip: local.router_ip,
                },
            ],
            ipv4_alloc_cidr: Some(local.pod_cidr),
        };
        let mut own = vec![(
            keys::node(cluster_name, &local.name),
            serde_json::to_vec(&record).expect("node record serializes"),
        )];
        if let Some(claim) = pod_cidr_claim {
            own.push((claim, local.name.clone().into_bytes()));
        }
        let owned = Arc::new(LeasedKeys::new(Arc::clone(&store), lease_ttl));
        let (policy_prefixes, prefixes) = watch::channel(BTreeMap::new());
        tokio::spawn(publish(
            Arc::clone(&owned),
            own,
            cluster_name.to_string(),
            queue,
        ));
        tokio::spawn(sync(
            Arc::clone(&store),
            cluster_name.to_string(),
            ClusterView::new(local.clone()),
            Arc::clone(&nodes),
            prefixes,
            datapath,
        ));
        Cluster {
            store,
            cluster_name: cluster_name.to_string(),
            local,
            nodes,
            publications,
            owned,
            policy_prefixes,
        }
    }

    /// Puts the CIDR identities of local policies into the ipcache (below the cluster's own
    /// entries: a pod's or node's address keeps its identity).
    pub fn set_policy_prefixes(&self, prefixes: BTreeMap<Ipv4Net, u32>) {
        self.policy_prefixes.send_replace(prefixes);
    }

    /// The lease-bound keys this node owns; identity references live there too.
    pub fn owned_keys(&self) -> &Arc<LeasedKeys> {
        &self.owned
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    pub fn local(&self) -> &LocalNode {
        &self.local
    }

    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    /// Publishes a local endpoint's address and identity (in the background).
    pub fn endpoint_up(&self, ip: Ipv4Addr, identity: u32, namespace: &str, pod: &str) {
        let _ = self
            .publications
            .send(Publication::EndpointUp(IpIdentityPair {
                ip,
                id: identity,
                host_ip: self.local.node_ip,
                key: 0,
                k8s_namespace: namespace.to_string(),
                k8s_pod_name: pod.to_string(),
            }));
    }

    /// Withdraws a local endpoint's address (in the background).
    pub fn endpoint_down(&self, ip: Ipv4Addr) {
        let _ = self.publications.send(Publication::EndpointDown(ip));
    }

    /// Every node known from the kvstore, this one included once registered.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.nodes
            .lock()
            .expect("nodes lock")
            .values()
            .cloned()
            .collect()
    }

    pub async fn kvstore_status(&self) -> StoreStatus {
        self.store.status().await
    }
}

/// Owns this node's keys: writes the node's own entries, then follows endpoint changes.
async fn publish(
    leased: Arc<LeasedKeys>,
    own: Vec<(String, Vec<u8>)>,
    cluster: String,
    mut queue: mpsc::UnboundedReceiver<Publication>,
) {
    for (key, value) in own {
        if let Err(error) = leased.put(&key, value).await {
            tracing::warn!(key, error = %crate::api::chain(&error), "kvstore write failed; retrying in the background");
        }
    }
    while let Some(publication) = queue.recv().await {
        let result = match publication {
            Publication::EndpointUp(pair) => {
                let key = keys::ip(&cluster, pair.ip.into());
                leased
                    .put(&key, serde_json::to_vec(&pair).expect("IP pair serializes"))
                    .await
            }
            Publication::EndpointDown(ip) => leased.delete(&keys::ip(&cluster, ip.into())).await,
        };
        if let Err(error) = result {
            tracing::warn!(error = %crate::api::chain(&error), "kvstore write failed; retrying in the background");
        }
    }
}

/// Lists, then watches, the nodes and IP entries of the cluster and applies every change.
async fn sync(
    store: Arc<dyn KvStore>,
    cluster: String,
    mut view: ClusterView,
    nodes: Arc<Mutex<BTreeMap<String, NodeRecord>>>,
    mut prefixes: watch::Receiver<BTreeMap<Ipv4Net, u32>>,
    mut datapath: NodeClusterDatapath,
) {
    let nodes_prefix = keys::nodes_prefix(&cluster);
    let ips_prefix = keys::ip_prefix(&cluster);
    let mut reconciler = Reconciler::default();
    // Entries applied before a restart are still in the pinned map: start from them, so those
    // that vanished from the cluster meanwhile are removed by the first reconciliation.
    reconciler.adopt(&datapath.ipcache);

    let (node_entries, node_rev) = list_until_answered(store.as_ref(), &nodes_prefix).await;
    let (ip_entries, ip_rev) = list_until_answered(store.as_ref(), &ips_prefix).await;
    for kv in node_entries {
        apply_node(&mut view, &nodes_prefix, WatchEvent::Put(kv));
    }
    for kv in ip_entries {
        apply_ip(&mut view, &ips_prefix, WatchEvent::Put(kv));
    }
    view.policy_prefixes = prefixes.borrow_and_update().clone();
    reconcile(&mut reconciler, &view, &nodes, &mut datapath);

    let mut node_watch: Watcher = store.watch(&nodes_prefix, node_rev + 1);
    let mut ip_watch: Watcher = store.watch(&ips_prefix, ip_rev + 1);
    loop {
        tokio::select! {
            event = node_watch.recv() => match event {
                Some(event) => apply_node(&mut view, &nodes_prefix, event),
                None => return,
            },
            event = ip_watch.recv() => match event {
                Some(event) => apply_ip(&mut view, &ips_prefix, event),
                None => return,
            },
            changed = prefixes.changed() => match changed {
                Ok(()) => view.policy_prefixes = prefixes.borrow_and_update().clone(),
                Err(_) => return,
            },
        }
        reconcile(&mut reconciler, &view, &nodes, &mut datapath);
    }
}

fn reconcile(
    reconciler: &mut Reconciler,
    view: &ClusterView,
    nodes: &Mutex<BTreeMap<String, NodeRecord>>,
    datapath: &mut NodeClusterDatapath,
) {
    *nodes.lock().expect("nodes lock") = view.nodes.clone();
    for failure in reconciler.apply(view, datapath) {
        tracing::warn!(
            failure,
            "applying cluster state to the datapath failed; retried at the next change"
        );
    }
}

fn apply_node(view: &mut ClusterView, prefix: &str, event: WatchEvent) {
    let Some(name) = keys::leaf(prefix, event.key()).map(str::to_string) else {
        return;
    };
    match event {
        WatchEvent::Put(kv) => match serde_json::from_slice::<NodeRecord>(&kv.value) {
            Ok(record) => {
                if !view.nodes.contains_key(&name) {
                    tracing::info!(node = name, "node joined");
                }
                view.nodes.insert(name, record);
            }
            Err(error) => tracing::warn!(key = kv.key, %error, "ignoring malformed node entry"),
        },
        WatchEvent::Delete { .. } => {
            if view.nodes.remove(&name).is_some() {
                tracing::info!(node = name, "node left");
            }
        }
    }
}

fn apply_ip(view: &mut ClusterView, prefix: &str, event: WatchEvent) {
    let Some(ip) = keys::leaf(prefix, event.key()).and_then(|leaf| leaf.parse::<Ipv4Addr>().ok())
    else {
        return;
    };
    match event {
        WatchEvent::Put(kv) => match serde_json::from_slice::<IpIdentityPair>(&kv.value) {
            Ok(pair) if pair.ip == ip => {
                view.ips.insert(ip, pair);
            }
            Ok(_) | Err(_) => tracing::warn!(key = kv.key, "ignoring malformed IP entry"),
        },
        WatchEvent::Delete { .. } => {
            view.ips.remove(&ip);
        }
    }
}

/// Lists `prefix`, retrying with backoff while the kvstore does not answer.
async fn list_until_answered(
    store: &dyn KvStore,
    prefix: &str,
) -> (Vec<cilium_kvstore::KeyValue>, i64) {
    let mut pause = Duration::from_millis(100);
    loop {
        match store.list(prefix).await {
            Ok(listing) => return listing,
            Err(error) => {
                log_unreachable(prefix, &error);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LIST_RETRY_MAX);
            }
        }
    }
}

fn log_unreachable(prefix: &str, error: &KvError) {
    tracing::warn!(prefix, error = %crate::api::chain(error), "kvstore unreachable; datapath keeps its state, retrying");
}
