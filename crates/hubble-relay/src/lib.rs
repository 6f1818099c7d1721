//! Hubble relay: one Observer API for the whole cluster.
//!
//! - [`peers`]: the nodes' Hubble servers, followed from the kvstore's peer records, each
//!   with a lazily connecting gRPC channel;
//! - [`merge`]: responses from every node put back in time order (a short sort window while
//!   following, a full sort otherwise);
//! - [`service`]: `GetFlows` fanned out to every node and merged, `ServerStatus` and
//!   `GetNodes` summed over the nodes, unreachable nodes reported as unavailable while the
//!   rest keep streaming.

pub mod merge;
pub mod peers;
pub mod service;

pub use peers::Peers;
pub use service::RelayService;
