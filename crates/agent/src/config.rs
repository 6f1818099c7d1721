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

    /// The node's pod CIDR; the first address is the router (gateway) IP.
    #[arg(long)]
    pub pod_cidr: Ipv4Net,

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

    /// Write a CNI network configuration list here once the agent is ready.
    #[arg(long)]
    pub write_cni_conf_when_ready: Option<PathBuf>,

    /// Seconds between conntrack garbage collection runs.
    #[arg(long, default_value_t = 30)]
    pub conntrack_gc_interval: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachModeArg {
    /// TCX where the kernel has it (6.6+), tc clsact otherwise.
    Auto,
    Tcx,
    Tc,
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
}
