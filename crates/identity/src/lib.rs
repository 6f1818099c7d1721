//! Security identities: the labels an endpoint is known by, which of them count
//! ([`LabelFilter`]), the numeric identity a label set stands for ([`NumericIdentity`],
//! [`ReservedIdentity`]), and where the numbers come from:
//! - [`IdentityAllocator`]: global identities, cluster-wide through the kvstore with
//!   Cilium's key layout, reference-counted per node and garbage-collected when unused;
//! - [`IdentityCache`]: every global identity, following the kvstore;
//! - [`LocalIdentityAllocator`]: node-local identities for CIDR peers (bit 24 set).
//!
//! Pure logic over the [`KvStore`](cilium_kvstore::KvStore) trait: tests run on the
//! in-process store, without privilege.

mod allocator;
mod cache;
mod filter;
mod label;
mod labels;
mod local;
mod lock;
mod numeric;
mod reserved;

pub use allocator::{AllocatorConfig, AllocatorError, GcStats, IdentityAllocator};
pub use cache::{CacheError, IdentityCache};
pub use filter::{FilterError, LabelFilter, DEFAULT_PATTERNS};
pub use label::{source, Label, LabelError};
pub use labels::{k8s_keys, Labels};
pub use local::{cidr_labels, LocalError, LocalIdentityAllocator};
pub use lock::{LockConfig, LockError, LOCK_PREFIX};
pub use numeric::{NumericIdentity, CLUSTER_ID_SHIFT, LOCAL_IDENTITY_FLAG, SCOPE_MASK};
pub use reserved::ReservedIdentity;
