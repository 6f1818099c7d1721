//! Store health for `cilium status`, e.g.
//! `etcd: 1/1 connected, has-quorum=true: http://10.0.0.1:2379 - 3.4.23 (Leader)`.

use std::fmt;

use serde::Serialize;

/// Which backend a status describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Etcd,
    Memory,
}

/// How one endpoint answered a status probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum EndpointState {
    /// The endpoint answered.
    Connected {
        /// Server version, e.g. `3.4.23`.
        version: String,
        /// This endpoint is the raft leader.
        is_leader: bool,
        /// This endpoint knows a leader, so writes through it can succeed.
        has_leader: bool,
    },
    /// The endpoint did not answer; `error` is the failure chain as text.
    Unreachable { error: String },
}

/// One endpoint of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    pub address: String,
    #[serde(flatten)]
    pub state: EndpointState,
}

/// Health of the whole store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    pub backend: Backend,
    pub endpoints: Vec<EndpointStatus>,
    /// Current store revision, when some endpoint answered.
    pub revision: Option<i64>,
}

impl StoreStatus {
    /// How many endpoints answered.
    pub fn connected(&self) -> usize {
        self.endpoints
            .iter()
            .filter(|e| matches!(e.state, EndpointState::Connected { .. }))
            .count()
    }

    /// Some endpoint answered and knows a leader: reads and writes can succeed.
    pub fn has_quorum(&self) -> bool {
        self.endpoints.iter().any(|e| {
            matches!(
                e.state,
                EndpointState::Connected {
                    has_leader: true,
                    ..
                }
            )
        })
    }

    /// The store can serve requests (the in-process store always can).
    pub fn is_healthy(&self) -> bool {
        match self.backend {
            Backend::Memory => true,
            Backend::Etcd => self.has_quorum(),
        }
    }
}

impl fmt::Display for StoreStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Memory => {
                write!(f, "memory: in-process store (single node)")?;
                if let Some(rev) = self.revision {
                    write!(f, ", revision {rev}")?;
                }
                Ok(())
            }
            Backend::Etcd => {
                write!(
                    f,
                    "etcd: {}/{} connected, has-quorum={}",
                    self.connected(),
                    self.endpoints.len(),
                    self.has_quorum()
                )?;
                for (i, endpoint) in self.endpoints.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{}", endpoint.address)?;
                    match &endpoint.state {
                        EndpointState::Connected {
                            version, is_leader, ..
                        } => {
                            write!(f, " - {version}")?;
                            if *is_leader {
                                write!(f, " (Leader)")?;
                            }
                        }
                        EndpointState::Unreachable { error } => write!(f, " - {error}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_status_reads_like_cilium_status() {
        let status = StoreStatus {
            backend: Backend::Etcd,
            endpoints: vec![
                EndpointStatus {
                    address: "http://10.0.0.1:2379".into(),
                    state: EndpointState::Connected {
                        version: "3.4.23".into(),
                        is_leader: true,
                        has_leader: true,
                    },
                },
                EndpointStatus {
                    address: "http://10.0.0.2:2379".into(),
                    state: EndpointState::Unreachable {
                        error: "connection refused".into(),
                    },
                },
            ],
            revision: Some(7),
        };
        assert_eq!(
            status.to_string(),
            "etcd: 1/2 connected, has-quorum=true: http://10.0.0.1:2379 - 3.4.23 (Leader); \
             http://10.0.0.2:2379 - connection refused"
        );
        assert!(status.is_healthy());
    }

    #[test]
    fn etcd_status_without_answers_is_unhealthy() {
        let status = StoreStatus {
            backend: Backend::Etcd,
            endpoints: vec![EndpointStatus {
                address: "http://10.0.0.1:2379".into(),
                state: EndpointState::Unreachable {
                    error: "timed out".into(),
                },
            }],
            revision: None,
        };
        assert_eq!(
            status.to_string(),
            "etcd: 0/1 connected, has-quorum=false: http://10.0.0.1:2379 - timed out"
        );
        assert!(!status.is_healthy());
    }
}
