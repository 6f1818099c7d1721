//! Test support: ring buffer records laid out as the datapath writes them (`bpf/lib/trace.h`,
//! `bpf/lib/drop.h`, little-endian), the packets they capture, and a node's view of the
//! Star Wars pods as a [`FlowContext`].

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cilium_hubble::flow::Service;
use cilium_hubble::{
    serve, Capacity, EndpointInfo, EventSender, FlowContext, FlowDecoder, FrontendProtocol,
    Observer, ObserverService,
};
use tokio::sync::oneshot;

/// The node the test server stands for.
pub const NODE: &str = "default/node2";

pub const XWING: [u8; 4] = [10, 0, 1, 5];
pub const TIEFIGHTER: [u8; 4] = [10, 0, 1, 6];
pub const DEATHSTAR: [u8; 4] = [10, 0, 2, 7];
pub const DEATHSTAR_EP: u16 = 42;
pub const XWING_ID: u32 = 1234;
pub const TIEFIGHTER_ID: u32 = 4321;
pub const DEATHSTAR_ID: u32 = 5678;
pub const POLICY_DENIED: u8 = 133;
pub const TO_ENDPOINT: u8 = 0;
pub const REASON_NEW: u8 = 0;

/// Ethernet + IPv4 + TCP headers.
pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame
}

/// `NOTIFY_CAPTURE_HDR` (layout version 1).
fn header(kind: u8, subtype: u8, source: u16, payload: &[u8]) -> Vec<u8> {
    let mut record = vec![kind, subtype];
    record.extend_from_slice(&source.to_le_bytes());
    record.extend_from_slice(&0x1234_5678u32.to_le_bytes());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    record.extend_from_slice(&1u16.to_le_bytes());
    record
}

/// A `struct drop_notify` record reported by endpoint `source`.
pub fn drop_record(
    source: u16,
    reason: u8,
    src_label: u32,
    dst_label: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut record = header(1, reason, source, payload);
    record.extend_from_slice(&src_label.to_le_bytes());
    record.extend_from_slice(&dst_label.to_le_bytes());
    record.extend_from_slice(&u32::from(source).to_le_bytes());
    record.extend_from_slice(&100u16.to_le_bytes());
    record.extend_from_slice(&[2, 0]);
    record.extend_from_slice(&9u32.to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// A `struct trace_notify` record.
pub fn trace_record(
    source: u16,
    point: u8,
    reason: u8,
    src_label: u32,
    dst_label: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut record = header(4, point, source, payload);
    record.extend_from_slice(&src_label.to_le_bytes());
    record.extend_from_slice(&dst_label.to_le_bytes());
    record.extend_from_slice(&source.to_le_bytes());
    record.extend_from_slice(&[reason, 0]);
    record.extend_from_slice(&9u32.to_le_bytes());
    record.extend_from_slice(&[0; 16]);
    record.extend_from_slice(payload);
    record
}

/// Node 2 of the Star Wars lab: deathstar is local endpoint 42; xwing and tiefighter are
/// pods on node 1, known from the cluster's IP entries.
pub struct StarWars {
    by_ip: HashMap<IpAddr, EndpointInfo>,
}

impl StarWars {
    pub fn new() -> Arc<Self> {
        let pod = |id: u32, identity: u32, name: &str, ip: [u8; 4]| {
            (
                IpAddr::from(ip),
                EndpointInfo {
                    id,
                    identity,
                    namespace: "default".into(),
                    pod_name: name.into(),
                    workloads: Vec::new(),
                    ip: Some(IpAddr::from(ip)),
                },
            )
        };
        Arc::new(StarWars {
            by_ip: HashMap::from([
                pod(
                    u32::from(DEATHSTAR_EP),
                    DEATHSTAR_ID,
                    "deathstar",
                    DEATHSTAR,
                ),
                pod(0, XWING_ID, "xwing", XWING),
                pod(0, TIEFIGHTER_ID, "tiefighter", TIEFIGHTER),
            ]),
        })
    }
}

impl FlowContext for StarWars {
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
        self.by_ip.get(&ip).cloned()
    }

    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
        self.by_ip
            .values()
            .find(|ep| ep.id == u32::from(id))
            .cloned()
    }

    /// No sockets are translated on this node.
    fn endpoint_by_netns_cookie(&self, _cookie: u64) -> Option<EndpointInfo> {
        None
    }

    fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
        let (org, class) = match identity {
            XWING_ID => ("alliance", "xwing"),
            TIEFIGHTER_ID => ("empire", "tiefighter"),
            DEATHSTAR_ID => ("empire", "deathstar"),
            _ => return None,
        };
        Some(vec![
            format!("k8s:class={class}"),
            "k8s:io.kubernetes.pod.namespace=default".into(),
            format!("k8s:org={org}"),
        ])
    }

    fn interface_name(&self, ifindex: u32) -> Option<String> {
        (ifindex == 9).then(|| "lxc_deathstar".into())
    }

    fn service_by_frontend(
        &self,
        _ip: IpAddr,
        _port: u16,
        _protocol: FrontendProtocol,
    ) -> Option<Service> {
        None
    }
    fn service_by_rev_nat(&self, _index: u16) -> Option<Service> {
        None
    }
}

/// Polls `check` every 10 ms until it holds, panicking with `what` after 5 s.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Star Wars node's observer, served on a temporary unix socket.
pub struct Server {
    pub observer: Arc<Observer>,
    sender: EventSender,
    socket: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run/hubble.sock");
        let observer = Arc::new(Observer::new(
            FlowDecoder::new(NODE, StarWars::new()),
            Capacity::default(),
        ));
        let sender = EventSender::new(Arc::clone(&observer));
        let listener = serve::bind_unix(&socket).expect("bind");
        let service = ObserverService::new(
            Arc::clone(&observer),
            format!("unix://{}", socket.display()),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve_unix(listener, service, async {
            let _ = stopped.await;
        }));
        Server {
            observer,
            sender,
            socket,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub fn target(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Feeds a record; the ring then has `total` flows.
    pub fn feed(&self, record: Vec<u8>, total: u64) {
        self.sender.send(Arc::from(record));
        assert_eq!(self.observer.seen_flows(), total, "flows stored");
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .expect("server task")
            .expect("server stopped cleanly");
    }
}
