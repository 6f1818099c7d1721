//! `demo`: brings a one-node lab up if none is, deploys a client and a server pod and shows,
//! one printed command at a time, what works between them. The lab stays up afterwards.
//!
//! Every step runs this very binary (or `cilium` through `node exec`) exactly as a user would
//! type it, so the printed commands can be copied.

use std::io;
use std::path::Path;
use std::process::{Command, ExitStatus};

use crate::bins::{self, BinDir, BinError};
use crate::commands::pod::{self, PodError};
use crate::lab::Lab;
use crate::names::PodKey;
use crate::state::{self, LabState, PodState, StateError};

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot find cilium-lab itself")]
    SelfExe {
        #[source]
        source: BinError,
    },
    #[error("the demo needs the cilium CLI")]
    Binary {
        #[source]
        source: BinError,
    },
    #[error("cannot read the lab's state")]
    State {
        #[source]
        source: StateError,
    },
    #[error("the lab is not up after `up`")]
    NotUp {
        #[source]
        source: Box<PodError>,
    },
    #[error("pod {pod} is missing after it was added")]
    MissingPod { pod: String },
    #[error("the CNI result for pod {pod} named no gateway, so there is nothing to ping")]
    NoGateway { pod: String },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("step failed ({status}): {command}")]
    Step { command: String, status: ExitStatus },
}

/// Labels and served ports of the two demo pods.
const CLIENT: (&str, &str) = ("client", "app=client");
const SERVER: (&str, &str) = ("server", "app=server");
const SERVER_PORTS: &str = "80/tcp,80/udp";

/// `cilium-lab demo`.
pub fn demo(lab: &Lab, bins: &BinDir) -> Result<(), DemoError> {
    let exe = bins::self_exe().map_err(|source| DemoError::SelfExe { source })?;
    // Fail before changing anything if the last steps could not run.
    bins.require(bins::CLI)
        .map_err(|source| DemoError::Binary { source })?;
    let demo = Demo { lab, exe: &exe };
    let state = state::read(&lab.state_file()).map_err(|source| DemoError::State { source })?;
    match state {
        Some(_) => println!("Lab {} is up already; using it.", lab.name()),
        None => demo.step("Bring up a one-node lab", &["up"], &[])?,
    }
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    for ((name, labels), serve) in [(CLIENT, None), (SERVER, Some(SERVER_PORTS))] {
        let key = PodKey::new("default", name).expect("demo pod names are valid");
        if state.pod(&key).is_some() {
            println!("Pod {name} exists already; using it.");
            continue;
        }
        let mut rest = vec![name.to_string(), "--labels".into(), labels.into()];
        if let Some(ports) = serve {
            rest.extend(["--serve".to_string(), ports.to_string()]);
        }
        demo.step(&format!("Add pod {name}"), &["pod", "add"], &rest)?;
    }
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    let client = demo_pod(&state, CLIENT.0)?;
    let server = demo_pod(&state, SERVER.0)?;
    let gateway = client.gateway.ok_or_else(|| DemoError::NoGateway {
        pod: CLIENT.0.to_string(),
    })?;

    demo.step(
        "List the pods and their security identities",
        &["pod", "list"],
        &[],
    )?;
    let ping = ping_command();
    let in_client = |cmd: Vec<String>| {
        let mut rest = vec![CLIENT.0.to_string(), "--".to_string()];
        rest.extend(cmd);
        rest
    };
    let with = |base: &[String], extra: &[String]| [base, extra].concat();
    demo.step(
        "Ping the server from the client",
        &["exec"],
        &in_client(with(&ping, &[server.ip.to_string()])),
    )?;
    demo.step(
        "Ping the client's gateway (the node)",
        &["exec"],
        &in_client(with(&ping, &[gateway.to_string()])),
    )?;
    let target = format!("{}:80", server.ip);
    demo.step(
        "Connect to the server over TCP (it answers with its name)",
        &["exec"],
        &in_client(vec!["cilium-lab".into(), "connect".into(), target.clone()]),
    )?;
    demo.step(
        "The same over UDP",
        &["exec"],
        &in_client(vec![
            "cilium-lab".into(),
            "connect".into(),
            target,
            "--udp".into(),
        ]),
    )?;
    let in_node = |args: &[&str]| {
        let mut rest = vec![server.node.clone(), "--".to_string(), bins::CLI.to_string()];
        rest.extend(args.iter().map(|a| a.to_string()));
        rest
    };
    demo.step(
        "The node's agent: endpoints and their identities",
        &["node", "exec"],
        &in_node(&["endpoint", "list"]),
    )?;
    demo.step(
        "The node's connection tracking table",
        &["node", "exec"],
        &in_node(&["bpf", "ct", "list", "global"]),
    )?;
    let flag = lab.name_flag();
    println!(
        "\nThe lab is still up. Explore it:\n  \
         cilium-lab exec{flag} client -- sh\n  \
         cilium-lab node exec{flag} {node} -- cilium monitor\n  \
         cilium-lab status{flag}\n\
         Tear it down with:\n  cilium-lab down{flag}",
        node = server.node,
    );
    Ok(())
}

struct Demo<'a> {
    lab: &'a Lab,
    exe: &'a Path,
}

impl Demo<'_> {
    /// Prints the step and its command line, then runs it with inherited stdio.
    fn step(&self, title: &str, sub: &[&str], rest: &[String]) -> Result<(), DemoError> {
        let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        if *self.lab.name() != Default::default() {
            args.extend(["--name".to_string(), self.lab.name().to_string()]);
        }
        args.extend(rest.iter().cloned());
        let shown = format!("cilium-lab {}", args.join(" "));
        println!("\n==> {title}\n$ {shown}");
        let status = Command::new(self.exe)
            .args(&args)
            .status()
            .map_err(|source| DemoError::Spawn {
                command: shown.clone(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(DemoError::Step {
                command: shown,
                status,
            })
        }
    }
}

fn demo_pod<'s>(state: &'s LabState, name: &str) -> Result<&'s PodState, DemoError> {
    let key = PodKey::new("default", name).expect("demo pod names are valid");
    state.pod(&key).ok_or_else(|| DemoError::MissingPod {
        pod: key.to_string(),
    })
}

/// `ping -c 1 -W 2`, from busybox when no `ping` is installed.
fn ping_command() -> Vec<String> {
    let have_ping = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("ping").is_file()))
        .unwrap_or(false);
    let mut cmd: Vec<String> = if have_ping {
        vec!["ping".into()]
    } else {
        vec!["busybox".into(), "ping".into()]
    };
    cmd.extend(["-c", "1", "-W", "2"].map(String::from));
    cmd
}
