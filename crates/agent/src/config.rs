//! The agent's command line: where it keeps state, which pod CIDR it serves, how it attaches.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use ipnet::Ipv4Net;

/// Command line of `cilium-agent`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cilium-agent",
    version,
    about = "Cilium agent: owns one node's eBPF datapath"
)]
pub struct AgentConfig {
    /// Name of this node.
    #[arg(long, env = "CILIUM_NODE_NAME")]
    pub node_name: String,

    /// The node's pod CIDR (the first address is the router IP). Without it, the node takes
    /// one from the cluster pool through the kvstore.
    #[arg(long)]
    pub pod_cidr: Option<Ipv4Net>,

    /// Name of the cluster this node belongs to (keys in the kvstore are per cluster).
    #[arg(long, default_value = "default")]
    pub cluster_name: String,

    /// Where cluster state is shared: `embedded` (in this process: a lone node) or `etcd`.
    #[arg(long, value_enum, default_value_t = KvstoreKind::Embedded)]
    pub kvstore: KvstoreKind,

    /// etcd client URLs, comma-separated (with `--kvstore etcd`).
    #[arg(long, value_delimiter = ',')]
    pub kvstore_endpoints: Vec<String>,

    /// Seconds the node's kvstore entries outlive the agent (Cilium's lease: 15 minutes).
    #[arg(long, default_value_t = 900)]
    pub kvstore_lease_ttl: u64,

    /// How pods on other nodes are reached: `tunnel` (VXLAN, identity in the VNI) or `native`
    /// (routes via the other nodes' addresses).
    #[arg(long, value_enum, default_value_t = RoutingMode::Tunnel)]
    pub routing_mode: RoutingMode,

    /// The device facing the other nodes; its IPv4 address is the node's address. Default: the
    /// first device with a global IPv4 address that is not one of ours.
    #[arg(long)]
    pub direct_routing_device: Option<String>,

    /// UDP port of the VXLAN tunnel.
    #[arg(long, default_value_t = 8472)]
    pub tunnel_port: u16,

    /// Range node pod CIDRs are carved from (cluster-pool IPAM).
    #[arg(long, default_value = cilium_ipam::DEFAULT_CLUSTER_POOL)]
    pub cluster_pool_ipv4_cidr: Ipv4Net,

    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = cilium_ipam::DEFAULT_NODE_MASK)]
    pub cluster_pool_ipv4_mask_size: u8,

    /// Directory for persistent state (IPAM allocations, endpoint records).
    #[arg(long, default_value = "/var/run/cilium/state")]
    pub state_dir: PathBuf,

    /// REST API unix socket; the monitor socket is created next to it.
    #[arg(long, default_value = cilium_api::paths::DEFAULT_AGENT_SOCKET)]
    pub socket: PathBuf,

    /// This agent's own bpffs directory (maps and links are pinned below it).
    #[arg(long, default_value = "/sys/fs/bpf/cilium")]
    pub bpf_root: PathBuf,

    /// How programs are attached to devices.
    #[arg(long, value_enum, default_value_t = AttachModeArg::Auto)]
    pub attach_mode: AttachModeArg,

    /// Trace aggregation: `none` traces every packet, `medium` (Cilium's default) traces new
    /// connections, new TCP flags and one packet per 5 s per flow direction.
    #[arg(long, value_enum, default_value_t = MonitorAggregation::Medium)]
    pub monitor_aggregation: MonitorAggregation,

    /// Policy enforcement: `default` (an endpoint is enforced once a rule selects it),
    /// `always` (no rule means nothing is allowed), `never`. Changeable at runtime with
    /// `cilium config PolicyEnforcement=MODE`.
    #[arg(long, env = "CILIUM_ENABLE_POLICY", default_value = "default")]
    pub enable_policy: cilium_policy::EnforcementMode,

    /// Write a CNI network configuration list here once the agent is ready.
    #[arg(long)]
    pub write_cni_conf_when_ready: Option<PathBuf>,

    /// Seconds between conntrack garbage collection runs.
    #[arg(long, default_value_t = 30)]
    pub conntrack_gc_interval: u64,

    /// Seconds between rounds that delete identities no node uses any more (Cilium's
    /// operator runs this every 15 minutes); 0 disables it on this node.
    #[arg(long, default_value_t = 900)]
    pub identity_gc_interval: u64,

    /// Run Hubble: flows from the datapath's events, served over the Observer gRPC API.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub enable_hubble: bool,

    /// Unix socket of the Hubble Observer API (default: `hubble.sock` next to `--socket`).
    #[arg(long)]
    pub hubble_socket_path: Option<PathBuf>,

    /// Also serve the Observer API on TCP, e.g. `:4244` (Cilium's port; plaintext).
    #[arg(long)]
    pub hubble_listen_address: Option<String>,

    /// Flows kept per node: 2^n - 1.
    #[arg(long, default_value = "4095", value_parser = parse_ring_capacity)]
    pub hubble_event_buffer_capacity: cilium_hubble::Capacity,

    /// Serve the agent's Prometheus metrics on this `[HOST]:PORT` (Cilium's `:9962`); off
    /// when not given.
    #[arg(long)]
    pub prometheus_serve_addr: Option<String>,

    /// Serve Hubble's Prometheus metrics on this `[HOST]:PORT` (Cilium's `:9965`); off when
    /// not given.
    #[arg(long)]
    pub hubble_metrics_server: Option<String>,

    /// Hubble metric groups to count, comma-separated: `flow`, `drop`, `tcp`,
    /// `port-distribution`, `policy` (none by default), each with Cilium's options after a
    /// colon, `;`-separated: `sourceContext=`/`destinationContext=` (`namespace`, `pod`,
    /// `pod-short`, `identity`, `reserved-identity`, `workload-name`, `app`, `ip`, `dns`, `|`
    /// for fallbacks) and `labelsContext=` (e.g. `drop:sourceContext=pod;labelsContext=...`).
    #[arg(long, value_delimiter = ',')]
    pub hubble_metrics: Vec<String>,

    /// Socket-LB: translate services when a socket connects or sends (cgroup hooks on
    /// `--cgroup-root`), so their packets need no per-packet NAT. Needs `--cgroup-root`.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub bpf_lb_sock: bool,

    /// The cgroup v2 directory the socket-LB hooks attach to; they apply to the processes in
    /// it and below. No default: the machine's root cgroup is used only when given here.
    #[arg(long)]
    pub cgroup_root: Option<PathBuf>,
}

fn parse_ring_capacity(text: &str) -> Result<cilium_hubble::Capacity, String> {
    let value: usize = text.parse().map_err(|e| format!("{e}"))?;
    cilium_hubble::Capacity::new(value).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachModeArg {
    /// TCX where the kernel has it (6.6+), tc clsact otherwise.
    Auto,
    Tcx,
    Tc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvstoreKind {
    Embedded,
    Etcd,
}

impl KvstoreKind {
    pub fn name(self) -> &'static str {
        match self {
            KvstoreKind::Embedded => "embedded",
            KvstoreKind::Etcd => "etcd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoutingMode {
    Tunnel,
    Native,
}

impl RoutingMode {
    pub fn name(self) -> &'static str {
        match self {
            RoutingMode::Tunnel => "tunnel",
            RoutingMode::Native => "native",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonitorAggregation {
    None,
    Medium,
}

impl MonitorAggregation {
    /// The datapath's `MONITOR_AGGREGATION` value (Cilium's TRACE_AGGREGATE_* numbers).
    pub fn datapath_level(self) -> u32 {
        match self {
            MonitorAggregation::None => 0,
            MonitorAggregation::Medium => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MonitorAggregation::None => "none",
            MonitorAggregation::Medium => "medium",
        }
    }
}

impl AgentConfig {
    pub fn ipam_state_file(&self) -> PathBuf {
        self.state_dir.join("ipam.json")
    }

    pub fn endpoints_dir(&self) -> PathBuf {
        self.state_dir.join("endpoints")
    }

    pub fn monitor_socket(&self) -> PathBuf {
        cilium_api::paths::monitor_socket_for(&self.socket)
    }

    /// The Hubble socket: as given, or `hubble.sock` next to the API socket (Cilium's
    /// `/var/run/cilium/hubble.sock` by default).
    pub fn hubble_socket(&self) -> PathBuf {
        self.hubble_socket_path
            .clone()
            .unwrap_or_else(|| self.socket.with_file_name("hubble.sock"))
    }

    /// Where the pod CIDR taken from the cluster pool is remembered, so a restart keeps it
    /// even while the kvstore is unreachable.
    pub fn pod_cidr_file(&self) -> PathBuf {
        self.state_dir.join("pod-cidr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cilium() {
        let config = AgentConfig::try_parse_from([
            "cilium-agent",
            "--node-name",
            "n1",
            "--pod-cidr",
            "10.0.1.0/24",
        ])
        .unwrap();
        assert_eq!(config.socket, PathBuf::from("/var/run/cilium/cilium.sock"));
        assert_eq!(
            config.monitor_socket(),
            PathBuf::from("/var/run/cilium/monitor1_2.sock")
        );
        assert_eq!(config.monitor_aggregation.datapath_level(), 3);
        assert_eq!(config.routing_mode, RoutingMode::Tunnel);
        assert_eq!(config.kvstore, KvstoreKind::Embedded);
        assert_eq!(config.cluster_pool_ipv4_cidr.to_string(), "10.0.0.0/8");
        assert_eq!(config.cluster_pool_ipv4_mask_size, 24);
        assert_eq!(config.tunnel_port, 8472);
        assert!(config.enable_hubble);
        assert_eq!(
            config.hubble_socket(),
            PathBuf::from("/var/run/cilium/hubble.sock")
        );
        assert_eq!(config.hubble_event_buffer_capacity.get(), 4095);
        assert_eq!(config.hubble_listen_address, None);
        assert_eq!(config.prometheus_serve_addr, None);
        assert_eq!(config.hubble_metrics_server, None);
        assert!(config.hubble_metrics.is_empty());
        assert!(config.bpf_lb_sock);
        assert_eq!(config.cgroup_root, None);
    }

    #[test]
    fn socket_lb_flags_follow_cilium() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["cilium-agent", "--node-name", "n1"];
            args.extend_from_slice(extra);
            AgentConfig::try_parse_from(args).unwrap()
        };
        let config = parse(&["--bpf-lb-sock=false", "--cgroup-root", "/sys/fs/cgroup/x"]);
        assert!(!config.bpf_lb_sock);
        assert_eq!(config.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup/x")));
        assert!(parse(&["--bpf-lb-sock"]).bpf_lb_sock);
    }

    #[test]
    fn bad_cidr_is_rejected() {
        let err = AgentConfig::try_parse_from([
            "cilium-agent",
            "--node-name",
            "n1",
            "--pod-cidr",
            "10.0.1/24",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("pod-cidr"), "{err}");
    }

    #[test]
    fn hubble_flags_follow_cilium() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["cilium-agent", "--node-name", "n1"];
            args.extend_from_slice(extra);
            AgentConfig::try_parse_from(args)
        };
        let config = parse(&[
            "--socket",
            "/run/lab/n1/cilium.sock",
            "--enable-hubble=false",
            "--hubble-event-buffer-capacity",
            "65535",
        ])
        .unwrap();
        assert!(!config.enable_hubble);
        assert_eq!(
            config.hubble_socket(),
            PathBuf::from("/run/lab/n1/hubble.sock")
        );
        assert_eq!(config.hubble_event_buffer_capacity.get(), 65535);
        assert!(parse(&["--enable-hubble"]).unwrap().enable_hubble);
        let err = parse(&["--hubble-event-buffer-capacity", "4096"]).unwrap_err();
        assert!(err.to_string().contains("2^n - 1"), "{err}");
    }
}
