//! Timing of every kvstore operation the agent makes, for Cilium's
//! `cilium_kvstore_operations_duration_seconds{action, kind, outcome, scope}` histogram:
//! [`InstrumentedStore`] wraps the agent's [`KvStore`] and records each call's duration in a
//! process-wide family that the metrics server registers on every scrape.
//!
//! Labels: `action` is the operation (`get`, `list`, `put`, `delete`, `delete_prefix`,
//! `compare_and_swap`, `grant_lease`, `keep_alive`, `revoke`, `compact`), `kind` the backend
//! (`etcd` or `embedded`), `scope` the kind of state the key belongs to (the segment after
//! `cilium/state/`, e.g. `nodes`, `identities`, `ip`, `resources`; `lease` for lease
//! operations), `outcome` `success` or `fail`. Watches are long-lived and not timed.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cilium_kvstore::{Expect, KeyValue, KvError, KvStore, LeaseId, StoreStatus, Watcher};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Label set of one series.
pub type OperationLabels = Vec<(&'static str, String)>;

/// The histogram family, one series per label set.
pub type Operations = Family<OperationLabels, Histogram, fn() -> Histogram>;

/// Buckets from 0.5 ms to ~4 s, doubling.
fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The process-wide family (one agent, one store).
pub fn operations() -> &'static Operations {
    static OPERATIONS: OnceLock<Operations> = OnceLock::new();
    OPERATIONS.get_or_init(|| Family::new_with_constructor(histogram as fn() -> Histogram))
}

/// The scope label of `key`: the segment after `cilium/state/` (or the first segment).
fn scope(key: &str) -> String {
    let rest = key.strip_prefix("cilium/state/").unwrap_or(key);
    rest.split('/').next().unwrap_or_default().to_string()
}

/// A [`KvStore`] that times every call of the store it wraps.
pub struct InstrumentedStore {
    inner: Arc<dyn KvStore>,
    kind: &'static str,
}

impl InstrumentedStore {
    /// Wraps `inner`; `kind` names the backend in the metric.
    pub fn new(inner: Arc<dyn KvStore>, kind: &'static str) -> Self {
        Self { inner, kind }
    }

    fn record<T>(
        &self,
        action: &'static str,
        scope: String,
        took: Duration,
        result: &Result<T, KvError>,
    ) {
        let outcome = if result.is_ok() { "success" } else { "fail" };
        operations()
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("kind", self.kind.to_string()),
                ("outcome", outcome.to_string()),
                ("scope", scope),
            ])
            .observe(took.as_secs_f64());
    }
}

/// Times `$call` and records it under `$action` and `$scope`.
macro_rules! timed {
    ($self:ident, $action:literal, $scope:expr, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.record($action, $scope, started.elapsed(), &result);
        result
    }};
}

#[async_trait]
impl KvStore for InstrumentedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError> {
        timed!(self, "get", scope(key), self.inner.get(key))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), KvError> {
        timed!(self, "list", scope(prefix), self.inner.list(prefix))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<i64, KvError> {
        timed!(self, "put", scope(key), self.inner.put(key, value, lease))
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        timed!(self, "delete", scope(key), self.inner.delete(key))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        timed!(
            self,
            "delete_prefix",
            scope(prefix),
            self.inner.delete_prefix(prefix)
        )
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Expect,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<bool, KvError> {
        timed!(
            self,
            "compare_and_swap",
            scope(key),
            self.inner.compare_and_swap(key, expect, value, lease)
        )
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        timed!(
            self,
            "grant_lease",
            "lease".to_string(),
            self.inner.grant_lease(ttl)
        )
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), KvError> {
        timed!(
            self,
            "keep_alive",
            "lease".to_string(),
            self.inner.keep_alive(lease)
        )
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        timed!(
            self,
            "revoke",
            "lease".to_string(),
            self.inner.revoke(lease)
        )
    }

    async fn compact(&self, revision: i64) -> Result<(), KvError> {
        timed!(
            self,
            "compact",
            "revision".to_string(),
            self.inner.compact(revision)
        )
    }

    fn watch(&self, prefix: &str, from_revision: i64) -> Watcher {
        self.inner.watch(prefix, from_revision)
    }

    async fn status(&self) -> StoreStatus {
        self.inner.status().await
    }
}

#[cfg(test)]
mod tests {
    use cilium_kvstore::MemoryStore;

    use super::*;

    #[test]
    fn scopes_are_the_kind_of_state() {
        assert_eq!(scope("cilium/state/identities/v1/id/256"), "identities");
        assert_eq!(scope("cilium/state/nodes/v1/default/node1"), "nodes");
        assert_eq!(scope("other/key"), "other");
    }

    #[tokio::test]
    async fn every_call_is_timed_with_its_outcome() {
        let store = InstrumentedStore::new(Arc::new(MemoryStore::new()), "embedded");
        store
            .put("cilium/state/ip/v1/default/10.0.0.1", b"x".to_vec(), None)
            .await
            .expect("put");
        store
            .get("cilium/state/ip/v1/default/10.0.0.1")
            .await
            .expect("get");
        let failed = store
            .put(
                "cilium/state/ip/v1/default/10.0.0.2",
                b"x".to_vec(),
                Some(LeaseId(9)),
            )
            .await;
        assert!(failed.is_err(), "a put on an unknown lease fails");

        let mut registry = prometheus_client::registry::Registry::with_prefix("cilium");
        registry.register(
            "kvstore_operations_duration_seconds",
            "Duration of kvstore operations",
            operations().clone(),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding");
        for series in [
            r#"cilium_kvstore_operations_duration_seconds_count{action="put",kind="embedded",outcome="success",scope="ip"}"#,
            r#"cilium_kvstore_operations_duration_seconds_count{action="get",kind="embedded",outcome="success",scope="ip"}"#,
            r#"cilium_kvstore_operations_duration_seconds_count{action="put",kind="embedded",outcome="fail",scope="ip"}"#,
        ] {
            assert!(
                text.lines().any(|line| line.starts_with(series)),
                "{series} missing from:\n{text}"
            );
        }
    }
}
