//! `cilium`: the operator's CLI for a running agent, modelled on cilium-dbg. Parses the
//! command line, runs one command, and turns any failure into a message on stderr and a
//! non-zero exit status.

mod cli;
mod commands;
mod output;
mod target;

use std::process::ExitCode;

use clap::Parser;

use cli::{
    BpfCommand, BpfLbCommand, BpfPolicyCommand, Cli, Command, CtCommand, CtScope, EndpointCommand,
    IdentityCommand, KvstoreCommand, ListOnly, PolicyCommand, ServiceCommand,
};
use output::OutputError;
use target::AgentTarget;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {}", output::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let target = AgentTarget::from_host(cli.host.as_deref())?;
    match cli.command {
        Command::Status => commands::status::run(&target, cli.output)?,
        Command::Config { settings } => commands::config::run(&target, &settings, cli.output)?,
        Command::Endpoint(EndpointCommand::List) => commands::endpoint::list(&target, cli.output)?,
        Command::Endpoint(EndpointCommand::Get { id }) => commands::endpoint::get(&target, &id)?,
        Command::Node(ListOnly::List) => commands::node::list(&target, cli.output)?,
        Command::Identity(IdentityCommand::List) => commands::identity::list(&target, cli.output)?,
        Command::Identity(IdentityCommand::Get { id }) => {
            commands::identity::get(&target, id, cli.output)?
        }
        Command::Policy(PolicyCommand::Import { file }) => {
            commands::policy::import(&target, &file, cli.output)?
        }
        Command::Apply { file } => commands::policy::apply(&target, &file, false, cli.output)?,
        Command::Delete { file } => commands::policy::apply(&target, &file, true, cli.output)?,
        Command::Policy(PolicyCommand::Get) => commands::policy::get(&target, cli.output)?,
        Command::Policy(PolicyCommand::Delete { all }) => {
            commands::policy::delete(&target, all, cli.output)?
        }
        Command::Policy(PolicyCommand::Trace(args)) => {
            commands::policy_trace::run(&target, &args, cli.output)?
        }
        Command::Kvstore(KvstoreCommand::Get { recursive, key }) => {
            commands::kvstore::get(&target, &key, recursive, cli.output)?
        }
        Command::Bpf(bpf) => {
            let root = target.bpf_root(cli.bpf_root.as_deref())?;
            match bpf {
                BpfCommand::Endpoint(ListOnly::List) => {
                    commands::bpf_endpoint::list(&root, cli.output)?
                }
                BpfCommand::Ct(CtCommand::List {
                    scope: CtScope::Global,
                }) => commands::bpf_ct::list(&root, cli.output)?,
                BpfCommand::Metrics(ListOnly::List) => {
                    commands::bpf_metrics::list(&root, cli.output)?
                }
                BpfCommand::Ipcache(ListOnly::List) => {
                    commands::bpf_ipcache::list(&root, cli.output)?
                }
                BpfCommand::Policy(BpfPolicyCommand::Get { endpoint_id }) => {
                    commands::bpf_policy::get(&root, &target, endpoint_id, cli.output)?
                }
                BpfCommand::Lb(BpfLbCommand::List) => commands::bpf_lb::list(&root, cli.output)?,
                BpfCommand::Lb(BpfLbCommand::Maglev(ListOnly::List)) => {
                    commands::bpf_lb::maglev_list(&root, cli.output)?
                }
            }
        }
        Command::Service(ServiceCommand::List) => commands::service::list(&target, cli.output)?,
        Command::Service(ServiceCommand::Get { id }) => {
            commands::service::get(&target, id, cli.output)?
        }
        Command::Monitor(args) => commands::monitor::run(&target, cli.output, &args)?,
    }
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<OutputError>())
        .any(OutputError::is_broken_pipe)
}
