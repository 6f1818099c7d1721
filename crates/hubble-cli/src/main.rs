//! `hubble`: observe flows, status and nodes of a Cilium agent's Hubble server or of a
//! Hubble relay, with Cilium's flags, defaults and output formats.

mod cli;
mod filters;
mod format;
mod printer;
mod status;
mod when;

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use cilium_hubble::api::{GetFlowsRequest, GetNodesRequest, ServerStatusRequest};
use cilium_hubble::client;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ListWhat, Observe, Output};
use crate::printer::Printer;

/// Flows shown without `--last`, `--first`, `--all`, `--follow`, `--since` or `--until`.
const DEFAULT_LAST: u64 = 20;

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &cli.command {
            Command::Observe(observe) => {
                let sub = matches
                    .subcommand_matches("observe")
                    .context("observe's arguments")?;
                let request = request(observe, sub, SystemTime::now())?;
                self::observe(&cli, observe, request).await
            }
            Command::Status => status(&cli).await,
            Command::List {
                what: ListWhat::Nodes,
            } => list_nodes(&cli).await,
        }
    })
}

/// The `GetFlows` request an `observe` command line asks for.
fn request(
    observe: &Observe,
    matches: &clap::ArgMatches,
    now: SystemTime,
) -> anyhow::Result<GetFlowsRequest> {
    if observe.output == Output::Table && observe.follow {
        bail!("--output table cannot be used with --follow");
    }
    let (whitelist, blacklist) = filters::from_matches(matches)?;
    let since = observe
        .since
        .as_deref()
        .map(|v| when::parse(v, now))
        .transpose()
        .context("--since")?;
    let until = observe
        .until
        .as_deref()
        .map(|v| when::parse(v, now))
        .transpose()
        .context("--until")?;
    let number = match (observe.first, observe.last) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) if observe.all || observe.follow || since.is_some() || until.is_some() => 0,
        (None, None) => DEFAULT_LAST,
    };
    Ok(GetFlowsRequest {
        number,
        first: observe.first.is_some(),
        follow: observe.follow,
        whitelist,
        blacklist,
        since,
        until,
    })
}

async fn connect(
    cli: &Cli,
) -> anyhow::Result<cilium_hubble::api::observer_client::ObserverClient<tonic::transport::Channel>>
{
    tokio::time::timeout(
        Duration::from_secs(cli.timeout),
        client::connect(&cli.server),
    )
    .await
    .with_context(|| format!("connecting to {} timed out", cli.server))?
    .with_context(|| format!("connecting to Hubble at {}", cli.server))
}

async fn observe(cli: &Cli, observe: &Observe, request: GetFlowsRequest) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let mut stream = client
        .get_flows(request)
        .await
        .context("GetFlows")?
        .into_inner();
    let stdout = std::io::stdout();
    let mut printer = Printer::new(
        observe.output,
        observe.print_node_name,
        stdout.lock(),
        std::io::stderr(),
    );
    loop {
        let next = tokio::select! {
            next = stream.message() => next.context("reading flows")?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(response) = next else { break };
        printer.write(&response)?;
    }
    printer.finish()?;
    Ok(())
}

async fn status(cli: &Cli) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let status = tokio::time::timeout(
        Duration::from_secs(cli.timeout),
        client.server_status(ServerStatusRequest {}),
    )
    .await
    .context("ServerStatus timed out")?
    .context("ServerStatus")?
    .into_inner();
    print!("{}", status::status(&cli.server, &status));
    Ok(())
}

async fn list_nodes(cli: &Cli) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let nodes = tokio::time::timeout(
        Duration::from_secs(cli.timeout),
        client.get_nodes(GetNodesRequest {}),
    )
    .await
    .context("GetNodes timed out")?
    .context("GetNodes")?
    .into_inner();
    print!("{}", status::nodes(&nodes.nodes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_for(args: &[&str]) -> anyhow::Result<GetFlowsRequest> {
        let argv = ["hubble", "observe"].iter().chain(args);
        let matches = Cli::command().try_get_matches_from(argv)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let Command::Observe(observe) = &cli.command else {
            panic!("observe")
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        request(
            observe,
            matches.subcommand_matches("observe").expect("observe"),
            now,
        )
    }

    #[test]
    fn selectors_follow_hubbles_defaults() {
        let plain = request_for(&[]).expect("valid");
        assert_eq!(
            (plain.number, plain.first, plain.follow),
            (20, false, false)
        );
        let follow = request_for(&["-f"]).expect("valid");
        assert_eq!((follow.number, follow.follow), (0, true));
        let last = request_for(&["--last", "5", "-f"]).expect("valid");
        assert_eq!((last.number, last.follow), (5, true));
        let first = request_for(&["--first", "3"]).expect("valid");
        assert_eq!((first.number, first.first), (3, true));
        assert_eq!(request_for(&["--all"]).expect("valid").number, 0);
        let since = request_for(&["--since", "5m"]).expect("valid");
        assert_eq!(since.number, 0);
        assert_eq!(since.since.map(|t| t.seconds), Some(1_700_000_000 - 300));
        assert!(request_for(&["--first", "3", "-f"]).is_err());
        assert!(request_for(&["--first", "3", "--last", "2"]).is_err());
        assert!(request_for(&["-o", "table", "-f"]).is_err());
        assert!(request_for(&["--since", "whenever"]).is_err());
    }
}
