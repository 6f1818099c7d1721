//! The kvstore against both backends: the in-process store and a real etcd (started by the
//! tests as a child process; needs no root, and fails if etcd is not installed).

mod etcd_backend;
mod etcd_server;
mod memory_backend;
mod proxy;
mod suite;
