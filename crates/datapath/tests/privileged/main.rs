//! Privileged tests of the endpoint datapath: they need root, bpffs and BPF.
//! With the `privileged-tests` feature they run and fail when they cannot.
#![cfg(feature = "privileged-tests")]

mod attach;
mod common;
mod test_run;
mod traffic;
