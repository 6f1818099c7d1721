//! Typed handles over the pinned maps under `<bpf_root>/tc/globals`: the
//! node-wide ones and each endpoint's policy map.
//!
//! Each handle opens the pinned map by path, so it works from any process
//! (the agent, the CLI) whether or not the agent is running, and checks the
//! key and value sizes against the Rust mirrors in [`crate::abi`].

mod batch;
mod call_policy;
mod ct;
mod ipcache;
mod lb;
mod lxc;
mod metrics;
mod ops;
mod policy;

use std::{io, path::PathBuf};

use aya::maps::{Map, MapData, MapError};
use thiserror::Error;

use crate::bpffs::BpfPaths;

pub use crate::abi::PolicyEntry;
pub use call_policy::CallPolicyMap;
pub use ct::{monotonic_seconds, CtEntryRecord, CtMap, CtMapKind};
pub use ipcache::{IpcacheEntry, IpcacheMap};
pub use lb::{LbMaps, Unreadable};
pub use lxc::{LxcEntry, LxcMap};
pub use metrics::{MetricsEntry, MetricsMap};
pub use ops::{map_op_counts, MapOp, MapOpCount};
pub use policy::{
    Direction, Enforcement, PolicyEnforcementMap, PolicyMap, PolicyMapEntry, PolicyMapKey,
};

/// Failures operating a pinned map.
#[derive(Debug, Error)]
pub enum MapsError {
    /// The pinned map could not be opened or has an unexpected layout.
    #[error("cannot open pinned map {name} at {path}")]
    Open {
        /// Map name.
        name: &'static str,
        /// Pin path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: Box<MapError>,
    },
    /// A map operation failed.
    #[error("{op} on map {name} failed")]
    Operation {
        /// Map name.
        name: &'static str,
        /// What was being done, e.g. "insert 10.0.0.1".
        op: String,
        /// Underlying error.
        #[source]
        source: Box<MapError>,
    },
    /// A batched operation (several entries per syscall) failed.
    #[error("{op} on map {name} failed")]
    Batch {
        /// Map name.
        name: &'static str,
        /// What was being done.
        op: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the monotonic clock failed.
    #[error("cannot read CLOCK_MONOTONIC")]
    Clock {
        /// Underlying error.
        #[source]
        source: nix::Error,
    },
    /// An operation on an endpoint's policy map failed.
    #[error("{op} on policy map {map} failed")]
    PolicyOperation {
        /// Map name (`cilium_policy_v2_<id>`).
        map: String,
        /// What was being done.
        op: String,
        /// Underlying error.
        #[source]
        source: Box<MapError>,
    },
    /// A policy key the datapath cannot express (port bits beyond 16, or a
    /// port without a protocol).
    #[error("invalid policy key {key:?}")]
    InvalidPolicyKey {
        /// The key.
        key: PolicyMapKey,
    },
    /// A Maglev table whose size is not the one the C code is compiled for.
    #[error("Maglev table {rev_nat} has {len} entries; the datapath takes {expected}")]
    MaglevTableSize {
        /// Reverse-NAT index of the table.
        rev_nat: u16,
        /// Its size.
        len: usize,
        /// `LB_MAGLEV_LUT_SIZE`.
        expected: usize,
    },
    /// The endpoint id is outside `cilium_call_policy`.
    #[error("endpoint id {id} is outside the policy program array (max {max})")]
    EndpointIdOutOfRange {
        /// The id.
        id: u16,
        /// Largest valid id.
        max: u32,
    },
}

/// Opens the pinned map `name` and converts it to the typed map `T`.
fn open_pinned<T>(paths: &BpfPaths, name: &'static str) -> Result<T, MapsError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let path = paths.map(name);
    let open_err = |source| MapsError::Open {
        name,
        path: path.clone(),
        source: Box::new(source),
    };
    let data = MapData::from_pin(&path).map_err(open_err)?;
    let map = Map::from_map_data(data).map_err(open_err)?;
    T::try_from(map).map_err(open_err)
}

/// Whether `err` is the kernel saying "no such element" (ENOENT).
fn is_not_found(err: &MapError) -> bool {
    match err {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(syscall) => syscall.io_error.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
}
