//! Translation between etcd-client's types and ours.

use etcd_client::{Event, EventType};

use crate::types::{KeyValue, LeaseId, WatchEvent};

/// Our entry for etcd's. Keys are text in Cilium's layout; a key that is not UTF-8 (written
/// by some other tool) is converted lossily rather than failing a whole listing.
pub(super) fn to_key_value(kv: etcd_client::KeyValue) -> KeyValue {
    let mod_revision = kv.mod_revision();
    let lease = (kv.lease() != 0).then_some(LeaseId(kv.lease()));
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: String::from_utf8_lossy(&key).into_owned(),
        value,
        mod_revision,
        lease,
    }
}

/// Our watch event for etcd's; `None` for an event without its key-value (never sent by etcd).
pub(super) fn to_watch_event(event: &Event) -> Option<WatchEvent> {
    let kv = event.kv()?.clone();
    Some(match event.event_type() {
        EventType::Put => WatchEvent::Put(to_key_value(kv)),
        // A delete event carries the key and the revision of the deletion.
        EventType::Delete => WatchEvent::Delete {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            mod_revision: kv.mod_revision(),
        },
    })
}

/// etcd reports a missing lease as a gRPC status ("etcdserver: requested lease not found")
/// or, from the keep-alive stream, as a zero TTL that the client turns into this error.
pub(super) fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message().contains("lease not found"),
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}

/// etcd refuses reads at a compacted revision ("mvcc: required revision has been compacted")
/// and at one not written yet ("mvcc: required revision is a future revision").
pub(super) fn is_unreadable_revision(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            message.contains("has been compacted") || message.contains("future revision")
        }
        _ => false,
    }
}
