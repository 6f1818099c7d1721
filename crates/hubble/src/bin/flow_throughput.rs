//! Flows decoded and filtered per second on one core (run it pinned: `taskset -c 1`).
//!
//! Raw drop and trace records laid out as the datapath writes them (Star Wars pods, a table
//! context standing in for the agent's state) are stored in an observer's ring the way the
//! event drain stores them, then decoded into flows with full context as a reader asks for
//! them, then filtered with a `hubble observe --verdict DROPPED --to-pod default/deathstar`
//! filter. Prints a Markdown table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use cilium_hubble::filter::FlowFilterSet;
use cilium_hubble::flow::{FlowFilter, Service, Verdict};
use cilium_hubble::{
    Capacity, EndpointInfo, EventSender, FlowContext, FlowDecoder, FrontendProtocol, Observer,
};

const XWING: [u8; 4] = [10, 0, 1, 5];
const DEATHSTAR: [u8; 4] = [10, 0, 2, 7];
const ROUNDS: usize = 50;

struct Table {
    by_ip: HashMap<IpAddr, EndpointInfo>,
}

impl FlowContext for Table {
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
        self.by_ip.get(&ip).cloned()
    }
    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
        self.by_ip.values().find(|e| e.id == u32::from(id)).cloned()
    }
    fn endpoint_by_netns_cookie(&self, _cookie: u64) -> Option<EndpointInfo> {
        None
    }
    fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
        Some(vec![
            format!("k8s:app=pod{identity}"),
            "k8s:io.kubernetes.pod.namespace=default".into(),
            "k8s:org=empire".into(),
        ])
    }
    fn interface_name(&self, _ifindex: u32) -> Option<String> {
        Some("lxc0123".into())
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

/// Ethernet + IPv4 + TCP headers.
fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame
}

/// `NOTIFY_CAPTURE_HDR` then the kind's fields (`bpf/lib/trace.h`, `bpf/lib/drop.h`).
fn record(kind: u8, subtype: u8, payload: &[u8]) -> Arc<[u8]> {
    let mut r = vec![kind, subtype];
    r.extend_from_slice(&42u16.to_le_bytes());
    r.extend_from_slice(&7u32.to_le_bytes());
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    r.extend_from_slice(&1u16.to_le_bytes());
    r.extend_from_slice(&1234u32.to_le_bytes());
    r.extend_from_slice(&5678u32.to_le_bytes());
    if kind == 1 {
        r.extend_from_slice(&42u32.to_le_bytes());
        r.extend_from_slice(&100u16.to_le_bytes());
        r.extend_from_slice(&[2, 0]);
        r.extend_from_slice(&9u32.to_le_bytes());
    } else {
        r.extend_from_slice(&42u16.to_le_bytes());
        r.extend_from_slice(&[0, 0]);
        r.extend_from_slice(&9u32.to_le_bytes());
        r.extend_from_slice(&[0; 16]);
    }
    r.extend_from_slice(payload);
    Arc::from(r)
}

fn per_second(count: usize, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let pod = |id, identity, name: &str, ip: [u8; 4]| EndpointInfo {
        id,
        identity,
        namespace: "default".into(),
        pod_name: name.into(),
        workloads: Vec::new(),
        ip: Some(IpAddr::from(ip)),
    };
    let context = Arc::new(Table {
        by_ip: HashMap::from([
            (IpAddr::from(XWING), pod(0, 1234, "xwing", XWING)),
            (
                IpAddr::from(DEATHSTAR),
                pod(42, 5678, "deathstar", DEATHSTAR),
            ),
        ]),
    });
    let capacity = Capacity::new(65535).expect("valid capacity");
    let records: Vec<Arc<[u8]>> = (0..capacity.get())
        .map(|i| {
            let frame = tcp_frame(XWING, DEATHSTAR, 30000 + (i % 30000) as u16, 80, 0x02);
            if i % 4 == 0 {
                record(1, 133, &frame)
            } else {
                record(4, 0, &frame)
            }
        })
        .collect();
    let filters = FlowFilterSet::new(
        &[FlowFilter {
            verdict: vec![Verdict::Dropped as i32],
            destination_pod: vec!["default/deathstar".into()],
            ..Default::default()
        }],
        &[],
    )
    .expect("valid filter");

    let (mut stored, mut decoded, mut filtered) = (0.0, 0.0, 0.0);
    let mut matched = 0;
    for _ in 0..ROUNDS {
        let observer = Arc::new(Observer::new(
            FlowDecoder::new(
                "default/node2",
                Arc::clone(&context) as Arc<dyn FlowContext>,
            ),
            capacity,
        ));
        let sender = EventSender::new(Arc::clone(&observer));
        let started = Instant::now();
        for batch in records.chunks(256) {
            sender.send_batch(batch.to_vec());
        }
        stored += per_second(records.len(), started);

        let (events, _) = observer.ring().snapshot();
        let started = Instant::now();
        let flows: Vec<_> = events.iter().filter_map(|e| e.flow()).collect();
        decoded += per_second(flows.len(), started);

        let started = Instant::now();
        matched = flows.iter().filter(|f| filters.allows(f)).count();
        filtered += per_second(flows.len(), started);
    }
    let rounds = ROUNDS as f64;
    println!(
        "| Step (one core, {ROUNDS} rounds of {} records) | Rate |",
        records.len()
    );
    println!("|---|---|");
    println!(
        "| Stored by the event drain (raw record into the ring) | {:.2} M records/s |",
        stored / rounds / 1e6
    );
    println!(
        "| Decoded into flows with pod, namespace, labels, identity | {:.0} k flows/s |",
        decoded / rounds / 1e3
    );
    println!(
        "| Filtered (`--verdict DROPPED --to-pod default/deathstar`, {matched} matched) | {:.2} M flows/s |",
        filtered / rounds / 1e6
    );
}
