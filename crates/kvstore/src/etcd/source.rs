//! The raw etcd watch behind [`Watcher`](crate::Watcher): one etcd watch per (re)connection,
//! mapped to event batches, with compaction and cancellation reported as breaks.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, GetOptions, WatchOptions};
use futures::StreamExt;

use super::call;
use super::convert::{is_unreadable_revision, to_key_value, to_watch_event};
use crate::error::{KvError, Operation};
use crate::types::KeyValue;
use crate::watch::{Break, EventBatches, WatchSource};

pub(super) struct EtcdSource {
    pub(super) client: Client,
    pub(super) request_timeout: Duration,
}

fn disconnected(error: KvError) -> Break {
    Break::Disconnected { error: Some(error) }
}

#[async_trait]
impl WatchSource for EtcdSource {
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Break> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix();
        let mut answer = call(
            self.request_timeout,
            Operation::List,
            prefix,
            client.get(prefix, Some(options)),
        )
        .await
        .map_err(disconnected)?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let entries = answer.take_kvs().into_iter().map(to_key_value).collect();
        Ok((entries, revision))
    }

    async fn keys_at(&self, prefix: &str, revision: i64) -> Result<HashSet<String>, Break> {
        let mut client = self.client.clone();
        let options = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_revision(revision);
        match call(
            self.request_timeout,
            Operation::List,
            prefix,
            client.get(prefix, Some(options)),
        )
        .await
        {
            Ok(mut answer) => Ok(answer
                .take_kvs()
                .into_iter()
                .map(|kv| to_key_value(kv).key)
                .collect()),
            // Compacted or not yet written: either way that revision cannot be read now.
            Err(KvError::Etcd { source, .. }) if is_unreadable_revision(&source) => {
                Err(Break::Compacted {
                    compact_revision: 0,
                })
            }
            Err(error) => Err(disconnected(error)),
        }
    }

    async fn open(&self, prefix: &str, from_revision: i64) -> Result<EventBatches, Break> {
        let mut client = self.client.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision);
        let stream = call(
            self.request_timeout,
            Operation::Watch,
            prefix,
            client.watch(prefix, Some(options)),
        )
        .await
        .map_err(disconnected)?;
        let prefix = prefix.to_owned();
        let batches = stream.filter_map(move |answer| {
            let item = match answer {
                Err(source) => Some(Err(disconnected(KvError::Etcd {
                    op: Operation::Watch,
                    target: prefix.clone(),
                    source,
                }))),
                Ok(answer) if answer.compact_revision() > 0 => Some(Err(Break::Compacted {
                    compact_revision: answer.compact_revision(),
                })),
                Ok(answer) if answer.canceled() => {
                    tracing::warn!(
                        prefix = %prefix,
                        reason = answer.cancel_reason(),
                        "etcd cancelled the watch"
                    );
                    Some(Err(Break::Disconnected { error: None }))
                }
                Ok(answer) => {
                    let events: Vec<_> =
                        answer.events().iter().filter_map(to_watch_event).collect();
                    // Creation confirmations and progress notifications carry no events.
                    (!events.is_empty()).then_some(Ok(events))
                }
            };
            std::future::ready(item)
        });
        Ok(Box::pin(batches))
    }
}
