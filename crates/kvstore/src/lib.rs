//! The kvstore: cluster-wide state (nodes, IP → identity entries, identities, services) shared
//! between agents, with Cilium's key layout ([`keys`]).
//!
//! One trait, [`KvStore`], with two backends that behave the same:
//! - [`EtcdStore`]: a real etcd cluster (Debian's `etcd-server`), for anything with more than
//!   one node;
//! - [`MemoryStore`]: an embedded in-process store for a lone node.
//!
//! Entries a node owns (its node entry, its pods' IPs) live on a lease through [`LeasedKeys`],
//! so a dead node's state expires, and a live node's state is written back when the lease was
//! lost during an outage. [`Watcher`]s resume after disconnects and resynchronise after
//! compaction, so an outage only delays updates: the agent catches up when the store returns.

mod error;
mod etcd;
pub mod keys;
mod leased;
mod memory;
mod status;
mod store;
mod types;
mod watch;

pub use error::{KvError, Operation};
pub use etcd::{EtcdConfig, EtcdStore};
pub use leased::LeasedKeys;
pub use memory::MemoryStore;
pub use status::{Backend, EndpointState, EndpointStatus, StoreStatus};
pub use store::KvStore;
pub use types::{Expect, KeyValue, LeaseId, WatchEvent};
pub use watch::Watcher;
