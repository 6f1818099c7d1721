//! Watchers that survive disconnects and compaction, shared by both backends.
//!
//! A backend supplies a [`WatchSource`]: a way to list a prefix (now or at a past revision)
//! and to open a raw event stream from a revision. The follower task in this module turns that
//! into a [`Watcher`] that never gives up.
//!
//! The guarantees are documented on [`Watcher`].

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::KvError;
use crate::types::{KeyValue, WatchEvent};

/// Why a raw event stream ended or could not be opened.
pub(crate) enum Break {
    /// History from the requested revision is gone.
    Compacted { compact_revision: i64 },
    /// The connection was lost; reopen from the next revision after a pause.
    Disconnected { error: Option<KvError> },
    /// The store itself is gone: the watcher ends.
    Closed,
}

/// Raw event batches (one per revision or server response), in revision order.
pub(crate) type EventBatches = BoxStream<'static, Result<Vec<WatchEvent>, Break>>;

/// What a backend provides so that [`Watcher`] can follow it.
#[async_trait]
pub(crate) trait WatchSource: Send + Sync + 'static {
    /// Current entries under `prefix` and the revision of the listing.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Break>;

    /// The keys under `prefix` at a past `revision`; [`Break::Compacted`] when that revision
    /// can no longer be read.
    async fn keys_at(&self, prefix: &str, revision: i64) -> Result<HashSet<String>, Break>;

    /// Events under `prefix` from `from_revision` on.
    async fn open(&self, prefix: &str, from_revision: i64) -> Result<EventBatches, Break>;
}

/// Events buffered between the follower task and a consumer that is slow to read.
const BUFFER: usize = 256;
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A stream of [`WatchEvent`]s under one prefix, in revision order, from
/// [`KvStore::watch`](crate::KvStore::watch). It ends only when the store it watches is
/// dropped; dropping the watcher stops it.
///
/// Where it starts:
/// - `from_revision <= 0` (**list and watch**): a `Put` for every entry under the prefix (in key
///   order), then every change after that listing, so writes made right after `watch`
///   returns are never missed.
/// - `from_revision > 0`: every change from that revision on. Pass a listing's revision + 1 to
///   follow on from your own [`list`](crate::KvStore::list) (the way to know where the initial
///   state ends).
///
/// What it survives:
/// - **Disconnect** (etcd down, connection reset, the in-process channel overflowed): wait with
///   exponential backoff, then reopen from the last delivered revision + 1. Events written
///   while the watcher was away are delivered once the store is back, in revision order.
/// - **Compaction** (the history from that revision is gone): list the prefix and emit a
///   synthetic resync: a `Delete` (at the listing's revision) for every key the watcher knows
///   of that is no longer there, and a `Put` for every current key written at or after the
///   next expected revision (keys the consumer already has, unchanged, are not repeated).
///   Then follow from the listing's revision + 1.
///
/// The keys "the watcher knows of" are the keys under the prefix at `from_revision - 1` (read
/// from the store's history) plus the puts it has delivered since, minus the deletes. So the
/// consumer ends up with exactly the store's content. One gap remains: if `from_revision - 1`
/// was already compacted when the watcher started, the watcher takes the keys present at its
/// start instead, and a key deleted in between is not reported.
pub struct Watcher {
    events: mpsc::Receiver<WatchEvent>,
    task: JoinHandle<()>,
}

impl Watcher {
    pub(crate) fn spawn(source: impl WatchSource, prefix: &str, from_revision: i64) -> Self {
        let (tx, events) = mpsc::channel(BUFFER);
        let follower = Follower {
            source,
            prefix: prefix.to_owned(),
            tx,
            next: 0,
            known: HashSet::new(),
            backoff: BACKOFF_FIRST,
        };
        let task = tokio::spawn(follower.run(from_revision));
        Watcher { events, task }
    }

    /// The next event; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }
}

impl Stream for Watcher {
    type Item = WatchEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.get_mut().events.poll_recv(cx)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The consumer or the store went away: the follower stops.
struct Stop;

struct Follower<S> {
    source: S,
    prefix: String,
    tx: mpsc::Sender<WatchEvent>,
    /// Lowest revision not yet delivered.
    next: i64,
    /// Keys under the prefix the consumer has (see [`Watcher`]).
    known: HashSet<String>,
    backoff: Duration,
}

impl<S: WatchSource> Follower<S> {
    async fn run(mut self, from_revision: i64) {
        let started = if from_revision > 0 {
            self.start_at(from_revision).await
        } else {
            self.start_with_listing().await
        };
        if started.is_err() {
            return;
        }
        loop {
            let ended = match self.source.open(&self.prefix, self.next).await {
                Ok(batches) => {
                    self.backoff = BACKOFF_FIRST;
                    match self.forward(batches).await {
                        Ok(ended) => ended,
                        Err(Stop) => return,
                    }
                }
                Err(ended) => ended,
            };
            match ended {
                Break::Closed => return,
                Break::Compacted { compact_revision } => {
                    tracing::info!(
                        prefix = %self.prefix,
                        next = self.next,
                        compact_revision,
                        "watch history compacted; resynchronising from a listing"
                    );
                    if self.resync().await.is_err() {
                        return;
                    }
                }
                Break::Disconnected { error } => {
                    match &error {
                        Some(error) => tracing::warn!(
                            prefix = %self.prefix,
                            next = self.next,
                            error = error as &dyn std::error::Error,
                            "watch disconnected; resuming"
                        ),
                        None => tracing::warn!(
                            prefix = %self.prefix,
                            next = self.next,
                            "watch stream ended; resuming"
                        ),
                    }
                    self.pause().await;
                }
            }
        }
    }

    /// List and watch: the current entries as puts, then what follows.
    async fn start_with_listing(&mut self) -> Result<(), Stop> {
        let (entries, revision) = self.list_until_answered().await.ok_or(Stop)?;
        for kv in entries {
            self.deliver(WatchEvent::Put(kv)).await?;
        }
        self.next = revision + 1;
        Ok(())
    }

    /// Watch from a revision: learn which keys the consumer has (those at the revision before).
    async fn start_at(&mut self, from_revision: i64) -> Result<(), Stop> {
        self.next = from_revision;
        if from_revision == 1 {
            // Before revision 1 the store is empty.
            return Ok(());
        }
        loop {
            match self.source.keys_at(&self.prefix, from_revision - 1).await {
                Ok(keys) => {
                    self.known = keys;
                    return Ok(());
                }
                Err(Break::Closed) => return Err(Stop),
                Err(Break::Compacted { compact_revision }) => {
                    tracing::info!(
                        prefix = %self.prefix,
                        from_revision,
                        compact_revision,
                        "watch starts in compacted history; taking the current keys as known"
                    );
                    let (entries, _) = self.list_until_answered().await.ok_or(Stop)?;
                    self.known = entries.into_iter().map(|kv| kv.key).collect();
                    return Ok(());
                }
                Err(Break::Disconnected { error }) => {
                    if let Some(error) = &error {
                        tracing::warn!(
                            prefix = %self.prefix,
                            error = error as &dyn std::error::Error,
                            "watch cannot read its starting point; retrying"
                        );
                    }
                    self.pause().await;
                }
            }
        }
    }

    /// Delivers batches until the raw stream breaks.
    async fn forward(&mut self, mut batches: EventBatches) -> Result<Break, Stop> {
        loop {
            match batches.next().await {
                None => return Ok(Break::Disconnected { error: None }),
                Some(Err(ended)) => return Ok(ended),
                Some(Ok(batch)) => {
                    let mut last = None;
                    for event in batch {
                        // A resumed stream never repeats a delivered revision; guard anyway.
                        if event.revision() < self.next {
                            continue;
                        }
                        last = Some(event.revision());
                        self.deliver(event).await?;
                    }
                    if let Some(last) = last {
                        self.next = last + 1;
                    }
                }
            }
        }
    }

    /// Lists the prefix and emits the difference to what the consumer knows.
    async fn resync(&mut self) -> Result<(), Stop> {
        let (entries, revision) = self.list_until_answered().await.ok_or(Stop)?;
        let current: HashSet<String> = entries.iter().map(|kv| kv.key.clone()).collect();
        let mut vanished: Vec<String> = self.known.difference(&current).cloned().collect();
        vanished.sort();
        for key in vanished {
            self.deliver(WatchEvent::Delete {
                key,
                mod_revision: revision,
            })
            .await?;
        }
        let next = self.next;
        for kv in entries.into_iter().filter(|kv| kv.mod_revision >= next) {
            self.deliver(WatchEvent::Put(kv)).await?;
        }
        self.known = current;
        self.next = self.next.max(revision + 1);
        Ok(())
    }

    async fn deliver(&mut self, event: WatchEvent) -> Result<(), Stop> {
        match &event {
            WatchEvent::Put(kv) => self.known.insert(kv.key.clone()),
            WatchEvent::Delete { key, .. } => self.known.remove(key),
        };
        self.tx.send(event).await.map_err(|_| Stop)
    }

    /// Lists the prefix, retrying with backoff; `None` when the store is gone.
    async fn list_until_answered(&mut self) -> Option<(Vec<KeyValue>, i64)> {
        loop {
            match self.source.list(&self.prefix).await {
                Ok(listing) => {
                    self.backoff = BACKOFF_FIRST;
                    return Some(listing);
                }
                Err(Break::Closed) => return None,
                Err(Break::Compacted { .. }) => {}
                Err(Break::Disconnected { error }) => {
                    if let Some(error) = &error {
                        tracing::warn!(
                            prefix = %self.prefix,
                            error = error as &dyn std::error::Error,
                            "watch cannot list its prefix; retrying"
                        );
                    }
                }
            }
            self.pause().await;
        }
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}
