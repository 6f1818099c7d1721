//! A small blocking HTTP/1.1 client for the agent's unix socket.
//!
//! The CNI plugin is exec'd once per pod operation, so it must start fast and never need an
//! async runtime; this client sends one request per connection (`Connection: close`) and reads
//! the answer to end of stream.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::models::{
    ApiError, ClusterNodeStatus, DaemonConfiguration, DaemonConfigurationSpec, Endpoint,
    EndpointChangeRequest, Identity, IpamResponse, IpamStatus, KvPair, PolicyTraceResult,
    StatusResponse, TraceSelector,
};

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the agent at {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {path}: I/O error talking to the agent")]
    Io {
        method: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {path}: malformed HTTP answer from the agent")]
    MalformedResponse { method: &'static str, path: String },
    #[error("{method} {path}: agent answered {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: cannot decode the agent's JSON")]
    Decode {
        method: &'static str,
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// HTTP status of an error answer, if the agent answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Client for one agent socket.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
    timeout: Duration,
}

impl AgentClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn healthz(&self) -> Result<StatusResponse, ClientError> {
        self.get("/v1/healthz")
    }

    /// Changes the agent's configuration (`PATCH /v1/config`); returns the new configuration.
    pub fn patch_config(
        &self,
        spec: &DaemonConfigurationSpec,
    ) -> Result<DaemonConfiguration, ClientError> {
        self.send("PATCH", "/v1/config", Some(spec))
    }

    pub fn config(&self) -> Result<DaemonConfiguration, ClientError> {
        self.get("/v1/config")
    }

    /// `GET /v1/service`: every service frontend of the node.
    pub fn services(&self) -> Result<Vec<crate::models::Service>, ClientError> {
        self.get("/v1/service")
    }

    /// `GET /v1/service/{id}`: one frontend by ID.
    pub fn service(&self, id: u16) -> Result<crate::models::Service, ClientError> {
        self.get(&format!("/v1/service/{id}"))
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.get("/v1/endpoint")
    }

    pub fn endpoint(&self, id: &str) -> Result<Endpoint, ClientError> {
        self.get(&format!("/v1/endpoint/{id}"))
    }

    /// Creates (or replaces) an endpoint; `id` may be a numeric ID or `container-id:<id>`.
    pub fn put_endpoint(
        &self,
        id: &str,
        request: &EndpointChangeRequest,
    ) -> Result<Endpoint, ClientError> {
        self.send("PUT", &format!("/v1/endpoint/{id}"), Some(request))
    }

    /// Deletes an endpoint; a 404 is reported as an error so callers can decide.
    pub fn delete_endpoint(&self, id: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>("DELETE", &format!("/v1/endpoint/{id}"), None)
            .map(|_| ())
    }

    /// Allocates an IPv4 address for `owner` (Cilium's `POST /ipam?family=ipv4&owner=...`).
    pub fn ipam_allocate(&self, owner: &str) -> Result<IpamResponse, ClientError> {
        self.send::<(), _>(
            "POST",
            &format!("/v1/ipam?family=ipv4&owner={}", encode_query(owner)),
            None,
        )
    }

    /// Releases an address (`DELETE /ipam/{ip}`).
    pub fn ipam_release(&self, ip: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>("DELETE", &format!("/v1/ipam/{ip}"), None)
            .map(|_| ())
    }

    /// Releases whatever `owner` holds (`DELETE /ipam/owner:{owner}`).
    pub fn ipam_release_owner(&self, owner: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(
            "DELETE",
            &format!("/v1/ipam/owner:{}", encode_query(owner)),
            None,
        )
        .map(|_| ())
    }

    pub fn ipam_status(&self) -> Result<IpamStatus, ClientError> {
        self.get("/v1/ipam")
    }

    /// The cluster's nodes as this agent knows them (`GET /v1/cluster/nodes`).
    pub fn cluster_nodes(&self) -> Result<ClusterNodeStatus, ClientError> {
        self.get("/v1/cluster/nodes")
    }

    /// Stores the policies in `text` (YAML or JSON; `PUT /v1/policy`); returns the agent's
    /// answer (`{"revision": N}`).
    pub fn policy_import(&self, text: &str) -> Result<serde_json::Value, ClientError> {
        let path = "/v1/policy";
        let (status, payload) = self.roundtrip("PUT", path, text.as_bytes())?;
        self.decode("PUT", path, status, payload)
    }

    /// Stores the objects in `text` in the cluster's kvstore (`cilium apply -f`); returns the
    /// agent's answer (`{"keys": [...]}`).
    pub fn resources_apply(&self, text: &str) -> Result<serde_json::Value, ClientError> {
        let path = "/v1/resources";
        let (status, payload) = self.roundtrip("PUT", path, text.as_bytes())?;
        self.decode("PUT", path, status, payload)
    }

    /// Removes the objects in `text` from the cluster's kvstore (`cilium delete -f`).
    pub fn resources_delete(&self, text: &str) -> Result<serde_json::Value, ClientError> {
        let path = "/v1/resources";
        let (status, payload) = self.roundtrip("DELETE", path, text.as_bytes())?;
        self.decode("DELETE", path, status, payload)
    }

    /// The agent's rules and revision (`GET /v1/policy`).
    pub fn policy_get(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/v1/policy")
    }

    /// Deletes every policy (`DELETE /v1/policy`).
    pub fn policy_delete_all(&self) -> Result<serde_json::Value, ClientError> {
        self.send::<(), _>("DELETE", "/v1/policy", None)
    }

    /// Whether traffic from one label set to another would be allowed, and why
    /// (`GET /v1/policy/resolve`, `cilium policy trace`).
    pub fn policy_trace(&self, selector: &TraceSelector) -> Result<PolicyTraceResult, ClientError> {
        self.send("GET", "/v1/policy/resolve", Some(selector))
    }

    /// Every identity the agent knows, reserved ones included (`GET /v1/identity`).
    pub fn identities(&self) -> Result<Vec<Identity>, ClientError> {
        self.get("/v1/identity")
    }

    /// One identity by number (`GET /v1/identity/{id}`).
    pub fn identity(&self, id: u32) -> Result<Identity, ClientError> {
        self.get(&format!("/v1/identity/{id}"))
    }

    /// kvstore entries under `key` (exactly `key` unless `recursive`).
    pub fn kvstore_get(&self, key: &str, recursive: bool) -> Result<Vec<KvPair>, ClientError> {
        self.get(&format!(
            "/v1/kvstore?key={}&recursive={recursive}",
            encode_query(key)
        ))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>("GET", path, None)
    }

    /// Sends one request and decodes a JSON answer.
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(|b| serde_json::to_vec(b).expect("API models always serialize"))
            .unwrap_or_default();
        let (status, payload) = self.roundtrip(method, path, &body)?;
        self.decode(method, path, status, payload)
    }

    /// Turns an answer into `T`, or into [`ClientError::Status`] for a non-2xx status.
    fn decode<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        status: u16,
        payload: Vec<u8>,
    ) -> Result<T, ClientError> {
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ApiError>(&payload)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&payload).trim().to_string());
            return Err(ClientError::Status {
                method,
                path: path.to_string(),
                status,
                message,
            });
        }
        let payload = if payload.is_empty() {
            b"null".to_vec()
        } else {
            payload
        };
        serde_json::from_slice(&payload).map_err(|source| ClientError::Decode {
            method,
            path: path.to_string(),
            source,
        })
    }

    fn roundtrip(
        &self,
        method: &'static str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let io = |source| ClientError::Io {
            method,
            path: path.to_string(),
            source,
        };
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(body).map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        parse_response(&raw).ok_or_else(|| ClientError::MalformedResponse {
            method,
            path: path.to_string(),
        })
    }
}

/// Splits a raw HTTP/1.1 answer into status and body (plain or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        decode_chunked(body)?
    } else {
        body.to_vec()
    };
    Some((status, body))
}

fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Percent-encodes the characters that matter in a query value.
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((201, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("abc:12/x y"), "abc:12%2Fx%20y");
    }

    #[test]
    fn unreachable_agent_names_the_socket() {
        let err = AgentClient::new("/nonexistent/cilium.sock")
            .healthz()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/cilium.sock"),
            "{err}"
        );
    }
}
