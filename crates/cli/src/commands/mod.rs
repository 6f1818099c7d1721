//! One module per `cilium` command.

pub mod bpf_ct;
pub mod bpf_endpoint;
pub mod bpf_metrics;
pub mod endpoint;
pub mod monitor;
pub mod status;
