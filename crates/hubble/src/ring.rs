//! The flow ring buffer: the last N events of a node, with positions that keep counting so
//! a reader that falls behind learns how many events it lost.
//!
//! Capacity follows Cilium: 2^n − 1 (1 ≤ n ≤ 16), default 4095. Every event written gets
//! the next position; the ring holds positions `[written − capacity, written)`. Readers copy
//! out `Arc`s under a short lock and filter outside it; followers wait on a watch channel
//! that carries the number of events written.

use std::sync::{Arc, Mutex, OnceLock};

use cilium_datapath::events::DatapathEvent;
use cilium_hubble_proto::flow::{Flow, LostEvent};
use cilium_hubble_proto::Timestamp;
use tokio::sync::watch;

use crate::decode::FlowDecoder;

/// Cilium's default ring capacity (`--hubble-event-buffer-capacity`).
pub const DEFAULT_CAPACITY: usize = 4095;

/// A capacity that is not 2^n − 1 with 1 ≤ n ≤ 16.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ring capacity {value} is not one of 1, 3, 7, ..., 65535 (2^n - 1)")]
pub struct CapacityError {
    pub value: usize,
}

/// A valid ring capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity(usize);

impl Capacity {
    /// Checks Cilium's rule: 2^n − 1 for n in 1..=16.
    pub fn new(value: usize) -> Result<Self, CapacityError> {
        let valid = (1..=65535).contains(&value) && (value + 1).is_power_of_two();
        valid.then_some(Self(value)).ok_or(CapacityError { value })
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Self(DEFAULT_CAPACITY)
    }
}

/// What an event carries.
#[derive(Debug)]
pub enum Payload {
    /// A flow, decoded from its datapath record when first asked for.
    Flow(LazyFlow),
    /// Events lost before they reached the ring.
    Lost(LostEvent),
}

/// A flow kept as the datapath's raw record until a reader (a `GetFlows` client, the
/// metrics) asks for it; then decoded once, with the context the decoder has at that time,
/// and kept. Keeping the record costs the event path one allocation instead of a decode.
pub struct LazyFlow {
    record: Option<(Arc<[u8]>, Arc<FlowDecoder>)>,
    flow: OnceLock<Option<Box<Flow>>>,
}

impl LazyFlow {
    /// A record `decoder` decodes on first use.
    pub fn record(bytes: Arc<[u8]>, decoder: Arc<FlowDecoder>) -> Self {
        Self {
            record: Some((bytes, decoder)),
            flow: OnceLock::new(),
        }
    }

    /// A flow decoded already.
    pub fn decoded(flow: Flow) -> Self {
        Self {
            record: None,
            flow: OnceLock::from(Some(Box::new(flow))),
        }
    }

    /// The flow, decoded now if it was not yet; `None` for a record that does not parse.
    fn get(&self, time: Timestamp) -> Option<&Flow> {
        self.flow
            .get_or_init(|| {
                let (bytes, decoder) = self.record.as_ref()?;
                match DatapathEvent::parse(bytes) {
                    Ok(event) => Some(Box::new(decoder.decode(&event, time))),
                    Err(error) => {
                        tracing::debug!(%error, "datapath record not decoded");
                        None
                    }
                }
            })
            .as_deref()
    }
}

impl std::fmt::Debug for LazyFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flow.get() {
            Some(flow) => f.debug_tuple("LazyFlow").field(flow).finish(),
            None => f.write_str("LazyFlow(not decoded)"),
        }
    }
}

/// One entry of the ring.
#[derive(Debug)]
pub struct Event {
    /// When it was observed.
    pub time: Timestamp,
    pub payload: Payload,
}

impl Event {
    /// An event carrying a flow decoded already.
    pub fn flow_event(flow: Flow) -> Self {
        Self {
            time: flow.time.unwrap_or_default(),
            payload: Payload::Flow(LazyFlow::decoded(flow)),
        }
    }

    /// The flow this event carries, decoded on first use; `None` for lost-event notices and
    /// records that do not parse.
    pub fn flow(&self) -> Option<&Flow> {
        match &self.payload {
            Payload::Flow(lazy) => lazy.get(self.time),
            Payload::Lost(_) => None,
        }
    }

    /// Whether this event is (or will decode into) a flow rather than a notice.
    pub fn is_flow(&self) -> bool {
        matches!(self.payload, Payload::Flow(_))
    }
}

/// What a reader gets from [`FlowRing::read_from`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Events lost to overwriting between the position asked for and the first one returned.
    pub lost: u64,
    /// Events in order.
    pub events: Vec<Arc<Event>>,
    /// Position to read from next.
    pub next: u64,
}

struct Slots {
    entries: Vec<Option<Arc<Event>>>,
    written: u64,
}

/// A fixed-size ring of events shared by the decoder (writer) and the API (readers).
pub struct FlowRing {
    slots: Mutex<Slots>,
    written: watch::Sender<u64>,
    capacity: usize,
}

impl FlowRing {
    pub fn new(capacity: Capacity) -> Self {
        let capacity = capacity.get();
        Self {
            slots: Mutex::new(Slots {
                entries: vec![None; capacity],
                written: 0,
            }),
            written: watch::Sender::new(0),
            capacity,
        }
    }

    /// How many events the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events it holds now.
    pub fn len(&self) -> usize {
        let written = self.lock().written;
        written.min(self.capacity as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends an event, overwriting the oldest when full, and wakes followers.
    pub fn push(&self, event: Event) {
        self.push_batch(vec![event]);
    }

    /// Appends events in order under one lock and wakes followers once. The events they
    /// overwrite are dropped after the lock is released.
    pub fn push_batch(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut overwritten = Vec::with_capacity(events.len());
        let written = {
            let mut slots = self.lock();
            for event in events {
                let at = (slots.written % self.capacity as u64) as usize;
                overwritten.push(slots.entries[at].replace(Arc::new(event)));
                slots.written += 1;
            }
            slots.written
        };
        self.written.send_replace(written);
        drop(overwritten);
    }

    /// Every event held, oldest first, and the position after the newest.
    pub fn snapshot(&self) -> (Vec<Arc<Event>>, u64) {
        let slots = self.lock();
        let oldest = self.oldest(&slots);
        (self.range(&slots, oldest, slots.written), slots.written)
    }

    /// Up to `max` events from position `from` on; positions already overwritten are
    /// skipped and counted as lost.
    pub fn read_from(&self, from: u64, max: usize) -> Batch {
        let slots = self.lock();
        let start = from.max(self.oldest(&slots));
        let end = slots.written.min(start.saturating_add(max as u64));
        Batch {
            lost: start - from,
            events: self.range(&slots, start, end),
            next: end.max(start),
        }
    }

    fn oldest(&self, slots: &Slots) -> u64 {
        slots.written.saturating_sub(self.capacity as u64)
    }

    fn range(&self, slots: &Slots, start: u64, end: u64) -> Vec<Arc<Event>> {
        (start..end)
            .filter_map(|at| slots.entries[(at % self.capacity as u64) as usize].clone())
            .collect()
    }

    /// A receiver of the number of events written, to wait for new ones.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock cannot leave the slots inconsistent (each write
        // is one assignment and one increment), so poisoning is ignored.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> Event {
        Event::flow_event(Flow {
            node_name: format!("n{n}"),
            time: Some(Timestamp {
                seconds: i64::from(n),
                nanos: 0,
            }),
            ..Default::default()
        })
    }

    fn names(events: &[Arc<Event>]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.flow().map_or("lost".into(), |f| f.node_name.clone()))
            .collect()
    }

    #[test]
    fn capacity_is_two_to_the_n_minus_one() {
        assert_eq!(Capacity::default().get(), 4095);
        for ok in [1, 3, 7, 4095, 65535] {
            assert_eq!(Capacity::new(ok).map(Capacity::get), Ok(ok));
        }
        for bad in [0, 2, 4096, 1000, 131071] {
            let err = Capacity::new(bad).expect_err("invalid");
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn keeps_the_newest_and_counts_what_a_slow_reader_lost() {
        let ring = FlowRing::new(Capacity::new(3).expect("valid"));
        assert!(ring.is_empty());
        for n in 0..2 {
            ring.push(flow(n));
        }
        assert_eq!(ring.len(), 2);
        let (events, next) = ring.snapshot();
        assert_eq!(names(&events), ["n0", "n1"]);
        assert_eq!(next, 2);

        for n in 2..7 {
            ring.push(flow(n));
        }
        assert_eq!((ring.len(), ring.capacity()), (3, 3));
        let (events, next) = ring.snapshot();
        assert_eq!(names(&events), ["n4", "n5", "n6"]);
        assert_eq!(next, 7);

        // A follower that had read up to position 2 lost n2 and n3.
        let batch = ring.read_from(2, 10);
        assert_eq!(batch.lost, 2);
        assert_eq!(names(&batch.events), ["n4", "n5", "n6"]);
        assert_eq!(batch.next, 7);
        // Caught up: nothing new, nothing lost.
        let batch = ring.read_from(7, 10);
        assert_eq!((batch.lost, batch.events.len(), batch.next), (0, 0, 7));
        // Bounded batches.
        let batch = ring.read_from(5, 1);
        assert_eq!(names(&batch.events), ["n5"]);
        assert_eq!(batch.next, 6);
    }

    #[test]
    fn followers_are_woken_with_the_write_count() {
        let ring = FlowRing::new(Capacity::default());
        let mut written = ring.subscribe();
        assert_eq!(*written.borrow_and_update(), 0);
        ring.push(flow(1));
        assert!(written.has_changed().expect("sender alive"));
        assert_eq!(*written.borrow_and_update(), 1);
    }
}
