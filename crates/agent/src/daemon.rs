//! Agent start-up and shutdown.
//!
//! Start-up order matters for a restart with pods running: the pinned maps and links are
//! adopted before anything is changed, so traffic keeps flowing while the agent comes up; the
//! kvstore is never waited for once the node has its pod CIDR (a restart keeps the one it
//! had); the API socket (and the CNI config that tells runtimes we are ready) come last.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cilium_datapath::maps::IpcacheMap;
use cilium_datapath::{
    AttachPreference, Datapath, DatapathConfig, EventReader, Routing, SocketLb, Underlay,
};
use cilium_endpoint::{EndpointManager, FileStore as EndpointFileStore};
use cilium_ipam::{ClusterPool, FileStore as IpamFileStore, HostScopeAllocator};
use cilium_kvstore::{EtcdConfig, EtcdStore, KvStore, MemoryStore};
use ipnet::Ipv4Net;
use tokio::net::UnixListener;

use crate::agent::{Agent, Endpoints, Ipam};
use crate::cluster::reconcile::NodeClusterDatapath;
use crate::cluster::view::LocalNode;
use crate::cluster::{pod_cidr, Cluster};
use crate::config::{AgentConfig, AttachModeArg, KvstoreKind, RoutingMode};
use crate::identity::{self, Identities};
use crate::kvstore_metrics::InstrumentedStore;
use crate::netns_cookie::NetnsCookies;
use crate::node_datapath::NodeDatapath;
use crate::policy::PolicyEngine;
use crate::{api, host_devices, monitor_server, node_address};

/// The tunnel device, as Cilium names it.
pub const TUNNEL_DEVICE: &str = "cilium_vxlan";
/// VXLAN over IPv4 adds 50 bytes; pods get the underlay MTU minus that in tunnel mode.
const TUNNEL_OVERHEAD: u32 = 50;
const UNDERLAY_MTU: u32 = 1500;
/// How long identity changes are gathered before the policies are re-resolved.
const POLICY_REFRESH_COALESCE: Duration = Duration::from_millis(20);
/// Longest pause between attempts to claim a pod CIDR while the kvstore is unreachable.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(mut config: AgentConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state dir {}", config.state_dir.display()))?;
    if let Some(dir) = config.socket.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating socket dir {}", dir.display()))?;
    }

    let store = connect_kvstore(&config).await?;
    let (pod_cidr, claim) = resolve_pod_cidr(&config, store.as_ref()).await?;
    let device = config.direct_routing_device.clone();
    let underlay = tokio::task::spawn_blocking(move || node_address::detect(device.as_deref()))
        .await
        .context("node address task panicked")??;

    let prepare_config = config.clone();
    let prepare_underlay = underlay.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(prepare_config, pod_cidr, prepare_underlay.as_ref())
    })
    .await
    .context("start-up task panicked")??;
    let node_ip = underlay
        .as_ref()
        .map_or(prepared.router_ip, |u| u.address.addr());
    // Held until shutdown: dropping it detaches the socket hooks. The flag reports what is in
    // effect (`cilium status`).
    let socket_lb = prepared.socket_lb;
    config.bpf_lb_sock = socket_lb.is_some();
    let route_device = underlay.map(|u| u.device).unwrap_or_default();

    let local = LocalNode {
        name: config.node_name.clone(),
        node_ip,
        router_ip: prepared.router_ip,
        pod_cidr,
        routing: config.routing_mode,
    };
    let cluster = Cluster::start(
        store,
        &config.cluster_name,
        local,
        Duration::from_secs(config.kvstore_lease_ttl.max(1)),
        claim,
        NodeClusterDatapath {
            ipcache: prepared.ipcache,
            device: route_device,
            tunnel_device: TUNNEL_DEVICE.into(),
        },
    );
    let (identities, identity_queue) = Identities::new(
        Arc::clone(cluster.store()),
        Arc::clone(cluster.owned_keys()),
        &config.node_name,
        &config.cluster_name,
    );
    let netns_cookies = NetnsCookies::default();
    {
        let endpoints = prepared.endpoints.lock().expect("endpoints lock");
        for ep in endpoints.list() {
            cluster.endpoint_up(ep.ipv4, ep.identity, &ep.k8s_namespace, &ep.k8s_pod_name);
            netns_cookies.learn(ep.id, &ep.netns);
            // Take this node's identity references again; the number normally stays, so the
            // running programs are left alone.
            identities.resolve_later(cilium_endpoint::EndpointSelector::Id(ep.id));
        }
    }

    let services = crate::services::Services::open(
        cilium_loadbalancer::LbConfig {
            node_name: config.node_name.clone(),
            node_ips: vec![node_ip],
            default_algorithm: cilium_loadbalancer::Algorithm::Random,
            maglev: Default::default(),
        },
        &cilium_datapath::bpffs::BpfPaths::new(config.bpf_root.clone()),
    )
    .context("opening the service load balancer")?;
    let identity_cache = cilium_identity::IdentityCache::start(Arc::clone(cluster.store()))
        .await
        .context("following the cluster's identities")?;
    let agent = Arc::new(Agent {
        config: config.clone(),
        attach_mode: prepared.attach_mode,
        started,
        ipam: prepared.ipam,
        endpoints: prepared.endpoints,
        cluster,
        identities: Arc::new(identities),
        identity_cache,
        policy: PolicyEngine::new(config.enable_policy),
        services: Arc::new(services),
        netns_cookies,
    });
    tokio::spawn(identity::run_worker(Arc::clone(&agent), identity_queue));
    spawn_policy_refresh(Arc::clone(&agent));
    tokio::spawn(crate::resources::follow(Arc::clone(&agent)));
    tokio::spawn(crate::services::run(Arc::clone(&agent)));

    let hubble = crate::hubble::start(&agent).await?;
    crate::metrics::start(&agent, hubble.as_ref()).await?;
    monitor_server::start(&config.monitor_socket(), prepared.events, hubble)?;
    spawn_conntrack_gc(agent.clone());
    spawn_identity_gc(agent.clone());

    let _ = std::fs::remove_file(&config.socket);
    let listener = UnixListener::bind(&config.socket)
        .with_context(|| format!("binding the API socket {}", config.socket.display()))?;
    if let Some(path) = &config.write_cni_conf_when_ready {
        let mtu =
            (config.routing_mode == RoutingMode::Tunnel).then_some(UNDERLAY_MTU - TUNNEL_OVERHEAD);
        write_cni_config(path, &config.socket, mtu)?;
    }
    tracing::info!(
        socket = %config.socket.display(),
        %pod_cidr,
        %node_ip,
        routing = config.routing_mode.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "agent ready"
    );

    axum::serve(listener, api::router(agent))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;

    if let Some(socket_lb) = socket_lb {
        let cgroup = socket_lb.cgroup().display().to_string();
        drop(socket_lb);
        tracing::info!(%cgroup, "socket load balancing detached");
    }
    for socket in [
        config.socket.clone(),
        config.monitor_socket(),
        config.hubble_socket(),
    ] {
        let _ = std::fs::remove_file(socket);
    }
    tracing::info!("agent stopped; datapath left in place for running pods");
    Ok(())
}

/// The configured store, every operation timed for the agent's metrics.
async fn connect_kvstore(config: &AgentConfig) -> anyhow::Result<Arc<dyn KvStore>> {
    let (store, kind): (Arc<dyn KvStore>, &'static str) = match config.kvstore {
        KvstoreKind::Embedded => (Arc::new(MemoryStore::new()), "embedded"),
        KvstoreKind::Etcd => {
            anyhow::ensure!(
                !config.kvstore_endpoints.is_empty(),
                "--kvstore etcd needs --kvstore-endpoints"
            );
            let etcd = EtcdStore::connect(EtcdConfig::new(config.kvstore_endpoints.clone()))
                .await
                .context("setting up the etcd client")?;
            (Arc::new(etcd), "etcd")
        }
    };
    Ok(Arc::new(InstrumentedStore::new(store, kind)))
}

/// The node's pod CIDR: given on the command line, kept from before a restart, or claimed
/// from the cluster pool (waiting for the kvstore if it is not reachable yet). Returns the
/// claim key when the CIDR belongs to the pool, so the claim stays on the node's lease.
async fn resolve_pod_cidr(
    config: &AgentConfig,
    store: &dyn KvStore,
) -> anyhow::Result<(Ipv4Net, Option<String>)> {
    if let Some(cidr) = config.pod_cidr {
        return Ok((cidr, None));
    }
    let file = config.pod_cidr_file();
    if let Ok(text) = std::fs::read_to_string(&file) {
        let cidr: Ipv4Net = text
            .trim()
            .parse()
            .with_context(|| format!("{} holds no CIDR", file.display()))?;
        return Ok((cidr, Some(pod_cidr::claim_key(&config.cluster_name, cidr))));
    }
    let pool = ClusterPool::new(
        config.cluster_pool_ipv4_cidr,
        config.cluster_pool_ipv4_mask_size,
    )?;
    let mut pause = Duration::from_millis(100);
    let cidr = loop {
        match pod_cidr::claim(store, &pool, &config.cluster_name, &config.node_name).await {
            Ok(cidr) => break cidr,
            Err(pod_cidr::PodCidrError::Store(error)) => {
                tracing::warn!(error = %api::chain(&error), "kvstore unreachable; waiting to claim a pod CIDR");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(CLAIM_RETRY_MAX);
            }
            Err(error) => return Err(error.into()),
        }
    };
    std::fs::write(&file, format!("{cidr}\n"))
        .with_context(|| format!("remembering the pod CIDR in {}", file.display()))?;
    tracing::info!(%cidr, "pod CIDR claimed from the cluster pool");
    Ok((cidr, Some(pod_cidr::claim_key(&config.cluster_name, cidr))))
}

/// What the blocking part of start-up hands back.
struct Prepared {
    router_ip: Ipv4Addr,
    attach_mode: String,
    ipam: Mutex<Ipam>,
    endpoints: Mutex<Endpoints>,
    ipcache: IpcacheMap,
    events: EventReader,
    socket_lb: Option<SocketLb>,
}

/// Everything that needs syscalls before serving: state, devices, datapath, restore.
/// The underlay device (none on a node without one) gets the host device program, and its
/// address is registered as a host address like the router IP.
fn prepare(
    config: AgentConfig,
    pod_cidr: Ipv4Net,
    underlay: Option<&Underlay>,
) -> anyhow::Result<Prepared> {
    let mut ipam: Ipam =
        HostScopeAllocator::open(pod_cidr, IpamFileStore::new(config.ipam_state_file()))
            .context("opening IPAM state")?;
    let router_ip = ipam.router();
    host_devices::ensure(router_ip)?;
    let routing = match config.routing_mode {
        RoutingMode::Native => Routing::Native,
        RoutingMode::Tunnel => {
            host_devices::ensure_tunnel(TUNNEL_DEVICE, config.tunnel_port)?;
            Routing::Tunnel {
                device: TUNNEL_DEVICE.into(),
                port: config.tunnel_port,
            }
        }
    };

    let datapath = Datapath::open(DatapathConfig {
        bpf_root: config.bpf_root.clone(),
        attach: match config.attach_mode {
            AttachModeArg::Auto => AttachPreference::Auto,
            AttachModeArg::Tcx => AttachPreference::Tcx,
            AttachModeArg::Tc => AttachPreference::Tc,
        },
        monitor_aggregation: config.monitor_aggregation.datapath_level(),
        routing: routing.clone(),
        underlay: underlay.cloned(),
    })
    .context("opening the BPF datapath")?;
    if let Routing::Tunnel { device, .. } = &routing {
        datapath
            .attach_overlay(device)
            .with_context(|| format!("attaching the overlay program to {device}"))?;
    }
    datapath
        .upsert_host_ip(router_ip)
        .context("registering the router IP in cilium_lxc")?;
    if let Some(Underlay { device, address }) = underlay {
        let address = address.addr();
        // Before the program: it decapsulates tunnel traffic sent to a host address only.
        datapath
            .upsert_host_ip(address)
            .with_context(|| format!("registering the node IP {address} in cilium_lxc"))?;
        datapath
            .attach_host_device(device)
            .with_context(|| format!("attaching the host device program to {device}"))?;
    }
    let socket_lb = attach_socket_lb(&config, &datapath)?;
    let attach_mode = datapath.attach_mode().to_string();
    let events = datapath
        .event_reader()
        .context("opening the events ring buffer")?;
    let ipcache = IpcacheMap::open(datapath.paths()).context("opening the ipcache")?;

    let store =
        EndpointFileStore::open(config.endpoints_dir()).context("opening endpoint records")?;
    let mut endpoints: Endpoints = EndpointManager::new(NodeDatapath::new(datapath), store);
    let report = endpoints.restore().context("restoring endpoints")?;
    for (id, reason) in &report.failed {
        tracing::warn!(endpoint = %id, reason, "endpoint could not be restored");
    }
    for endpoint in endpoints.list() {
        if let Err(error) = ipam.allocate_specific(endpoint.ipv4, &endpoint.container_id) {
            tracing::warn!(endpoint = %endpoint.id, %error, "restored endpoint's address conflicts with IPAM state");
        }
    }
    tracing::info!(
        kept = report.kept.len(),
        reinstalled = report.reinstalled.len(),
        failed = report.failed.len(),
        "endpoints restored"
    );
    Ok(Prepared {
        router_ip,
        attach_mode,
        ipam: Mutex::new(ipam),
        endpoints: Mutex::new(endpoints),
        ipcache,
        events,
        socket_lb,
    })
}

/// Socket-LB on `--cgroup-root` when `--bpf-lb-sock` is on. Without a cgroup it stays off:
/// the machine's root cgroup would translate every process's connections, so it is used only
/// when given explicitly.
fn attach_socket_lb(config: &AgentConfig, datapath: &Datapath) -> anyhow::Result<Option<SocketLb>> {
    if !config.bpf_lb_sock {
        tracing::info!("socket load balancing disabled (--bpf-lb-sock=false)");
        return Ok(None);
    }
    let Some(cgroup) = &config.cgroup_root else {
        tracing::warn!(
            "socket load balancing needs --cgroup-root; services are translated per packet only"
        );
        return Ok(None);
    };
    let socket_lb = datapath.attach_socket_lb(cgroup).with_context(|| {
        format!(
            "attaching socket load balancing to cgroup {}",
            cgroup.display()
        )
    })?;
    Ok(Some(socket_lb))
}

/// Re-resolves local endpoints' policies when the cluster's identities change (a pod with
/// matching labels appeared or went away on any node). Changes arriving together (a burst of
/// identities) are taken in one pass after [`POLICY_REFRESH_COALESCE`].
fn spawn_policy_refresh(agent: Arc<Agent>) {
    let mut changes = agent.identity_cache.subscribe();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            tokio::time::sleep(POLICY_REFRESH_COALESCE).await;
            changes.borrow_and_update();
            let agent = Arc::clone(&agent);
            let _ = tokio::task::spawn_blocking(move || agent.apply_policies()).await;
        }
    });
}

/// Deletes the cluster's unused identities every `--identity-gc-interval` seconds.
fn spawn_identity_gc(agent: Arc<Agent>) {
    let secs = agent.config.identity_gc_interval;
    if secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(secs));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match agent.identities.collect_unused().await {
                Ok(stats) if stats.deleted > 0 => {
                    tracing::info!(
                        deleted = stats.deleted,
                        alive = stats.alive,
                        "unused identities deleted"
                    )
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %api::chain(&error), "identity garbage collection failed")
                }
            }
        }
    });
}

/// Expires conntrack entries periodically, without holding the endpoints lock (a pass over a
/// full table must not hold up endpoint creation).
fn spawn_conntrack_gc(agent: Arc<Agent>) {
    let interval = Duration::from_secs(agent.config.conntrack_gc_interval.max(1));
    let paths = agent
        .endpoints
        .lock()
        .expect("endpoints lock")
        .datapath()
        .bpf()
        .paths()
        .clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let paths = paths.clone();
            let result = tokio::task::spawn_blocking(move || cilium_datapath::ct_gc(&paths)).await;
            match result {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => tracing::debug!(deleted, "conntrack entries expired"),
                Ok(Err(error)) => {
                    tracing::warn!(error = %api::chain(&error), "conntrack GC failed")
                }
                Err(error) => tracing::warn!(%error, "conntrack GC task failed"),
            }
        }
    });
}

/// Writes the CNI config list atomically: runtimes treat its presence as "network ready".
fn write_cni_config(path: &Path, socket: &Path, mtu: Option<u32>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, cilium_cni::conflist::render(socket, mtu))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "CNI configuration written");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}
