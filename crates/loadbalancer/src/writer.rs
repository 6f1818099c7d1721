//! The seam between this control plane and a datapath: something that applies [`LbOp`]s
//! to load-balancer maps — the pinned BPF maps in the agent, a [`MapState`] in tests.
//!
//! [`MapState`]: crate::map_state::MapState

use crate::diff::LbOp;

/// Applies one map operation.
pub trait MapWriter {
    /// Why an operation failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies `op`; the maps are unchanged when it fails.
    fn apply(&mut self, op: &LbOp) -> Result<(), Self::Error>;
}

/// An operation of a sequence that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError<E: std::error::Error + 'static> {
    /// Operations before `index` were applied, none after.
    #[error("load-balancer map operation {index} ({op}) failed")]
    Op {
        index: usize,
        op: LbOp,
        #[source]
        source: E,
    },
}

/// Applies `ops` in order, stopping at the first failure. After a failure the maps hold
/// a mix of the old and the new state that is still consistent (every prefix of a
/// [`crate::diff::diff`] is), and the caller should read them back before the next diff.
pub fn apply_ops<W: MapWriter>(writer: &mut W, ops: &[LbOp]) -> Result<(), ApplyError<W::Error>> {
    for (index, op) in ops.iter().enumerate() {
        writer.apply(op).map_err(|source| ApplyError::Op {
            index,
            op: op.clone(),
            source,
        })?;
    }
    Ok(())
}
