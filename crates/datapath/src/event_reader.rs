//! Asynchronous reader of the pinned `cilium_events` ring buffer.
//!
//! A ring buffer has one consumer position: two readers of the same map
//! split the events between them, so the agent should run exactly one.
//!
//! The datapath submits records without waking the reader (see
//! `bpf/lib/events.h`: a wake-up per record costs an interrupt and an IPI),
//! so the reader also drains the ring every [`DRAIN_INTERVAL`]; a ring that
//! fills past its threshold still wakes it at once.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use thiserror::Error;
use tokio::io::{unix::AsyncFd, Interest};

use crate::{
    abi::EVENTS_MAP,
    bpffs::BpfPaths,
    events::{DatapathEvent, EventParseError},
    maps::MapsError,
};

/// Longest time a record waits in the ring before the reader looks.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Failures reading events.
#[derive(Debug, Error)]
pub enum EventReaderError {
    /// The pinned ring buffer could not be opened.
    #[error("cannot open the events ring buffer")]
    Open {
        /// Underlying error.
        #[source]
        source: MapsError,
    },
    /// The reader was created outside a tokio runtime.
    #[error("the event reader needs a tokio runtime with IO enabled")]
    NoRuntime,
    /// Registering with or polling the reactor failed.
    #[error("polling the events ring buffer failed")]
    Poll {
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// One record could not be decoded; later records may still be fine.
    #[error("undecodable datapath event")]
    Parse {
        /// Underlying error.
        #[source]
        source: EventParseError,
    },
}

/// Reads [`DatapathEvent`]s from `<bpf_root>/tc/globals/cilium_events`.
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    /// Opens the pinned ring buffer. Must be called inside a tokio runtime.
    pub fn open(paths: &BpfPaths) -> Result<Self, EventReaderError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EventReaderError::NoRuntime);
        }
        let path = paths.map(EVENTS_MAP);
        let open_err = |source| EventReaderError::Open {
            source: MapsError::Open {
                name: EVENTS_MAP,
                path: path.clone(),
                source: Box::new(source),
            },
        };
        let data = MapData::from_pin(&path).map_err(open_err)?;
        let map = aya::maps::Map::from_map_data(data).map_err(open_err)?;
        let ring = RingBuf::try_from(map).map_err(open_err)?;
        // SAFETY: the RingBuf owns the map's file descriptor, which stays open
        // and unchanged until the RingBuf (owned by the AsyncFd) is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| EventReaderError::Poll { source: err.into() })?;
        Ok(Self { ring })
    }

    /// The next raw record, waiting for one if the buffer is empty. The
    /// bytes are what the datapath wrote (decode them with
    /// [`DatapathEvent::parse`]); the agent forwards them to monitor clients
    /// unchanged.
    pub async fn next(&mut self) -> Result<Vec<u8>, EventReaderError> {
        loop {
            if let Some(record) = self.try_next() {
                return Ok(record);
            }
            tokio::select! {
                ready = self.ring.readable_mut() => {
                    let mut guard = ready.map_err(|source| EventReaderError::Poll { source })?;
                    if let Some(item) = guard.get_inner_mut().next() {
                        return Ok(item.to_vec());
                    }
                    guard.clear_ready();
                }
                _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
            }
        }
    }

    /// The next decoded event, waiting for one if the buffer is empty. A
    /// [`EventReaderError::Parse`] error concerns one record only; keep
    /// calling to read the following ones.
    pub async fn next_event(&mut self) -> Result<DatapathEvent, EventReaderError> {
        let record = self.next().await?;
        DatapathEvent::parse(&record).map_err(|source| EventReaderError::Parse { source })
    }

    /// The next raw record if one is already in the buffer.
    pub fn try_next(&mut self) -> Option<Vec<u8>> {
        self.ring.get_mut().next().map(|item| item.to_vec())
    }

    /// Every record in the buffer, up to `max`, waiting for the first one if it is empty.
    /// Each record is copied once, into a shareable buffer: the agent hands the same records
    /// to several consumers.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Arc<[u8]>>, EventReaderError> {
        let first: Arc<[u8]> = Arc::from(self.next().await?);
        let mut batch = vec![first];
        while batch.len() < max {
            match self.ring.get_mut().next() {
                Some(item) => batch.push(Arc::from(&*item)),
                None => break,
            }
        }
        Ok(batch)
    }
}
