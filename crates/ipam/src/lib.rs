//! IPAM: the cluster pool that node pod CIDRs are carved from, and host-scope allocation of
//! IPv4 addresses from the node's pod CIDR.
//!
//! The allocator is pure; persistence goes through [`AllocationStore`] so that the agent keeps
//! its allocations in a file (a restarted agent never hands out an address twice) and tests use
//! memory.

mod allocator;
mod cluster_pool;
mod store;

pub use allocator::{AllocatorState, HostScopeAllocator, IpamError, ROUTER_OWNER};
pub use cluster_pool::{ClusterPool, ClusterPoolError, DEFAULT_CLUSTER_POOL, DEFAULT_NODE_MASK};
pub use store::{AllocationStore, FileStore, MemoryStore, StoreError};
