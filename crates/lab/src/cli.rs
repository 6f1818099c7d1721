//! The command line: every subcommand and its options (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::labels::Labels;
use crate::names::{LabName, NodeName};
use crate::plan::{DEFAULT_LEASE_TTL_SECS, MAX_NODES};
use crate::state::Routing;
use crate::toolbox::spec::ServeSpec;

/// Environment variable naming the lab when `--name` is not given.
pub const LAB_NAME_ENV: &str = "CILIUM_LAB_NAME";

/// Environment variable carrying the pod name to `serve`.
pub const POD_NAME_ENV: &str = "CILIUM_LAB_POD_NAME";

/// A Cilium cluster on one machine: nodes and pods are network namespaces, each node runs a
/// real cilium-agent, pods are wired by the real CNI plugin.
#[derive(Debug, Parser)]
#[command(name = "cilium-lab", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the switch, etcd and the nodes, start an agent on each, wait until they are ready.
    Up(UpArgs),
    /// Stop everything the lab started and delete all its namespaces, pins and state.
    Down(LabArg),
    /// Show nodes, agent health and pods.
    Status(ListArgs),
    /// Add, delete and list pods.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Run a command inside a pod's network namespace.
    Exec(ExecArgs),
    /// Work with nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Stop and start the lab's etcd (a control-plane outage).
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// Store a manifest's objects in the cluster and realize its Pods and Deployments as pods.
    Apply(FileArgs),
    /// Remove a manifest's objects from the cluster and the pods realized for it.
    Delete(FileArgs),
    /// Bring a lab up if needed, deploy two pods and show traffic between them step by step.
    Demo(LabArg),
    /// Run `hubble` against the lab's relay (every node's flows), e.g. `cilium-lab hubble
    /// observe --verdict DROPPED`.
    Hubble(HubbleArgs),
    /// Toolbox (runs inside pods): answer with the pod name on every listed port.
    Serve(ServeArgs),
    /// Toolbox (runs inside pods): one probe; prints the answer, exits non-zero without one.
    Connect(ConnectArgs),
}

/// Which lab to work on.
#[derive(Debug, Args)]
pub struct LabArg {
    /// Name of the lab (lowercase letters and digits). With `exec` and `node exec` it must come
    /// before `--`.
    #[arg(long = "name", value_name = "LAB", env = LAB_NAME_ENV, default_value = "default")]
    pub lab: LabName,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// Number of nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_NODES)))]
    pub nodes: u8,
    /// How pods on different nodes reach each other.
    #[arg(long, value_enum, default_value_t = Routing::Tunnel)]
    pub routing: Routing,
    /// Seconds a dead node's kvstore entries outlive it (the agents' lease TTL).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LEASE_TTL_SECS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub kvstore_lease_ttl: u32,
    /// An extra flag for every agent, after the lab's own (repeatable), e.g.
    /// `--agent-arg=--enable-hubble=false`.
    #[arg(long = "agent-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HubbleArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// `hubble` arguments (`observe ...`, `status`, `list nodes`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub args: Vec<String>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Create a pod and wire it up through the CNI plugin.
    Add(PodAddArgs),
    /// Delete a pod.
    Del(PodRefArgs),
    /// List pods with their node, address, labels and security identity.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct PodAddArgs {
    /// Pod name.
    pub pod: String,
    /// Kubernetes namespace of the pod.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Node to place the pod on (default: the node with the fewest pods).
    #[arg(long)]
    pub node: Option<NodeName>,
    /// Labels, as key=value,key=value.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub labels: Option<Labels>,
    /// Start the toolbox server in the pod on these ports, e.g. 80/tcp,53/udp,8080/http.
    #[arg(long, value_name = "PORT/PROTO,...")]
    pub serve: Option<ServeSpec>,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct PodRefArgs {
    /// Pod name.
    pub pod: String,
    /// Kubernetes namespace of the pod.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The YAML manifest (one or more documents).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kubernetes namespace of the pod.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a command in a node's network namespace, with CILIUM_SOCK and CILIUM_BPF_ROOT set.
    Exec(NodeExecArgs),
    /// Stop a node's agent and start it again; pods keep running and keep their connections.
    RestartAgent(NodeArgs),
    /// Add a node to the running lab (by default the next never-used nodeK).
    Add(NodeAddArgs),
    /// Remove a node abruptly, like a machine that dies: its agent is killed, its pods go.
    Del(NodeArgs),
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Stop etcd; agents and pods keep running, its data stays.
    Stop(LabArg),
    /// Start etcd again on its data and wait until it is healthy.
    Start(LabArg),
}

#[derive(Debug, Args)]
pub struct NodeAddArgs {
    /// Node name (node1, node2, ...); default: one past the highest ever used.
    pub node: Option<NodeName>,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node name (node1, node2, ...).
    pub node: NodeName,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct NodeExecArgs {
    /// Node name (node1, node2, ...).
    pub node: NodeName,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub lab: LabArg,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Ports to serve, e.g. 80/tcp,80/udp,8080/http.
    pub spec: ServeSpec,
    /// The name to answer with.
    #[arg(long = "name", env = POD_NAME_ENV)]
    pub pod_name: String,
    /// File to create once every port is listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to connect, e.g. 10.0.1.5:80.
    pub addr: SocketAddr,
    /// Probe over UDP instead of TCP.
    #[arg(long, conflicts_with = "http")]
    pub udp: bool,
    /// Send an HTTP request and expect a 2xx answer.
    #[arg(long)]
    pub http: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cilium-lab").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn pod_add_takes_labels_serve_and_lab_name() {
        let cli = parse(&[
            "pod",
            "add",
            "web",
            "--labels",
            "app=web",
            "--serve",
            "80/tcp,53/udp",
            "--name",
            "t1",
            "--node",
            "node2",
        ])
        .unwrap();
        let Command::Pod(PodCommand::Add(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.pod, "web");
        assert_eq!(args.namespace, "default");
        assert_eq!(args.labels.unwrap().to_string(), "app=web");
        assert_eq!(args.serve.unwrap().to_string(), "80/tcp,53/udp");
        assert_eq!(args.lab.lab.as_str(), "t1");
        assert_eq!(args.node.unwrap().index(), 2);
    }

    #[test]
    fn exec_keeps_the_command_after_the_double_dash() {
        let cli = parse(&["exec", "client", "--", "ping", "-c", "1", "10.0.1.2"]).unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.pod, "client");
        assert_eq!(args.command, ["ping", "-c", "1", "10.0.1.2"]);
        assert!(parse(&["exec", "client"]).is_err(), "a command is required");
    }

    #[test]
    fn up_validates_nodes_and_routing() {
        let cli = parse(&["up", "--nodes", "3", "--routing", "native"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!((args.nodes, args.routing), (3, Routing::Native));
        assert_eq!(args.kvstore_lease_ttl, DEFAULT_LEASE_TTL_SECS);
        assert!(parse(&["up", "--nodes", "0"]).is_err());
        assert!(parse(&["up", "--kvstore-lease-ttl", "0"]).is_err());
        assert!(parse(&["up", "--routing", "bgp"]).is_err());
        assert!(
            parse(&["up", "--name", "a-b"]).is_err(),
            "lab names have no dashes"
        );
    }

    #[test]
    fn node_add_names_the_node_or_leaves_it_to_the_lab() {
        let cli = parse(&["node", "add"]).unwrap();
        let Command::Node(NodeCommand::Add(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.node, None);
        let cli = parse(&["node", "add", "node4", "--name", "t1"]).unwrap();
        let Command::Node(NodeCommand::Add(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.node.map(NodeName::index), Some(4));
        assert!(parse(&["node", "del"]).is_err(), "del needs a node");
        assert!(parse(&["etcd", "stop", "--name", "t1"]).is_ok());
        assert!(parse(&["etcd", "restart"]).is_err());
    }

    #[test]
    fn apply_and_delete_need_a_file() {
        let cli = parse(&["apply", "-f", "app.yaml", "--name", "t1"]).unwrap();
        let Command::Apply(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.file, PathBuf::from("app.yaml"));
        assert!(parse(&["delete", "--filename", "app.yaml"]).is_ok());
        assert!(parse(&["apply"]).is_err(), "apply needs -f");
    }

    #[test]
    fn serve_takes_the_pod_name_from_the_flag() {
        let cli = parse(&["serve", "80/tcp", "--name", "web"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.pod_name, "web");
    }

    #[test]
    fn connect_modes_exclude_each_other() {
        assert!(parse(&["connect", "10.0.1.2:80", "--udp", "--http"]).is_err());
        assert!(parse(&["connect", "not-an-addr"]).is_err());
        let cli = parse(&["connect", "10.0.1.2:53", "--udp", "--timeout", "0.5"]).unwrap();
        let Command::Connect(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert!(args.udp && !args.http);
        assert_eq!(args.timeout, 0.5);
    }
}
