//! `cilium_metrics`: per-CPU packet and byte counters by reason and
//! direction, summed over CPUs.

use aya::maps::{MapData, PerCpuHashMap};

use super::{
    is_not_found, open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    abi::{MetricsKey, MetricsValue, METRICS_MAP},
    bpffs::BpfPaths,
    codes::{DropReason, MetricDirection},
};

/// One counter, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsEntry {
    /// 0 = forwarded, otherwise the drop reason.
    pub reason: u8,
    /// Traffic direction.
    pub direction: MetricDirection,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl MetricsEntry {
    /// The drop reason, `None` for forwarded traffic.
    pub fn drop_reason(&self) -> Option<DropReason> {
        (self.reason != 0).then_some(DropReason(self.reason))
    }
}

/// Handle on the pinned `cilium_metrics` map.
pub struct MetricsMap {
    map: PerCpuHashMap<MapData, MetricsKey, MetricsValue>,
}

fn sum(key: MetricsKey, values: &[MetricsValue]) -> MetricsEntry {
    MetricsEntry {
        reason: key.reason,
        direction: MetricDirection::from_bits(key.direction()),
        packets: values.iter().map(|v| v.count).sum(),
        bytes: values.iter().map(|v| v.bytes).sum(),
    }
}

impl MetricsMap {
    /// Opens the pinned map under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            map: open_pinned(paths, METRICS_MAP)?,
        })
    }

    /// Every counter, summed over CPUs, sorted by reason then direction.
    pub fn entries(&self) -> Result<Vec<MetricsEntry>, MapsError> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            let (key, values) = item.map_err(|source| MapsError::Operation {
                name: METRICS_MAP,
                op: "iterate".to_string(),
                source: Box::new(source),
            })?;
            out.push(sum(key, &values));
        }
        out.sort_by_key(|e| (e.reason, e.direction.bits()));
        Ok(out)
    }

    /// The counter for `reason` (0 = forwarded) in `direction`, if any.
    pub fn get(
        &self,
        reason: u8,
        direction: MetricDirection,
    ) -> Result<Option<MetricsEntry>, MapsError> {
        let key = MetricsKey {
            reason,
            dir: direction.bits(),
            reserved: [0; 3],
        };
        match counted(METRICS_MAP, MapOp::Lookup, self.map.get(&key, 0)) {
            Ok(values) => Ok(Some(sum(key, &values))),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(source) => Err(MapsError::Operation {
                name: METRICS_MAP,
                op: format!("lookup reason {reason} {direction}"),
                source: Box::new(source),
            }),
        }
    }
}
