//! Helpers shared by the allocator tests on both stores: nodes (an allocator on its own lease), pod label
//! sets, and a race of many tasks on two nodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use cilium_identity::{AllocatorConfig, IdentityAllocator, Labels, NumericIdentity};
use cilium_kvstore::{keys, KvStore, LeasedKeys};

/// An allocator for node `name`, with the lease its slave keys live on.
pub fn node(store: &Arc<dyn KvStore>, name: &str) -> (IdentityAllocator, Arc<LeasedKeys>) {
    let leases = Arc::new(LeasedKeys::new(Arc::clone(store), keys::LEASE_TTL));
    let allocator = IdentityAllocator::new(
        Arc::clone(store),
        Arc::clone(&leases),
        AllocatorConfig::new(name),
    );
    (allocator, leases)
}

/// The labels of a pod `app=<app>` in namespace `default`.
pub fn pod_labels(app: &str) -> Labels {
    Labels::from_pod(
        [("app", app)],
        "default",
        [("team", "shop")],
        "default",
        "default",
    )
}

/// Two nodes each run `tasks_per_node` tasks at once, task `i` allocating the labels of
/// app `app-{i % apps}`. Checks that every allocation of one label set got the same ID, on
/// both nodes, and returns the ID of each app.
pub async fn race_two_nodes(
    store: &Arc<dyn KvStore>,
    apps: usize,
    tasks_per_node: usize,
) -> BTreeMap<String, NumericIdentity> {
    let (n1, _l1) = node(store, "n1");
    let (n2, _l2) = node(store, "n2");
    let nodes = [Arc::new(n1), Arc::new(n2)];
    let mut tasks = Vec::new();
    for task in 0..tasks_per_node {
        for allocator in &nodes {
            let allocator = Arc::clone(allocator);
            let app = format!("app-{}", task % apps);
            tasks.push(tokio::spawn(async move {
                let id = allocator
                    .allocate(&pod_labels(&app))
                    .await
                    .unwrap_or_else(|e| panic!("allocate {app}: {e}"));
                (app, id)
            }));
        }
    }
    let mut ids = BTreeMap::new();
    for task in tasks {
        let (app, id) = task.await.expect("allocation task");
        let first = *ids.entry(app.clone()).or_insert(id);
        assert_eq!(first, id, "{app} got two IDs");
    }
    ids
}
