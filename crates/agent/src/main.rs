//! `cilium-agent`: parse the command line, set up logging, run the daemon.

mod agent;
mod api;
mod cidr_identity;
mod cluster;
mod config;
mod daemon;
mod host_devices;
mod hubble;
mod identity;
mod kvstore_metrics;
mod metrics;
mod monitor_server;
mod netns_cookie;
mod node_address;
mod node_datapath;
mod pod_metadata;
mod policy;
mod policy_trace;
mod resources;
mod services;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = config::AgentConfig::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _span = tracing::info_span!("agent", node = %config.node_name).entered();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
