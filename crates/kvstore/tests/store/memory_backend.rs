//! The shared suite on [`MemoryStore`], with a short history so that watchers go through the
//! lag and compaction paths.

use std::sync::Arc;

use cilium_kvstore::{KvStore, MemoryStore};

async fn setup() -> (Arc<dyn KvStore>, ()) {
    (Arc::new(MemoryStore::with_history(64)), ())
}

crate::backend_suite!(setup);

#[tokio::test]
async fn status_names_the_in_process_store() {
    let store = MemoryStore::new();
    store.put("k", b"v".to_vec(), None).await.expect("put");
    let status = store.status().await;
    assert!(status.is_healthy());
    assert!(
        status
            .to_string()
            .starts_with("memory: in-process store (single node), revision "),
        "status: {status}"
    );
}

#[tokio::test]
async fn dropping_the_store_ends_its_watchers() {
    let store = MemoryStore::new();
    let mut watcher = store.watch("cilium/", 0);
    drop(store);
    let end = tokio::time::timeout(crate::suite::PATIENCE, watcher.recv())
        .await
        .expect("watcher ends within the patience window");
    assert_eq!(end, None);
}
