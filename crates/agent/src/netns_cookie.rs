//! Network-namespace cookies of the local endpoints: what names the pod behind a socket
//! that socket LB translated before the socket had an address (the trace-sock record carries
//! `bpf_get_netns_cookie()`; every pod has its own namespace, all share the node's cgroup).
//!
//! A namespace's cookie is read with `getsockopt(SO_NETNS_COOKIE)` (Linux 5.14) on a socket
//! created inside it, on a short-lived thread that enters the
//! namespace: `setns` is per thread and the agent's own threads stay in the node's namespace.
//! Cookies are kept in memory only; a restarted agent reads them again.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::RwLock;

use cilium_endpoint::EndpointId;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// `SO_NETNS_COOKIE` (include/uapi/asm-generic/socket.h, Linux 5.14).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// A namespace's cookie could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetnsCookieError {
    #[error("the endpoint has no network namespace path")]
    NoPath,
    #[error("opening network namespace {netns}")]
    Open {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting a thread to enter network namespace {netns}")]
    Thread {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the thread reading network namespace {netns}'s cookie panicked")]
    Panicked { netns: String },
    #[error("entering network namespace {netns}")]
    Enter {
        netns: String,
        #[source]
        source: nix::Error,
    },
    #[error("creating a UDP socket in network namespace {netns}")]
    Socket {
        netns: String,
        #[source]
        source: nix::Error,
    },
    #[error("reading SO_NETNS_COOKIE in network namespace {netns} (needs Linux 5.14+)")]
    Getsockopt {
        netns: String,
        #[source]
        source: std::io::Error,
    },
}

/// The cookie of the network namespace at `netns` (a path such as `/var/run/netns/NAME` or
/// `/proc/PID/ns/net`).
pub fn read(netns: &str) -> Result<u64, NetnsCookieError> {
    if netns.is_empty() {
        return Err(NetnsCookieError::NoPath);
    }
    let file = File::open(netns).map_err(|source| NetnsCookieError::Open {
        netns: netns.to_string(),
        source,
    })?;
    let path = netns.to_string();
    std::thread::Builder::new()
        .name("netns-cookie".into())
        .spawn(move || read_inside(&file, &path))
        .map_err(|source| NetnsCookieError::Thread {
            netns: netns.to_string(),
            source,
        })?
        .join()
        .map_err(|_| NetnsCookieError::Panicked {
            netns: netns.to_string(),
        })?
}

/// Enters `namespace` (this thread only; the thread ends afterwards) unless the thread is
/// already in it, and reads the cookie of a socket created there.
fn read_inside(namespace: &File, netns: &str) -> Result<u64, NetnsCookieError> {
    if !already_in(namespace) {
        setns(namespace, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsCookieError::Enter {
            netns: netns.to_string(),
            source,
        })?;
    }
    let socket: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|source| NetnsCookieError::Socket {
        netns: netns.to_string(),
        source,
    })?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `socket` is an open descriptor; `cookie` and `len` outlive the call and `len`
    // is the size of the buffer `cookie` points to, as SO_NETNS_COOKIE (a u64) expects.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(NetnsCookieError::Getsockopt {
            netns: netns.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(cookie)
}

/// Whether this thread's network namespace is `namespace` (same device and inode).
fn already_in(namespace: &File) -> bool {
    match (
        namespace.metadata(),
        std::fs::metadata("/proc/thread-self/ns/net"),
    ) {
        (Ok(wanted), Ok(current)) => (wanted.dev(), wanted.ino()) == (current.dev(), current.ino()),
        _ => false,
    }
}

/// Local endpoints by the cookie of their network namespace.
#[derive(Debug, Default)]
pub struct NetnsCookies(RwLock<HashMap<u64, EndpointId>>);

impl NetnsCookies {
    /// Reads the cookie of endpoint `id`'s namespace at `netns` and remembers it. A cookie
    /// that cannot be read is logged and stays unknown: the endpoint works without it.
    pub fn learn(&self, id: EndpointId, netns: &str) {
        match read(netns) {
            Ok(cookie) => {
                let mut cookies = self.0.write().unwrap_or_else(|p| p.into_inner());
                cookies.retain(|_, owner| *owner != id);
                cookies.insert(cookie, id);
                tracing::debug!(endpoint = %id, netns, cookie, "network namespace cookie read");
            }
            Err(error) => {
                self.forget(id);
                tracing::warn!(endpoint = %id, error = %crate::api::chain(&error), "network namespace cookie unknown; socket translations will not name this pod before it binds");
            }
        }
    }

    /// Forgets endpoint `id`'s cookie (the endpoint is gone).
    pub fn forget(&self, id: EndpointId) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, owner| *owner != id);
    }

    /// The endpoint whose namespace has `cookie`.
    pub fn endpoint(&self, cookie: u64) -> Option<EndpointId> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cookie)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_own_namespace_has_the_cookie_of_its_sockets() {
        let own = read("/proc/self/ns/net").expect("reading this process's namespace cookie");
        assert_ne!(own, 0, "a namespace cookie is never 0");
        assert_eq!(
            read("/proc/thread-self/ns/net").expect("reading it through the thread's path"),
            own,
            "one namespace, one cookie"
        );
    }

    #[test]
    fn unreadable_namespaces_leave_the_cookie_unknown() {
        assert!(matches!(read(""), Err(NetnsCookieError::NoPath)));
        let cookies = NetnsCookies::default();
        cookies.learn(EndpointId(7), "/nonexistent/netns");
        let err = read("/nonexistent/netns").expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
        assert!(cookies.0.read().expect("lock").is_empty());
    }

    #[test]
    fn cookies_name_endpoints_until_they_are_forgotten() {
        let cookies = NetnsCookies::default();
        cookies.learn(EndpointId(7), "/proc/self/ns/net");
        let own = read("/proc/self/ns/net").expect("own namespace cookie");
        assert_eq!(cookies.endpoint(own), Some(EndpointId(7)));
        cookies.forget(EndpointId(7));
        assert_eq!(cookies.endpoint(own), None);
    }
}
