//! The identity allocator against both kvstore backends: the in-process store, and a real
//! etcd (started by the tests as a child process; needs no root, and fails if etcd is not
//! installed).

mod allocator;
mod etcd_backend;
// The kvstore tests' etcd harness, shared; these tests use only part of it.
#[allow(dead_code)]
#[path = "../../../kvstore/tests/store/etcd_server.rs"]
mod etcd_server;
mod nodes;
