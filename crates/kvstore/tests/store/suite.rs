//! Behaviour every [`KvStore`] backend must show; run against each backend by
//! [`backend_suite!`](crate::backend_suite).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cilium_kvstore::{keys, Expect, KvStore, LeasedKeys, WatchEvent, Watcher};

/// Longest wait for anything a test expects to happen.
pub const PATIENCE: Duration = Duration::from_secs(15);

const CLUSTER: &str = keys::DEFAULT_CLUSTER;

fn nodes() -> String {
    keys::nodes_prefix(CLUSTER)
}

fn node(name: &str) -> String {
    keys::node(CLUSTER, name)
}

/// The next event, or a panic naming what was awaited.
pub async fn next_event(watcher: &mut Watcher, awaited: &str) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, watcher.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("watcher ended while waiting for {awaited}"),
        Err(_) => panic!("no watch event within {PATIENCE:?} while waiting for {awaited}"),
    }
}

/// Writes a sentinel key under `prefix` and returns every event before its put.
pub async fn events_until_sentinel(
    store: &dyn KvStore,
    watcher: &mut Watcher,
    prefix: &str,
    name: &str,
) -> Vec<WatchEvent> {
    let sentinel = format!("{prefix}~sentinel-{name}");
    store
        .put(&sentinel, b"sentinel".to_vec(), None)
        .await
        .expect("put sentinel");
    let mut before = Vec::new();
    loop {
        let event = next_event(watcher, &format!("sentinel {sentinel}")).await;
        if event.key() == sentinel {
            return before;
        }
        before.push(event);
    }
}

/// Polls `check` until it holds, or panics with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put_event(key: &str, value: &[u8]) -> (String, Option<Vec<u8>>) {
    (key.to_owned(), Some(value.to_vec()))
}

fn summary(events: &[WatchEvent]) -> Vec<(String, Option<Vec<u8>>)> {
    events
        .iter()
        .map(|e| match e {
            WatchEvent::Put(kv) => (kv.key.clone(), Some(kv.value.clone())),
            WatchEvent::Delete { key, .. } => (key.clone(), None),
        })
        .collect()
}

async fn value_of(store: &dyn KvStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get").map(|kv| kv.value)
}

pub async fn put_get_list_delete(store: Arc<dyn KvStore>) {
    let rev = store
        .put(&node("n1"), b"one".to_vec(), None)
        .await
        .expect("put n1");
    store
        .put(&node("n2"), b"two".to_vec(), None)
        .await
        .expect("put n2");
    store
        .put(
            &keys::node("default2", "n3"),
            b"other cluster".to_vec(),
            None,
        )
        .await
        .expect("put n3 in another cluster");

    let got = store
        .get(&node("n1"))
        .await
        .expect("get n1")
        .expect("n1 exists");
    assert_eq!(got.value, b"one");
    assert_eq!(
        got.mod_revision, rev,
        "get reports the revision put returned"
    );
    assert_eq!(got.lease, None);
    assert_eq!(store.get(&node("nope")).await.expect("get missing"), None);

    let (entries, list_rev) = store.list(&nodes()).await.expect("list nodes");
    let listed: Vec<&str> = entries.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        listed,
        vec![node("n1"), node("n2")],
        "only this cluster, sorted"
    );
    assert!(
        list_rev > rev,
        "listing revision {list_rev} is after the first put {rev}"
    );

    assert!(store.delete(&node("n1")).await.expect("delete n1"));
    assert!(!store.delete(&node("n1")).await.expect("delete n1 again"));
    assert_eq!(store.get(&node("n1")).await.expect("get deleted"), None);

    let rewritten = store
        .put(&node("n2"), b"two again".to_vec(), None)
        .await
        .expect("overwrite n2");
    let got = store.get(&node("n2")).await.expect("get n2").expect("n2");
    assert_eq!(got.value, b"two again");
    assert_eq!(got.mod_revision, rewritten);
}

pub async fn delete_prefix_removes_only_the_prefix(store: Arc<dyn KvStore>) {
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let key = keys::ip(CLUSTER, ip.parse().expect("ip"));
        store.put(&key, b"{}".to_vec(), None).await.expect("put ip");
    }
    store
        .put(&node("n1"), b"node".to_vec(), None)
        .await
        .expect("put node");
    let removed = store
        .delete_prefix(&keys::ip_prefix(CLUSTER))
        .await
        .expect("delete ip prefix");
    assert_eq!(removed, 3);
    let (ips, _) = store.list(keys::IP_PREFIX).await.expect("list ips");
    assert!(ips.is_empty(), "ip entries left: {ips:?}");
    assert!(
        value_of(&*store, &node("n1")).await.is_some(),
        "node entry survives"
    );
}

pub async fn create_only_writes_once(store: Arc<dyn KvStore>) {
    let key = keys::identity_id(65538);
    assert!(store
        .create_only(&key, b"k8s:app=web;".to_vec(), None)
        .await
        .expect("first create"));
    assert!(!store
        .create_only(&key, b"k8s:app=db;".to_vec(), None)
        .await
        .expect("second create"));
    assert_eq!(
        value_of(&*store, &key).await.as_deref(),
        Some(&b"k8s:app=web;"[..])
    );
}

pub async fn compare_and_swap_checks_the_revision(store: Arc<dyn KvStore>) {
    let key = node("n1");
    let first = store.put(&key, b"v1".to_vec(), None).await.expect("put v1");
    let second = store.put(&key, b"v2".to_vec(), None).await.expect("put v2");
    assert!(!store
        .compare_and_swap(&key, Expect::ModRevision(first), b"stale".to_vec(), None)
        .await
        .expect("cas with stale revision"));
    assert!(!store
        .compare_and_swap(&key, Expect::Absent, b"absent".to_vec(), None)
        .await
        .expect("cas expecting absent"));
    assert!(store
        .compare_and_swap(&key, Expect::ModRevision(second), b"v3".to_vec(), None)
        .await
        .expect("cas with current revision"));
    assert_eq!(value_of(&*store, &key).await.as_deref(), Some(&b"v3"[..]));
    assert!(!store
        .compare_and_swap(
            &node("nope"),
            Expect::ModRevision(second),
            b"x".to_vec(),
            None
        )
        .await
        .expect("cas on missing key"));
}

/// Many contenders, same expectation: exactly one wins, and its value is what is stored.
pub async fn compare_and_swap_race_has_one_winner(store: Arc<dyn KvStore>) {
    const CONTENDERS: usize = 8;
    let key = keys::identity_id(4242);

    async fn contend(
        store: &Arc<dyn KvStore>,
        key: &str,
        expect: Expect,
        round: &str,
    ) -> Vec<(usize, bool)> {
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|i| {
                let store = Arc::clone(store);
                let key = key.to_owned();
                let value = format!("{round}-{i}").into_bytes();
                tokio::spawn(async move {
                    let won = store
                        .compare_and_swap(&key, expect, value, None)
                        .await
                        .expect("contender's compare-and-swap");
                    (i, won)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("contender task"));
        }
        outcomes
    }

    for round in ["create", "update"] {
        let expect = match store.get(&key).await.expect("get before round") {
            None => Expect::Absent,
            Some(kv) => Expect::ModRevision(kv.mod_revision),
        };
        let outcomes = contend(&store, &key, expect, round).await;
        let winners: Vec<usize> = outcomes.iter().filter(|o| o.1).map(|o| o.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(
            value_of(&*store, &key).await,
            Some(format!("{round}-{}", winners[0]).into_bytes()),
            "round {round}: stored value is the winner's"
        );
    }
}

pub async fn expired_lease_deletes_keys_and_watchers_see_it(store: Arc<dyn KvStore>) {
    let mut watcher = store.watch(keys::STATE_PREFIX, 0);
    // Make sure the watcher is established before the lease is granted.
    events_until_sentinel(&*store, &mut watcher, keys::STATE_PREFIX, "ready").await;

    let lease = store
        .grant_lease(Duration::from_secs(1))
        .await
        .expect("grant lease");
    let node_key = node("dead-node");
    let ip_key = keys::ip(CLUSTER, "10.0.9.9".parse().expect("ip"));
    store
        .put(&node_key, b"node".to_vec(), Some(lease))
        .await
        .expect("put node on lease");
    store
        .put(&ip_key, b"ip".to_vec(), Some(lease))
        .await
        .expect("put ip on lease");
    let kept = node("live-node");
    store
        .put(&kept, b"node".to_vec(), None)
        .await
        .expect("put node without lease");
    assert_eq!(
        store
            .get(&node_key)
            .await
            .expect("get")
            .expect("node")
            .lease,
        Some(lease)
    );

    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        match next_event(&mut watcher, "deletes of the expired lease's keys").await {
            WatchEvent::Delete { key, .. } => deleted.push(key),
            WatchEvent::Put(_) => {}
        }
    }
    deleted.sort();
    let mut expected = vec![ip_key.clone(), node_key.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(store.get(&node_key).await.expect("get expired"), None);
    assert!(
        value_of(&*store, &kept).await.is_some(),
        "key without lease stays"
    );
    let err = store
        .keep_alive(lease)
        .await
        .expect_err("keep-alive of expired lease");
    assert!(err.is_lease_not_found(), "unexpected error: {err:?}");
    let err = store
        .put(&node_key, b"again".to_vec(), Some(lease))
        .await
        .expect_err("put on expired lease");
    assert!(err.is_lease_not_found(), "unexpected error: {err:?}");
}

pub async fn keep_alive_holds_the_lease(store: Arc<dyn KvStore>) {
    let lease = store
        .grant_lease(Duration::from_secs(1))
        .await
        .expect("grant lease");
    store
        .put(&node("n1"), b"node".to_vec(), Some(lease))
        .await
        .expect("put on lease");
    // Three TTLs of renewals.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.keep_alive(lease).await.expect("keep-alive");
    }
    assert!(
        value_of(&*store, &node("n1")).await.is_some(),
        "renewed key is still there"
    );
}

pub async fn revoke_deletes_keys_now(store: Arc<dyn KvStore>) {
    let lease = store
        .grant_lease(Duration::from_secs(600))
        .await
        .expect("grant lease");
    store
        .put(&node("n1"), b"node".to_vec(), Some(lease))
        .await
        .expect("put on lease");
    store.revoke(lease).await.expect("revoke");
    assert_eq!(store.get(&node("n1")).await.expect("get"), None);
    let err = store.revoke(lease).await.expect_err("revoke twice");
    assert!(err.is_lease_not_found(), "unexpected error: {err:?}");
}

pub async fn watch_from_revision_replays_history(store: Arc<dyn KvStore>) {
    let first = store
        .put(&node("n1"), b"one".to_vec(), None)
        .await
        .expect("put n1");
    store
        .put(
            &keys::ip(CLUSTER, "10.0.0.1".parse().expect("ip")),
            b"ip".to_vec(),
            None,
        )
        .await
        .expect("put ip outside the watched prefix");
    store
        .put(&node("n2"), b"two".to_vec(), None)
        .await
        .expect("put n2");
    store.delete(&node("n1")).await.expect("delete n1");

    let mut watcher = store.watch(&nodes(), first);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut watcher, "replayed history").await);
    }
    assert_eq!(
        summary(&seen),
        vec![
            put_event(&node("n1"), b"one"),
            put_event(&node("n2"), b"two"),
            (node("n1"), None),
        ]
    );
    assert_eq!(seen[0].revision(), first);
    assert!(seen.windows(2).all(|w| w[0].revision() < w[1].revision()));

    store
        .put(&node("n3"), b"three".to_vec(), None)
        .await
        .expect("put n3");
    let live = next_event(&mut watcher, "live put after history").await;
    assert_eq!(summary(&[live]), vec![put_event(&node("n3"), b"three")]);
}

/// Watching from revision 0 lists first: current entries as puts, then live changes, with no
/// race against writes made right after `watch` returns.
pub async fn watch_from_zero_lists_then_follows(store: Arc<dyn KvStore>) {
    store
        .put(&node("old"), b"old".to_vec(), None)
        .await
        .expect("put old");
    let mut watcher = store.watch(&nodes(), 0);
    store
        .put(&node("new"), b"new".to_vec(), None)
        .await
        .expect("put new right after watch");
    let events = events_until_sentinel(&*store, &mut watcher, &nodes(), "listed").await;
    let mut seen = summary(&events);
    seen.sort();
    assert_eq!(
        seen,
        vec![
            put_event(&node("new"), b"new"),
            put_event(&node("old"), b"old")
        ]
    );
}

/// A consumer that listed at `rev` and watches from `rev + 1` after that history was compacted
/// gets a resync: puts for what changed since, nothing for what it already has.
pub async fn watch_from_compacted_revision_resyncs(store: Arc<dyn KvStore>) {
    store
        .put(&node("same"), b"unchanged".to_vec(), None)
        .await
        .expect("put same");
    store
        .put(&node("changed"), b"v1".to_vec(), None)
        .await
        .expect("put changed");
    let (_, listed_at) = store.list(&nodes()).await.expect("consumer's listing");
    store
        .put(&node("changed"), b"v2".to_vec(), None)
        .await
        .expect("update changed");
    store
        .put(&node("new"), b"new".to_vec(), None)
        .await
        .expect("put new");
    let now = store
        .put(&keys::identity_id(1), b"unrelated".to_vec(), None)
        .await
        .expect("put unrelated");
    store.compact(now).await.expect("compact");

    let mut watcher = store.watch(&nodes(), listed_at + 1);
    let mut events =
        summary(&events_until_sentinel(&*store, &mut watcher, &nodes(), "resync").await);
    events.sort();
    assert_eq!(
        events,
        vec![
            put_event(&node("changed"), b"v2"),
            put_event(&node("new"), b"new")
        ]
    );
}

/// A consumer that does not read while many changes happen still ends up with exactly the
/// store's content (on the in-process store with a short history this goes through lag and
/// compaction resyncs).
pub async fn slow_consumer_converges(store: Arc<dyn KvStore>) {
    let prefix = keys::ip_prefix(CLUSTER);
    for i in 0..20 {
        store
            .put(&format!("{prefix}10.1.0.{i}"), b"before".to_vec(), None)
            .await
            .expect("put before watch");
    }
    let (listed, rev) = store.list(&prefix).await.expect("list");
    let mut view: BTreeMap<String, Vec<u8>> =
        listed.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let mut watcher = store.watch(&prefix, rev + 1);
    // The watcher is following once the sentinel arrives; from here on it must not lose track.
    let started = events_until_sentinel(&*store, &mut watcher, &prefix, "started").await;
    assert!(started.is_empty(), "unexpected events: {started:?}");

    for i in 0..400 {
        store
            .put(
                &format!("{prefix}10.2.{}.{}", i / 200, i % 200),
                format!("v{i}").into_bytes(),
                None,
            )
            .await
            .expect("put while consumer sleeps");
    }
    for i in 0..20 {
        store
            .delete(&format!("{prefix}10.1.0.{i}"))
            .await
            .expect("delete while consumer sleeps");
    }
    store
        .delete_prefix(&format!("{prefix}10.2.1."))
        .await
        .expect("delete prefix while consumer sleeps");

    for event in events_until_sentinel(&*store, &mut watcher, &prefix, "slow").await {
        match event {
            WatchEvent::Put(kv) => view.insert(kv.key, kv.value),
            WatchEvent::Delete { key, .. } => view.remove(&key),
        };
    }
    let (now, _) = store.list(&prefix).await.expect("list after");
    let expected: BTreeMap<String, Vec<u8>> = now
        .into_iter()
        .filter(|kv| !kv.key.contains("~sentinel"))
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(view.len(), 200);
    assert_eq!(view, expected, "watcher's view differs from the store");
}

pub async fn leased_keys_are_written_back_after_the_lease_is_lost(store: Arc<dyn KvStore>) {
    let owned = LeasedKeys::new(Arc::clone(&store), Duration::from_secs(3));
    let node_key = node("me");
    let ip_key = keys::ip(CLUSTER, "10.0.1.7".parse().expect("ip"));
    owned
        .put(&node_key, b"me".to_vec())
        .await
        .expect("own node key");
    owned
        .put(&ip_key, b"ip".to_vec())
        .await
        .expect("own ip key");
    let lease = owned.lease().await.expect("a lease once keys are owned");
    assert_eq!(
        store
            .get(&node_key)
            .await
            .expect("get")
            .expect("node key")
            .lease,
        Some(lease)
    );

    // Someone (an operator, or etcd after a long outage) ends the lease: keys vanish.
    store
        .revoke(lease)
        .await
        .expect("revoke behind the owner's back");
    assert_eq!(store.get(&node_key).await.expect("get"), None);

    eventually("owned keys written back on a new lease", || {
        let store = Arc::clone(&store);
        let (node_key, ip_key) = (node_key.clone(), ip_key.clone());
        async move {
            let node = store.get(&node_key).await.expect("get node");
            let ip = store.get(&ip_key).await.expect("get ip");
            matches!((node, ip), (Some(n), Some(i)) if n.lease.is_some() && n.lease != Some(lease) && i.lease == n.lease)
        }
    })
    .await;
    assert!(owned.is_synced().await);

    owned.delete(&ip_key).await.expect("disown ip");
    assert_eq!(store.get(&ip_key).await.expect("get ip"), None);
    owned.close().await.expect("close");
    assert_eq!(
        store.get(&node_key).await.expect("get node"),
        None,
        "close revokes"
    );
}

pub async fn leased_keys_outlive_their_ttl_while_renewed(store: Arc<dyn KvStore>) {
    let owned = LeasedKeys::new(Arc::clone(&store), Duration::from_secs(1));
    owned.put(&node("me"), b"me".to_vec()).await.expect("own");
    let lease = owned.lease().await.expect("lease");
    // Three TTLs; the keeper renews every third of one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kv = store
        .get(&node("me"))
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(kv.lease, Some(lease), "same lease, renewed");
    drop(owned);
    eventually("keys of a dropped owner expire", || {
        let store = Arc::clone(&store);
        async move { store.get(&node("me")).await.expect("get").is_none() }
    })
    .await;
}

/// One `#[tokio::test]` per suite case, with the store from `$setup` (an async fn returning
/// `(Arc<dyn KvStore>, guard)`; the guard lives as long as the test).
#[macro_export]
macro_rules! backend_suite {
    ($setup:path) => {
        $crate::backend_suite!(
            $setup;
            put_get_list_delete,
            delete_prefix_removes_only_the_prefix,
            create_only_writes_once,
            compare_and_swap_checks_the_revision,
            compare_and_swap_race_has_one_winner,
            expired_lease_deletes_keys_and_watchers_see_it,
            keep_alive_holds_the_lease,
            revoke_deletes_keys_now,
            watch_from_revision_replays_history,
            watch_from_zero_lists_then_follows,
            watch_from_compacted_revision_resyncs,
            slow_consumer_converges,
            leased_keys_are_written_back_after_the_lease_is_lost,
            leased_keys_outlive_their_ttl_while_renewed,
        );
    };
    ($setup:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $setup().await;
                $crate::suite::$case(store).await;
            }
        )+
    };
}
