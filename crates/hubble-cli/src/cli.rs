//! The command line: `hubble observe`, `hubble status`, `hubble list nodes`, with Cilium's
//! flag names and defaults.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Where `hubble` connects when neither `--server` nor `HUBBLE_SERVER` says otherwise: a
/// relay on Cilium's port (`cilium-lab hubble ...` runs `hubble` next to the lab's relay).
pub const DEFAULT_SERVER: &str = "localhost:4245";

/// Observe flows of a Cilium agent's Hubble server or of a Hubble relay.
#[derive(Debug, Parser)]
#[command(name = "hubble", version)]
pub struct Cli {
    /// Server address: `unix:///path/hubble.sock`, `/path/hubble.sock` or `host:port`.
    #[arg(long, global = true, env = "HUBBLE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,

    /// Seconds to wait for the connection and for unary calls.
    #[arg(long, global = true, default_value_t = 5)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe flows (`hubble observe [flows]`).
    Observe(Box<Observe>),
    /// Health, flow counts and connected nodes of the server.
    Status,
    /// List things the server knows.
    List {
        #[command(subcommand)]
        what: ListWhat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListWhat {
    /// Nodes behind the server (one for an agent, every node for a relay).
    Nodes,
}

/// Output formats of `observe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One line per flow.
    Compact,
    /// Key: value blocks.
    Dict,
    /// JSON, one `GetFlowsResponse` per line (same as jsonpb).
    Json,
    /// JSON, one `GetFlowsResponse` per line.
    Jsonpb,
    /// Aligned columns (not with --follow).
    Table,
}

/// `hubble observe`: selectors, filters (repeat a flag to OR values, combine flags to AND
/// them, `--not` negates the next filter) and output.
#[derive(Debug, Args)]
pub struct Observe {
    /// Optional `flows` (the only kind of event served).
    #[arg(value_parser = ["flows"])]
    pub kind: Option<String>,

    /// Get every flow in the buffer.
    #[arg(long, conflicts_with_all = ["first", "last"])]
    pub all: bool,
    /// Get the first N flows in the buffer (per node through a relay).
    #[arg(long, value_name = "N", conflicts_with_all = ["last", "follow"])]
    pub first: Option<u64>,
    /// Get the last N flows in the buffer (default 20 without other selectors).
    #[arg(long, value_name = "N")]
    pub last: Option<u64>,
    /// Follow flows as they come.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Flows since this time: RFC 3339 or a duration ago (`5m`, `1h30m`, `10s`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Flows until this time: RFC 3339 or a duration ago.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Negate the next filter (it goes to the blacklist).
    #[arg(long, action = ArgAction::Count)]
    pub not: u8,

    /// Flows from or to this pod (`[namespace/]pod-prefix`).
    #[arg(long, value_name = "POD")]
    pub pod: Vec<String>,
    /// Flows from this pod.
    #[arg(long, value_name = "POD")]
    pub from_pod: Vec<String>,
    /// Flows to this pod.
    #[arg(long, value_name = "POD")]
    pub to_pod: Vec<String>,
    /// Flows from or to pods in this namespace (with --pod: the pods' namespace).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Vec<String>,
    /// Flows from pods in this namespace.
    #[arg(long, value_name = "NS")]
    pub from_namespace: Vec<String>,
    /// Flows to pods in this namespace.
    #[arg(long, value_name = "NS")]
    pub to_namespace: Vec<String>,
    /// Flows from or to endpoints matching this label selector (`k8s:app=x,!y`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub label: Vec<String>,
    /// Flows from endpoints matching this label selector.
    #[arg(long, value_name = "SELECTOR")]
    pub from_label: Vec<String>,
    /// Flows to endpoints matching this label selector.
    #[arg(long, value_name = "SELECTOR")]
    pub to_label: Vec<String>,
    /// Flows from or to this security identity.
    #[arg(long, value_name = "ID")]
    pub identity: Vec<String>,
    /// Flows from this security identity.
    #[arg(long, value_name = "ID")]
    pub from_identity: Vec<String>,
    /// Flows to this security identity.
    #[arg(long, value_name = "ID")]
    pub to_identity: Vec<String>,
    /// Flows from or to this IP or CIDR.
    #[arg(long, value_name = "IP")]
    pub ip: Vec<String>,
    /// Flows from this IP or CIDR.
    #[arg(long, value_name = "IP")]
    pub from_ip: Vec<String>,
    /// Flows to this IP or CIDR.
    #[arg(long, value_name = "IP")]
    pub to_ip: Vec<String>,
    /// Flows from or to this L4 port.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,
    /// Flows from this L4 port.
    #[arg(long, value_name = "PORT")]
    pub from_port: Vec<String>,
    /// Flows to this L4 port.
    #[arg(long, value_name = "PORT")]
    pub to_port: Vec<String>,
    /// Flows from or to this Service (`[namespace/]name`).
    #[arg(long, value_name = "SERVICE")]
    pub service: Vec<String>,
    /// Flows from this Service (replies from its frontend).
    #[arg(long, value_name = "SERVICE")]
    pub from_service: Vec<String>,
    /// Flows to this Service.
    #[arg(long, value_name = "SERVICE")]
    pub to_service: Vec<String>,
    /// Flows from or to pods of this workload (`[kind/]name`, e.g. `Deployment/deathstar`).
    #[arg(long, value_name = "WORKLOAD")]
    pub workload: Vec<String>,
    /// Flows from pods of this workload.
    #[arg(long, value_name = "WORKLOAD")]
    pub from_workload: Vec<String>,
    /// Flows to pods of this workload.
    #[arg(long, value_name = "WORKLOAD")]
    pub to_workload: Vec<String>,
    /// Flows with this verdict (FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED,
    /// TRANSLATED).
    #[arg(long, value_name = "VERDICT")]
    pub verdict: Vec<String>,
    /// Flows of this event type: TYPE[:SUBTYPE] (trace, drop, policy-verdict, capture,
    /// debug, l7, trace-sock; trace subtypes are observation points such as to-endpoint).
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub event_type: Vec<String>,
    /// Flows of this L4/L7 protocol (tcp, udp, icmp, http, ...).
    #[arg(long, value_name = "PROTO")]
    pub protocol: Vec<String>,
    /// Flows with all these TCP flags set (`SYN`, `SYN,ACK`, ...).
    #[arg(long, value_name = "FLAGS")]
    pub tcp_flags: Vec<String>,
    /// Flows observed on this node (`node`, `cluster/node`, globs).
    #[arg(long, value_name = "NODE")]
    pub node_name: Vec<String>,
    /// Flows in this direction (ingress, egress).
    #[arg(long, value_name = "DIRECTION")]
    pub traffic_direction: Vec<String>,
    /// Flows dropped for this reason (e.g. POLICY_DENIED).
    #[arg(long, value_name = "REASON")]
    pub drop_reason_desc: Vec<String>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Compact)]
    pub output: Output,
    /// Print the node that observed each flow.
    #[arg(long)]
    pub print_node_name: bool,
}
