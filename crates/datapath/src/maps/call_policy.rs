//! `cilium_call_policy`: each endpoint's `handle_policy` program, indexed by
//! endpoint id, the target of local delivery tail calls.

use aya::{
    maps::{MapData, ProgramArray},
    programs::ProgramFd,
};

use super::{
    is_not_found, open_pinned,
    ops::{counted, MapOp},
    MapsError,
};
use crate::{
    abi::{CALL_POLICY_MAP, POLICY_PROG_MAP_SIZE},
    bpffs::BpfPaths,
};

/// Handle on the pinned `cilium_call_policy` program array.
pub struct CallPolicyMap {
    map: ProgramArray<MapData>,
}

impl CallPolicyMap {
    /// Opens the pinned map under `paths`.
    pub fn open(paths: &BpfPaths) -> Result<Self, MapsError> {
        Ok(Self {
            map: open_pinned(paths, CALL_POLICY_MAP)?,
        })
    }

    fn check_id(id: u16) -> Result<u32, MapsError> {
        let index = u32::from(id);
        if index == 0 || index >= POLICY_PROG_MAP_SIZE {
            return Err(MapsError::EndpointIdOutOfRange {
                id,
                max: POLICY_PROG_MAP_SIZE - 1,
            });
        }
        Ok(index)
    }

    /// Points slot `id` at `program` (atomically replacing any previous one).
    pub fn set(&mut self, id: u16, program: &ProgramFd) -> Result<(), MapsError> {
        let index = Self::check_id(id)?;
        counted(
            CALL_POLICY_MAP,
            MapOp::Update,
            self.map.set(index, program, 0),
        )
        .map_err(|source| MapsError::Operation {
            name: CALL_POLICY_MAP,
            op: format!("set endpoint {id}"),
            source: Box::new(source),
        })
    }

    /// Empties slot `id`; returns whether it held a program.
    pub fn clear(&mut self, id: u16) -> Result<bool, MapsError> {
        let index = Self::check_id(id)?;
        match counted(CALL_POLICY_MAP, MapOp::Delete, self.map.clear_index(&index)) {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(source) => Err(MapsError::Operation {
                name: CALL_POLICY_MAP,
                op: format!("clear endpoint {id}"),
                source: Box::new(source),
            }),
        }
    }
}
