//! The node's observer: the flow ring and the counters `ServerStatus` and `GetNodes` report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use cilium_hubble_proto::flow::{Flow, LostEvent, LostEventSource};
use cilium_hubble_proto::observer::{Node, ServerStatusResponse, Tls};
use cilium_hubble_proto::relay::NodeState;
use cilium_hubble_proto::well_known::UInt32Value;
use cilium_hubble_proto::Timestamp;

use crate::decode::{message_type, FlowDecoder};
use crate::metrics::FlowMetrics;
use crate::ring::{Capacity, Event, FlowRing, LazyFlow, Payload};

/// Version reported to clients (`ServerStatus.version`, `Node.version`).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Flows of one node and what is known about them.
pub struct Observer {
    ring: FlowRing,
    decoder: Arc<FlowDecoder>,
    started: Instant,
    seen_flows: AtomicU64,
    metrics: OnceLock<Arc<FlowMetrics>>,
}

impl Observer {
    /// An empty observer whose records `decoder` turns into flows; the node is the
    /// decoder's (Cilium's `cluster/node`).
    pub fn new(decoder: FlowDecoder, capacity: Capacity) -> Self {
        Self {
            ring: FlowRing::new(capacity),
            decoder: Arc::new(decoder),
            started: Instant::now(),
            seen_flows: AtomicU64::new(0),
            metrics: OnceLock::new(),
        }
    }

    pub fn node_name(&self) -> &str {
        self.decoder.node_name()
    }

    pub fn ring(&self) -> &FlowRing {
        &self.ring
    }

    /// Counts every flow recorded from now on in `metrics` (Hubble's Prometheus metrics).
    /// Returns false, changing nothing, when metrics were enabled already.
    pub fn enable_metrics(&self, metrics: Arc<FlowMetrics>) -> bool {
        self.metrics.set(metrics).is_ok()
    }

    /// Stores raw datapath records observed at `time`, undecoded: the event path pays one
    /// allocation per record; decoding happens when a reader asks for the flow — or here,
    /// when metrics are enabled, so each flow is counted once. Records of kinds that do not
    /// become flows (debug, capture, ...) are skipped.
    pub fn record_raw(&self, records: Vec<Arc<[u8]>>, time: Timestamp) {
        let events: Vec<Event> = records
            .into_iter()
            .filter(|bytes| becomes_flow(bytes))
            .map(|bytes| Event {
                time,
                payload: Payload::Flow(LazyFlow::record(bytes, Arc::clone(&self.decoder))),
            })
            .collect();
        if let Some(metrics) = self.metrics.get() {
            for flow in events.iter().filter_map(Event::flow) {
                metrics.observe(flow);
            }
        }
        self.seen_flows
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.ring.push_batch(events);
    }

    /// Stores a flow decoded already.
    pub fn record_flow(&self, mut flow: Flow) {
        self.seen_flows.fetch_add(1, Ordering::Relaxed);
        flow.time
            .get_or_insert_with(|| Timestamp::from(SystemTime::now()));
        if let Some(metrics) = self.metrics.get() {
            metrics.observe(&flow);
        }
        self.ring.push(Event::flow_event(flow));
    }

    /// Records that `count` events were lost at `source` before they became flows.
    pub fn record_lost(&self, source: LostEventSource, count: u64) {
        self.ring.push(Event {
            time: Timestamp::from(SystemTime::now()),
            payload: Payload::Lost(LostEvent {
                source: source as i32,
                num_events_lost: count,
                cpu: None,
            }),
        });
    }

    /// Flows observed since start.
    pub fn seen_flows(&self) -> u64 {
        self.seen_flows.load(Ordering::Relaxed)
    }

    fn uptime_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// `ServerStatus`: ring occupancy, flows seen, uptime; one node, connected.
    pub fn status(&self) -> ServerStatusResponse {
        ServerStatusResponse {
            num_flows: self.ring.len() as u64,
            max_flows: self.ring.capacity() as u64,
            seen_flows: self.seen_flows(),
            uptime_ns: self.uptime_ns(),
            num_connected_nodes: Some(UInt32Value { value: 1 }),
            num_unavailable_nodes: Some(UInt32Value { value: 0 }),
            unavailable_nodes: Vec::new(),
            version: VERSION.to_string(),
        }
    }

    /// This node as `GetNodes` lists it; `address` is where its API is served.
    pub fn node(&self, address: &str) -> Node {
        Node {
            name: self.node_name().to_string(),
            version: VERSION.to_string(),
            address: address.to_string(),
            state: NodeState::NodeConnected as i32,
            tls: Some(Tls {
                enabled: false,
                server_name: String::new(),
            }),
            uptime_ns: self.uptime_ns(),
            num_flows: self.ring.len() as u64,
            max_flows: self.ring.capacity() as u64,
            seen_flows: self.seen_flows(),
        }
    }
}

/// Whether a ring buffer record is of a kind the decoder turns into a flow (its first byte
/// is the monitor message type).
fn becomes_flow(record: &[u8]) -> bool {
    matches!(
        record.first().map(|&kind| i32::from(kind)),
        Some(
            message_type::DROP
                | message_type::TRACE
                | message_type::POLICY_VERDICT
                | message_type::TRACE_SOCK
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::NoContext;

    #[test]
    fn socket_translations_become_flows_and_debug_records_do_not() {
        assert!(becomes_flow(&[7, 2, 1, 0]));
        assert!(becomes_flow(&[4]) && becomes_flow(&[1]) && becomes_flow(&[5]));
        assert!(!becomes_flow(&[2]) && !becomes_flow(&[]));
    }

    #[test]
    fn status_counts_flows_seen_and_held() {
        let observer = Observer::new(
            FlowDecoder::new("default/node1", Arc::new(NoContext)),
            Capacity::new(3).expect("valid"),
        );
        for _ in 0..5 {
            observer.record_flow(Flow::default());
        }
        observer.record_lost(LostEventSource::ObserverEventsQueue, 7);
        let status = observer.status();
        assert_eq!(
            (status.num_flows, status.max_flows, status.seen_flows),
            (3, 3, 5)
        );
        assert_eq!(status.num_connected_nodes, Some(UInt32Value { value: 1 }));
        assert_eq!(status.version, VERSION);
        let node = observer.node("unix:///run/hubble.sock");
        assert_eq!(node.name, "default/node1");
        assert_eq!(node.state, NodeState::NodeConnected as i32);
        assert_eq!(node.seen_flows, 5);
        let (events, _) = observer.ring().snapshot();
        assert!(matches!(
            &events.last().expect("lost event held").payload,
            Payload::Lost(lost) if lost.num_events_lost == 7
                && lost.source == LostEventSource::ObserverEventsQueue as i32
        ));
    }
}
