//! Where allocator state lives: a JSON file written atomically, or memory for tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::allocator::AllocatorState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid IPAM state")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads and saves allocator state.
pub trait AllocationStore {
    fn load(&self) -> Result<Option<AllocatorState>, StoreError>;
    fn save(&self, state: &AllocatorState) -> Result<(), StoreError>;
}

/// State in a JSON file; saves go to a temporary file that is synced and renamed over the old
/// one, so a crash leaves either the old or the new state, never half of one.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AllocationStore for FileStore {
    fn load(&self) -> Result<Option<AllocatorState>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Decode {
                path: self.path.clone(),
                source,
            })
    }

    fn save(&self, state: &AllocatorState) -> Result<(), StoreError> {
        let write_err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(state).expect("allocator state serializes");
        let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(&json).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)
    }
}

/// State in memory, for tests and throwaway allocators.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Option<AllocatorState>>,
}

impl AllocationStore for MemoryStore {
    fn load(&self) -> Result<Option<AllocatorState>, StoreError> {
        Ok(self.state.lock().expect("memory store lock").clone())
    }

    fn save(&self, state: &AllocatorState) -> Result<(), StoreError> {
        *self.state.lock().expect("memory store lock") = Some(state.clone());
        Ok(())
    }
}
