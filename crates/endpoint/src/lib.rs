//! Endpoints: the pods a node's agent manages. The model, its persistence, and the manager
//! that creates, regenerates, deletes and restores them.
//!
//! Pure: the manager reaches the datapath only through [`EndpointDatapath`], so it is tested
//! with an in-memory fake and no privilege.

mod manager;
mod model;
mod store;

pub use manager::{
    EndpointDatapath, EndpointError, EndpointIdentity, EndpointManager, RestoreReport,
};
pub use model::{
    Endpoint, EndpointId, EndpointSelector, EndpointState, InvalidRequest, MacAddr, NewEndpoint,
};
pub use store::{EndpointStore, FileStore, MemoryStore, StoreError};
