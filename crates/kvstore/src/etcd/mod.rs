//! [`EtcdStore`]: the [`KvStore`] on a real etcd cluster, through the `etcd-client` crate.
//!
//! The client connects lazily and reconnects by itself, so an agent starts and keeps running
//! while etcd is down: requests fail after the request timeout, watchers wait and resume, and
//! [`LeasedKeys`](crate::LeasedKeys) writes its keys back when etcd returns.

mod convert;
mod probe;
mod source;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
};

use crate::error::{KvError, Operation};
use crate::status::StoreStatus;
use crate::store::KvStore;
use crate::types::{lease_seconds, Expect, KeyValue, LeaseId};
use crate::watch::Watcher;
use convert::{is_lease_not_found, to_key_value};
use source::EtcdSource;

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://10.0.0.1:2379` (a bare `host:port` means `http://`).
    pub endpoints: Vec<String>,
    /// Longest wait for a TCP connection to one endpoint.
    pub dial_timeout: Duration,
    /// Longest wait for the answer to one request.
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval, so a silently dead connection is noticed.
    pub keep_alive_interval: Duration,
}

impl EtcdConfig {
    /// Defaults: dial timeout 5 s, request timeout 10 s, keep-alive every 10 s.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(10),
        }
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_keep_alive(self.keep_alive_interval, self.request_timeout)
            .with_keep_alive_while_idle(true)
            // A member cut off from the others refuses requests instead of serving stale data.
            .with_require_leader(true)
    }
}

/// The store on etcd. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// One client per endpoint, for per-endpoint status.
    probes: Arc<Vec<(String, Client)>>,
    request_timeout: Duration,
    /// Status probes wait no longer than a dial, so `cilium status` answers quickly while an
    /// endpoint is down.
    status_timeout: Duration,
}

impl EtcdStore {
    /// Sets up a client for `config.endpoints`. Does not wait for etcd: connections are made
    /// on first use and remade after failures.
    pub async fn connect(config: EtcdConfig) -> Result<Self, KvError> {
        let connect_error = |source| KvError::Connect {
            endpoints: config.endpoints.clone(),
            source,
        };
        let client = Client::connect(&config.endpoints, Some(config.connect_options()))
            .await
            .map_err(connect_error)?;
        let mut probes = Vec::with_capacity(config.endpoints.len());
        for endpoint in &config.endpoints {
            let probe = Client::connect([endpoint], Some(config.connect_options()))
                .await
                .map_err(connect_error)?;
            probes.push((endpoint.clone(), probe));
        }
        Ok(EtcdStore {
            client,
            probes: Arc::new(probes),
            request_timeout: config.request_timeout,
            status_timeout: config.dial_timeout.min(config.request_timeout),
        })
    }

    /// Runs one request with the request timeout, naming the operation in errors.
    async fn call<T>(
        &self,
        op: Operation,
        target: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, KvError> {
        call(self.request_timeout, op, target, request).await
    }

    /// Like [`call`](Self::call), for requests that carry a lease.
    async fn call_with_lease<T>(
        &self,
        op: Operation,
        target: &str,
        lease: Option<LeaseId>,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, KvError> {
        match (self.call(op, target, request).await, lease) {
            (Err(KvError::Etcd { source, .. }), Some(lease)) if is_lease_not_found(&source) => {
                Err(KvError::LeaseNotFound { op, lease })
            }
            (other, _) => other,
        }
    }
}

async fn call<T>(
    timeout: Duration,
    op: Operation,
    target: &str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, KvError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(KvError::Etcd {
            op,
            target: target.to_owned(),
            source,
        }),
        Err(_) => Err(KvError::Timeout {
            op,
            target: target.to_owned(),
            timeout,
        }),
    }
}

fn lease_target(lease: LeaseId) -> String {
    format!("lease {lease}")
}

#[async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError> {
        let mut client = self.client.clone();
        let mut answer = self
            .call(Operation::Get, key, client.get(key, None))
            .await?;
        Ok(answer.take_kvs().into_iter().next().map(to_key_value))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), KvError> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix();
        let mut answer = self
            .call(Operation::List, prefix, client.get(prefix, Some(options)))
            .await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let entries = answer.take_kvs().into_iter().map(to_key_value).collect();
        Ok((entries, revision))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<i64, KvError> {
        let mut client = self.client.clone();
        let options = lease.map(|l| PutOptions::new().with_lease(l.0));
        let answer = self
            .call_with_lease(Operation::Put, key, lease, client.put(key, value, options))
            .await?;
        Ok(answer.header().map_or(0, |h| h.revision()))
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let mut client = self.client.clone();
        let answer = self
            .call(Operation::Delete, key, client.delete(key, None))
            .await?;
        Ok(answer.deleted() > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        let mut client = self.client.clone();
        let options = DeleteOptions::new().with_prefix();
        let answer = self
            .call(
                Operation::DeletePrefix,
                prefix,
                client.delete(prefix, Some(options)),
            )
            .await?;
        Ok(answer.deleted().unsigned_abs())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Expect,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<bool, KvError> {
        let compare = match expect {
            // A key that does not exist has create revision 0.
            Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Expect::ModRevision(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
        };
        let options = lease.map(|l| PutOptions::new().with_lease(l.0));
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, value, options)]);
        let mut client = self.client.clone();
        let answer = self
            .call_with_lease(Operation::CompareAndSwap, key, lease, client.txn(txn))
            .await?;
        Ok(answer.succeeded())
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        let mut client = self.client.clone();
        let seconds = lease_seconds(ttl);
        let answer = self
            .call(
                Operation::GrantLease,
                &format!("ttl {seconds}s"),
                client.lease_grant(seconds, None),
            )
            .await?;
        Ok(LeaseId(answer.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), KvError> {
        let mut client = self.client.clone();
        // Opening the keep-alive stream sends one renewal and waits for its answer.
        self.call_with_lease(
            Operation::KeepAlive,
            &lease_target(lease),
            Some(lease),
            client.lease_keep_alive(lease.0),
        )
        .await
        .map(drop)
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        let mut client = self.client.clone();
        self.call_with_lease(
            Operation::Revoke,
            &lease_target(lease),
            Some(lease),
            client.lease_revoke(lease.0),
        )
        .await
        .map(drop)
    }

    async fn compact(&self, revision: i64) -> Result<(), KvError> {
        let mut client = self.client.clone();
        self.call(
            Operation::Compact,
            &format!("revision {revision}"),
            client.compact(revision, None),
        )
        .await
        .map(drop)
    }

    fn watch(&self, prefix: &str, from_revision: i64) -> Watcher {
        let source = EtcdSource {
            client: self.client.clone(),
            request_timeout: self.request_timeout,
        };
        Watcher::spawn(source, prefix, from_revision)
    }

    async fn status(&self) -> StoreStatus {
        probe::status(&self.probes, self.status_timeout).await
    }
}
