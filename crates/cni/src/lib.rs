//! The `cilium-cni` plugin as a library: the runtime-facing protocol (CNI spec 0.3.0 to
//! 1.1.0: configuration, `CNI_*` environment, results and error codes), the pod plumbing
//! (veth pair, address, routes) and the conversation with the agent. `main.rs` only reads
//! stdin, sets up logging and prints what [`plugin::run`] returns.
//!
//! [`conflist`] renders the network configuration the agent writes when it is ready.

pub mod agent;
pub mod args;
pub mod cmd;
pub mod config;
pub mod conflist;
pub mod endpoint_request;
pub mod env;
pub mod error;
pub mod naming;
pub mod plugin;
pub mod result;
pub mod teardown;
pub mod version;
pub mod veth;
