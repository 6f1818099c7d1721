//! `cilium-lab`: a whole Cilium cluster on one machine, built only from network namespaces
//! the lab creates — a switch, etcd on its own host, one namespace per node running a real
//! `cilium-agent`, one per pod wired by the real `cilium-cni` — plus the in-pod toolbox
//! (`serve`, `connect`).
//!
//! It never touches the root namespace's routes, addresses or firewall.

pub mod agent;
pub mod bins;
pub mod bpffs;
pub mod cgroup;
pub mod cli;
pub mod cni;
pub mod commands;
pub mod etcd;
pub mod lab;
pub mod labels;
pub mod manifest;
pub mod names;
pub mod netns;
pub mod node;
pub mod plan;
pub mod process;
pub mod relay;
pub mod report;
pub mod run;
pub mod state;
pub mod table;
pub mod toolbox;
pub mod underlay;
