//! Moving the maps from one desired state to the next: every operation of every diff is
//! applied on its own and the maps are checked for references the datapath could follow
//! to a missing entry — through a scripted service lifecycle and through a long run of
//! random changes.

mod common;

use std::net::Ipv4Addr;

use cilium_loadbalancer::{
    apply_ops, diff, Algorithm, ApplyError, BackendState, Catalog, LbOp, MapState, MapWriter,
    ObjectName, Planner,
};
use common::{apply_checked, config, planner, service, service_with, slice, NODE};
use serde_json::{json, Value};

fn web(spec_extra: Value, annotations: Value) -> cilium_loadbalancer::Service {
    let mut spec = json!({"type": "NodePort", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]});
    for (k, v) in spec_extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    service_with("web", spec, annotations)
}

type Endpoint = ([u8; 4], &'static str, bool, bool);

fn set_endpoints(catalog: &mut Catalog, endpoints: &[Endpoint]) {
    catalog.upsert_endpoint_slice(slice("web-1", "web", "", 8080, endpoints));
}

#[test]
fn a_service_lifecycle_never_exposes_a_dangling_reference() {
    let mut catalog = Catalog::new();
    let mut node = Node {
        planner: planner(),
        maps: MapState::default(),
    };
    catalog.upsert_service(web(json!({}), json!({})));
    node.step(&catalog, "service without backends");
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", true, false),
        ],
    );
    node.step(&catalog, "two backends");
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", true, false),
            ([10, 0, 3, 5], "node-3", true, false),
            ([10, 0, 4, 5], "node-3", true, false),
        ],
    );
    node.step(&catalog, "scaled to four");
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", false, true),
            ([10, 0, 3, 5], "node-3", true, false),
            ([10, 0, 4, 5], "node-3", true, false),
        ],
    );
    let ops = node.step(&catalog, "one terminating");
    assert!(
        !ops.iter()
            .any(|op| matches!(op, LbOp::DeleteBackend { .. })),
        "a terminating backend stays for its connections: {ops:#?}"
    );
    let terminating = |maps: &MapState| {
        maps.backends.values().any(|b| {
            b.addr.ip == Ipv4Addr::new(10, 0, 2, 5) && b.state == BackendState::Terminating
        })
    };
    assert!(terminating(&node.maps));
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 3, 5], "node-3", true, false),
        ],
    );
    let ops = node.step(&catalog, "terminated and scaled down");
    assert_eq!(
        ops.iter()
            .filter(|op| matches!(op, LbOp::DeleteBackend { .. }))
            .count(),
        2
    );
    catalog.upsert_service(web(
        json!({}),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    node.step(&catalog, "switched to Maglev");
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 5, 5], "node-3", true, false),
            ([10, 0, 6, 5], NODE, true, false),
        ],
    );
    node.step(&catalog, "every backend replaced under Maglev");
    catalog.upsert_service(web(
        json!({"externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP"}),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    node.step(&catalog, "externalTrafficPolicy Local with affinity");
    catalog.upsert_service(web(json!({"type": "ClusterIP"}), json!({})));
    node.step(&catalog, "back to a plain ClusterIP");
    catalog.remove_service(&ObjectName::new("shop", "web"));
    node.step(&catalog, "service deleted");
    assert_eq!(node.maps, MapState::default(), "nothing left behind");
}

/// One node's planner and the contents of its maps.
struct Node {
    planner: Planner,
    maps: MapState,
}

impl Node {
    /// Plans for `catalog` and moves the maps there, checking every operation.
    fn step(&mut self, catalog: &Catalog, name: &str) -> Vec<LbOp> {
        let desired = self.planner.desired(catalog);
        assert!(
            desired.problems.is_empty(),
            "{name}: {:?}",
            desired.problems
        );
        let new = desired.state.map_state();
        let ops = apply_checked(&self.maps, &new, name);
        self.maps = new;
        ops
    }
}

#[test]
fn the_check_catches_a_wrong_order() {
    // Growing a service applied backwards (master first) points at slots that do not exist
    // yet: the consistency check must see it, or the ordering tests prove nothing.
    let mut catalog = Catalog::new();
    catalog.upsert_service(web(json!({}), json!({})));
    let mut planner = planner();
    let old = planner.desired(&catalog).state.map_state();
    set_endpoints(&mut catalog, &[([10, 0, 1, 5], NODE, true, false)]);
    let new = planner.desired(&catalog).state.map_state();
    let mut maps = old.clone();
    let mut seen = Vec::new();
    for op in diff(&old, &new).iter().rev() {
        let Ok(()) = maps.apply(op);
        seen.extend(maps.dangling());
    }
    assert!(!seen.is_empty(), "applying in reverse went unnoticed");
    assert!(
        seen[0].to_string().contains("slot 1 is missing"),
        "{}",
        seen[0]
    );
}

/// A writer that fails at one operation.
struct FailingAt {
    maps: MapState,
    remaining: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("map full")]
struct MapFull;

impl MapWriter for FailingAt {
    type Error = MapFull;

    fn apply(&mut self, op: &LbOp) -> Result<(), MapFull> {
        if self.remaining == 0 {
            return Err(MapFull);
        }
        self.remaining -= 1;
        let Ok(()) = self.maps.apply(op);
        Ok(())
    }
}

#[test]
fn a_failed_apply_says_which_operation_and_leaves_consistent_maps() {
    let mut catalog = Catalog::new();
    catalog.upsert_service(web(json!({}), json!({})));
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], NODE, true, false),
        ],
    );
    let new = planner().desired(&catalog).state.map_state();
    let ops = diff(&MapState::default(), &new);
    for fail_at in 0..ops.len() {
        let mut writer = FailingAt {
            maps: MapState::default(),
            remaining: fail_at,
        };
        match apply_ops(&mut writer, &ops) {
            Err(ApplyError::Op { index, op, source }) => {
                assert_eq!(index, fail_at);
                assert_eq!(op, ops[fail_at]);
                assert_eq!(source.to_string(), "map full");
            }
            Ok(()) => panic!("operation {fail_at} should have failed"),
        }
        assert!(
            writer.maps.dangling().is_empty(),
            "after failing at {fail_at}"
        );
    }
    let mut writer = FailingAt {
        maps: MapState::default(),
        remaining: ops.len(),
    };
    assert!(apply_ops(&mut writer, &ops).is_ok());
    assert_eq!(writer.maps, new);
}

/// xorshift64*: a fixed sequence of pseudo-random numbers, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn random_service(rng: &mut Rng, index: u8) -> cilium_loadbalancer::Service {
    let policy = |rng: &mut Rng| if rng.chance(30) { "Local" } else { "Cluster" };
    let service_type = ["ClusterIP", "NodePort", "LoadBalancer"][rng.below(3) as usize];
    let mut spec = json!({
        "type": service_type,
        "clusterIP": format!("10.96.0.{}", 10 + index),
        "externalTrafficPolicy": policy(rng),
        "internalTrafficPolicy": policy(rng),
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30000 + u16::from(index)},
                  {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353}],
    });
    if rng.chance(30) {
        spec["sessionAffinity"] = json!("ClientIP");
    }
    if rng.chance(30) {
        spec["externalIPs"] = json!([format!("192.0.2.{}", 10 + index)]);
    }
    if service_type == "LoadBalancer" {
        spec["loadBalancerIP"] = json!(format!("198.51.100.{}", 10 + index));
    }
    let annotations = match rng.below(3) {
        0 => json!({"service.cilium.io/lb-algorithm": "maglev"}),
        1 => json!({"service.cilium.io/lb-algorithm": "random"}),
        _ => json!({}),
    };
    service_with(&format!("svc{index}"), spec, annotations)
}

fn random_slice(
    rng: &mut Rng,
    index: u8,
    port_name: &str,
    port: u16,
) -> cilium_loadbalancer::EndpointSlice {
    let nodes = [NODE, "node-2", "node-3"];
    let endpoints: Vec<Endpoint> = (0..rng.below(6))
        .map(|_| {
            // A small address pool, so that services share backends and addresses return.
            let host = rng.below(12) as u8 + 1;
            let terminating = rng.chance(20);
            (
                [10, 0, 0, host],
                nodes[rng.below(3) as usize],
                !terminating,
                terminating,
            )
        })
        .collect();
    slice(
        &format!("svc{index}-{port_name}"),
        &format!("svc{index}"),
        port_name,
        port,
        &endpoints,
    )
}

#[test]
fn random_changes_never_expose_a_dangling_reference() {
    for seed in [
        0x5eed_1b0b_cafe_f00d,
        0x0123_4567_89ab_cdef,
        0x9e37_79b9_7f4a_7c15,
    ] {
        random_run(seed);
    }
}

/// 300 random changes to five services, from one seed.
fn random_run(seed: u64) {
    let mut rng = Rng(seed);
    let mut catalog = Catalog::new();
    let mut planner = Planner::new(config(Algorithm::Random));
    let mut maps = MapState::default();
    let mut total_ops = 0;
    for round in 0..300 {
        let index = rng.below(5) as u8;
        match rng.below(10) {
            0 => {
                catalog.remove_service(&ObjectName::new("shop", format!("svc{index}")));
            }
            1..=3 => catalog.upsert_service(random_service(&mut rng, index)),
            4..=6 => catalog.upsert_endpoint_slice(random_slice(&mut rng, index, "http", 8080)),
            _ => catalog.upsert_endpoint_slice(random_slice(&mut rng, index, "dns", 5353)),
        }
        let desired = planner.desired(&catalog);
        let new = desired.state.map_state();
        total_ops += apply_checked(&maps, &new, &format!("seed {seed:#x} round {round}")).len();
        // Frontends that use Maglev and have backends always have a full table.
        for (key, entry) in &desired.state.frontends {
            if entry.algorithm == Algorithm::Maglev
                && !entry.slots.is_empty()
                && key.scope == cilium_loadbalancer::Scope::External
            {
                assert_eq!(
                    desired.state.maglev[&entry.rev_nat].ids().len(),
                    251,
                    "round {round}: {key}"
                );
            }
        }
        maps = new;
    }
    assert!(
        total_ops > 1000,
        "the run exercised the maps ({total_ops} operations)"
    );
    // A planner restored from the final maps wants nothing changed.
    let mut restored = Planner::restore(config(Algorithm::Random), &maps);
    assert!(diff(&maps, &restored.desired(&catalog).state.map_state()).is_empty());
}

#[test]
fn unrelated_service_changes_leave_other_services_alone() {
    let mut catalog = Catalog::new();
    catalog.upsert_service(web(
        json!({}),
        json!({"service.cilium.io/lb-algorithm": "maglev"}),
    ));
    set_endpoints(
        &mut catalog,
        &[
            ([10, 0, 1, 5], NODE, true, false),
            ([10, 0, 2, 5], "node-2", true, false),
        ],
    );
    let mut planner = planner();
    let before = planner.desired(&catalog).state.map_state();
    catalog.upsert_service(service(
        "api",
        json!({"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}),
    ));
    let after = planner.desired(&catalog).state.map_state();
    let ops = apply_checked(&before, &after, "adding api");
    assert!(
        ops.iter()
            .all(|op| !op.to_string().contains("10.96.0.10")
                && !matches!(op, LbOp::UpsertMaglev { .. })),
        "{ops:#?}"
    );
}
