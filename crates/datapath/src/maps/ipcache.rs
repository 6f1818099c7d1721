//! `cilium_ipcache`: the cluster's IPv4 prefixes with their security
//! identity and the node hosting them, as the datapath reads them.

use std::net::Ipv4Addr;

use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use ipnet::Ipv4Net;

use super::{
    is_not_found, open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    abi::{IpcacheKey, RemoteEndpointInfo, IPCACHE_MAP, IPCACHE_STATIC_PREFIX_BITS},
    bpffs::BpfPaths,
};

/// One `cilium_ipcache` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// The prefix (a pod's address is a /32).
    pub prefix: Ipv4Net,
    /// Identity, tunnel endpoint and flags.
    pub info: RemoteEndpointInfo,
}

/// Handle on the pinned `cilium_ipcache` map (IPv4 entries of this cluster).
pub struct IpcacheMap {
    map: LpmTrie<MapData, IpcacheKey, RemoteEndpointInfo>,
}

/// The trie key of `prefix`: host bits cleared, static bits counted.
fn key_of(prefix: Ipv4Net) -> Key<IpcacheKey> {
    let prefix = prefix.trunc();
    Key::new(
        IPCACHE_STATIC_PREFIX_BITS + u32::from(prefix.prefix_len()),
        IpcacheKey::ipv4(prefix.network()),
    )
}

/// The prefix of an IPv4 key of this cluster, `None` for anything else.
fn prefix_of(key: &Key<IpcacheKey>) -> Option<Ipv4Net> {
    let data = key.data();
    let ip = data.ipv4_addr().filter(|_| data.cluster_id == 0)?;
    let len = key.prefix_len().checked_sub(IPCACHE_STATIC_PREFIX_BITS)?;
    Ipv4Net::new(ip, u8::try_from(len).ok()?).ok()
}

impl IpcacheMap {
    /// Opens the pinned map under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            map: open_pinned(paths, IPCACHE_MAP)?,
        })
    }

    fn op_error(op: String) -> impl FnOnce(aya::maps::MapError) -> MapsError {
        move |source| MapsError::Operation {
            name: IPCACHE_MAP,
            op,
            source: Box::new(source),
        }
    }

    /// Inserts or replaces the entry for `prefix`.
    pub fn upsert(&mut self, prefix: Ipv4Net, info: &RemoteEndpointInfo) -> Result<(), MapsError> {
        counted(
            IPCACHE_MAP,
            MapOp::Update,
            self.map.insert(&key_of(prefix), info, 0),
        )
        .map_err(Self::op_error(format!("upsert {prefix}")))
    }

    /// Deletes the entry for exactly `prefix`; returns whether there was one.
    pub fn delete(&mut self, prefix: Ipv4Net) -> Result<bool, MapsError> {
        match counted(IPCACHE_MAP, MapOp::Delete, self.map.remove(&key_of(prefix))) {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(err) => Err(Self::op_error(format!("delete {prefix}"))(err)),
        }
    }

    /// What the datapath finds for `ip`: the entry of the longest prefix
    /// holding it, if any.
    pub fn lookup(&self, ip: Ipv4Addr) -> Result<Option<RemoteEndpointInfo>, MapsError> {
        match counted(
            IPCACHE_MAP,
            MapOp::Lookup,
            self.map.get(&key_of(Ipv4Net::from(ip)), 0),
        ) {
            Ok(info) => Ok(Some(info)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(Self::op_error(format!("lookup {ip}"))(err)),
        }
    }

    /// Every IPv4 entry of this cluster, sorted by prefix.
    pub fn entries(&self) -> Result<Vec<IpcacheEntry>, MapsError> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            match item {
                Ok((key, info)) => {
                    if let Some(prefix) = prefix_of(&key) {
                        out.push(IpcacheEntry { prefix, info });
                    }
                }
                // Deleted between the key and the value lookups.
                Err(err) if is_not_found(&err) => continue,
                Err(err) => return Err(Self::op_error("iterate".to_string())(err)),
            }
        }
        out.sort_by_key(|entry| entry.prefix);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_count_the_static_bits_and_drop_host_bits() {
        let key = key_of("10.0.2.77/24".parse().expect("valid prefix"));
        assert_eq!(key.prefix_len(), 32 + 24);
        assert_eq!(key.data().ipv4_addr(), Some(Ipv4Addr::new(10, 0, 2, 0)));
        assert_eq!(
            prefix_of(&key),
            Some("10.0.2.0/24".parse().expect("valid prefix"))
        );
        let host = key_of(Ipv4Net::from(Ipv4Addr::new(10, 0, 2, 5)));
        assert_eq!(host.prefix_len(), 64);
    }

    #[test]
    fn keys_of_other_families_and_clusters_are_not_ipv4_prefixes() {
        let mut data = IpcacheKey::ipv4(Ipv4Addr::new(10, 0, 0, 0));
        data.cluster_id = 3;
        assert_eq!(prefix_of(&Key::new(40, data)), None);
        data.cluster_id = 0;
        data.family = 2;
        assert_eq!(prefix_of(&Key::new(40, data)), None);
        data.family = 1;
        assert_eq!(
            prefix_of(&Key::new(16, data)),
            None,
            "shorter than static bits"
        );
    }
}
