//! Raw records as the datapath writes them go through the queue and the decoder thread into
//! the ring; a decoder that falls behind loses records and says how many.

mod support;

use std::net::IpAddr;
use std::sync::{mpsc, Arc, Mutex};

use cilium_hubble::flow::{DropReason, LostEventSource, Verdict};
use cilium_hubble::ring::Payload;
use cilium_hubble::{pipeline, Capacity, EndpointInfo, FlowContext, FlowDecoder, Observer};
use support::*;

#[test]
fn records_become_flows_with_context() {
    let observer = Arc::new(Observer::new("default/node2", Capacity::default()));
    let decoder = FlowDecoder::new("default/node2", StarWars::new());
    let sender = pipeline::start(Arc::clone(&observer), decoder, 16).expect("decoder thread");
    let syn = tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02);
    sender.send(Arc::from(drop_record(
        DEATHSTAR_EP,
        POLICY_DENIED,
        XWING_ID,
        DEATHSTAR_ID,
        &syn,
    )));
    sender.send(Arc::from(vec![99u8, 0, 0, 0])); // not a record type we know: skipped
    sender.send(Arc::from(trace_record(
        DEATHSTAR_EP,
        TO_ENDPOINT,
        REASON_NEW,
        TIEFIGHTER_ID,
        DEATHSTAR_ID,
        &tcp_frame(TIEFIGHTER, DEATHSTAR, 40000, 80, 0x02),
    )));
    wait_until("two flows in the ring", || observer.ring().len() == 2);
    assert_eq!(observer.seen_flows(), 2);

    let (events, _) = observer.ring().snapshot();
    let flows: Vec<_> = events
        .iter()
        .map(|e| match &e.payload {
            Payload::Flow(flow) => flow.clone(),
            Payload::Lost(lost) => panic!("nothing was lost: {lost:?}"),
        })
        .collect();
    let drop = &flows[0];
    assert_eq!(drop.verdict, Verdict::Dropped as i32);
    assert_eq!(drop.drop_reason_desc, DropReason::PolicyDenied as i32);
    let source = drop.source.as_ref().expect("source");
    assert_eq!(
        (
            source.namespace.as_str(),
            source.pod_name.as_str(),
            source.identity
        ),
        ("default", "xwing", XWING_ID)
    );
    assert!(source.labels.contains(&"k8s:org=alliance".to_string()));
    let destination = drop.destination.as_ref().expect("destination");
    assert_eq!(
        (destination.pod_name.as_str(), destination.id),
        ("deathstar", 42)
    );
    assert_eq!(
        drop.interface.as_ref().map(|i| i.name.as_str()),
        Some("lxc_deathstar")
    );
    assert!(drop.time.is_some() && !drop.uuid.is_empty());

    let trace = &flows[1];
    assert_eq!(trace.verdict, Verdict::Forwarded as i32);
    assert_eq!(trace.trace_observation_point, 101);
    assert_eq!(
        trace.source.as_ref().map(|s| s.pod_name.as_str()),
        Some("tiefighter")
    );
}

/// A context that holds the decoder inside its first lookup until released.
struct Gate {
    inner: Arc<StarWars>,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl FlowContext for Gate {
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
        if let Some(entered) = self.entered.lock().expect("gate").take() {
            entered.send(()).expect("test waits");
            self.release
                .lock()
                .expect("gate")
                .recv()
                .expect("test releases");
        }
        self.inner.endpoint_by_ip(ip)
    }
    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
        self.inner.endpoint_by_id(id)
    }
    fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
        self.inner.identity_labels(identity)
    }
    fn interface_name(&self, ifindex: u32) -> Option<String> {
        self.inner.interface_name(ifindex)
    }
}

#[test]
fn a_full_queue_loses_records_and_reports_the_count() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        inner: StarWars::new(),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
    });
    let observer = Arc::new(Observer::new("default/node2", Capacity::default()));
    let sender = pipeline::start(
        Arc::clone(&observer),
        FlowDecoder::new("default/node2", gate),
        1,
    )
    .expect("decoder thread");
    let record: Arc<[u8]> = Arc::from(drop_record(
        DEATHSTAR_EP,
        POLICY_DENIED,
        XWING_ID,
        DEATHSTAR_ID,
        &tcp_frame(XWING, DEATHSTAR, 1, 80, 0x02),
    ));

    sender.send(Arc::clone(&record));
    entered.recv().expect("decoder busy with the first record");
    sender.send(Arc::clone(&record)); // fills the queue (size 1)
    for _ in 0..3 {
        sender.send(Arc::clone(&record)); // lost
    }
    release.send(()).expect("decoder waits");

    wait_until("both records decoded", || observer.seen_flows() == 2);
    let (events, _) = observer.ring().snapshot();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.payload {
            Payload::Flow(_) => "flow".to_string(),
            Payload::Lost(lost) => {
                assert_eq!(lost.source, LostEventSource::ObserverEventsQueue as i32);
                format!("lost {}", lost.num_events_lost)
            }
        })
        .collect();
    assert_eq!(kinds, ["flow", "lost 3", "flow"]);
}
