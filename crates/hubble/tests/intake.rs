//! Raw records as the datapath writes them go into the ring undecoded; a reader asking for a
//! flow gets it decoded with full context, once.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cilium_hubble::flow::{DropReason, Service, Verdict};
use cilium_hubble::{
    Capacity, EndpointInfo, EventSender, FlowContext, FlowDecoder, FrontendProtocol, Observer,
};
use support::*;

/// Star Wars context counting the address lookups made.
struct Counting {
    inner: Arc<StarWars>,
    lookups: AtomicUsize,
}

impl FlowContext for Counting {
    fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.endpoint_by_ip(ip)
    }
    fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
        self.inner.endpoint_by_id(id)
    }
    fn endpoint_by_netns_cookie(&self, cookie: u64) -> Option<EndpointInfo> {
        self.inner.endpoint_by_netns_cookie(cookie)
    }
    fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
        self.inner.identity_labels(identity)
    }
    fn interface_name(&self, ifindex: u32) -> Option<String> {
        self.inner.interface_name(ifindex)
    }
    fn service_by_frontend(
        &self,
        ip: IpAddr,
        port: u16,
        protocol: FrontendProtocol,
    ) -> Option<Service> {
        self.inner.service_by_frontend(ip, port, protocol)
    }
    fn service_by_rev_nat(&self, index: u16) -> Option<Service> {
        self.inner.service_by_rev_nat(index)
    }
}

#[test]
fn records_become_flows_with_context_when_read_and_only_once() {
    let context = Arc::new(Counting {
        inner: StarWars::new(),
        lookups: AtomicUsize::new(0),
    });
    let observer = Arc::new(Observer::new(
        FlowDecoder::new(
            "default/node2",
            Arc::clone(&context) as Arc<dyn FlowContext>,
        ),
        Capacity::default(),
    ));
    let sender = EventSender::new(Arc::clone(&observer));
    let syn = tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02);
    sender.send_batch(vec![
        Arc::from(drop_record(
            DEATHSTAR_EP,
            POLICY_DENIED,
            XWING_ID,
            DEATHSTAR_ID,
            &syn,
        )),
        Arc::from(vec![99u8, 0, 0, 0]), // not a record type that becomes a flow: skipped
        Arc::from(trace_record(
            DEATHSTAR_EP,
            TO_ENDPOINT,
            REASON_NEW,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            &tcp_frame(TIEFIGHTER, DEATHSTAR, 40000, 80, 0x02),
        )),
    ]);
    assert_eq!(observer.ring().len(), 2);
    assert_eq!(observer.seen_flows(), 2);
    assert_eq!(
        context.lookups.load(Ordering::Relaxed),
        0,
        "storing a record decodes nothing"
    );

    let (events, _) = observer.ring().snapshot();
    let drop = events[0].flow().expect("the drop decodes");
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
    let lookups = context.lookups.load(Ordering::Relaxed);
    assert_eq!(lookups, 2, "one lookup per end");

    // A second reader gets the same flow (same UUID) without decoding again.
    let (again, _) = observer.ring().snapshot();
    assert_eq!(
        again[0].flow().map(|f| f.uuid.clone()),
        Some(drop.uuid.clone())
    );
    assert_eq!(context.lookups.load(Ordering::Relaxed), lookups);

    let trace = events[1].flow().expect("the trace decodes");
    assert_eq!(trace.verdict, Verdict::Forwarded as i32);
    assert_eq!(trace.trace_observation_point, 101);
    assert_eq!(
        trace.source.as_ref().map(|s| s.pod_name.as_str()),
        Some("tiefighter")
    );
}

#[test]
fn a_truncated_record_is_kept_but_yields_no_flow() {
    let observer = Arc::new(Observer::new(
        FlowDecoder::new("default/node2", StarWars::new()),
        Capacity::default(),
    ));
    EventSender::new(Arc::clone(&observer)).send(Arc::from(vec![1u8, 133, 0]));
    let (events, _) = observer.ring().snapshot();
    assert_eq!(events.len(), 1);
    assert!(events[0].flow().is_none(), "too short to be a drop record");
}
