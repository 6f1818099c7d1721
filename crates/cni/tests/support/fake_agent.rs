//! A fake agent on a temporary unix socket: enough of the REST API for the plugin (IPAM,
//! endpoints, health), with its state open to assertions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use cilium_api::models::{
    AddressPair, ApiError, Endpoint, EndpointChangeRequest, EndpointIdentifiers, EndpointIdentity,
    EndpointLabels, EndpointNetworking, EndpointPolicyStatus, EndpointStatus, IpamAddressResponse,
    IpamResponse, IpamStatus, IpamSummary, NodeAddressing, NodeAddressingElement, Status,
    StatusResponse,
};
use serde::Serialize;

pub const ROUTER_IP: &str = "10.200.0.1";
const POOL: &str = "10.200.0.0/24";

/// What the fake agent holds and has seen.
#[derive(Default)]
pub struct State {
    /// IP → owner; starts with the router's address.
    pub allocations: BTreeMap<String, String>,
    pub endpoints: BTreeMap<u16, Endpoint>,
    /// Every PUT endpoint body, in order.
    pub put_requests: Vec<EndpointChangeRequest>,
    /// `METHOD path` of every request, in order.
    pub requests: Vec<String>,
    pub healthy: bool,
    /// Answer PUT /v1/endpoint with 500.
    pub reject_endpoints: bool,
    next_host: u8,
    next_id: u16,
}

impl State {
    pub fn saw(&self, method_and_prefix: &str) -> bool {
        self.requests
            .iter()
            .any(|r| r.starts_with(method_and_prefix))
    }
}

/// A running fake agent; stops and removes its socket on drop.
pub struct FakeAgent {
    pub socket: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("cilium.sock");
        let listener = UnixListener::bind(&socket).expect("bind the fake agent socket");
        let state = Arc::new(Mutex::new(State {
            allocations: BTreeMap::from([(ROUTER_IP.to_string(), "router".to_string())]),
            healthy: true,
            next_host: 2,
            next_id: 100,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &state);
                    }
                }
            })
        };
        Self {
            socket,
            state,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake agent state")
    }

    pub fn socket_str(&self) -> &str {
        self.socket.to_str().expect("utf-8 socket path")
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: UnixStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let (status, payload) = {
        let mut state = state.lock().expect("fake agent state");
        state.requests.push(format!("{method} {target}"));
        route(&mut state, &method, &target, &body)
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
}

fn json(status: u16, value: &impl Serialize) -> (u16, String) {
    (status, serde_json::to_string(value).expect("serialize"))
}

fn error(status: u16, message: &str) -> (u16, String) {
    json(
        status,
        &ApiError {
            error: message.into(),
        },
    )
}

fn route(state: &mut State, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match (method, path) {
        ("GET", "/v1/healthz") => json(200, &health(state.healthy)),
        ("POST", "/v1/ipam") => {
            let Some(owner) = query.split('&').find_map(|kv| kv.strip_prefix("owner=")) else {
                return error(400, "owner missing");
            };
            let ip = format!("10.200.0.{}", state.next_host);
            state.next_host += 1;
            state.allocations.insert(ip.clone(), owner.to_string());
            json(201, &allocation(&ip))
        }
        ("GET", "/v1/ipam") => json(
            200,
            &IpamStatus {
                alloc_range: POOL.into(),
                router_ip: ROUTER_IP.into(),
                allocations: state.allocations.clone(),
            },
        ),
        ("DELETE", p) if p.starts_with("/v1/ipam/") => {
            let key = &p["/v1/ipam/".len()..];
            let before = state.allocations.len();
            match key.strip_prefix("owner:") {
                Some(owner) => state.allocations.retain(|_, o| o != owner),
                None => {
                    state.allocations.remove(key);
                }
            }
            if state.allocations.len() < before {
                (200, String::new())
            } else {
                error(404, "no such allocation")
            }
        }
        ("PUT", p) if p.starts_with("/v1/endpoint/") => {
            let request: EndpointChangeRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(e) => return error(400, &e.to_string()),
            };
            state.put_requests.push(request.clone());
            if state.reject_endpoints {
                return error(500, "endpoint creation rejected by the test");
            }
            let id = state.next_id;
            state.next_id += 1;
            let endpoint = endpoint(id, &request);
            state.endpoints.insert(id, endpoint.clone());
            json(201, &endpoint)
        }
        ("GET", "/v1/endpoint") => json(200, &state.endpoints.values().collect::<Vec<_>>()),
        ("GET", p) if p.starts_with("/v1/endpoint/") => {
            match find_endpoint(state, &p["/v1/endpoint/".len()..]) {
                Some(id) => json(200, &state.endpoints[&id]),
                None => error(404, "endpoint not found"),
            }
        }
        ("DELETE", p) if p.starts_with("/v1/endpoint/") => {
            match find_endpoint(state, &p["/v1/endpoint/".len()..]) {
                Some(id) => {
                    state.endpoints.remove(&id);
                    (200, String::new())
                }
                None => error(404, "endpoint not found"),
            }
        }
        _ => error(404, "no such path"),
    }
}

fn find_endpoint(state: &State, key: &str) -> Option<u16> {
    match key.strip_prefix("container-id:") {
        Some(container_id) => state
            .endpoints
            .values()
            .find(|e| e.status.external_identifiers.container_id == container_id)
            .map(|e| e.id),
        None => key
            .parse()
            .ok()
            .filter(|id| state.endpoints.contains_key(id)),
    }
}

fn health(healthy: bool) -> StatusResponse {
    StatusResponse {
        cilium: Status {
            state: if healthy { "Ok" } else { "Failure" }.into(),
            msg: if healthy { "" } else { "datapath not ready" }.into(),
        },
        node_name: "fake".into(),
        version: "test".into(),
        routing_mode: "Native".into(),
        datapath_mode: "veth".into(),
        attach_mode: "TCX".into(),
        ipam: IpamSummary {
            alloc_range: POOL.into(),
            allocated: 1,
            capacity: 254,
        },
        endpoints: 0,
        bpf_root: "/sys/fs/bpf".into(),
        uptime_seconds: 1,
        kvstore: None,
        cluster: None,
        kube_proxy_replacement: None,
    }
}

fn allocation(ip: &str) -> IpamResponse {
    IpamResponse {
        address: AddressPair {
            ipv4: ip.into(),
            ..AddressPair::default()
        },
        ipv4: IpamAddressResponse {
            ip: ip.into(),
            gateway: ROUTER_IP.into(),
            cidrs: vec![POOL.into()],
            expiration_uuid: String::new(),
        },
        host_addressing: NodeAddressing {
            ipv4: NodeAddressingElement {
                enabled: true,
                ip: ROUTER_IP.into(),
                alloc_range: POOL.into(),
            },
        },
    }
}

fn endpoint(id: u16, request: &EndpointChangeRequest) -> Endpoint {
    Endpoint {
        id,
        status: EndpointStatus {
            state: "ready".into(),
            identity: EndpointIdentity::default(),
            networking: EndpointNetworking {
                addressing: vec![request.addressing.clone()],
                host_mac: request.host_mac.clone(),
                mac: request.mac.clone(),
                interface_index: request.interface_index,
                interface_name: request.interface_name.clone(),
            },
            external_identifiers: EndpointIdentifiers {
                container_id: request.container_id.clone(),
                k8s_namespace: request.k8s_namespace.clone(),
                k8s_pod_name: request.k8s_pod_name.clone(),
                netns: request.netns.clone(),
                ..EndpointIdentifiers::default()
            },
            labels: EndpointLabels {
                realized: request.labels.clone(),
            },
            policy: EndpointPolicyStatus::default(),
            realized_generation: 1,
        },
    }
}
