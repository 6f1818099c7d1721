//! The lab's subcommands, one module each; the binary only parses arguments and prints.

pub mod apply;
pub mod demo;
pub mod down;
pub mod etcd;
pub mod exec;
pub mod node;
pub mod pod;
pub mod status;
pub mod up;
