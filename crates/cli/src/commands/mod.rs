//! One module per `cilium` command.

pub mod bpf_ct;
pub mod bpf_endpoint;
pub mod bpf_ipcache;
pub mod bpf_lb;
pub mod bpf_metrics;
pub mod bpf_policy;
pub mod config;
pub mod endpoint;
pub mod identity;
pub mod kvstore;
pub mod monitor;
pub mod node;
pub mod policy;
pub mod policy_trace;
pub mod service;
pub mod status;
