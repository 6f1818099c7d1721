//! Policy enforcement in the real `bpf_lxc.o`, fed crafted packets through
//! BPF_PROG_TEST_RUN: egress in `cil_from_container`, ingress in the
//! receiver's `handle_policy` (local delivery) and in `cil_to_container`,
//! only for new connections, with drop and policy-verdict events.

use std::net::Ipv4Addr;

use cilium_datapath::{
    abi::{
        RemoteEndpointInfo, CILIUM_NOTIFY_POLICY_VERDICT, IPCACHE_MAP, POLICY_MAP,
        TRACE_AGGREGATE_ACTIVE_CT, TUPLE_F_IN, TUPLE_F_OUT,
    },
    codes::DropReason,
    maps::{
        map_op_counts, CtMap, CtMapKind, Direction, Enforcement, PolicyEntry, PolicyMap,
        PolicyMapKey,
    },
    AttachPreference, Datapath, DatapathEvent, DropEvent, EndpointDatapathConfig, EndpointObject,
    EndpointProgram, PolicyVerdictEvent,
};

use crate::common::*;

/// `POLICY_MATCH_*` values reported in verdicts.
const MATCH_NONE: u8 = 0;
const MATCH_L3_ONLY: u8 = 1;
const MATCH_L4_ONLY: u8 = 3;

/// A datapath in its own bpffs root. Field order: the datapath goes first.
struct Fixture {
    dp: Datapath,
    _root: TestRoot,
}

/// What the ring buffer held: drops and traces, and policy verdicts.
struct Events {
    datapath: Vec<DatapathEvent>,
    verdicts: Vec<PolicyVerdictEvent>,
}

impl Events {
    fn drops(&self) -> Vec<&DropEvent> {
        drops(&self.datapath)
    }
}

impl Fixture {
    fn new() -> Self {
        let root = TestRoot::new();
        let dp = root.open(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
        Self { dp, _root: root }
    }

    /// Loads `ep`, makes it a local delivery target and puts its address in
    /// the ipcache with its identity (as the agent does for local pods).
    fn endpoint(&self, ep: &EndpointDatapathConfig) -> EndpointObject {
        let object = self
            .dp
            .load_endpoint(ep)
            .unwrap_or_else(|err| panic!("loading endpoint {}: {}", ep.id, chain(&err)));
        self.dp
            .register_endpoint(ep, &object)
            .unwrap_or_else(|err| panic!("registering endpoint {}: {}", ep.id, chain(&err)));
        self.dp
            .upsert_ipcache(ep.ipv4.into(), &RemoteEndpointInfo::new(ep.identity))
            .unwrap_or_else(|err| panic!("ipcache entry of {}: {}", ep.ipv4, chain(&err)));
        object
    }

    fn set_policy(
        &self,
        ep: &EndpointDatapathConfig,
        enforcement: Enforcement,
        entries: &[(PolicyMapKey, PolicyEntry)],
    ) {
        self.dp
            .set_policy(ep.id, enforcement, entries)
            .unwrap_or_else(|err| panic!("setting endpoint {} policy: {}", ep.id, chain(&err)));
    }

    fn events(&self) -> Events {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("building a tokio runtime");
        let _guard = runtime.enter();
        let mut reader = self.dp.event_reader().expect("opening the event reader");
        let mut events = Events {
            datapath: Vec::new(),
            verdicts: Vec::new(),
        };
        while let Some(record) = reader.try_next() {
            if record.first() == Some(&CILIUM_NOTIFY_POLICY_VERDICT) {
                events.verdicts.push(
                    PolicyVerdictEvent::parse(&record)
                        .unwrap_or_else(|err| panic!("undecodable verdict {record:02x?}: {err}")),
                );
            } else {
                events.datapath.push(
                    DatapathEvent::parse(&record)
                        .unwrap_or_else(|err| panic!("undecodable event {record:02x?}: {err}")),
                );
            }
        }
        events
    }

    /// Whether conntrack holds the entry of `src:sport` created in the
    /// direction `flags` (TUPLE_F_OUT or TUPLE_F_IN).
    fn has_ct(&self, src: Ipv4Addr, sport: u16, flags: u8) -> bool {
        CtMap::open(self.dp.paths(), CtMapKind::Tcp)
            .and_then(|map| map.entries())
            .unwrap_or_else(|err| panic!("reading conntrack: {}", chain(&err)))
            .iter()
            .any(|e| {
                e.tuple.source() == src && e.tuple.source_port() == sport && e.tuple.flags == flags
            })
    }
}

fn from_container(object: &EndpointObject) -> &aya::programs::SchedClassifier {
    object
        .program(EndpointProgram::FromContainer)
        .expect("cil_from_container is loaded")
}

fn to_container(object: &EndpointObject) -> &aya::programs::SchedClassifier {
    object
        .program(EndpointProgram::ToContainer)
        .expect("cil_to_container is loaded")
}

const EGRESS: Enforcement = Enforcement {
    ingress: false,
    egress: true,
};
const INGRESS: Enforcement = Enforcement {
    ingress: true,
    egress: false,
};

/// Successful `update`s of `map` counted so far in this process.
fn successful_updates(map: &str) -> u64 {
    map_op_counts()
        .iter()
        .find(|c| c.map_name == map && c.operation == "update" && c.outcome == "success")
        .map_or(0, |c| c.count)
}

#[test]
fn egress_without_a_matching_entry_is_dropped_as_policy_denied() {
    let fx = Fixture::new();
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let src_obj = fx.endpoint(&src);
    let _dst_obj = fx.endpoint(&dst);
    fx.set_policy(&src, EGRESS, &[]);

    let verdict = run(
        from_container(&src_obj),
        &tcp_packet(&src, dst.ipv4, 40000, 80, TCP_SYN, 64),
    );

    assert_eq!(verdict.retval, TC_ACT_SHOT, "no entry allows it");
    assert!(
        !fx.has_ct(src.ipv4, 40000, TUPLE_F_OUT),
        "a denied connection leaves no conntrack entry"
    );
    let events = fx.events();
    let drops = events.drops();
    assert_eq!(drops.len(), 1, "one drop: {:#?}", events.datapath);
    assert_eq!(drops[0].reason, DropReason::POLICY_DENIED);
    assert_eq!(drops[0].reason.0, 133);
    assert_eq!(drops[0].src_identity, src.identity);
    assert_eq!(drops[0].dst_identity, dst.identity, "from the ipcache");
    assert_eq!(events.verdicts.len(), 1, "{:#?}", events.verdicts);
    let v = &events.verdicts[0];
    assert_eq!(v.header.source_endpoint, src.id);
    assert_eq!(v.remote_identity, dst.identity);
    assert!(v.egress);
    assert_eq!(v.drop_reason, Some(DropReason::POLICY_DENIED));
    assert_eq!(
        (v.protocol, v.src_port, v.dst_port),
        (IPPROTO_TCP, 40000, 80)
    );
    assert_eq!(v.match_type, MATCH_NONE);
}

#[test]
fn an_explicit_deny_beats_an_allow() {
    let fx = Fixture::new();
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let ipcache_before = successful_updates(IPCACHE_MAP);
    let src_obj = fx.endpoint(&src);
    let _dst_obj = fx.endpoint(&dst);
    let policy_before = successful_updates(POLICY_MAP);
    fx.set_policy(
        &src,
        EGRESS,
        &[
            (
                PolicyMapKey::l3(dst.identity, Direction::Egress),
                PolicyEntry::allow(),
            ),
            (
                PolicyMapKey::l4(0, Direction::Egress, IPPROTO_TCP, 80),
                PolicyEntry::deny(),
            ),
        ],
    );
    // Counters are process-wide and other tests run concurrently: at least ours.
    assert!(
        successful_updates(POLICY_MAP) >= policy_before + 2,
        "both policy entries written count as successful updates: {:#?}",
        map_op_counts()
    );
    assert!(
        successful_updates(IPCACHE_MAP) >= ipcache_before + 2,
        "both endpoints' ipcache entries count as successful updates: {:#?}",
        map_op_counts()
    );

    let denied = run(
        from_container(&src_obj),
        &tcp_packet(&src, dst.ipv4, 40000, 80, TCP_SYN, 64),
    );
    assert_eq!(denied.retval, TC_ACT_SHOT, "the deny on port 80 wins");
    let allowed = run(
        from_container(&src_obj),
        &tcp_packet(&src, dst.ipv4, 40001, 81, TCP_SYN, 64),
    );
    assert_eq!(
        allowed.retval, TC_ACT_REDIRECT,
        "the L3 allow covers port 81"
    );

    let events = fx.events();
    let drops = events.drops();
    assert_eq!(drops.len(), 1, "{:#?}", events.datapath);
    assert_eq!(drops[0].reason, DropReason::POLICY_DENY);
    assert_eq!(drops[0].reason.0, 181);
    let verdicts: Vec<_> = events
        .verdicts
        .iter()
        .map(|v| (v.dst_port, v.drop_reason, v.match_type))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (80, Some(DropReason::POLICY_DENY), MATCH_L4_ONLY),
            (81, None, MATCH_L3_ONLY),
        ]
    );
}

#[test]
fn an_l4_only_allow_admits_any_identity_on_that_port_only() {
    let fx = Fixture::new();
    let a = endpoint(11, "lxc-a", 11);
    let b = endpoint(12, "lxc-b", 12);
    let server = endpoint(22, "lxc-s", 22);
    let a_obj = fx.endpoint(&a);
    let b_obj = fx.endpoint(&b);
    let _server_obj = fx.endpoint(&server);
    fx.set_policy(
        &server,
        INGRESS,
        &[(
            PolicyMapKey::l4(0, Direction::Ingress, IPPROTO_TCP, 80),
            PolicyEntry::allow(),
        )],
    );

    for (client, object, sport) in [(&a, &a_obj, 40000), (&b, &b_obj, 40001)] {
        let verdict = run(
            from_container(object),
            &tcp_packet(client, server.ipv4, sport, 80, TCP_SYN, 64),
        );
        assert_eq!(
            verdict.retval, TC_ACT_REDIRECT,
            "identity {} may reach port 80",
            client.identity
        );
    }
    let refused = run(
        from_container(&a_obj),
        &tcp_packet(&a, server.ipv4, 40002, 81, TCP_SYN, 64),
    );
    assert_eq!(refused.retval, TC_ACT_SHOT, "port 81 is not allowed");
    assert!(
        fx.has_ct(a.ipv4, 40002, TUPLE_F_OUT),
        "the sender does not enforce: its egress entry exists"
    );
    assert!(
        !fx.has_ct(a.ipv4, 40002, TUPLE_F_IN),
        "the receiver denied it: no ingress entry"
    );

    let events = fx.events();
    let drops = events.drops();
    assert_eq!(drops.len(), 1, "{:#?}", events.datapath);
    assert_eq!(drops[0].reason, DropReason::POLICY_DENIED);
    assert_eq!(drops[0].header.source_endpoint, server.id);
    assert_eq!(drops[0].src_identity, a.identity);
    assert_eq!(drops[0].dst_identity, server.identity);
    let verdicts: Vec<_> = events
        .verdicts
        .iter()
        .map(|v| {
            (
                v.remote_identity,
                v.egress,
                v.dst_port,
                v.drop_reason,
                v.match_type,
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (a.identity, false, 80, None, MATCH_L4_ONLY),
            (b.identity, false, 80, None, MATCH_L4_ONLY),
            (
                a.identity,
                false,
                81,
                Some(DropReason::POLICY_DENIED),
                MATCH_NONE
            ),
        ],
        "only the server enforces, on ingress"
    );
}

#[test]
fn established_connections_and_replies_survive_the_removal_of_their_entry() {
    let fx = Fixture::new();
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-s", 22);
    let client_obj = fx.endpoint(&client);
    let server_obj = fx.endpoint(&server);
    let both = Enforcement {
        ingress: true,
        egress: true,
    };
    fx.set_policy(
        &server,
        both,
        &[(
            PolicyMapKey::l3(client.identity, Direction::Ingress),
            PolicyEntry::allow(),
        )],
    );

    let syn = tcp_packet(&client, server.ipv4, 40000, 80, TCP_SYN, 64);
    assert_eq!(
        run(from_container(&client_obj), &syn).retval,
        TC_ACT_REDIRECT
    );
    let synack = tcp_packet(&server, client.ipv4, 80, 40000, TCP_SYN | TCP_ACK, 64);
    assert_eq!(
        run(from_container(&server_obj), &synack).retval,
        TC_ACT_REDIRECT,
        "the reply passes the server's egress although no egress entry exists"
    );

    fx.set_policy(&server, both, &[]);
    let entries = PolicyMap::open(fx.dp.paths(), server.id)
        .and_then(|map| map.entries())
        .unwrap_or_else(|err| panic!("reading the policy map: {}", chain(&err)));
    assert!(entries.is_empty(), "the entry is gone: {entries:#?}");

    let ack = tcp_packet(&client, server.ipv4, 40000, 80, TCP_ACK, 64);
    assert_eq!(
        run(from_container(&client_obj), &ack).retval,
        TC_ACT_REDIRECT,
        "the established connection keeps flowing"
    );
    let reply = tcp_packet(&server, client.ipv4, 80, 40000, TCP_ACK, 64);
    assert_eq!(
        run(from_container(&server_obj), &reply).retval,
        TC_ACT_REDIRECT
    );
    let fresh = tcp_packet(&client, server.ipv4, 40001, 80, TCP_SYN, 64);
    assert_eq!(
        run(from_container(&client_obj), &fresh).retval,
        TC_ACT_SHOT,
        "a new connection is checked against the emptied map"
    );

    let events = fx.events();
    let reasons: Vec<_> = events.drops().iter().map(|d| d.reason).collect();
    assert_eq!(reasons, vec![DropReason::POLICY_DENIED]);
    assert_eq!(
        events.verdicts.len(),
        2,
        "verdicts only for the two new connections: {:#?}",
        events.verdicts
    );
}

#[test]
fn stack_traffic_into_the_pod_is_checked_on_ingress() {
    let fx = Fixture::new();
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.endpoint(&ep);
    let router = Ipv4Addr::new(10, 200, 0, 1);
    fx.dp
        .upsert_host_ip(router)
        .expect("registering the router IP");
    fx.set_policy(
        &ep,
        INGRESS,
        &[(
            PolicyMapKey::l3(1, Direction::Ingress),
            PolicyEntry::allow(),
        )],
    );

    let from = |ip: Ipv4Addr, sport: u16| {
        let tcp = tcp_header(sport, 8080, TCP_SYN);
        let mut frame = ethernet(ep.mac, ep.node_mac, ETH_P_IP);
        frame.extend(ipv4_header(ip, ep.ipv4, IPPROTO_TCP, 64, tcp.len()));
        frame.extend(tcp);
        frame
    };
    assert_eq!(
        run(to_container(&object), &from(router, 50000)).retval,
        TC_ACT_OK,
        "the host (identity 1) is allowed"
    );
    let outside = Ipv4Addr::new(192, 0, 2, 7);
    assert_eq!(
        run(to_container(&object), &from(outside, 50001)).retval,
        TC_ACT_SHOT,
        "world (identity 2) is not"
    );
    let events = fx.events();
    let drops = events.drops();
    assert_eq!(drops.len(), 1, "{:#?}", events.datapath);
    assert_eq!(drops[0].src_identity, 2);
    assert_eq!(drops[0].reason, DropReason::POLICY_DENIED);
}

#[test]
fn without_enforcement_everything_passes_and_the_map_is_kept() {
    let fx = Fixture::new();
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let src_obj = fx.endpoint(&src);
    let _dst_obj = fx.endpoint(&dst);
    let deny_all = [(PolicyMapKey::l3(0, Direction::Egress), PolicyEntry::deny())];
    fx.set_policy(&src, EGRESS, &deny_all);
    assert_eq!(
        run(
            from_container(&src_obj),
            &tcp_packet(&src, dst.ipv4, 40000, 80, TCP_SYN, 64)
        )
        .retval,
        TC_ACT_SHOT,
        "enforced: the deny-all entry drops"
    );

    fx.set_policy(&src, Enforcement::default(), &deny_all);
    assert_eq!(
        fx.dp.policy_enforcement(src.id).expect("reading switches"),
        Enforcement::default()
    );
    assert_eq!(
        run(
            from_container(&src_obj),
            &tcp_packet(&src, dst.ipv4, 40001, 80, TCP_SYN, 64)
        )
        .retval,
        TC_ACT_REDIRECT,
        "not enforced: the same map no longer matters"
    );
    let entries = PolicyMap::open(fx.dp.paths(), src.id)
        .and_then(|map| map.entries())
        .unwrap_or_else(|err| panic!("reading the policy map: {}", chain(&err)));
    assert_eq!(entries.len(), 1);
    assert!(entries[0].entry.is_deny());
    let events = fx.events();
    assert_eq!(
        events.verdicts.len(),
        1,
        "no verdict without enforcement: {:#?}",
        events.verdicts
    );
}

#[test]
fn each_endpoint_has_its_own_policy_map_removed_with_it() {
    let fx = Fixture::new();
    let a = endpoint(11, "lxc-a", 11);
    let b = endpoint(12, "lxc-b", 12);
    let _a_obj = fx.endpoint(&a);
    let _b_obj = fx.endpoint(&b);
    fx.set_policy(
        &a,
        EGRESS,
        &[(PolicyMapKey::l3(7, Direction::Egress), PolicyEntry::allow())],
    );
    let entries_of = |id| {
        PolicyMap::open(fx.dp.paths(), id)
            .and_then(|map| map.entries())
            .unwrap_or_else(|err| panic!("reading policy map {id}: {}", chain(&err)))
    };
    assert_eq!(entries_of(a.id).len(), 1);
    assert!(entries_of(b.id).is_empty(), "b's map is a different map");
    let pin = PolicyMap::pin_path(fx.dp.paths(), a.id);
    assert!(
        pin.ends_with("tc/globals/cilium_policy_v2_00111"),
        "{}",
        pin.display()
    );

    fx.dp
        .remove_endpoint(a.id, a.ipv4)
        .unwrap_or_else(|err| panic!("removing endpoint {}: {}", a.id, chain(&err)));
    assert!(
        !pin.exists(),
        "the policy map pin is removed with the endpoint"
    );
    assert_eq!(
        fx.dp.policy_enforcement(a.id).expect("reading switches"),
        Enforcement::default(),
        "a reused id starts unenforced"
    );
}
