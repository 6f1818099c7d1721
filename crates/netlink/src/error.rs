//! The error type of every netlink operation: what was being done, on which object, and the
//! kernel's answer.

use crate::netns::NetNsError;

/// A failed netlink operation.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot start the runtime that drives the netlink socket")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open an rtnetlink socket")]
    Socket {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open an rtnetlink socket inside {netns}")]
    Namespace {
        netns: String,
        #[source]
        source: NetNsError,
    },
    #[error("{operation} {target}")]
    Request {
        operation: &'static str,
        target: String,
        /// Boxed: rtnetlink's error embeds whole netlink messages.
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("{operation} {name}: no such interface")]
    NoSuchLink {
        operation: &'static str,
        name: String,
    },
    #[error("sysctl key {key:?} must be a relative path such as net/ipv4/ip_forward")]
    InvalidSysctlKey { key: String },
    #[error("cannot write {value:?} to {path}")]
    Sysctl {
        path: std::path::PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread for a netlink call")]
    Thread {
        #[source]
        source: std::io::Error,
    },
}

impl NetlinkError {
    /// The kernel's errno for a rejected request (e.g. `libc::EEXIST`), if that is what
    /// happened.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => errno_of(source),
            _ => None,
        }
    }
}

/// Positive errno carried by an rtnetlink error answer.
pub(crate) fn errno_of(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}
