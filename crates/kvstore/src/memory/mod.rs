//! [`MemoryStore`]: the embedded in-process store for a lone node, with etcd's semantics
//! (revisions, leases that expire, watches from a revision, compaction).

mod state;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use crate::error::{KvError, Operation};
use crate::status::{Backend, StoreStatus};
use crate::store::KvStore;
use crate::types::{lease_seconds, Expect, KeyValue, LeaseId, WatchEvent};
use crate::watch::{Break, EventBatches, WatchSource, Watcher};
use state::{LeaseMissing, State};

/// Events kept for watches that start in the past or fall behind.
const DEFAULT_HISTORY: usize = 10_000;
/// Batches a watcher may fall behind the live broadcast before it catches up from history.
const MAX_BROADCAST: usize = 1024;

/// The embedded store. Cheap to clone; clones share the data. Lease expiry runs on a tokio
/// task, so the store must be created inside a tokio runtime. Dropping the last clone ends
/// every watcher on it.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<[WatchEvent]>>,
    /// Wakes the lease reaper when leases change (and when the store goes away).
    leases_changed: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.leases_changed.notify_one();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store that keeps the last 10,000 events for watches.
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// A store that keeps the last `events` events for watches: a watcher that falls further
    /// behind (or starts earlier) resynchronises from a listing instead.
    pub fn with_history(events: usize) -> Self {
        let (tx, _) = broadcast::channel(events.clamp(1, MAX_BROADCAST));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(events)),
            events: tx,
            leases_changed: Arc::new(Notify::new()),
        });
        tokio::spawn(reap_leases(Arc::downgrade(&shared)));
        MemoryStore { shared }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every method checks
        // before it mutates), so keep serving.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for batch in state.expire(Instant::now()) {
            self.publish(batch);
        }
        state
    }

    fn publish(&self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(events.into());
        }
    }
}

/// Deletes the keys of expired leases, sleeping until the next deadline.
async fn reap_leases(shared: Weak<Shared>) {
    loop {
        let (deadline, wake) = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let deadline = shared.lock().next_deadline();
            (deadline, Arc::clone(&shared.leases_changed))
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

fn lease_missing(op: Operation) -> impl FnOnce(LeaseMissing) -> KvError {
    move |LeaseMissing(lease)| KvError::LeaseNotFound { op, lease }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError> {
        Ok(self.shared.lock().get(key))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), KvError> {
        let state = self.shared.lock();
        Ok((state.list(prefix), state.revision()))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<i64, KvError> {
        let mut state = self.shared.lock();
        let events = state
            .put(key, value, lease)
            .map_err(lease_missing(Operation::Put))?;
        let revision = state.revision();
        self.shared.publish(events);
        Ok(revision)
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let mut state = self.shared.lock();
        let events = state.delete_keys(vec![key.to_owned()]);
        let existed = !events.is_empty();
        self.shared.publish(events);
        Ok(existed)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        let mut state = self.shared.lock();
        let keys = state.keys_under(prefix);
        let events = state.delete_keys(keys);
        let count = events.len() as u64;
        self.shared.publish(events);
        Ok(count)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Expect,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<bool, KvError> {
        let mut state = self.shared.lock();
        let outcome = state
            .compare_and_swap(key, expect, value, lease)
            .map_err(lease_missing(Operation::CompareAndSwap))?;
        Ok(match outcome {
            Some(events) => {
                self.shared.publish(events);
                true
            }
            None => false,
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        let ttl = Duration::from_secs(lease_seconds(ttl).unsigned_abs());
        let id = self.shared.lock().grant(ttl, Instant::now());
        self.shared.leases_changed.notify_one();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), KvError> {
        self.shared
            .lock()
            .keep_alive(lease, Instant::now())
            .map_err(lease_missing(Operation::KeepAlive))
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        let mut state = self.shared.lock();
        let events = state
            .revoke(lease)
            .map_err(lease_missing(Operation::Revoke))?;
        self.shared.publish(events);
        self.shared.leases_changed.notify_one();
        Ok(())
    }

    async fn compact(&self, revision: i64) -> Result<(), KvError> {
        self.shared
            .lock()
            .compact(revision)
            .map_err(|gone| KvError::Compacted {
                op: Operation::Compact,
                revision,
                compact_revision: gone.compact_revision,
            })
    }

    fn watch(&self, prefix: &str, from_revision: i64) -> Watcher {
        let source = MemorySource {
            shared: Arc::downgrade(&self.shared),
        };
        Watcher::spawn(source, prefix, from_revision)
    }

    async fn status(&self) -> StoreStatus {
        StoreStatus {
            backend: Backend::Memory,
            endpoints: Vec::new(),
            revision: Some(self.shared.lock().revision()),
        }
    }
}

/// Watches follow the store through a weak reference, so a watcher does not keep a dropped
/// store alive.
struct MemorySource {
    shared: Weak<Shared>,
}

#[async_trait]
impl WatchSource for MemorySource {
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Break> {
        let shared = self.shared.upgrade().ok_or(Break::Closed)?;
        let state = shared.lock();
        Ok((state.list(prefix), state.revision()))
    }

    async fn keys_at(&self, prefix: &str, revision: i64) -> Result<HashSet<String>, Break> {
        let shared = self.shared.upgrade().ok_or(Break::Closed)?;
        let keys = shared.lock().keys_at(prefix, revision);
        keys.map(|keys| keys.into_iter().collect())
            .map_err(|gone| Break::Compacted {
                compact_revision: gone.compact_revision,
            })
    }

    async fn open(&self, prefix: &str, from_revision: i64) -> Result<EventBatches, Break> {
        let shared = self.shared.upgrade().ok_or(Break::Closed)?;
        // Subscribe under the lock: the backlog ends where the broadcast starts.
        let (backlog, live) = {
            let state = shared.lock();
            let backlog =
                state
                    .history_since(prefix, from_revision)
                    .map_err(|gone| Break::Compacted {
                        compact_revision: gone.compact_revision,
                    })?;
            (backlog, shared.events.subscribe())
        };
        let backlog = stream::iter((!backlog.is_empty()).then_some(Ok(backlog)));
        let prefix = prefix.to_owned();
        let live = stream::unfold(Some(live), move |live| {
            let prefix = prefix.clone();
            async move {
                let mut live = live?;
                loop {
                    match live.recv().await {
                        Ok(batch) => {
                            let events: Vec<WatchEvent> = batch
                                .iter()
                                .filter(|e| e.key().starts_with(&prefix))
                                .cloned()
                                .collect();
                            if !events.is_empty() {
                                return Some((Ok(events), Some(live)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((Err(Break::Disconnected { error: None }), None))
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Some((Err(Break::Closed), None))
                        }
                    }
                }
            }
        });
        Ok(Box::pin(backlog.chain(live)))
    }
}
