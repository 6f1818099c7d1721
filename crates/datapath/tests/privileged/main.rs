//! Privileged tests of the datapath: they need root, bpffs, BPF and network
//! namespaces.
//! With the `privileged-tests` feature they run and fail when they cannot.
#![cfg(feature = "privileged-tests")]

mod attach;
mod capture;
mod common;
mod host_device;
mod lb;
mod multinode;
mod policy;
mod routing;
mod sock_lb;
mod test_run;
mod traffic;
