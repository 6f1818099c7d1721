//! The shared suite on a real etcd, plus what only a real server can show: outages, restarts,
//! and compaction while a watcher is cut off.

use std::sync::Arc;
use std::time::Duration;

use cilium_kvstore::{
    keys, EtcdConfig, EtcdStore, Expect, KvError, KvStore, LeasedKeys, WatchEvent,
};

use crate::etcd_server::EtcdServer;
use crate::proxy::Proxy;
use crate::suite::{events_until_sentinel, eventually, next_event};

async fn setup() -> (Arc<dyn KvStore>, EtcdServer) {
    let server = EtcdServer::start().await;
    (Arc::new(server.client().await), server)
}

crate::backend_suite!(setup);

/// How long etcd stays down in outage tests.
const OUTAGE: Duration = Duration::from_secs(3);

fn node(name: &str) -> String {
    keys::node(keys::DEFAULT_CLUSTER, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_like_cilium_status() {
    let (store, mut server) = setup().await;
    let status = store.status().await;
    let version = status_version(&status);
    assert_eq!(
        status.to_string(),
        format!(
            "etcd: 1/1 connected, has-quorum=true: {} - {version} (Leader)",
            server.endpoint()
        )
    );
    assert!(status.revision.is_some());

    server.stop();
    let status = store.status().await;
    assert!(!status.is_healthy(), "status while etcd is down: {status}");
    assert!(
        status
            .to_string()
            .starts_with("etcd: 0/1 connected, has-quorum=false: "),
        "status while etcd is down: {status}"
    );
}

fn status_version(status: &cilium_kvstore::StoreStatus) -> &str {
    match &status.endpoints[0].state {
        cilium_kvstore::EndpointState::Connected { version, .. } => {
            assert!(version.starts_with("3."), "etcd version {version}");
            version
        }
        other => panic!("endpoint not connected: {other:?}"),
    }
}

/// A watcher keeps its place across an etcd crash and restart, and delivers what another
/// client wrote after the restart, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_etcd_restarts() {
    let (store, mut server) = setup().await;
    store
        .put(&node("n1"), b"one".to_vec(), None)
        .await
        .expect("put n1");
    let (_, rev) = store
        .list(&keys::nodes_prefix("default"))
        .await
        .expect("list");
    let mut watcher = store.watch(&keys::nodes_prefix("default"), rev + 1);
    store
        .put(&node("n2"), b"two".to_vec(), None)
        .await
        .expect("put n2");
    let event = next_event(&mut watcher, "put of n2 before the outage").await;
    assert_eq!(event.key(), node("n2"));

    server.stop();
    let err = store
        .put(&node("n3"), b"lost".to_vec(), None)
        .await
        .expect_err("put while etcd is down");
    assert!(
        matches!(err, KvError::Timeout { .. } | KvError::Etcd { .. }),
        "unexpected error: {err:?}"
    );
    tokio::time::sleep(OUTAGE).await;
    server.resume().await;

    let other = server.client().await;
    let n4 = other
        .put(&node("n4"), b"four".to_vec(), None)
        .await
        .expect("second client puts n4 after restart");
    other
        .delete(&node("n1"))
        .await
        .expect("second client deletes n1");

    let first = next_event(&mut watcher, "put of n4 after the restart").await;
    let second = next_event(&mut watcher, "delete of n1 after the restart").await;
    assert_eq!(
        first,
        WatchEvent::Put(cilium_kvstore::KeyValue {
            key: node("n4"),
            value: b"four".to_vec(),
            mod_revision: n4,
            lease: None,
        })
    );
    assert!(
        matches!(&second, WatchEvent::Delete { key, mod_revision } if *key == node("n1") && *mod_revision == n4 + 1),
        "second event: {second:?}"
    );
    // The same client works again too.
    store
        .put(&node("n5"), b"five".to_vec(), None)
        .await
        .expect("put through the first client after restart");
    let third = next_event(&mut watcher, "put of n5").await;
    assert_eq!(third.key(), node("n5"));
}

/// Owned keys whose writes failed during an outage are written once etcd is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_keys_catch_up_after_an_outage() {
    let (store, mut server) = setup().await;
    let owned = LeasedKeys::new(Arc::clone(&store), Duration::from_secs(5));
    owned
        .put(&node("me"), b"before".to_vec())
        .await
        .expect("own node key");

    server.stop();
    owned
        .put(
            &keys::ip("default", "10.0.0.7".parse().expect("ip")),
            b"ip".to_vec(),
        )
        .await
        .expect_err("write while etcd is down fails now");
    assert!(!owned.is_synced().await);
    tokio::time::sleep(OUTAGE).await;
    server.resume().await;

    let other = server.client().await;
    eventually("the IP owned during the outage reaches etcd", || {
        let other = other.clone();
        async move {
            other
                .get(&keys::ip("default", "10.0.0.7".parse().expect("ip")))
                .await
                .is_ok_and(|kv| kv.is_some_and(|kv| kv.lease.is_some()))
        }
    })
    .await;
    assert!(other.get(&node("me")).await.expect("get node").is_some());
    eventually("owner reports synced", || async { owned.is_synced().await }).await;
}

/// A client set up while etcd is down works as soon as etcd is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_made_while_etcd_is_down_works_when_it_comes_up() {
    let mut server = EtcdServer::start().await;
    server.stop();
    let store = EtcdStore::connect(server.config())
        .await
        .expect("connect does not need etcd up");
    store
        .get("cilium/state/")
        .await
        .expect_err("get while etcd is down");
    server.resume().await;
    eventually("requests succeed once etcd is up", || {
        let store = store.clone();
        async move { store.put(&node("n1"), b"x".to_vec(), None).await.is_ok() }
    })
    .await;
}

/// While a watcher is cut off, keys change and the history is compacted: when it reconnects,
/// it resynchronises — a delete for the key that vanished, puts for what changed or appeared,
/// nothing for what it already had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resyncs_when_history_was_compacted_while_cut_off() {
    let server = EtcdServer::start().await;
    let direct = server.client().await;
    let proxy = Proxy::start(server.client_port()).await;
    let cut_off = EtcdStore::connect(EtcdConfig {
        endpoints: vec![proxy.endpoint()],
        ..server.config()
    })
    .await
    .expect("client through the proxy");

    let prefix = keys::nodes_prefix("default");
    for name in ["gone", "changed", "same"] {
        direct
            .put(&node(name), b"v1".to_vec(), None)
            .await
            .expect("put before watch");
    }
    let (_, rev) = cut_off.list(&prefix).await.expect("list through proxy");
    let mut watcher = cut_off.watch(&prefix, rev + 1);
    let before = events_until_sentinel(&direct, &mut watcher, &prefix, "connected").await;
    assert!(before.is_empty(), "unexpected events: {before:?}");

    proxy.cut();
    direct.delete(&node("gone")).await.expect("delete gone");
    direct
        .put(&node("changed"), b"v2".to_vec(), None)
        .await
        .expect("update changed");
    direct
        .put(&node("new"), b"v1".to_vec(), None)
        .await
        .expect("put new");
    let now = direct
        .put(&keys::identity_id(7), b"unrelated".to_vec(), None)
        .await
        .expect("put unrelated");
    direct.compact(now).await.expect("compact");
    proxy.restore();

    let mut events: Vec<(String, Option<Vec<u8>>)> =
        events_until_sentinel(&direct, &mut watcher, &prefix, "resynced")
            .await
            .into_iter()
            .map(|e| match e {
                WatchEvent::Put(kv) => (kv.key, Some(kv.value)),
                WatchEvent::Delete { key, .. } => (key, None),
            })
            .collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            (node("changed"), Some(b"v2".to_vec())),
            (node("gone"), None),
            (node("new"), Some(b"v1".to_vec())),
        ]
    );
}

/// Two clients on their own connections race to create, then to update, the same key:
/// every round, exactly one of them wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_between_two_clients_has_one_winner() {
    let server = EtcdServer::start().await;
    let (a, b) = (server.client().await, server.client().await);
    let key = keys::identity_id(99);
    for round in 0..20 {
        let expect = match a.get(&key).await.expect("get before round") {
            None => Expect::Absent,
            Some(kv) => Expect::ModRevision(kv.mod_revision),
        };
        let (won_a, won_b) = tokio::join!(
            a.compare_and_swap(&key, expect, format!("a{round}").into_bytes(), None),
            b.compare_and_swap(&key, expect, format!("b{round}").into_bytes(), None),
        );
        let (won_a, won_b) = (won_a.expect("client a"), won_b.expect("client b"));
        assert!(won_a ^ won_b, "round {round}: a won {won_a}, b won {won_b}");
        let winner = if won_a { "a" } else { "b" };
        assert_eq!(
            a.get(&key)
                .await
                .expect("get after round")
                .map(|kv| kv.value),
            Some(format!("{winner}{round}").into_bytes())
        );
    }
}
