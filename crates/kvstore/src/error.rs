//! The error every [`KvStore`](crate::KvStore) operation returns, naming the operation and the
//! key, prefix or lease it was about.

use std::fmt;
use std::time::Duration;

use crate::types::LeaseId;

/// The store operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    List,
    Put,
    Delete,
    DeletePrefix,
    CompareAndSwap,
    GrantLease,
    KeepAlive,
    Revoke,
    Watch,
    Compact,
    Status,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::DeletePrefix => "delete-prefix",
            Operation::CompareAndSwap => "compare-and-swap",
            Operation::GrantLease => "grant-lease",
            Operation::KeepAlive => "keep-alive",
            Operation::Revoke => "revoke",
            Operation::Watch => "watch",
            Operation::Compact => "compact",
            Operation::Status => "status",
        };
        f.write_str(name)
    }
}

/// A failed store operation. `target` is the key, prefix or lease the operation was about.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// etcd answered with an error, or the connection to it failed.
    #[error("kvstore {op} {target:?}: etcd request failed")]
    Etcd {
        op: Operation,
        target: String,
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer in time (it is down, or has no leader).
    #[error("kvstore {op} {target:?}: no answer from etcd within {timeout:?}")]
    Timeout {
        op: Operation,
        target: String,
        timeout: Duration,
    },
    /// The lease expired or was revoked; keys attached to it are gone.
    #[error("kvstore {op}: lease {lease} not found (expired or revoked)")]
    LeaseNotFound { op: Operation, lease: LeaseId },
    /// The revision asked for was compacted away.
    #[error("kvstore {op}: revision {revision} is compacted (oldest kept: {compact_revision})")]
    Compacted {
        op: Operation,
        revision: i64,
        compact_revision: i64,
    },
    /// The etcd client could not be set up (bad endpoint address).
    #[error("kvstore: cannot set up an etcd client for {endpoints:?}")]
    Connect {
        endpoints: Vec<String>,
        #[source]
        source: etcd_client::Error,
    },
}

impl KvError {
    /// True when the lease named in the operation no longer exists.
    pub fn is_lease_not_found(&self) -> bool {
        matches!(self, KvError::LeaseNotFound { .. })
    }
}
