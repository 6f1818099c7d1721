//! Agent start-up and shutdown.
//!
//! Start-up order matters for a restart with pods running: the pinned maps and links are
//! adopted before anything is changed, so traffic keeps flowing while the agent comes up; the
//! API socket (and the CNI config that tells runtimes we are ready) come last.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cilium_datapath::{AttachPreference, Datapath, DatapathConfig, EventReader};
use cilium_endpoint::{EndpointManager, FileStore as EndpointFileStore};
use cilium_ipam::{FileStore as IpamFileStore, HostScopeAllocator};
use tokio::net::UnixListener;

use crate::agent::{Agent, Endpoints, Ipam, PLACEHOLDER_IDENTITY, PLACEHOLDER_IDENTITY_LABELS};
use crate::config::{AgentConfig, AttachModeArg};
use crate::node_datapath::NodeDatapath;
use crate::{api, host_devices, monitor_server};

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let prepare_config = config.clone();
    let (agent, events) = tokio::task::spawn_blocking(move || prepare(prepare_config, started))
        .await
        .context("start-up task panicked")??;

    monitor_server::start(&config.monitor_socket(), events)?;
    spawn_conntrack_gc(agent.clone());

    let _ = std::fs::remove_file(&config.socket);
    let listener = UnixListener::bind(&config.socket)
        .with_context(|| format!("binding the API socket {}", config.socket.display()))?;
    if let Some(path) = &config.write_cni_conf_when_ready {
        write_cni_config(path, &config.socket)?;
    }
    tracing::info!(
        socket = %config.socket.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "agent ready"
    );

    axum::serve(listener, api::router(agent))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;

    for socket in [config.socket.clone(), config.monitor_socket()] {
        let _ = std::fs::remove_file(socket);
    }
    tracing::info!("agent stopped; datapath left in place for running pods");
    Ok(())
}

/// Everything that needs syscalls before serving: state, devices, datapath, restore.
fn prepare(config: AgentConfig, started: Instant) -> anyhow::Result<(Arc<Agent>, EventReader)> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state dir {}", config.state_dir.display()))?;
    if let Some(dir) = config.socket.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating socket dir {}", dir.display()))?;
    }

    let mut ipam: Ipam = HostScopeAllocator::open(
        config.pod_cidr,
        IpamFileStore::new(config.ipam_state_file()),
    )
    .context("opening IPAM state")?;
    let router = ipam.router();
    host_devices::ensure(router)?;

    let datapath = Datapath::open(DatapathConfig {
        bpf_root: config.bpf_root.clone(),
        attach: match config.attach_mode {
            AttachModeArg::Auto => AttachPreference::Auto,
            AttachModeArg::Tcx => AttachPreference::Tcx,
            AttachModeArg::Tc => AttachPreference::Tc,
        },
        monitor_aggregation: config.monitor_aggregation.datapath_level(),
    })
    .context("opening the BPF datapath")?;
    datapath
        .upsert_host_ip(router)
        .context("registering the router IP in cilium_lxc")?;
    let attach_mode = datapath.attach_mode().to_string();
    let events = datapath
        .event_reader()
        .context("opening the events ring buffer")?;

    let store =
        EndpointFileStore::open(config.endpoints_dir()).context("opening endpoint records")?;
    let mut endpoints: Endpoints = EndpointManager::new(
        NodeDatapath::new(datapath),
        store,
        PLACEHOLDER_IDENTITY,
        PLACEHOLDER_IDENTITY_LABELS
            .iter()
            .map(|l| l.to_string())
            .collect(),
    );
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

    let agent = Arc::new(Agent {
        config,
        attach_mode,
        started,
        ipam: Mutex::new(ipam),
        endpoints: Mutex::new(endpoints),
    });
    Ok((agent, events))
}

fn spawn_conntrack_gc(agent: Arc<Agent>) {
    let interval = Duration::from_secs(agent.config.conntrack_gc_interval.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let agent = agent.clone();
            let result = tokio::task::spawn_blocking(move || {
                agent
                    .endpoints
                    .lock()
                    .expect("endpoints lock")
                    .datapath()
                    .bpf()
                    .ct_gc()
            })
            .await;
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
fn write_cni_config(path: &Path, socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, cilium_cni::conflist::render(socket))
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
