//! `demo`: brings a two-node lab with etcd up if none is (or adds a second node to a one-node
//! lab), deploys a client pod on one node and a server pod on the other, and shows, one
//! printed command at a time, what works between them across the underlay; then Cilium's
//! Star Wars demo: its L3/L4 policy lets the empire's tiefighter reach the deathstar and drops
//! the alliance's xwing, Hubble shows the drop through the lab's relay, and `cilium policy
//! trace` explains it. The lab stays up afterwards.
//!
//! Every step runs this very binary (or `cilium` through `node exec`) exactly as a user would
//! type it, so the printed commands can be copied.

use std::io;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use cilium_api::AgentClient;

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
    #[error("the lab has fewer than two nodes after `node add`")]
    TooFewNodes,
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
    #[error("step should have failed but succeeded: {command}")]
    Unexpected { command: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Labels and served ports of the two demo pods.
const CLIENT: (&str, &str) = ("client", "app=client");
const SERVER: (&str, &str) = ("server", "app=server");
const SERVER_PORTS: &str = "80/tcp,80/udp";

/// Cilium's Star Wars demo: pods (name, labels, served ports, node index) and the L3/L4 policy.
const STARWARS_PODS: [(&str, &str, Option<&str>, usize); 3] = [
    ("deathstar", "org=empire,class=deathstar", Some("80/tcp"), 1),
    ("tiefighter", "org=empire,class=tiefighter", None, 0),
    ("xwing", "org=alliance,class=xwing", None, 0),
];
const STARWARS_POLICY: &str = include_str!("../../../../examples/starwars/sw_l3_l4_policy.yaml");
const STARWARS_POLICY_FILE: &str = "sw_l3_l4_policy.yaml";

/// How long the demo waits for the client's node to learn the server's node.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// `cilium-lab demo`.
pub fn demo(lab: &Lab, bins: &BinDir) -> Result<(), DemoError> {
    let exe = bins::self_exe().map_err(|source| DemoError::SelfExe { source })?;
    // Fail before changing anything if the last steps could not run.
    bins.require(bins::CLI)
        .map_err(|source| DemoError::Binary { source })?;
    let demo = Demo { lab, exe: &exe };
    let state = state::read(&lab.state_file()).map_err(|source| DemoError::State { source })?;
    match state {
        Some(state) if state.nodes.len() >= 2 => {
            println!("Lab {} is up already; using it.", lab.name())
        }
        Some(_) => demo.step(
            "The lab is up with one node; a second node joins it",
            &["node", "add"],
            &[],
        )?,
        None => demo.step(
            "Bring up a two-node lab: a switch, etcd, and an agent per node",
            &["up", "--nodes", "2"],
            &[],
        )?,
    }
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    let [first, second] = match &state.nodes[..] {
        [a, b, ..] => [a.name.clone(), b.name.clone()],
        _ => return Err(DemoError::TooFewNodes),
    };
    for ((name, labels), serve, node) in [
        (CLIENT, None, &first),
        (SERVER, Some(SERVER_PORTS), &second),
    ] {
        let key = PodKey::new("default", name).expect("demo pod names are valid");
        if state.pod(&key).is_some() {
            println!("Pod {name} exists already; using it.");
            continue;
        }
        let mut rest = vec![
            name.to_string(),
            "--node".into(),
            node.clone(),
            "--labels".into(),
            labels.into(),
        ];
        if let Some(ports) = serve {
            rest.extend(["--serve".to_string(), ports.to_string()]);
        }
        demo.step(&format!("Add pod {name} on {node}"), &["pod", "add"], &rest)?;
    }
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    let client = demo_pod(&state, CLIENT.0)?;
    let server = demo_pod(&state, SERVER.0)?;
    let gateway = client.gateway.ok_or_else(|| DemoError::NoGateway {
        pod: CLIENT.0.to_string(),
    })?;

    if client.node != server.node {
        wait_until_known(&state, &client.node, &server.node);
    }
    demo.step(
        "The lab: etcd, each node's pod CIDR from the cluster pool and the nodes each agent \
         knows, the pods and their security identities",
        &["status"],
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
        &format!(
            "Ping the server (on {}) from the client (on {})",
            server.node, client.node
        ),
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
    let in_node = |node: &str, args: &[&str]| {
        let mut rest = vec![node.to_string(), "--".to_string(), bins::CLI.to_string()];
        rest.extend(args.iter().map(|a| a.to_string()));
        rest
    };
    demo.step(
        &format!(
            "The server's node ({}): endpoints and their identities",
            server.node
        ),
        &["node", "exec"],
        &in_node(&server.node, &["endpoint", "list"]),
    )?;
    demo.step(
        &format!(
            "The client's node ({}): its connection tracking table",
            client.node
        ),
        &["node", "exec"],
        &in_node(&client.node, &["bpf", "ct", "list", "global"]),
    )?;
    starwars(&demo, lab, &[first.clone(), second.clone()], &in_node)?;
    let flag = lab.name_flag();
    println!(
        "\nThe lab is still up. Explore it:\n  \
         cilium-lab exec{flag} client -- sh\n  \
         cilium-lab node exec{flag} {node} -- cilium monitor\n  \
         cilium-lab node add{flag}\n  \
         cilium-lab etcd stop{flag}\n\
         Tear it down with:\n  cilium-lab down{flag}",
        node = server.node,
    );
    Ok(())
}

/// The Star Wars part: pods, the policy on every node, an allowed and a dropped connection.
fn starwars(
    demo: &Demo,
    lab: &Lab,
    nodes: &[String; 2],
    in_node: &dyn Fn(&str, &[&str]) -> Vec<String>,
) -> Result<(), DemoError> {
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    for (name, labels, serve, node) in STARWARS_PODS {
        let key = PodKey::new("default", name).expect("demo pod names are valid");
        if state.pod(&key).is_some() {
            continue;
        }
        let mut rest = vec![
            name.to_string(),
            "--node".into(),
            nodes[node].clone(),
            "--labels".into(),
            labels.into(),
        ];
        if let Some(ports) = serve {
            rest.extend(["--serve".to_string(), ports.to_string()]);
        }
        demo.step(
            &format!("Star Wars: add pod {name} on {}", nodes[node]),
            &["pod", "add"],
            &rest,
        )?;
    }
    let policy = lab.dir().join(STARWARS_POLICY_FILE);
    std::fs::write(&policy, STARWARS_POLICY).map_err(|source| DemoError::Write {
        path: policy.display().to_string(),
        source,
    })?;
    let policy = policy.display().to_string();
    for node in nodes {
        demo.step(
            &format!(
                "Import Cilium's Star Wars L3/L4 policy (CiliumNetworkPolicy rule1) on {node}"
            ),
            &["node", "exec"],
            &in_node(node, &["policy", "import", &policy]),
        )?;
    }
    let state = pod::read_running(lab).map_err(|source| DemoError::NotUp {
        source: Box::new(source),
    })?;
    let deathstar = demo_pod(&state, "deathstar")?;
    let target = format!("{}:80", deathstar.ip);
    let connect = |from: &str| {
        vec![
            from.to_string(),
            "--".into(),
            "cilium-lab".into(),
            "connect".into(),
            target.clone(),
            "--timeout".into(),
            "2".into(),
        ]
    };
    demo.step(
        "tiefighter (org=empire) lands on the deathstar: allowed by rule1 on TCP/80",
        &["exec"],
        &connect("tiefighter"),
    )?;
    demo.expect_failure(
        "xwing (org=alliance) tries the same: dropped, no answer",
        &["exec"],
        &connect("xwing"),
    )?;
    demo.step(
        &format!(
            "The deathstar's node ({}): the drop counted as \"Policy denied\"",
            deathstar.node
        ),
        &["node", "exec"],
        &in_node(&deathstar.node, &["bpf", "metrics", "list"]),
    )?;
    demo.step(
        "Hubble, through the lab's relay: who was dropped, by whom, and why",
        &["hubble"],
        &["observe", "--verdict", "DROPPED", "--last", "3"].map(String::from),
    )?;
    demo.step(
        "cilium policy trace: no rule of the deathstar's lets the alliance in",
        &["node", "exec"],
        &in_node(
            &deathstar.node,
            &[
                "policy",
                "trace",
                "--src-labels",
                "k8s:org=alliance,k8s:class=xwing,k8s:io.kubernetes.pod.namespace=default",
                "--dst-k8s-pod",
                "default:deathstar",
                "--dport",
                "80/TCP",
            ],
        ),
    )
}

struct Demo<'a> {
    lab: &'a Lab,
    exe: &'a Path,
}

impl Demo<'_> {
    /// Like [`Demo::step`], for a command that must fail (a connection the policy drops).
    fn expect_failure(&self, title: &str, sub: &[&str], rest: &[String]) -> Result<(), DemoError> {
        match self.step(title, sub, rest) {
            Err(DemoError::Step { .. }) => {
                println!("(failed, as it should)");
                Ok(())
            }
            Ok(()) => Err(DemoError::Unexpected {
                command: format!("cilium-lab {} {}", sub.join(" "), rest.join(" ")),
            }),
            Err(other) => Err(other),
        }
    }

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

/// Waits, up to [`DISCOVERY_TIMEOUT`], until the agent of node `on` knows node `peer` from the
/// kvstore; carries on regardless afterwards (the following steps show what does not work).
fn wait_until_known(state: &LabState, on: &str, peer: &str) {
    let Some(node) = state.nodes.iter().find(|n| n.name == on) else {
        return;
    };
    let client = AgentClient::new(&node.socket).with_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + DISCOVERY_TIMEOUT;
    while Instant::now() < deadline {
        let known = client
            .cluster_nodes()
            .is_ok_and(|s| s.nodes_added.iter().any(|n| n.name == peer));
        if known {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("(the agent of {on} does not know {peer} yet; going on anyway)");
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
