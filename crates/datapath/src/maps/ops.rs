//! Process-wide counts of the userspace operations the typed map handles do,
//! labelled like Cilium's `cilium_bpf_map_ops_total{map_name, operation,
//! outcome}`.
//!
//! Every write (`update`), delete (`delete`) and single-key lookup
//! (`lookup`) through a handle in [`crate::maps`] is counted once per key;
//! a batch delete counts one `delete` per key it deleted. Iterating a map is
//! not counted.
//!
//! Outcomes: `success` when the kernel did the operation, `fail` when it
//! returned an error. A lookup or delete of an absent key ("not found")
//! counts as `success`: the operation worked, the key simply was not there.
//!
//! Labels stay bounded: every endpoint's policy map is counted under the
//! stem `cilium_policy_v2`, not `cilium_policy_v2_<id>`, so the number of
//! series does not grow with the number of endpoints.
//!
//! These are control-plane operations (never per packet), so one mutex
//! around an ordered map is cheap enough.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use aya::maps::MapError;

use super::is_not_found;

/// A kind of map operation, as the `operation` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapOp {
    /// Reading one key.
    Lookup,
    /// Inserting or replacing one key.
    Update,
    /// Deleting one key.
    Delete,
}

impl MapOp {
    /// The `operation` label value: `lookup`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            MapOp::Lookup => "lookup",
            MapOp::Update => "update",
            MapOp::Delete => "delete",
        }
    }
}

/// One counter: how many `operation`s on `map_name` ended with `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MapOpCount {
    /// Pinned map name (the stem `cilium_policy_v2` for endpoint policy maps).
    pub map_name: String,
    /// `lookup`, `update` or `delete`.
    pub operation: &'static str,
    /// `success` or `fail`.
    pub outcome: &'static str,
    /// Operations counted since the process started.
    pub count: u64,
}

/// Counts keyed by (map name, operation, succeeded).
/// Map names are the crate's constants, so a count costs no allocation (policy syncs write
/// thousands of entries).
static COUNTS: Mutex<BTreeMap<(&'static str, MapOp, bool), u64>> = Mutex::new(BTreeMap::new());

/// Counts `n` operations `op` on `map_name` that succeeded (`ok`) or failed.
pub(crate) fn record_many(map_name: &'static str, op: MapOp, ok: bool, n: u64) {
    if n == 0 {
        return;
    }
    let mut counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    *counts.entry((map_name, op, ok)).or_default() += n;
}

/// Counts one operation `op` on `map_name` that succeeded (`ok`) or failed.
pub(crate) fn record(map_name: &'static str, op: MapOp, ok: bool) {
    record_many(map_name, op, ok, 1);
}

/// Counts the single-key operation whose kernel result is `result` (a
/// "not found" is a success) and hands the result back unchanged.
pub(crate) fn counted<T>(
    map_name: &'static str,
    op: MapOp,
    result: Result<T, MapError>,
) -> Result<T, MapError> {
    let ok = match &result {
        Ok(_) => true,
        Err(err) => is_not_found(err),
    };
    record(map_name, op, ok);
    result
}

/// Every counter so far, sorted by map name, operation and outcome.
pub fn map_op_counts() -> Vec<MapOpCount> {
    let counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out: Vec<MapOpCount> = counts
        .iter()
        .map(|((map_name, op, ok), count)| MapOpCount {
            map_name: map_name.to_string(),
            operation: op.as_str(),
            outcome: if *ok { "success" } else { "fail" },
            count: *count,
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::io;

    use aya::maps::MapError;

    use super::*;

    /// The counter for (`map`, `operation`, `outcome`), 0 when absent.
    fn count(map: &str, operation: &str, outcome: &str) -> u64 {
        map_op_counts()
            .into_iter()
            .find(|c| c.map_name == map && c.operation == operation && c.outcome == outcome)
            .map_or(0, |c| c.count)
    }

    #[test]
    fn recorded_operations_read_back_with_cilium_labels() {
        let map = "cilt_ops_labels";
        record(map, MapOp::Update, true);
        record(map, MapOp::Update, true);
        record(map, MapOp::Update, false);
        record(map, MapOp::Lookup, true);
        record_many(map, MapOp::Delete, true, 3);
        record_many(map, MapOp::Delete, false, 0);

        assert_eq!(count(map, "update", "success"), 2, "two updates succeeded");
        assert_eq!(count(map, "update", "fail"), 1, "one update failed");
        assert_eq!(count(map, "lookup", "success"), 1, "one lookup succeeded");
        assert_eq!(count(map, "delete", "success"), 3, "a batch of 3 deletes");
        let rows: Vec<_> = map_op_counts()
            .into_iter()
            .filter(|c| c.map_name == map)
            .collect();
        assert_eq!(rows.len(), 4, "a zero-sized batch adds no series: {rows:?}");
        let all = map_op_counts();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted, "map_op_counts is sorted");
    }

    #[test]
    fn not_found_is_a_success_and_other_errors_fail() {
        let map = "cilt_ops_outcomes";
        let absent = counted::<()>(map, MapOp::Delete, Err(MapError::KeyNotFound));
        assert!(absent.is_err(), "the result is handed back unchanged");
        let denied = counted::<()>(
            map,
            MapOp::Delete,
            Err(MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_delete_elem",
                io_error: io::Error::from_raw_os_error(libc::EPERM),
            })),
        );
        assert!(denied.is_err());
        assert_eq!(counted(map, MapOp::Lookup, Ok(7)).ok(), Some(7));

        assert_eq!(
            count(map, "delete", "success"),
            1,
            "deleting an absent key worked"
        );
        assert_eq!(count(map, "delete", "fail"), 1, "EPERM is a failure");
        assert_eq!(count(map, "lookup", "success"), 1);
    }
}
