//! From the datapath's event drain to the ring: the drain hands over the raw records of
//! each pass over the ring buffer with [`EventSender::send_batch`], and they go into the flow
//! ring as they are — one allocation per record, one lock and one wake-up of followers per
//! batch. Nothing is decoded here: parsing packets and looking up endpoints and identities
//! happen when a reader asks for a flow (see [`LazyFlow`](crate::ring::LazyFlow)), so the
//! event path stays cheap however busy the node is, and flows nobody reads cost nothing.

use std::sync::Arc;
use std::time::SystemTime;

use cilium_hubble_proto::Timestamp;

use crate::observer::Observer;

/// The drain's handle on a node's observer; cheap to clone.
#[derive(Clone)]
pub struct EventSender {
    observer: Arc<Observer>,
}

impl EventSender {
    /// A sender storing records into `observer`.
    pub fn new(observer: Arc<Observer>) -> Self {
        Self { observer }
    }

    /// The observer records go to.
    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    /// Stores one raw ring buffer record (see [`send_batch`](Self::send_batch)).
    pub fn send(&self, bytes: Arc<[u8]>) {
        self.send_batch(vec![bytes]);
    }

    /// Stores raw ring buffer records, stamped with the current time. Never waits on a
    /// reader: readers copy what they need under a short lock and decode outside it.
    pub fn send_batch(&self, records: Vec<Arc<[u8]>>) {
        if records.is_empty() {
            return;
        }
        self.observer
            .record_raw(records, Timestamp::from(SystemTime::now()));
    }
}
