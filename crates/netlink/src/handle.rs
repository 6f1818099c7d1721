//! [`Netlink`]: an rtnetlink socket bound to one network namespace, driven by a private
//! current-thread runtime so that every operation is a plain blocking call.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use crate::error::NetlinkError;
use crate::netns::NetNs;

/// A netlink handle for the namespace it was opened in.
pub struct Netlink {
    runtime: Runtime,
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a handle for the calling thread's current network namespace.
    pub fn connect() -> Result<Self, NetlinkError> {
        let runtime = Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| NetlinkError::Runtime { source })?;
        let (connection, handle, _) = {
            let _entered = runtime.enter();
            rtnetlink::new_connection().map_err(|source| NetlinkError::Socket { source })?
        };
        runtime.spawn(connection);
        Ok(Self { runtime, handle })
    }

    /// Opens a handle for `netns`; the handle keeps working in that namespace whichever
    /// thread uses it later.
    pub fn connect_in(netns: &NetNs) -> Result<Self, NetlinkError> {
        netns
            .run(Self::connect)
            .map_err(|source| NetlinkError::Namespace {
                netns: netns.path().display().to_string(),
                source,
            })?
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Runs one request to completion on this handle's runtime.
    pub(crate) fn block_on<F: Future>(&self, request: F) -> F::Output {
        self.runtime.block_on(request)
    }
}
