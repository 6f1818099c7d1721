//! Hubble inside the agent: datapath events become flows with full identity context, kept in
//! a ring buffer and served over Cilium's Observer gRPC API.
//!
//! The pieces, in the order an event meets them:
//! - [`intake`]: the event drain hands raw records to the ring ([`EventSender`]), undecoded;
//! - [`ring`]: the last N events (2^n − 1, default 4095), with lost-event accounting; each
//!   record is decoded into a flow the first time a reader asks for it ([`ring::LazyFlow`]);
//! - [`decode`]: trace, drop and policy-verdict records → [`flow::Flow`] (verdict, drop
//!   reason, Ethernet/IP/L4 from [`layers`], observation point, direction, reply, ...),
//!   with both ends resolved through the agent's [`FlowContext`] (pods, their
//!   [`workload`]s, and the Service a translated request was sent to);
//! - [`observer`]: the ring plus the counters `ServerStatus` and `GetNodes` report;
//! - [`metrics`]: Hubble's Prometheus counters (`--hubble-metrics`), fed as flows are recorded;
//! - [`filter`] and [`query`]: `GetFlows` whitelist/blacklist filters, `number`, `first`,
//!   `follow`, `since`, `until`;
//! - [`service`] and [`serve`]: the gRPC service on a unix socket and TCP; [`client`]
//!   connects to one (for the `hubble` CLI and the relay); [`peer`]: the kvstore record
//!   through which a relay finds each node's TCP server.
//!
//! Aggregation (trace every packet, or only new connections and new TCP flags) is the
//! datapath's, set by the agent's `--monitor-aggregation`; this crate decodes what arrives.

pub mod client;
pub mod context;
pub mod decode;
pub mod filter;
pub mod intake;
pub mod layers;
pub mod metrics;
pub mod observer;
pub mod peer;
pub mod query;
pub mod ring;
pub mod serve;
pub mod service;
pub mod workload;

pub use cilium_hubble_proto::{flow, observer as api, relay, well_known, Timestamp};
pub use context::{EndpointInfo, FlowContext, FrontendProtocol, NoContext};
pub use decode::FlowDecoder;
pub use intake::EventSender;
pub use observer::Observer;
pub use ring::Capacity;
pub use service::ObserverService;

/// An error and its sources, `outer: inner: innermost`, for gRPC status messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
