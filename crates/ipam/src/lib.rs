//! Host-scope IPAM: hands out IPv4 addresses from the node's pod CIDR.
//!
//! The allocator is pure; persistence goes through [`AllocationStore`] so that the agent keeps
//! its allocations in a file (a restarted agent never hands out an address twice) and tests use
//! memory.

mod allocator;
mod store;

pub use allocator::{AllocatorState, HostScopeAllocator, IpamError, ROUTER_OWNER};
pub use store::{AllocationStore, FileStore, MemoryStore, StoreError};
