//! `cilium_ct4_global` / `cilium_ct_any4_global`: IPv4 connection tracking
//! entries, and their garbage collection.

use aya::maps::{HashMap, MapData};

use super::{is_not_found, open_pinned, MapsError};
use crate::{
    abi::{CtEntry, Ipv4CtTuple, CT_ANY4_MAP, CT_TCP4_MAP},
    bpffs::BpfPaths,
};

/// Which of the two IPv4 conntrack maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtMapKind {
    /// `cilium_ct4_global`: TCP.
    Tcp,
    /// `cilium_ct_any4_global`: everything else.
    Any,
}

impl CtMapKind {
    /// The map's name.
    pub fn map_name(self) -> &'static str {
        match self {
            Self::Tcp => CT_TCP4_MAP,
            Self::Any => CT_ANY4_MAP,
        }
    }
}

/// One conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntryRecord {
    /// The key.
    pub tuple: Ipv4CtTuple,
    /// The value.
    pub entry: CtEntry,
}

impl CtEntryRecord {
    /// Whether the entry's lifetime ended before `now` (monotonic seconds).
    pub fn is_expired(&self, now: u32) -> bool {
        self.entry.lifetime < now
    }
}

/// CLOCK_MONOTONIC in whole seconds: the clock of `ct_entry.lifetime`
/// (the datapath uses `bpf_ktime_get_ns() / 1e9`).
pub fn monotonic_seconds() -> Result<u32, MapsError> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(|source| MapsError::Clock { source })?;
    Ok(now.tv_sec() as u32)
}

/// Handle on one pinned conntrack map.
pub struct CtMap {
    kind: CtMapKind,
    map: HashMap<MapData, Ipv4CtTuple, CtEntry>,
}

impl CtMap {
    /// Opens the pinned map of `kind` under `paths`.
    pub fn open(paths: &BpfPaths, kind: CtMapKind) -> Result<Self, MapsError> {
        Ok(Self {
            kind,
            map: open_pinned(paths, kind.map_name())?,
        })
    }

    /// Which map this is.
    pub fn kind(&self) -> CtMapKind {
        self.kind
    }

    fn op_error(&self, op: String) -> impl FnOnce(aya::maps::MapError) -> MapsError {
        let name = self.kind.map_name();
        move |source| MapsError::Operation {
            name,
            op,
            source: Box::new(source),
        }
    }

    /// Every entry.
    pub fn entries(&self) -> Result<Vec<CtEntryRecord>, MapsError> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            match item {
                Ok((tuple, entry)) => out.push(CtEntryRecord { tuple, entry }),
                // An LRU entry evicted between key and value lookups.
                Err(err) if is_not_found(&err) => continue,
                Err(err) => return Err(self.op_error("iterate".to_string())(err)),
            }
        }
        Ok(out)
    }

    /// Deletes one entry; returns whether it existed.
    pub fn delete(&mut self, tuple: &Ipv4CtTuple) -> Result<bool, MapsError> {
        match self.map.remove(tuple) {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(err) => Err(self.op_error(format!(
                "delete {}:{} -> {}:{}",
                tuple.source(),
                tuple.source_port(),
                tuple.destination(),
                tuple.destination_port()
            ))(err)),
        }
    }

    /// Deletes every entry whose lifetime ended before `now`; returns how
    /// many were deleted.
    pub fn gc(&mut self, now: u32) -> Result<usize, MapsError> {
        let expired: Vec<Ipv4CtTuple> = self
            .entries()?
            .into_iter()
            .filter(|record| record.is_expired(now))
            .map(|record| record.tuple)
            .collect();
        let mut deleted = 0;
        for tuple in &expired {
            if self.delete(tuple)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
