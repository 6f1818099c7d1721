//! `cilium_lxc`: local endpoints and host addresses by IP.

use std::net::Ipv4Addr;

use aya::maps::{HashMap, MapData};

use super::{
    is_not_found, open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    abi::{EndpointInfo, EndpointKey, LXC_MAP},
    bpffs::BpfPaths,
};

/// One `cilium_lxc` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcEntry {
    /// The key (address and family).
    pub key: EndpointKey,
    /// The value.
    pub info: EndpointInfo,
}

/// Handle on the pinned `cilium_lxc` map.
pub struct LxcMap {
    map: HashMap<MapData, EndpointKey, EndpointInfo>,
}

impl LxcMap {
    /// Opens the pinned map under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            map: open_pinned(paths, LXC_MAP)?,
        })
    }

    /// Inserts or replaces the entry for `ip`.
    pub fn upsert(&mut self, ip: Ipv4Addr, info: &EndpointInfo) -> Result<(), MapsError> {
        counted(
            LXC_MAP,
            MapOp::Update,
            self.map.insert(EndpointKey::ipv4(ip), info, 0),
        )
        .map_err(|source| MapsError::Operation {
            name: LXC_MAP,
            op: format!("upsert {ip}"),
            source: Box::new(source),
        })
    }

    /// The entry for `ip`, if any.
    pub fn get(&self, ip: Ipv4Addr) -> Result<Option<EndpointInfo>, MapsError> {
        match counted(
            LXC_MAP,
            MapOp::Lookup,
            self.map.get(&EndpointKey::ipv4(ip), 0),
        ) {
            Ok(info) => Ok(Some(info)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(source) => Err(MapsError::Operation {
                name: LXC_MAP,
                op: format!("lookup {ip}"),
                source: Box::new(source),
            }),
        }
    }

    /// Deletes the entry for `ip`; returns whether there was one.
    pub fn delete(&mut self, ip: Ipv4Addr) -> Result<bool, MapsError> {
        match counted(
            LXC_MAP,
            MapOp::Delete,
            self.map.remove(&EndpointKey::ipv4(ip)),
        ) {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(source) => Err(MapsError::Operation {
                name: LXC_MAP,
                op: format!("delete {ip}"),
                source: Box::new(source),
            }),
        }
    }

    /// Every entry.
    pub fn entries(&self) -> Result<Vec<LxcEntry>, MapsError> {
        self.map
            .iter()
            .map(|item| {
                item.map(|(key, info)| LxcEntry { key, info })
                    .map_err(|source| MapsError::Operation {
                        name: LXC_MAP,
                        op: "iterate".to_string(),
                        source: Box::new(source),
                    })
            })
            .collect()
    }
}
