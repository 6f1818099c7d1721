//! The `cilium-lab` binary: parses the command line and runs one subcommand.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use cilium_lab::bins::BinDir;
use cilium_lab::cli::{Cli, Command, EtcdCommand, NodeCommand, Output, PodCommand};
use cilium_lab::commands::etcd::{self, Outcome};
use cilium_lab::commands::{apply, demo, down, exec, node, pod, status, up};
use cilium_lab::lab::{Lab, BPF_FS, RUN_ROOT};
use cilium_lab::names::{LabName, PodKey};
use cilium_lab::toolbox::connect::{self, Probe, ProbeMode};
use cilium_lab::toolbox::serve::Server;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn lab(name: LabName) -> Lab {
    Lab::new(name, Path::new(RUN_ROOT), Path::new(BPF_FS))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => {
            let lab = lab(args.lab.lab);
            let opts = up::UpOptions {
                nodes: args.nodes,
                routing: args.routing,
                lease_ttl_secs: args.kvstore_lease_ttl,
                agent_args: args.agent_args,
            };
            let state = up::up(&lab, &BinDir::locate()?, opts)?;
            println!(
                "Lab {} is up: {} node(s), {} routing. Add pods with `cilium-lab pod add{} NAME`.",
                state.name,
                state.nodes.len(),
                state.routing,
                lab.name_flag()
            );
        }
        Command::Down(args) => {
            let lab = lab(args.lab);
            let done = down::down(&lab)?;
            if done.stopped.is_empty() && done.namespaces.is_empty() {
                println!("Lab {} is not up; nothing to tear down.", lab.name());
            } else {
                for what in &done.stopped {
                    println!("stopped {what}");
                }
                println!(
                    "Lab {} is down ({} namespace(s) deleted).",
                    lab.name(),
                    done.namespaces.len()
                );
            }
        }
        Command::Status(args) => {
            let report = status::status(&lab(args.lab.lab))?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Text => println!("{}", status::render(&report)),
            }
        }
        Command::Pod(PodCommand::Add(args)) => {
            let lab = lab(args.lab.lab);
            let opts = pod::PodOptions {
                key: PodKey::new(&args.namespace, &args.pod)?,
                node: args.node,
                labels: args.labels.unwrap_or_default(),
                serve: args.serve,
            };
            let added = pod::add(&lab, &BinDir::locate()?, &opts)?;
            let serving = added
                .serve
                .as_ref()
                .map(|s| format!(", serving {s}"))
                .unwrap_or_default();
            println!(
                "pod {}/{} on {}: {}{serving}",
                added.namespace, added.name, added.node, added.ip
            );
        }
        Command::Pod(PodCommand::Del(args)) => {
            let lab = lab(args.lab.lab);
            let key = PodKey::new(&args.namespace, &args.pod)?;
            pod::del(&lab, &BinDir::locate()?, &key)?;
            println!("pod {key} deleted");
            // The pod is gone either way; a Pod object left behind only costs a warning.
            match apply::forget_pod(&lab, &key) {
                Ok(keys) => keys.iter().for_each(|k| println!("removed {k}")),
                Err(error) => eprintln!("Warning: {:#}", anyhow::Error::new(error)),
            }
        }
        Command::Pod(PodCommand::List(args)) => {
            let rows = pod::list(&lab(args.lab.lab))?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Output::Text => println!("{}", status::render_pods(&rows)),
            }
        }
        Command::Exec(args) => {
            let lab = lab(args.lab.lab);
            let key = PodKey::new(&args.namespace, &args.pod)?;
            match exec::exec_pod(&lab, &BinDir::locate()?, &key, &args.command)? {}
        }
        Command::Hubble(args) => {
            let lab = lab(args.lab.lab);
            match exec::exec_hubble(&lab, &BinDir::locate()?, &args.args)? {}
        }
        Command::Node(NodeCommand::Exec(args)) => {
            let lab = lab(args.lab.lab);
            match exec::exec_node(&lab, &BinDir::locate()?, args.node, &args.command)? {}
        }
        Command::Node(NodeCommand::RestartAgent(args)) => {
            let lab = lab(args.lab.lab);
            let pid = node::restart_agent(&lab, &BinDir::locate()?, args.node)?;
            println!("{}: agent restarted (pid {pid})", args.node);
        }
        Command::Node(NodeCommand::Add(args)) => {
            let lab = lab(args.lab.lab);
            let added = node::add(&lab, &BinDir::locate()?, args.node)?;
            println!(
                "{}: joined, underlay {}, pod CIDR {}, agent pid {}",
                added.name,
                added.underlay_ip,
                added.pod_cidr.map(|c| c.to_string()).unwrap_or_default(),
                added.agent_pid.unwrap_or_default()
            );
        }
        Command::Node(NodeCommand::Del(args)) => {
            let lab = lab(args.lab.lab);
            let removed = node::del(&lab, &BinDir::locate()?, args.node)?;
            let pods = if removed.pods.is_empty() {
                String::new()
            } else {
                format!(" with its pods {}", removed.pods.join(", "))
            };
            println!("{} removed{pods}", removed.node.name);
        }
        Command::Etcd(EtcdCommand::Stop(args)) => match etcd::stop(&lab(args.lab))? {
            Outcome::Done { pid } => println!("etcd stopped (was pid {pid})"),
            Outcome::Already { .. } => println!("etcd was not running"),
        },
        Command::Etcd(EtcdCommand::Start(args)) => match etcd::start(&lab(args.lab))? {
            Outcome::Done { pid } => println!("etcd started and healthy (pid {pid})"),
            Outcome::Already { pid } => {
                println!("etcd is already running (pid {})", pid.unwrap_or_default())
            }
        },
        Command::Apply(args) => {
            let lab = lab(args.lab.lab);
            let done = apply::apply(&lab, &BinDir::locate()?, &args.file)?;
            for key in &done.keys {
                println!("stored {key}");
            }
            for pod in &done.pods {
                println!("pod {pod} created");
            }
            for pod in &done.unchanged {
                println!("pod {pod} unchanged");
            }
        }
        Command::Delete(args) => {
            let lab = lab(args.lab.lab);
            let done = apply::delete(&lab, &BinDir::locate()?, &args.file)?;
            for key in &done.keys {
                println!("removed {key}");
            }
            for pod in &done.pods {
                println!("pod {pod} deleted");
            }
        }
        Command::Demo(args) => demo::demo(&lab(args.lab), &BinDir::locate()?)?,
        Command::Serve(args) => {
            let server = Server::bind(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                args.spec.ports(),
                &args.pod_name,
            )?;
            if let Some(ready) = &args.ready_file {
                std::fs::write(ready, b"")
                    .with_context(|| format!("cannot create {}", ready.display()))?;
            }
            eprintln!("serving {} as {}", args.spec, args.pod_name);
            server.run()?;
        }
        Command::Connect(args) => {
            let timeout = Duration::try_from_secs_f64(args.timeout)
                .context("--timeout must be a non-negative number of seconds")?;
            let mode = match (args.udp, args.http) {
                (true, _) => ProbeMode::Udp,
                (false, true) => ProbeMode::Http,
                (false, false) => ProbeMode::Tcp,
            };
            let answer = connect::probe(&Probe {
                addr: args.addr,
                mode,
                timeout,
            })?;
            println!("{answer}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
