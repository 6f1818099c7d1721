//! The agent's REST API contract: request/response models named as in Cilium's
//! `api/v1/openapi.yaml` (kebab-case JSON), the default socket locations, and a small
//! blocking HTTP/1.1 client over a unix socket used by `cilium-cni` and `cilium`.

pub mod client;
pub mod models;
pub mod paths;

pub use client::{AgentClient, ClientError};
