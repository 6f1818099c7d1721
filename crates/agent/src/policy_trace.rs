//! `GET /v1/policy/resolve` (`cilium policy trace`): would traffic from one label set to
//! another pass the source's egress and the destination's ingress policy on each traced port,
//! and which rules decided it. The answer carries Cilium's `verdict` and `log` plus a
//! structured verdict per port.

use cilium_api::models::{PolicyTraceResult, TracePort, TraceSelector, TraceSide, TracedPort};
use std::collections::BTreeMap;

use cilium_policy::{Labels, Protocol, SideVerdict};

use crate::policy::PolicyEngine;

/// A trace request that cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the source has no labels (`from.labels`)")]
    NoSourceLabels,
    #[error("the destination has no labels (`to.labels`)")]
    NoDestinationLabels,
    #[error("unknown protocol {protocol:?} for port {port}: use TCP, UDP, SCTP, ICMP or ANY")]
    UnknownProtocol { port: u16, protocol: String },
}

/// The IP protocols an `ANY` (or empty) port stands for.
const ANY: [(&str, u8); 3] = [("TCP", 6), ("UDP", 17), ("SCTP", 132)];

/// Answers one trace, with the named ports of the cluster's pods. Without ports, port 0 over
/// `ANY` is traced (an L3-only question).
pub fn trace(
    engine: &PolicyEngine,
    selector: &TraceSelector,
    peer_named_ports: &BTreeMap<String, Vec<(u16, Protocol)>>,
) -> Result<PolicyTraceResult, TraceError> {
    if selector.from.labels.is_empty() {
        return Err(TraceError::NoSourceLabels);
    }
    if selector.to.labels.is_empty() {
        return Err(TraceError::NoDestinationLabels);
    }
    let src = Labels::parse(&selector.from.labels);
    let dst = Labels::parse(&selector.to.labels);
    let asked = if selector.to.dports.is_empty() {
        vec![TracePort {
            port: 0,
            protocol: "ANY".into(),
        }]
    } else {
        selector.to.dports.clone()
    };
    let mut ports = Vec::new();
    for port in &asked {
        for (name, number) in protocols(port)? {
            let verdict = engine.trace(&src, &dst, (port.port, number), peer_named_ports);
            ports.push(TracedPort {
                port: TracePort {
                    port: port.port,
                    protocol: name.to_string(),
                },
                allowed: verdict.allowed,
                egress: side(verdict.egress),
                ingress: side(verdict.ingress),
            });
        }
    }
    let allowed = ports.iter().all(|p| p.allowed);
    Ok(PolicyTraceResult {
        verdict: if allowed { "allowed" } else { "denied" }.into(),
        log: log(&src, &dst, &ports, allowed),
        ports,
    })
}

/// The protocols one traced port stands for (`ANY` is every L4 protocol policy knows).
fn protocols(port: &TracePort) -> Result<Vec<(&'static str, u8)>, TraceError> {
    let one = |p: (&'static str, u8)| Ok(vec![p]);
    match port.protocol.to_ascii_uppercase().as_str() {
        "" | "ANY" => Ok(ANY.to_vec()),
        "TCP" => one(ANY[0]),
        "UDP" => one(ANY[1]),
        "SCTP" => one(ANY[2]),
        "ICMP" => one(("ICMP", 1)),
        _ => Err(TraceError::UnknownProtocol {
            port: port.port,
            protocol: port.protocol.clone(),
        }),
    }
}

fn side(verdict: SideVerdict) -> TraceSide {
    TraceSide {
        allowed: verdict.allowed,
        enforced: verdict.enforced,
        rules: verdict.rules,
        reason: verdict.reason,
    }
}

/// The human-readable explanation `cilium policy trace` prints.
fn log(src: &Labels, dst: &Labels, ports: &[TracedPort], allowed: bool) -> String {
    let names: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.port.port, p.port.protocol))
        .collect();
    let mut out = format!(
        "Tracing From: [{}] => To: [{}] Ports: [{}]\n",
        joined(src),
        joined(dst),
        names.join(", ")
    );
    for (port, name) in ports.iter().zip(&names) {
        out.push_str(&format!(
            "\n{name}: {}\n  Egress of the source:       {}\n  Ingress of the destination: {}\n",
            if port.allowed { "ALLOWED" } else { "DENIED" },
            port.egress.reason,
            port.ingress.reason
        ));
    }
    out.push_str(&format!(
        "\nFinal verdict: {}\n",
        if allowed { "ALLOWED" } else { "DENIED" }
    ));
    out
}

fn joined(labels: &Labels) -> String {
    labels
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
