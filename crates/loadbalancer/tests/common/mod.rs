//! Builders shared by the integration tests: services and slices from JSON, a planner for
//! a node, and applying a diff one operation at a time with the consistency check.

#![allow(dead_code)] // each test file uses a different subset

use std::net::Ipv4Addr;

use cilium_loadbalancer::maglev::{MaglevConfig, TableSize};
use cilium_loadbalancer::{
    diff, Algorithm, EndpointSlice, LbConfig, LbOp, MapState, MapWriter, Planner, Service,
};
use serde_json::{json, Value};

pub const NODE: &str = "node-1";
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

/// A `shop/<name>` Service with `spec`.
pub fn service(name: &str, spec: Value) -> Service {
    service_with(name, spec, json!({}))
}

/// A `shop/<name>` Service with `spec` and `annotations`.
pub fn service_with(name: &str, spec: Value, annotations: Value) -> Service {
    Service::from_json(&json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": spec}))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A slice for `shop/<service>` with one port named `port_name` at `port`, and endpoints
/// `(ip, node, ready, terminating)`.
pub fn slice(
    name: &str,
    service: &str,
    port_name: &str,
    port: u16,
    endpoints: &[([u8; 4], &str, bool, bool)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node, ready, terminating)| {
            json!({"addresses": [Ipv4Addr::from(*ip).to_string()], "nodeName": node,
                   "conditions": {"ready": ready, "serving": true, "terminating": terminating}})
        })
        .collect();
    EndpointSlice::from_json(
        &json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port}]}),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The configuration of node-1 (Maglev tables of 251 entries to keep tests quick).
pub fn config(default_algorithm: Algorithm) -> LbConfig {
    LbConfig {
        node_name: NODE.into(),
        node_ips: vec![NODE_IP],
        default_algorithm,
        maglev: MaglevConfig {
            table_size: TableSize::new(251).unwrap_or_else(|e| panic!("{e}")),
            ..MaglevConfig::default()
        },
    }
}

pub fn planner() -> Planner {
    Planner::new(config(Algorithm::Random))
}

/// Moves maps holding `old` to `new` with `diff`, one operation at a time, asserting after
/// each that no reachable entry refers to a missing one; returns the operations.
pub fn apply_checked(old: &MapState, new: &MapState, step: &str) -> Vec<LbOp> {
    let ops = diff(old, new);
    let mut maps = old.clone();
    for (i, op) in ops.iter().enumerate() {
        let Ok(()) = maps.apply(op);
        let dangling = maps.dangling();
        assert!(
            dangling.is_empty(),
            "{step}: after operation {i} ({op}) the datapath could follow: {dangling:?}"
        );
    }
    assert_eq!(
        &maps, new,
        "{step}: the operations did not reach the new state"
    );
    ops
}
