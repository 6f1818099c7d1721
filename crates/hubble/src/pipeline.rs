//! From the datapath's event drain to the ring: a bounded queue the drain never waits on,
//! and a decoder thread that turns records into flows.
//!
//! The drain hands over each raw record with [`EventSender::send`], which only tries to
//! enqueue; when the decoder lags and the queue is full the record is counted, and the
//! count reaches clients as an `OBSERVER_EVENTS_QUEUE` lost-event notice. Decoding (packet
//! parsing, endpoint and identity lookups that may take the agent's locks) happens on the
//! decoder's own thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
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

struct Record {
    bytes: Arc<[u8]>,
    time: Timestamp,
}

/// The drain's handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct EventSender {
    queue: SyncSender<Record>,
    lost: Arc<AtomicU64>,
}

impl EventSender {
    /// Queues one raw ring buffer record, stamped with the current time. Never blocks: a
    /// full queue loses the record (and counts it).
    pub fn send(&self, bytes: Arc<[u8]>) {
        let record = Record {
            bytes,
            time: Timestamp::from(SystemTime::now()),
        };
        match self.queue.try_send(record) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts the decoder thread writing into `observer`; it stops when every sender is gone.
pub fn start(
    observer: Arc<Observer>,
    decoder: FlowDecoder,
    queue_size: usize,
) -> Result<EventSender, SpawnError> {
    let (queue, records) = mpsc::sync_channel::<Record>(queue_size.max(1));
    let lost = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&lost);
    std::thread::Builder::new()
        .name("hubble-decoder".into())
        .spawn(move || {
            while let Ok(record) = records.recv() {
                let missed = counted.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    observer.record_lost(LostEventSource::ObserverEventsQueue, missed);
                }
                match DatapathEvent::parse(&record.bytes) {
                    Ok(event) => observer.record_flow(decoder.decode(&event, record.time)),
                    Err(error) => tracing::debug!(%error, "datapath record not decoded"),
                }
            }
        })
        .map_err(|source| SpawnError { source })?;
    Ok(EventSender { queue, lost })
}
