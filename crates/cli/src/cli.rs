//! Command-line grammar of `cilium`: global options (agent socket, bpffs root, output format)
//! and the command tree, modelled on cilium-dbg.

use std::path::PathBuf;

use cilium_api::paths::AGENT_SOCKET_ENV;
use cilium_monitor::EventKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Environment variable naming the agent's bpffs root (overrides `GET /v1/config`).
pub const BPF_ROOT_ENV: &str = "CILIUM_BPF_ROOT";

#[derive(Debug, Parser)]
#[command(
    name = "cilium",
    version,
    about = "Inspect and debug a running Cilium agent",
    propagate_version = true
)]
pub struct Cli {
    /// Agent API socket: `unix:///path/to/cilium.sock` or a plain path
    /// [default: /var/run/cilium/cilium.sock]
    #[arg(short = 'H', long = "host", env = AGENT_SOCKET_ENV, global = true, value_name = "URI")]
    pub host: Option<String>,

    /// Output format
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value_t,
        global = true
    )]
    pub output: OutputFormat,

    /// Agent's bpffs directory (maps are under `<root>/tc/globals/`); asked from the agent
    /// when not given
    #[arg(long = "bpf-root", env = BPF_ROOT_ENV, global = true, value_name = "DIR")]
    pub bpf_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and lines
    #[default]
    Text,
    /// JSON (one object per line for `monitor`)
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the agent's health and configuration summary
    Status,
    /// Show the agent's configuration, or change it: `cilium config PolicyEnforcement=always`
    Config {
        /// Settings to change, `KEY=VALUE` (PolicyEnforcement: default, always, never)
        settings: Vec<String>,
    },
    /// Manage endpoints
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Show the cluster's nodes
    #[command(subcommand)]
    Node(ListOnly),
    /// Show security identities and their labels
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Read the cluster's kvstore
    #[command(subcommand)]
    Kvstore(KvstoreCommand),
    /// Manage network policies
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Store the objects of a file (policies, namespaces, pods, …) in the cluster's kvstore;
    /// every agent enforces the policies among them
    Apply {
        /// YAML or JSON file (`-` for stdin)
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
    },
    /// Remove the objects of a file from the cluster's kvstore
    Delete {
        /// YAML or JSON file (`-` for stdin)
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
    },
    /// Show the node's service frontends and backends
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Inspect the agent's BPF maps directly
    #[command(subcommand)]
    Bpf(BpfCommand),
    /// Print datapath trace and drop events as they happen
    Monitor(MonitorArgs),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Store and enforce the policies in a file (CiliumNetworkPolicy,
    /// CiliumClusterwideNetworkPolicy, NetworkPolicy; YAML or JSON; `-` for stdin)
    Import { file: std::path::PathBuf },
    /// Show the stored rules and the revision
    Get,
    /// Delete every policy
    Delete {
        /// Required: there is no per-rule delete yet
        #[arg(long)]
        all: bool,
    },
    /// Would traffic from a source to a destination be allowed, and which rules decide it
    Trace(TraceArgs),
}

/// `cilium policy trace`: each side is given by exactly one of labels, identity, endpoint or
/// pod.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).multiple(false))]
#[command(group = clap::ArgGroup::new("destination").required(true).multiple(false))]
pub struct TraceArgs {
    /// Source labels (`[source:]key=value`, comma-separated or repeated)
    #[arg(long = "src-labels", visible_alias = "src", value_delimiter = ',', num_args = 1..,
          group = "source")]
    pub src_labels: Vec<String>,
    /// Destination labels (`[source:]key=value`, comma-separated or repeated)
    #[arg(long = "dst-labels", visible_alias = "dst", value_delimiter = ',', num_args = 1..,
          group = "destination")]
    pub dst_labels: Vec<String>,
    /// Source security identity
    #[arg(short = 's', long = "src-identity", group = "source")]
    pub src_identity: Option<u32>,
    /// Destination security identity
    #[arg(short = 'd', long = "dst-identity", group = "destination")]
    pub dst_identity: Option<u32>,
    /// Source endpoint ID (on this node)
    #[arg(long = "src-endpoint", group = "source")]
    pub src_endpoint: Option<u16>,
    /// Destination endpoint ID (on this node)
    #[arg(long = "dst-endpoint", group = "destination")]
    pub dst_endpoint: Option<u16>,
    /// Source pod on this node, `[namespace:]name`
    #[arg(long = "src-k8s-pod", group = "source")]
    pub src_k8s_pod: Option<String>,
    /// Destination pod on this node, `[namespace:]name`
    #[arg(long = "dst-k8s-pod", group = "destination")]
    pub dst_k8s_pod: Option<String>,
    /// Destination port, `PORT[/PROTOCOL]` (TCP, UDP, SCTP, ICMP, ANY; default ANY);
    /// repeatable
    #[arg(long = "dport", value_name = "PORT[/PROTO]")]
    pub dports: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List all endpoints
    #[command(visible_alias = "ls")]
    List,
    /// Show one endpoint as JSON
    Get {
        /// Endpoint ID, or `[prefix:]id` such as `container-id:3f2a…`
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// List every identity the agent knows, reserved ones included
    #[command(visible_alias = "ls")]
    List,
    /// Show one identity
    Get {
        /// Numeric identity
        id: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum KvstoreCommand {
    /// Print the entry at KEY, or every entry under it with --recursive
    Get {
        /// Treat KEY as a prefix and print every entry under it
        #[arg(long)]
        recursive: bool,
        /// Key, e.g. `cilium/state/nodes/v1/default/node1`
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BpfCommand {
    /// Local endpoint map (`cilium_lxc`)
    #[command(subcommand)]
    Endpoint(ListOnly),
    /// Connection tracking tables
    #[command(subcommand)]
    Ct(CtCommand),
    /// Datapath forward/drop counters (`cilium_metrics`)
    #[command(subcommand)]
    Metrics(ListOnly),
    /// IP prefix → identity and tunnel endpoint cache (`cilium_ipcache`)
    #[command(subcommand)]
    Ipcache(ListOnly),
    /// An endpoint's policy map (`cilium_policy_v2_<id>`)
    #[command(subcommand)]
    Policy(BpfPolicyCommand),
    /// Service load-balancing maps (`cilium_lb4_*`)
    #[command(subcommand)]
    Lb(BpfLbCommand),
}

#[derive(Debug, Subcommand)]
pub enum BpfLbCommand {
    /// List the services map's frontends and backend slots
    #[command(visible_alias = "ls")]
    List,
    /// Maglev lookup tables (`cilium_lb4_maglev`)
    #[command(subcommand)]
    Maglev(ListOnly),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List every service frontend with its backends
    #[command(visible_alias = "ls")]
    List,
    /// Show one frontend by ID
    Get {
        /// Service ID (the frontend's reverse-NAT index)
        id: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum BpfPolicyCommand {
    /// Show the entries of one endpoint's policy map
    Get {
        /// Endpoint ID
        endpoint_id: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List all entries
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
pub enum CtCommand {
    /// List connection tracking entries
    #[command(visible_alias = "ls")]
    List {
        /// Which table: only the node-wide `global` tables exist
        #[arg(value_enum)]
        scope: CtScope,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CtScope {
    Global,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Show only these event types (repeatable): drop, trace, debug, capture, l7, agent,
    /// policy-verdict, trace-sock
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub types: Vec<EventKind>,
    /// Show each event's metadata and decoded packet layers
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Only events emitted by or delivered to this endpoint
    #[arg(long, value_name = "EPID")]
    pub related_to: Option<u16>,
    /// Only events emitted by this endpoint
    #[arg(long, value_name = "EPID")]
    pub from: Option<u16>,
    /// Only events delivered to this endpoint
    #[arg(long, value_name = "EPID")]
    pub to: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = parse(&[
            "cilium",
            "endpoint",
            "list",
            "-o",
            "json",
            "-H",
            "/tmp/a.sock",
        ]);
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.host.as_deref(), Some("/tmp/a.sock"));
        assert!(matches!(
            cli.command,
            Command::Endpoint(EndpointCommand::List)
        ));
    }

    #[test]
    fn monitor_flags() {
        let cli = parse(&[
            "cilium",
            "monitor",
            "-t",
            "drop",
            "-t",
            "trace",
            "-v",
            "--related-to",
            "212",
        ]);
        let Command::Monitor(args) = cli.command else {
            panic!("expected monitor, got {:?}", cli.command)
        };
        assert_eq!(args.types, vec![EventKind::Drop, EventKind::Trace]);
        assert!(args.verbose);
        assert_eq!(args.related_to, Some(212));
        let err = Cli::try_parse_from(["cilium", "monitor", "-t", "drops"]).unwrap_err();
        assert!(err.to_string().contains("unknown event type"), "{err}");
    }

    #[test]
    fn ct_list_needs_a_known_scope() {
        let cli = parse(&["cilium", "bpf", "ct", "list", "global"]);
        assert!(matches!(
            cli.command,
            Command::Bpf(BpfCommand::Ct(CtCommand::List {
                scope: CtScope::Global
            }))
        ));
        assert!(Cli::try_parse_from(["cilium", "bpf", "ct", "list", "42"]).is_err());
    }

    #[test]
    fn kvstore_get_takes_a_key_and_recursive() {
        let cli = parse(&[
            "cilium",
            "kvstore",
            "get",
            "--recursive",
            "cilium/state/nodes/",
        ]);
        let Command::Kvstore(KvstoreCommand::Get { recursive, key }) = cli.command else {
            panic!("expected kvstore get, got {:?}", cli.command)
        };
        assert!(recursive);
        assert_eq!(key, "cilium/state/nodes/");
        assert!(Cli::try_parse_from(["cilium", "kvstore", "get"]).is_err());
        assert!(matches!(
            parse(&["cilium", "node", "ls"]).command,
            Command::Node(ListOnly::List)
        ));
    }

    #[test]
    fn policy_trace_wants_exactly_one_source_and_one_destination() {
        let cli = parse(&[
            "cilium",
            "policy",
            "trace",
            "--src",
            "k8s:org=empire,k8s:class=tiefighter",
            "-d",
            "300",
            "--dport",
            "80/TCP",
            "--dport",
            "53/UDP",
        ]);
        let Command::Policy(PolicyCommand::Trace(args)) = cli.command else {
            panic!("not a trace: {:?}", cli.command);
        };
        assert_eq!(args.src_labels, ["k8s:org=empire", "k8s:class=tiefighter"]);
        assert_eq!(args.dst_identity, Some(300));
        assert_eq!(args.dports, ["80/TCP", "53/UDP"]);
        for bad in [
            &["cilium", "policy", "trace", "--dst-identity", "300"][..],
            &[
                "cilium",
                "policy",
                "trace",
                "-s",
                "1",
                "--src-endpoint",
                "2",
                "-d",
                "3",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn identity_and_bpf_policy_take_numbers() {
        assert!(matches!(
            parse(&["cilium", "identity", "get", "40321"]).command,
            Command::Identity(IdentityCommand::Get { id: 40321 })
        ));
        assert!(matches!(
            parse(&["cilium", "identity", "ls"]).command,
            Command::Identity(IdentityCommand::List)
        ));
        assert!(matches!(
            parse(&["cilium", "bpf", "policy", "get", "25"]).command,
            Command::Bpf(BpfCommand::Policy(BpfPolicyCommand::Get {
                endpoint_id: 25
            }))
        ));
        assert!(Cli::try_parse_from(["cilium", "identity", "get", "host"]).is_err());
        assert!(Cli::try_parse_from(["cilium", "bpf", "policy", "get", "70000"]).is_err());
    }

    #[test]
    fn command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
