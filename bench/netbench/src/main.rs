//! The `netbench` binary: `server`, `rr` and `crr`; results are printed as one JSON object.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use netbench::client::{self, RunConfig, MAX_TRANSACTIONS};
use netbench::server::Server;

/// TCP request/response and connect/close rate benchmark.
#[derive(Debug, Parser)]
#[command(name = "netbench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo server (all connections on one thread).
    Server {
        /// Port to listen on (all IPv4 addresses).
        #[arg(long)]
        port: u16,
        /// Exit after this many seconds (default: run until killed).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Request/response ping-pong over one connection.
    Rr {
        #[arg(long)]
        addr: SocketAddr,
        /// Seconds to run.
        #[arg(long)]
        duration: f64,
        /// Bytes per request and response.
        #[arg(long, default_value_t = 1)]
        size: usize,
        /// Stop after this many transactions even if time is left.
        #[arg(long, default_value_t = MAX_TRANSACTIONS)]
        max_transactions: u64,
    },
    /// Connect, 1-byte request, response, close — in a loop.
    Crr {
        #[arg(long)]
        addr: SocketAddr,
        /// Seconds to run.
        #[arg(long)]
        duration: f64,
        /// Stop after this many connections even if time is left.
        #[arg(long, default_value_t = MAX_TRANSACTIONS)]
        max_transactions: u64,
    },
}

fn seconds(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .context("--duration must be a non-negative number of seconds")
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Server { port, duration } => {
            let server = Server::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
            eprintln!("netbench server listening on {}", server.local_addr()?);
            server.run(duration.map(seconds).transpose()?);
        }
        Command::Rr {
            addr,
            duration,
            size,
            max_transactions,
        } => {
            let cfg = RunConfig {
                addr,
                duration: seconds(duration)?,
                size,
                max_transactions: max_transactions.min(MAX_TRANSACTIONS),
            };
            println!("{}", serde_json::to_string(&client::rr(&cfg)?)?);
        }
        Command::Crr {
            addr,
            duration,
            max_transactions,
        } => {
            let cfg = RunConfig {
                addr,
                duration: seconds(duration)?,
                size: 1,
                max_transactions: max_transactions.min(MAX_TRANSACTIONS),
            };
            println!("{}", serde_json::to_string(&client::crr(&cfg)?)?);
        }
    }
    Ok(())
}
