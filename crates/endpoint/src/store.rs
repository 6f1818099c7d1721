//! Endpoint persistence: one JSON file per endpoint in the agent's state directory, so a
//! restarted agent knows which pods it had and which datapath pins belong to them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::model::{Endpoint, EndpointId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} {path}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid endpoint record")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Loads, saves and deletes endpoint records.
pub trait EndpointStore {
    fn load_all(&self) -> Result<Vec<Endpoint>, StoreError>;
    fn save(&self, endpoint: &Endpoint) -> Result<(), StoreError>;
    fn delete(&self, id: EndpointId) -> Result<(), StoreError>;
}

/// `<dir>/<id>.json`, each written through a synced temporary file and a rename.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Creates the directory if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            operation: "creating",
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path_of(&self, id: EndpointId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

impl EndpointStore for FileStore {
    fn load_all(&self) -> Result<Vec<Endpoint>, StoreError> {
        let io = |operation, path: &PathBuf| {
            let path = path.clone();
            move |source| StoreError::Io {
                operation,
                path,
                source,
            }
        };
        let mut endpoints = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("listing", &self.dir))? {
            let path = entry.map_err(io("listing", &self.dir))?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
            let endpoint = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Decode { path, source })?;
            endpoints.push(endpoint);
        }
        endpoints.sort_by_key(|ep: &Endpoint| ep.id);
        Ok(endpoints)
    }

    fn save(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let path = self.path_of(endpoint.id);
        let tmp = path.with_extension("json.tmp");
        let write_err = |source| StoreError::Io {
            operation: "writing",
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(endpoint).expect("endpoint serializes");
        let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(&json).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, &path).map_err(write_err)
    }

    fn delete(&self, id: EndpointId) -> Result<(), StoreError> {
        let path = self.path_of(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                operation: "removing",
                path,
                source,
            }),
        }
    }
}

/// Records in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<EndpointId, Endpoint>>,
}

impl EndpointStore for MemoryStore {
    fn load_all(&self) -> Result<Vec<Endpoint>, StoreError> {
        Ok(self
            .records
            .lock()
            .expect("store lock")
            .values()
            .cloned()
            .collect())
    }

    fn save(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.records
            .lock()
            .expect("store lock")
            .insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    fn delete(&self, id: EndpointId) -> Result<(), StoreError> {
        self.records.lock().expect("store lock").remove(&id);
        Ok(())
    }
}
