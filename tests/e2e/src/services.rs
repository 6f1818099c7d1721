//! What a lab node's agent has programmed for a service frontend, read through
//! `cilium service list -o json`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::Lab;

/// The active backends (`ip:port`) `node` has programmed for frontend `ip:port/proto`;
/// terminating backends are left out.
pub fn active_backends(
    lab: &Lab,
    node: &str,
    ip: Ipv4Addr,
    port: u16,
    proto: &str,
) -> BTreeSet<String> {
    let out = lab.cilium(node, &["service", "list", "-o", "json"]);
    let services: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("service list JSON: {e}\n{out}"));
    let ip = ip.to_string();
    services
        .as_array()
        .expect("service list is an array")
        .iter()
        .map(|s| &s["spec"])
        .filter(|spec| {
            let fe = &spec["frontend-address"];
            fe["ip"] == ip.as_str() && fe["port"] == port && fe["protocol"] == proto
        })
        .flat_map(|spec| {
            spec["backend-addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["state"] == "active")
        .map(|b| format!("{}:{}", b["ip"].as_str().unwrap_or_default(), b["port"]))
        .collect()
}
