//! The planner from a user's point of view: which frontends a service gets, with which
//! backends in which slots, flags, scopes, algorithms and IDs.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cilium_loadbalancer::frontend::{
    SVC_FLAG_AFFINITY, SVC_FLAG_EXTERNAL_IP, SVC_FLAG_EXT_LOCAL_SCOPE, SVC_FLAG_INT_LOCAL_SCOPE,
    SVC_FLAG_LOADBALANCER, SVC_FLAG_NODEPORT, SVC_FLAG_ROUTABLE, SVC_FLAG_TWO_SCOPES,
};
use cilium_loadbalancer::{
    Algorithm, BackendId, BackendState, Catalog, FrontendAddr, FrontendEntry, FrontendKey,
    FrontendKind, LbState, NamedPort, ObjectName, PlanProblem, Planner, PodInfo, Protocol,
    RevNatIndex, Scope, ServiceFlags, ServiceValue,
};
use common::{config, planner, service, service_with, slice, NODE, NODE_IP};
use serde_json::json;

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn key(ip: Ipv4Addr, port: u16, scope: Scope) -> FrontendKey {
    FrontendKey {
        addr: FrontendAddr {
            ip,
            port,
            protocol: Protocol::Tcp,
        },
        scope,
    }
}

fn entry(state: &LbState, key: FrontendKey) -> &FrontendEntry {
    state.frontends.get(&key).unwrap_or_else(|| {
        panic!(
            "no frontend {key}; have {:?}",
            state
                .frontends
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
        )
    })
}

/// The backend addresses (as `ip`) of IDs.
fn ips(state: &LbState, ids: &[BackendId]) -> Vec<Ipv4Addr> {
    ids.iter().map(|id| state.backends[id].addr.ip).collect()
}

fn flags(flags: u8, flags2: u8) -> ServiceFlags {
    ServiceFlags { flags, flags2 }
}

/// web: three backends, one on this node (10.0.1.5) and two elsewhere.
fn web_catalog(spec: serde_json::Value) -> Catalog {
    let mut catalog = Catalog::new();
    catalog.upsert_service(service("web", spec));
    catalog.upsert_endpoint_slice(slice(
        "web-1",
        "web",
        "",
        8080,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", true, false),
            ([10, 0, 3, 5], "node-3", true, false),
        ],
    ));
    catalog
}

#[test]
fn cluster_ip_service_gets_one_frontend_with_every_backend_in_slots() {
    let catalog = web_catalog(
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    let desired = planner().desired(&catalog);
    assert!(desired.problems.is_empty(), "{:?}", desired.problems);
    let state = &desired.state;
    assert_eq!(state.frontends.len(), 1);
    let web = entry(state, key(CLUSTER_IP, 80, Scope::External));
    assert_eq!(web.service, ObjectName::new("shop", "web"));
    assert_eq!(web.kind, FrontendKind::ClusterIp);
    assert_eq!(web.flags, flags(0, 0));
    assert_eq!(web.algorithm, Algorithm::Random);
    assert_eq!(web.rev_nat, RevNatIndex(1));
    assert_eq!(
        ips(state, &web.slots),
        [
            Ipv4Addr::new(10, 0, 1, 5),
            Ipv4Addr::new(10, 0, 2, 5),
            Ipv4Addr::new(10, 0, 3, 5)
        ]
    );
    assert!(
        web.slots.windows(2).all(|w| w[0] < w[1]),
        "slots in ID order"
    );
    assert!(state
        .backends
        .values()
        .all(|b| b.addr.port == 8080 && b.state == BackendState::Active));
    assert!(state.maglev.is_empty(), "random selection needs no table");

    // The maps: master with count 3 and the frontend's rev-NAT, three slots, rev-NAT entry.
    let maps = state.map_state();
    assert_eq!(maps.services.len(), 4);
    let master = web.master();
    assert_eq!(
        (master.count, master.rev_nat, master.affinity_timeout),
        (3, RevNatIndex(1), 0)
    );
    assert_eq!(
        maps.rev_nat[&RevNatIndex(1)],
        key(CLUSTER_IP, 80, Scope::External).addr
    );
    assert!(maps.dangling().is_empty());
}

#[test]
fn node_port_and_load_balancer_frontends_with_their_flags() {
    let catalog = web_catalog(json!({
        "type": "LoadBalancer", "clusterIP": "10.96.0.10",
        "externalIPs": ["192.0.2.7"], "loadBalancerIP": "198.51.100.1",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let state = planner().desired(&catalog).state;
    let seen: Vec<(String, FrontendKind, ServiceFlags)> = state
        .frontends
        .iter()
        .map(|(k, e)| (k.to_string(), e.kind, e.flags))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "0.0.0.0:30080/TCP".into(),
                FrontendKind::NodePort,
                flags(SVC_FLAG_NODEPORT, 0)
            ),
            (
                "10.96.0.10:80/TCP".into(),
                FrontendKind::ClusterIp,
                flags(0, 0)
            ),
            (
                "192.0.2.7:80/TCP".into(),
                FrontendKind::ExternalIp,
                flags(SVC_FLAG_EXTERNAL_IP | SVC_FLAG_ROUTABLE, 0)
            ),
            (
                "192.168.1.10:30080/TCP".into(),
                FrontendKind::NodePort,
                flags(SVC_FLAG_NODEPORT | SVC_FLAG_ROUTABLE, 0)
            ),
            (
                "198.51.100.1:80/TCP".into(),
                FrontendKind::LoadBalancer,
                flags(SVC_FLAG_LOADBALANCER | SVC_FLAG_ROUTABLE, 0)
            ),
        ]
    );
    let rev_nats: BTreeSet<RevNatIndex> = state.frontends.values().map(|e| e.rev_nat).collect();
    assert_eq!(
        rev_nats.len(),
        5,
        "one reverse-NAT index per frontend address"
    );
    assert!(state.frontends.values().all(|e| e.slots.len() == 3));
}

#[test]
fn external_traffic_policy_local_keeps_node_local_backends_for_outside_traffic() {
    let catalog = web_catalog(json!({
        "type": "NodePort", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let state = planner().desired(&catalog).state;
    let external = entry(&state, key(NODE_IP, 30080, Scope::External));
    assert_eq!(ips(&state, &external.slots), [Ipv4Addr::new(10, 0, 1, 5)]);
    assert_eq!(
        external.flags,
        flags(
            SVC_FLAG_NODEPORT | SVC_FLAG_ROUTABLE | SVC_FLAG_EXT_LOCAL_SCOPE,
            SVC_FLAG_TWO_SCOPES
        )
    );
    let internal = entry(&state, key(NODE_IP, 30080, Scope::Internal));
    assert_eq!(
        internal.slots.len(),
        3,
        "in-cluster clients use every backend"
    );
    assert_eq!(
        internal.flags,
        flags(SVC_FLAG_NODEPORT | SVC_FLAG_ROUTABLE, 0)
    );
    assert_eq!(
        internal.rev_nat, external.rev_nat,
        "both scopes share the address's index"
    );
    assert_eq!(
        key(NODE_IP, 30080, Scope::Internal).to_string(),
        "192.168.1.10:30080/TCP/i"
    );
    let cluster_ip = entry(&state, key(CLUSTER_IP, 80, Scope::External));
    assert_eq!(cluster_ip.slots.len(), 3);
    assert!(!state
        .frontends
        .contains_key(&key(CLUSTER_IP, 80, Scope::Internal)));

    // Under Maglev the external entry gets the table (of its local backends); the
    // internal entry, with other backends and the same reverse-NAT index, selects at random.
    let mut maglev = catalog.clone();
    maglev.upsert_service(service_with(
        "web",
        json!({
        "type": "NodePort", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    let state = planner().desired(&maglev).state;
    let external = entry(&state, key(NODE_IP, 30080, Scope::External));
    let internal = entry(&state, key(NODE_IP, 30080, Scope::Internal));
    assert_eq!(
        (external.algorithm, internal.algorithm),
        (Algorithm::Maglev, Algorithm::Random)
    );
    let table: BTreeSet<BackendId> = state.maglev[&external.rev_nat]
        .ids()
        .iter()
        .copied()
        .collect();
    assert_eq!(table.into_iter().collect::<Vec<_>>(), external.slots);
}

#[test]
fn internal_traffic_policy_local_keeps_node_local_backends_for_cluster_traffic() {
    let catalog = web_catalog(json!({
        "type": "NodePort", "clusterIP": "10.96.0.10", "internalTrafficPolicy": "Local",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let state = planner().desired(&catalog).state;
    let cluster_ip = entry(&state, key(CLUSTER_IP, 80, Scope::External));
    assert_eq!(ips(&state, &cluster_ip.slots), [Ipv4Addr::new(10, 0, 1, 5)]);
    assert_eq!(cluster_ip.flags, flags(0, SVC_FLAG_INT_LOCAL_SCOPE));
    let external = entry(&state, key(NODE_IP, 30080, Scope::External));
    assert_eq!(external.slots.len(), 3);
    assert_eq!(external.flags.flags2, SVC_FLAG_TWO_SCOPES);
    let internal = entry(&state, key(NODE_IP, 30080, Scope::Internal));
    assert_eq!(ips(&state, &internal.slots), [Ipv4Addr::new(10, 0, 1, 5)]);
    assert_eq!(internal.flags.flags2, SVC_FLAG_INT_LOCAL_SCOPE);
}

#[test]
fn both_policies_local_need_one_scope() {
    let catalog = web_catalog(json!({
        "type": "NodePort", "clusterIP": "10.96.0.10",
        "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let state = planner().desired(&catalog).state;
    assert!(state.frontends.keys().all(|k| k.scope == Scope::External));
    assert!(state.frontends.values().all(|e| e.slots.len() == 1));
    let external = entry(&state, key(NODE_IP, 30080, Scope::External));
    assert_eq!(
        external.flags.flags & SVC_FLAG_EXT_LOCAL_SCOPE,
        SVC_FLAG_EXT_LOCAL_SCOPE
    );
    assert_eq!(external.flags.flags2 & SVC_FLAG_TWO_SCOPES, 0);
    assert_eq!(
        state.backends.len(),
        1,
        "remote backends serve no frontend here"
    );
}

#[test]
fn client_ip_affinity_sets_flag_timeout_and_matches() {
    let catalog = web_catalog(json!({
        "clusterIP": "10.96.0.10", "sessionAffinity": "ClientIP",
        "ports": [{"port": 80, "targetPort": 8080}]}));
    let state = planner().desired(&catalog).state;
    let web = entry(&state, key(CLUSTER_IP, 80, Scope::External));
    assert_eq!(web.flags.flags, SVC_FLAG_AFFINITY);
    assert_eq!(web.master().affinity_timeout, 10_800);
    let maps = state.map_state();
    let matched: Vec<BackendId> = maps.affinity_match.iter().map(|m| m.backend).collect();
    assert_eq!(matched, web.slots);
    assert!(maps.affinity_match.iter().all(|m| m.rev_nat == web.rev_nat));
}

#[test]
fn maglev_by_annotation_or_default_builds_shared_tables() {
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]});
    let mut catalog = web_catalog(spec.clone());
    catalog.upsert_service(service_with(
        "web",
        spec.clone(),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    let state = planner().desired(&catalog).state;
    assert!(state
        .frontends
        .values()
        .all(|e| e.algorithm == Algorithm::Maglev));
    assert_eq!(
        state.maglev.len(),
        3,
        "cluster IP, node IP and 0.0.0.0 frontends"
    );
    let tables: Vec<_> = state.maglev.values().collect();
    assert!(tables.iter().all(|t| t.ids().len() == 251));
    assert!(
        tables.windows(2).all(|w| w[0].shares_storage(w[1])),
        "same backends, one table"
    );
    let slots: BTreeSet<BackendId> = entry(&state, key(CLUSTER_IP, 80, Scope::External))
        .slots
        .iter()
        .copied()
        .collect();
    let named: BTreeSet<BackendId> = tables[0].ids().iter().copied().collect();
    assert_eq!(named, slots, "the table names exactly the active backends");

    // Global default maglev; the annotation can still ask for random.
    let mut catalog = web_catalog(spec.clone());
    catalog.upsert_service(service_with(
        "web",
        spec,
        json!({"service.cilium.io/lb-algorithm": "random"}),
    ));
    catalog.upsert_service(service(
        "api",
        json!({"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}),
    ));
    catalog.upsert_endpoint_slice(slice(
        "api-1",
        "api",
        "",
        80,
        &[([10, 0, 1, 9], NODE, true, false)],
    ));
    let state = Planner::new(config(Algorithm::Maglev))
        .desired(&catalog)
        .state;
    assert_eq!(
        entry(&state, key(CLUSTER_IP, 80, Scope::External)).algorithm,
        Algorithm::Random
    );
    let api = entry(
        &state,
        key(Ipv4Addr::new(10, 96, 0, 11), 80, Scope::External),
    );
    assert_eq!(api.algorithm, Algorithm::Maglev);
    assert_eq!(state.maglev.keys().collect::<Vec<_>>(), [&api.rev_nat]);
}

#[test]
fn a_maglev_service_without_backends_has_no_table_and_rejects() {
    let mut catalog = Catalog::new();
    catalog.upsert_service(service_with(
        "empty",
        json!({"clusterIP": "10.96.0.12", "ports": [{"port": 80}]}),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    let state = planner().desired(&catalog).state;
    let empty = entry(
        &state,
        key(Ipv4Addr::new(10, 96, 0, 12), 80, Scope::External),
    );
    assert_eq!(
        empty.master().count,
        0,
        "count 0: new connections are rejected at once"
    );
    assert!(state.maglev.is_empty());
    assert!(state.map_state().dangling().is_empty());
}

#[test]
fn terminating_backends_keep_their_entry_but_no_slot() {
    let mut catalog = web_catalog(
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    catalog.upsert_endpoint_slice(slice(
        "web-1",
        "web",
        "",
        8080,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", false, true),
        ],
    ));
    let state = planner().desired(&catalog).state;
    let web = entry(&state, key(CLUSTER_IP, 80, Scope::External));
    assert_eq!(ips(&state, &web.slots), [Ipv4Addr::new(10, 0, 1, 5)]);
    assert_eq!(ips(&state, &web.terminating), [Ipv4Addr::new(10, 0, 2, 5)]);
    assert_eq!(
        state.backends[&web.terminating[0]].state,
        BackendState::Terminating
    );
    // The same address active for another service is active in the backends map.
    catalog.upsert_service(service(
        "web2",
        json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": 8080}]}),
    ));
    catalog.upsert_endpoint_slice(slice(
        "web2-1",
        "web2",
        "",
        8080,
        &[([10, 0, 2, 5], "node-2", true, false)],
    ));
    let state = planner().desired(&catalog).state;
    let shared = entry(
        &state,
        key(Ipv4Addr::new(10, 96, 0, 20), 80, Scope::External),
    )
    .slots[0];
    assert_eq!(
        entry(&state, key(CLUSTER_IP, 80, Scope::External)).terminating,
        [shared]
    );
    assert_eq!(state.backends[&shared].state, BackendState::Active);
}

#[test]
fn ids_are_stable_while_in_use_and_not_reused_at_once() {
    let mut catalog = web_catalog(
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    let mut planner = planner();
    let first = planner.desired(&catalog).state;
    let ids_of = |state: &LbState| -> Vec<(Ipv4Addr, BackendId)> {
        state
            .backends
            .iter()
            .map(|(id, b)| (b.addr.ip, *id))
            .collect()
    };
    // Scale up: the existing backends and the frontend keep their IDs.
    catalog.upsert_endpoint_slice(slice(
        "web-1",
        "web",
        "",
        8080,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", true, false),
            ([10, 0, 3, 5], "node-3", true, false),
            ([10, 0, 4, 5], "node-3", true, false),
        ],
    ));
    let second = planner.desired(&catalog).state;
    for pair in ids_of(&first) {
        assert!(ids_of(&second).contains(&pair), "{pair:?} kept its ID");
    }
    let web = key(CLUSTER_IP, 80, Scope::External);
    assert_eq!(entry(&first, web).rev_nat, entry(&second, web).rev_nat);
    // A new service after the first is deleted does not inherit its released IDs.
    catalog.remove_service(&ObjectName::new("shop", "web"));
    assert!(planner.desired(&catalog).state.frontends.is_empty());
    catalog.upsert_service(service(
        "api",
        json!({"clusterIP": "10.96.0.11", "ports": [{"port": 80, "targetPort": 8080}]}),
    ));
    catalog.upsert_endpoint_slice(slice(
        "api-1",
        "api",
        "",
        8080,
        &[([10, 0, 9, 9], NODE, true, false)],
    ));
    let third = planner.desired(&catalog).state;
    let api = entry(
        &third,
        key(Ipv4Addr::new(10, 96, 0, 11), 80, Scope::External),
    );
    assert_ne!(api.rev_nat, entry(&first, web).rev_nat);
    assert!(second
        .backends
        .keys()
        .all(|id| !third.backends.contains_key(id)));
}

#[test]
fn a_restored_planner_keeps_the_ids_found_in_the_maps() {
    let catalog = web_catalog(json!({"type": "NodePort", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let mut before = planner();
    // Churn first, so that the IDs are not simply 1, 2, 3.
    let mut other = Catalog::new();
    other.upsert_service(service(
        "x",
        json!({"clusterIP": "10.96.9.9", "ports": [{"port": 1}]}),
    ));
    other.upsert_endpoint_slice(slice(
        "x-1",
        "x",
        "",
        1,
        &[([10, 9, 9, 9], NODE, true, false)],
    ));
    before.desired(&other);
    let maps = before.desired(&catalog).state.map_state();
    let mut after = Planner::restore(config(Algorithm::Random), &maps);
    let again = after.desired(&catalog).state.map_state();
    assert_eq!(again, maps, "nothing to change after a restart");
}

#[test]
fn two_services_claiming_one_frontend_are_reported() {
    let mut catalog = web_catalog(
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    catalog.upsert_service(service(
        "aaa",
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
    ));
    let desired = planner().desired(&catalog);
    assert_eq!(
        entry(&desired.state, key(CLUSTER_IP, 80, Scope::External)).service,
        ObjectName::new("shop", "aaa")
    );
    assert_eq!(
        desired.problems,
        [PlanProblem::FrontendTaken {
            service: ObjectName::new("shop", "web"),
            frontend: key(CLUSTER_IP, 80, Scope::External).addr,
            owner: ObjectName::new("shop", "aaa"),
        }]
    );
    assert_eq!(
        desired.problems[0].to_string(),
        "service shop/web: frontend 10.96.0.10:80/TCP is already used by service shop/aaa; left out"
    );
}

#[test]
fn headless_external_name_and_unassigned_services_have_no_frontends() {
    let mut catalog = Catalog::new();
    catalog.upsert_service(service(
        "headless",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    ));
    catalog.upsert_service(service(
        "alias",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    ));
    catalog.upsert_service(service("pending", json!({"ports": [{"port": 80}]})));
    assert!(planner().desired(&catalog).state.frontends.is_empty());
}

#[test]
fn selector_services_use_pods_and_named_ports() {
    let mut catalog = Catalog::new();
    catalog.upsert_service(service(
        "web",
        json!({"clusterIP": "10.96.0.10", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                  {"name": "dns", "protocol": "UDP", "port": 53}]}),
    ));
    for (name, ip, port) in [
        ("web-a", [10, 0, 1, 5], 8080),
        ("web-b", [10, 0, 2, 5], 9090),
    ] {
        catalog.upsert_pod(PodInfo {
            namespace: "shop".into(),
            name: name.into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ip: Ipv4Addr::from(ip),
            node: NODE.into(),
            ports: vec![NamedPort {
                name: "http".into(),
                port,
                protocol: Protocol::Tcp,
            }],
            terminating: false,
        });
    }
    let state = planner().desired(&catalog).state;
    let http = entry(&state, key(CLUSTER_IP, 80, Scope::External));
    let backends: Vec<String> = http
        .slots
        .iter()
        .map(|id| state.backends[id].addr.to_string())
        .collect();
    assert_eq!(backends, ["10.0.1.5:8080/TCP", "10.0.2.5:9090/TCP"]);
    let dns = &state.frontends[&FrontendKey {
        addr: FrontendAddr {
            ip: CLUSTER_IP,
            port: 53,
            protocol: Protocol::Udp,
        },
        scope: Scope::External,
    }];
    let backends: Vec<String> = dns
        .slots
        .iter()
        .map(|id| state.backends[id].addr.to_string())
        .collect();
    assert_eq!(backends, ["10.0.1.5:53/UDP", "10.0.2.5:53/UDP"]);
}

#[test]
fn master_and_slots_carry_the_frontend_index_and_flags() {
    let catalog = web_catalog(json!({"type": "NodePort", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let state = planner().desired(&catalog).state;
    let maps = state.map_state();
    for (key, value) in &maps.services {
        let entry = &state.frontends[&key.frontend];
        match value {
            ServiceValue::Master(m) => assert_eq!(
                (key.slot, m.rev_nat, m.flags),
                (0, entry.rev_nat, entry.flags)
            ),
            ServiceValue::Slot(s) => {
                assert_eq!((s.rev_nat, s.flags), (entry.rev_nat, entry.flags));
                assert_eq!(s.backend, entry.slots[usize::from(key.slot) - 1]);
            }
        }
    }
}
