//! `cilium_ct4_global` / `cilium_ct_any4_global`: IPv4 connection tracking
//! entries, and their garbage collection.

use aya::maps::{HashMap, IterableMap, MapData};

use super::{
    batch, is_not_found, open_pinned,
    ops::{record, record_many, MapOp},
    MapsError,
};
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
        self.entry.is_expired(now)
    }
}

/// CLOCK_MONOTONIC in whole seconds: the clock of `ct_entry.lifetime`
/// (the datapath reads the coarse CLOCK_MONOTONIC, `bpf_ktime_get_coarse_ns() / 1e9`).
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

    /// Deletes every entry whose lifetime ended before `now`; returns how
    /// many were deleted. Reads and deletes in batches: a pass over 100k
    /// entries is a few dozen syscalls, not 300k.
    pub fn gc(&self, now: u32) -> Result<usize, MapsError> {
        let map = IterableMap::map(&self.map);
        let batch_error = |op: &str| {
            let name = self.kind.map_name();
            let op = op.to_string();
            move |io_error| MapsError::Batch {
                name,
                op,
                source: io_error,
            }
        };
        let expired: Vec<Ipv4CtTuple> = batch::lookup_all::<Ipv4CtTuple, CtEntry>(map)
            .map_err(batch_error("batch lookup"))?
            .into_iter()
            .filter(|(_, entry)| entry.is_expired(now))
            .map(|(tuple, _)| tuple)
            .collect();
        let name = self.kind.map_name();
        match batch::delete_keys(map, &expired) {
            Ok(deleted) => {
                record_many(name, MapOp::Delete, true, deleted as u64);
                Ok(deleted)
            }
            Err(io_error) => {
                record(name, MapOp::Delete, false);
                Err(batch_error("batch delete")(io_error))
            }
        }
    }
}
