//! `hubble-relay`: serves one Observer API for the whole cluster, merging the flows of every
//! node whose agent publishes a Hubble peer record in the kvstore.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cilium_hubble::serve;
use cilium_hubble_relay::service::RelayConfig;
use cilium_hubble_relay::{Peers, RelayService};
use cilium_kvstore::{EtcdConfig, EtcdStore, KvStore};
use clap::Parser;

/// Hubble relay: one Observer API for every node of a cluster.
#[derive(Debug, Parser)]
#[command(name = "hubble-relay", version)]
struct Args {
    /// TCP address to serve on (Cilium's `:4245`); empty to serve only on --unix-socket.
    #[arg(long, default_value = ":4245")]
    listen_address: String,
    /// Also serve on this unix socket.
    #[arg(long)]
    unix_socket: Option<std::path::PathBuf>,
    /// etcd client URLs where the agents publish their Hubble peers.
    #[arg(long, required = true, value_delimiter = ',')]
    kvstore_endpoints: Vec<String>,
    /// The cluster whose nodes to relay.
    #[arg(long, default_value = "default")]
    cluster_name: String,
    /// Seconds to wait for a TCP connection to a node.
    #[arg(long, default_value_t = 2)]
    dial_timeout: u64,
    /// Seconds to wait for a node's answer.
    #[arg(long, default_value_t = 5)]
    request_timeout: u64,
    /// Milliseconds a followed flow waits for older flows from other nodes.
    #[arg(long, default_value_t = 100)]
    sort_buffer_drain_timeout_ms: u64,
}

/// Cilium's `:PORT` (every address) or `HOST:PORT`.
fn tcp_address(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse()
        .with_context(|| format!("--listen-address {text:?} is not [HOST]:PORT"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store: Arc<dyn KvStore> = Arc::new(
        EtcdStore::connect(EtcdConfig::new(args.kvstore_endpoints.clone()))
            .await
            .context("connecting to the kvstore")?,
    );
    let peers = Arc::new(Peers::new(Duration::from_secs(args.dial_timeout)));
    tokio::spawn(Arc::clone(&peers).follow(store, args.cluster_name.clone()));
    let service = RelayService::new(
        peers,
        RelayConfig {
            request_timeout: Duration::from_secs(args.request_timeout),
            sort_window: Duration::from_millis(args.sort_buffer_drain_timeout_ms),
        },
    );
    let mut servers = tokio::task::JoinSet::new();
    if let Some(path) = &args.unix_socket {
        let listener = serve::bind_unix(path)?;
        tracing::info!(socket = %path.display(), "relay serving on a unix socket");
        servers.spawn(serve::serve_unix(listener, service.clone(), shutdown()));
    }
    if !args.listen_address.is_empty() {
        let address = tcp_address(&args.listen_address)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        tracing::info!(%address, "relay serving on TCP");
        servers.spawn(serve::serve_tcp(listener, service, shutdown()));
    }
    anyhow::ensure!(
        !servers.is_empty(),
        "nothing to serve on: give --listen-address or --unix-socket"
    );
    while let Some(done) = servers.join_next().await {
        done.context("server task")??;
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "SIGTERM cannot be handled; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
