//! The allocator on a real etcd: two nodes, each with its own connection, racing for the
//! same label sets, then releasing and collecting them.

use std::collections::BTreeSet;
use std::sync::Arc;

use cilium_identity::NumericIdentity;
use cilium_kvstore::keys::IDENTITY_ID_PREFIX;
use cilium_kvstore::KvStore;

use crate::etcd_server::EtcdServer;
use crate::nodes::{node, pod_labels, race_two_nodes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_separate_connections_agree_and_gc_cleans_up() {
    let server = EtcdServer::start().await;
    let n1_store: Arc<dyn KvStore> = Arc::new(server.client().await);
    let ids = race_two_nodes(&n1_store, 4, 8).await;
    let distinct: BTreeSet<NumericIdentity> = ids.values().copied().collect();
    assert_eq!(distinct, (256..260).map(NumericIdentity).collect());

    // Two nodes with their own connections: the second finds the first's identity.
    let n2_store: Arc<dyn KvStore> = Arc::new(server.client().await);
    let (a, a_leases) = node(&n1_store, "a");
    let (b, _b_leases) = node(&n2_store, "b");
    let web = pod_labels("web");
    let (from_a, from_b) = tokio::join!(a.allocate(&web), b.allocate(&web));
    let id = from_a.expect("a allocates web");
    assert_eq!(from_b.expect("b allocates web"), id);
    assert_eq!(id, NumericIdentity(260));

    assert!(a.release(&web).await.unwrap());
    assert!(b.release(&web).await.unwrap());
    // The race's nodes are gone but their leases run for 15 minutes: end them.
    n1_store
        .delete_prefix(cilium_kvstore::keys::IDENTITY_VALUE_PREFIX)
        .await
        .expect("drop remaining claims");
    let stats = b.gc_once().await.expect("gc");
    assert_eq!(stats.deleted, 5);
    let (left, _) = n1_store.list(IDENTITY_ID_PREFIX).await.unwrap();
    assert!(left.is_empty(), "every identity collected: {left:?}");
    drop(a);
    Arc::into_inner(a_leases)
        .expect("allocator dropped its handle")
        .close()
        .await
        .expect("revoke a's lease");
}
