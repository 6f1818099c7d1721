//! Global identity allocation on the in-process kvstore: Cilium's key layout, agreement
//! between nodes racing for the same labels, reference counting, garbage collection, and the
//! cache that follows it all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cilium_identity::{
    AllocatorConfig, AllocatorError, GcStats, IdentityCache, Labels, NumericIdentity,
};
use cilium_kvstore::keys::{self, IDENTITY_ID_PREFIX, IDENTITY_VALUE_PREFIX};
use cilium_kvstore::{KvStore, MemoryStore};

use crate::nodes::{node, pod_labels, race_two_nodes};

fn memory() -> Arc<dyn KvStore> {
    Arc::new(MemoryStore::new())
}

async fn entries(store: &Arc<dyn KvStore>, prefix: &str) -> BTreeMap<String, String> {
    let (kvs, _) = store.list(prefix).await.expect("list store");
    kvs.into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value).expect("utf-8 value")))
        .collect()
}

#[tokio::test]
async fn first_identity_is_256_in_ciliums_key_layout() {
    let store = memory();
    let (n1, _leases) = node(&store, "n1");
    let web = pod_labels("web");
    let id = n1.allocate(&web).await.expect("allocate");
    assert_eq!(id, NumericIdentity(256));

    let text = web.to_kvstore_string();
    assert!(
        text.starts_with("k8s:app=web;k8s:io.cilium.k8s.namespace.labels."),
        "{text}"
    );
    assert_eq!(
        entries(&store, IDENTITY_ID_PREFIX).await,
        BTreeMap::from([("cilium/state/identities/v1/id/256".to_owned(), text.clone())])
    );
    assert_eq!(
        entries(&store, IDENTITY_VALUE_PREFIX).await,
        BTreeMap::from([(
            format!("cilium/state/identities/v1/value/{text}/n1"),
            "256".to_owned()
        )])
    );
    let slave = store
        .get(&keys::identity_value(&text, "n1"))
        .await
        .unwrap()
        .expect("slave key");
    assert!(slave.lease.is_some(), "slave key lives on the node's lease");
    let master = store.get(&keys::identity_id(256)).await.unwrap().unwrap();
    assert_eq!(master.lease, None, "master key has no lease");

    assert_eq!(n1.lookup(id).await.unwrap(), Some(web));
    assert_eq!(n1.lookup(NumericIdentity(257)).await.unwrap(), None);
}

#[tokio::test]
async fn reserved_labels_get_reserved_numbers_without_touching_the_store() {
    let store = memory();
    let (n1, _leases) = node(&store, "n1");
    for (label, id) in [
        ("reserved:host", 1),
        ("reserved:world", 2),
        ("reserved:health", 4),
        ("reserved:init", 5),
        ("reserved:remote-node", 6),
    ] {
        let labels = Labels::parse([label]).unwrap();
        assert_eq!(n1.allocate(&labels).await.unwrap(), NumericIdentity(id));
        assert!(!n1.release(&labels).await.unwrap());
    }
    let (all, _) = store.list(keys::STATE_PREFIX).await.unwrap();
    assert!(
        all.is_empty(),
        "reserved identities are not stored: {all:?}"
    );
    assert_eq!(
        n1.lookup(NumericIdentity::HOST).await.unwrap(),
        Some(Labels::parse(["reserved:host"]).unwrap())
    );
}

#[tokio::test]
async fn empty_labels_have_no_identity() {
    let store = memory();
    let (n1, _leases) = node(&store, "n1");
    assert!(matches!(
        n1.allocate(&Labels::new()).await,
        Err(AllocatorError::EmptyLabels)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_agree_on_ids_and_never_share_one() {
    let store = memory();
    let ids = race_two_nodes(&store, 20, 60).await;
    let distinct: BTreeSet<NumericIdentity> = ids.values().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "different labels share an ID: {ids:?}"
    );
    assert_eq!(
        distinct,
        (256..256 + 20).map(NumericIdentity).collect(),
        "the lowest free IDs are used"
    );
    let masters = entries(&store, IDENTITY_ID_PREFIX).await;
    assert_eq!(
        masters.len(),
        20,
        "one master key per label set: {masters:?}"
    );
    let slaves = entries(&store, IDENTITY_VALUE_PREFIX).await;
    assert_eq!(slaves.len(), 40, "one slave key per label set and node");
    let (locks, _) = store.list(cilium_identity::LOCK_PREFIX).await.unwrap();
    assert!(locks.is_empty(), "no lock left behind: {locks:?}");
}

#[tokio::test]
async fn same_labels_reuse_the_id_and_count_references() {
    let store = memory();
    let (n1, _l1) = node(&store, "n1");
    let web = pod_labels("web");
    let db = pod_labels("db");
    let first = n1.allocate(&web).await.unwrap();
    assert_eq!(n1.allocate(&web).await.unwrap(), first);
    assert_eq!(n1.allocate(&db).await.unwrap(), NumericIdentity(257));

    assert!(!n1.release(&web).await.unwrap(), "one reference left");
    assert!(
        store
            .get(&keys::identity_value(&web.to_kvstore_string(), "n1"))
            .await
            .unwrap()
            .is_some(),
        "slave key stays while referenced"
    );
    assert!(n1.release(&web).await.unwrap(), "last reference");
    assert!(
        store
            .get(&keys::identity_value(&web.to_kvstore_string(), "n1"))
            .await
            .unwrap()
            .is_none(),
        "slave key deleted with the last reference"
    );
    assert!(matches!(
        n1.release(&web).await,
        Err(AllocatorError::NotHeld { .. })
    ));
}

#[tokio::test]
async fn gc_deletes_identities_no_node_uses() {
    let store = memory();
    let (n1, _l1) = node(&store, "n1");
    let (n2, _l2) = node(&store, "n2");
    let web = pod_labels("web");
    let db = pod_labels("db");
    let web_id = n1.allocate(&web).await.unwrap();
    assert_eq!(n2.allocate(&web).await.unwrap(), web_id);
    let db_id = n1.allocate(&db).await.unwrap();

    assert!(n1.release(&web).await.unwrap());
    assert_eq!(
        n1.gc_once().await.unwrap(),
        GcStats {
            alive: 2,
            deleted: 0
        },
        "n2 still uses web"
    );
    assert!(n2.release(&web).await.unwrap());
    assert_eq!(
        n2.gc_once().await.unwrap(),
        GcStats {
            alive: 1,
            deleted: 1
        }
    );
    assert_eq!(n1.lookup(web_id).await.unwrap(), None);
    assert_eq!(n1.lookup(db_id).await.unwrap(), Some(db));

    // The freed ID is the lowest free one again.
    assert_eq!(n2.allocate(&pod_labels("cache")).await.unwrap(), web_id);
}

#[tokio::test]
async fn a_dead_nodes_identities_are_collected() {
    let store = memory();
    let (n1, l1) = node(&store, "n1");
    let (n2, _l2) = node(&store, "n2");
    let web = pod_labels("web");
    let id = n1.allocate(&web).await.unwrap();
    // n1 dies: its lease (and every slave key on it) goes away.
    drop(n1);
    Arc::into_inner(l1)
        .expect("allocator dropped its handle")
        .close()
        .await
        .expect("revoke n1's lease");
    assert_eq!(n2.gc_once().await.unwrap().deleted, 1);
    assert_eq!(n2.lookup(id).await.unwrap(), None);
}

#[tokio::test]
async fn a_missing_master_key_is_recreated_for_labels_still_claimed() {
    let store = memory();
    let (n1, _l1) = node(&store, "n1");
    let (n2, _l2) = node(&store, "n2");
    let web = pod_labels("web");
    let id = n1.allocate(&web).await.unwrap();
    store.delete(&keys::identity_id(id.as_u32())).await.unwrap();
    assert_eq!(
        n2.allocate(&web).await.unwrap(),
        id,
        "n1's claim keeps the ID"
    );
    assert_eq!(n2.lookup(id).await.unwrap(), Some(web));
}

#[tokio::test]
async fn clusters_allocate_from_their_own_range() {
    let store = memory();
    let leases = Arc::new(cilium_kvstore::LeasedKeys::new(
        Arc::clone(&store),
        keys::LEASE_TTL,
    ));
    let config = AllocatorConfig {
        cluster_id: 3,
        ..AllocatorConfig::new("n1")
    };
    let allocator = cilium_identity::IdentityAllocator::new(Arc::clone(&store), leases, config);
    let id = allocator.allocate(&pod_labels("web")).await.unwrap();
    assert_eq!(id, NumericIdentity(3 << 16));
    assert_eq!(id.cluster_id(), 3);
}

#[tokio::test]
async fn cache_follows_allocation_and_collection() {
    let store = memory();
    let (n1, _l1) = node(&store, "n1");
    let web = pod_labels("web");
    let web_id = n1.allocate(&web).await.unwrap();
    let cache = IdentityCache::start(Arc::clone(&store))
        .await
        .expect("start cache");
    assert_eq!(cache.get(web_id), Some(web.clone()), "listed at start");

    let db = pod_labels("db");
    let db_id = n1.allocate(&db).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        cache.wait_until(|ids| ids.contains_key(&db_id)),
    )
    .await
    .expect("cache sees the new identity within 5 s");
    assert_eq!(cache.find(&db), Some(db_id));
    assert_eq!(
        cache.list(),
        vec![(web_id, web.clone()), (db_id, db.clone())]
    );

    n1.release(&web).await.unwrap();
    n1.gc_once().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        cache.wait_until(|ids| !ids.contains_key(&web_id)),
    )
    .await
    .expect("cache drops the collected identity within 5 s");
    assert_eq!(cache.len(), 1);
}
