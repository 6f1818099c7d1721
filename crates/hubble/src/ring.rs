//! The flow ring buffer: the last N events of a node, with positions that keep counting so
//! a reader that falls behind learns how many events it lost.
//!
//! Capacity follows Cilium: 2^n − 1 (1 ≤ n ≤ 16), default 4095. Every event written gets
//! the next position; the ring holds positions `[written − capacity, written)`. Readers copy
//! out `Arc`s under a short lock and filter outside it; followers wait on a watch channel
//! that carries the number of events written.

use std::sync::{Arc, Mutex};

use cilium_hubble_proto::flow::{Flow, LostEvent};
use cilium_hubble_proto::Timestamp;
use tokio::sync::watch;

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
// Flows are nearly every event and live behind an `Arc` already: boxing them would cost an
// allocation per flow to save space on the rare lost-event notice.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A decoded flow.
    Flow(Flow),
    /// Events lost before they reached the ring.
    Lost(LostEvent),
}

/// One entry of the ring.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When it was observed.
    pub time: Timestamp,
    pub payload: Payload,
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
        let written = {
            let mut slots = self.lock();
            let at = (slots.written % self.capacity as u64) as usize;
            slots.entries[at] = Some(Arc::new(event));
            slots.written += 1;
            slots.written
        };
        self.written.send_replace(written);
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
        Event {
            time: Timestamp {
                seconds: i64::from(n),
                nanos: 0,
            },
            payload: Payload::Flow(Flow {
                node_name: format!("n{n}"),
                ..Default::default()
            }),
        }
    }

    fn names(events: &[Arc<Event>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.payload {
                Payload::Flow(f) => f.node_name.clone(),
                Payload::Lost(_) => "lost".into(),
            })
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
