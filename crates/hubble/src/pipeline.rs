//! From the datapath's event drain to the ring: a bounded queue the drain never waits on,
//! and a decoder thread that turns records into flows.
//!
//! The drain hands over the raw records of each pass over the ring buffer at once with
//! [`EventSender::send_batch`] (one hand-over and at most one wake-up of the decoder per
//! batch, not per record), which never waits: when the decoder lags and the queue holds its
//! capacity in records, what does not fit is counted, and the count reaches clients as an
//! `OBSERVER_EVENTS_QUEUE` lost-event notice. Decoding (packet
//! parsing, endpoint and identity lookups that may take the agent's locks) happens on the
//! decoder's own thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::SystemTime;

use cilium_datapath::events::DatapathEvent;
use cilium_hubble_proto::flow::LostEventSource;
use cilium_hubble_proto::Timestamp;

use crate::decode::FlowDecoder;
use crate::observer::Observer;

/// Cilium's default event queue size: 1024 per CPU, 16384 beyond 16 CPUs.
pub fn default_queue_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 16 {
        16384
    } else {
        cpus * 1024
    }
}

/// The decoder thread could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting the Hubble decoder thread")]
pub struct SpawnError {
    #[source]
    source: std::io::Error,
}

/// Records drained together, stamped with the time of the drain.
struct Batch {
    records: Vec<Arc<[u8]>>,
    time: Timestamp,
}

/// The drain's handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct EventSender {
    queue: Sender<Batch>,
    /// Records handed over and not yet taken by the decoder.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    lost: Arc<AtomicU64>,
}

impl EventSender {
    /// Queues one raw ring buffer record (see [`send_batch`](Self::send_batch)).
    pub fn send(&self, bytes: Arc<[u8]>) {
        self.send_batch(vec![bytes]);
    }

    /// Queues raw ring buffer records, stamped with the current time. Never blocks: the
    /// records that do not fit in the queue are lost (and counted).
    pub fn send_batch(&self, mut records: Vec<Arc<[u8]>>) {
        if records.is_empty() {
            return;
        }
        let wanted = records.len();
        let before = self.queued.fetch_add(wanted, Ordering::AcqRel);
        let fits = self.capacity.saturating_sub(before).min(wanted);
        if fits < wanted {
            self.queued.fetch_sub(wanted - fits, Ordering::AcqRel);
            self.lost
                .fetch_add((wanted - fits) as u64, Ordering::Relaxed);
            records.truncate(fits);
        }
        if records.is_empty() {
            return;
        }
        let batch = Batch {
            records,
            time: Timestamp::from(SystemTime::now()),
        };
        if let Err(unsent) = self.queue.send(batch) {
            // The decoder is gone: nothing will take them.
            self.queued
                .fetch_sub(unsent.0.records.len(), Ordering::AcqRel);
        }
    }
}

/// Starts the decoder thread writing into `observer`; it stops when every sender is gone.
pub fn start(
    observer: Arc<Observer>,
    decoder: FlowDecoder,
    queue_size: usize,
) -> Result<EventSender, SpawnError> {
    let (queue, batches) = mpsc::channel::<Batch>();
    let lost = Arc::new(AtomicU64::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&lost);
    let taken = Arc::clone(&queued);
    std::thread::Builder::new()
        .name("hubble-decoder".into())
        .spawn(move || {
            while let Ok(batch) = batches.recv() {
                taken.fetch_sub(batch.records.len(), Ordering::AcqRel);
                let missed = counted.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    observer.record_lost(LostEventSource::ObserverEventsQueue, missed);
                }
                for bytes in &batch.records {
                    match DatapathEvent::parse(bytes) {
                        Ok(event) => observer.record_flow(decoder.decode(&event, batch.time)),
                        Err(error) => tracing::debug!(%error, "datapath record not decoded"),
                    }
                }
            }
        })
        .map_err(|source| SpawnError { source })?;
    Ok(EventSender {
        queue,
        queued,
        capacity: queue_size.max(1),
        lost,
    })
}
