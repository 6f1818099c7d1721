//! The nodes behind the relay: their peer records (`cilium/state/hubble/v1/<cluster>/...`)
//! mirrored from the kvstore, each with a gRPC channel that connects on first use and
//! reconnects after failures, so a node that comes back is served again without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cilium_hubble::api::observer_client::ObserverClient;
use cilium_hubble::peer::{self, PeerRecord};
use cilium_kvstore::{KvStore, WatchEvent};
use tonic::transport::{Channel, Endpoint};

/// A peer address the relay cannot dial.
#[derive(Debug, thiserror::Error)]
#[error("peer {node} has an unusable address {address:?}")]
pub struct PeerAddressError {
    pub node: String,
    pub address: String,
    #[source]
    pub source: tonic::transport::Error,
}

/// One node's Hubble server.
#[derive(Clone)]
pub struct Peer {
    /// `cluster/node`.
    pub name: String,
    /// `host:port`.
    pub address: String,
    channel: Channel,
}

impl Peer {
    /// A client on the peer's channel (cheap: channels are shared).
    pub fn client(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel.clone())
    }
}

/// The known peers; cheap to share.
pub struct Peers {
    peers: RwLock<BTreeMap<String, Peer>>,
    dial_timeout: Duration,
}

impl Peers {
    /// No peers yet; channels give up dialling a node after `dial_timeout`.
    pub fn new(dial_timeout: Duration) -> Self {
        Self {
            peers: RwLock::new(BTreeMap::new()),
            dial_timeout,
        }
    }

    /// Every peer, by name.
    pub fn list(&self) -> Vec<Peer> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds or updates a peer (a changed address gets a new channel).
    pub fn upsert(&self, record: &PeerRecord) -> Result<(), PeerAddressError> {
        let name = record.node_name();
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        if peers
            .get(&name)
            .is_some_and(|p| p.address == record.address)
        {
            return Ok(());
        }
        let channel = Endpoint::from_shared(format!("http://{}", record.address))
            .map_err(|source| PeerAddressError {
                node: name.clone(),
                address: record.address.clone(),
                source,
            })?
            .connect_timeout(self.dial_timeout)
            .connect_lazy();
        tracing::info!(node = %name, address = %record.address, "Hubble peer added");
        peers.insert(
            name.clone(),
            Peer {
                name,
                address: record.address.clone(),
                channel,
            },
        );
        Ok(())
    }

    /// Forgets the peer `cluster/node`.
    pub fn remove(&self, name: &str) {
        if self
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
        {
            tracing::info!(node = %name, "Hubble peer gone");
        }
    }

    fn apply(&self, cluster: &str, prefix: &str, event: WatchEvent) {
        match event {
            WatchEvent::Put(kv) => match serde_json::from_slice::<PeerRecord>(&kv.value) {
                Ok(record) => {
                    if let Err(error) = self.upsert(&record) {
                        tracing::warn!(%error, "peer ignored");
                    }
                }
                Err(error) => tracing::warn!(key = kv.key, %error, "peer record not readable"),
            },
            WatchEvent::Delete { key, .. } => {
                if let Some(node) = cilium_kvstore::keys::leaf(prefix, &key) {
                    self.remove(&format!("{cluster}/{node}"));
                }
            }
        }
    }

    /// Mirrors the peer records of `cluster` until the store's watch ends.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn KvStore>, cluster: String) {
        let prefix = peer::prefix(&cluster);
        let mut watcher = store.watch(&prefix, 0);
        while let Some(event) = watcher.recv().await {
            self.apply(&cluster, &prefix, event);
        }
    }
}
