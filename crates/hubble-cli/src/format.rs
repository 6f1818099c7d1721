//! How Hubble shows the parts of a flow: the time (`Nov 26 10:00:00.123`, UTC), each end as
//! `namespace/pod:port` (else the IP), identities as `(ID:1234)` or a reserved name such as
//! `(world)`, the event type (`to-endpoint`, `Policy denied`, `policy-verdict:L3-L4
//! INGRESS`, `post-xlate-fwd`), the verdict (ALLOWED/DENIED/AUDITED for policy verdicts) and
//! the summary.

use cilium_datapath::codes::{DropReason, ObservationPoint, XlatePoint};
use cilium_hubble::decode::message_type;
use cilium_hubble::flow::{
    layer4::Protocol, AuthType, Endpoint, Flow, SocketTranslationPoint, TrafficDirection, Verdict,
};
use cilium_hubble::Timestamp;

use crate::filters::reserved_identity_name;

/// Go's `time.StampMilli` (`Jan _2 15:04:05.000`), in UTC; `N/A` without a time.
pub fn time(time: Option<&Timestamp>) -> String {
    let Some(time) = time else {
        return "N/A".into();
    };
    match chrono::DateTime::from_timestamp(time.seconds, time.nanos.max(0) as u32) {
        Some(t) if time.seconds != 0 || time.nanos != 0 => {
            t.format("%b %e %H:%M:%S%.3f").to_string()
        }
        _ => "N/A".into(),
    }
}

/// Source and destination L4 ports, when the protocol has ports.
fn ports(flow: &Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        Protocol::Tcp(tcp) => Some((tcp.source_port, tcp.destination_port)),
        Protocol::Udp(udp) => Some((udp.source_port, udp.destination_port)),
        Protocol::Sctp(sctp) => Some((sctp.source_port, sctp.destination_port)),
        _ => None,
    }
}

/// One end as Hubble names it: `namespace/pod`, else `namespace/service`, else DNS names,
/// else the IP; then `:port` unless there is no port (or it is 0).
fn host(
    ip: &str,
    port: Option<u32>,
    endpoint: Option<&Endpoint>,
    service: Option<(&str, &str)>,
    names: &[String],
) -> String {
    let joined = |ns: &str, name: &str| {
        if ns.is_empty() {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        }
    };
    let name = match (endpoint, service) {
        (Some(ep), _) if !ep.pod_name.is_empty() => joined(&ep.namespace, &ep.pod_name),
        (_, Some((ns, svc))) if !svc.is_empty() => joined(ns, svc),
        _ if !names.is_empty() => names.join(","),
        _ => ip.to_string(),
    };
    match port {
        Some(port) if port != 0 => {
            if name.contains(':') {
                format!("[{name}]:{port}")
            } else {
                format!("{name}:{port}")
            }
        }
        _ => name,
    }
}

/// Source and destination as `namespace/pod:port` (or IP:port, or MACs without IP).
pub fn hosts(flow: &Flow) -> (String, String) {
    let Some(ip) = flow.ip.as_ref() else {
        return flow
            .ethernet
            .as_ref()
            .map(|eth| (eth.source.clone(), eth.destination.clone()))
            .unwrap_or_default();
    };
    let (sport, dport) = ports(flow).unzip();
    let service = |s: &Option<cilium_hubble::flow::Service>| {
        s.as_ref().map(|s| (s.namespace.clone(), s.name.clone()))
    };
    let (src_svc, dst_svc) = (
        service(&flow.source_service),
        service(&flow.destination_service),
    );
    (
        host(
            &ip.source,
            sport,
            flow.source.as_ref(),
            src_svc.as_ref().map(|(n, s)| (n.as_str(), s.as_str())),
            &flow.source_names,
        ),
        host(
            &ip.destination,
            dport,
            flow.destination.as_ref(),
            dst_svc.as_ref().map(|(n, s)| (n.as_str(), s.as_str())),
            &flow.destination_names,
        ),
    )
}

/// `(ID:1234)`, or `(world)`, `(host)`, ... for reserved identities.
pub fn identity(endpoint: Option<&Endpoint>) -> String {
    let id = endpoint.map_or(0, |ep| ep.identity);
    match reserved_identity_name(id) {
        Some(name) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// Cilium's names of policy match types.
fn match_type(kind: u32) -> &'static str {
    match kind {
        0 => "none",
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "unknown",
    }
}

/// The event type column: the observation point of a trace, the reason of a drop, the
/// match and direction of a policy verdict, the translation point of a socket translation.
pub fn flow_type(flow: &Flow) -> String {
    if let Some(l7) = flow.l7.as_ref() {
        return format!("l7-{}", l7.r#type().as_str_name().to_ascii_lowercase());
    }
    let Some(event) = flow.event_type.as_ref() else {
        return "UNKNOWN".into();
    };
    let sub = u8::try_from(event.sub_type).unwrap_or(u8::MAX);
    match event.r#type {
        message_type::TRACE => ObservationPoint(sub).name().to_string(),
        message_type::DROP => DropReason(sub).description(),
        message_type::POLICY_VERDICT => format!(
            "policy-verdict:{} {}",
            match_type(flow.policy_match_type),
            TrafficDirection::try_from(flow.traffic_direction)
                .unwrap_or(TrafficDirection::Unknown)
                .as_str_name()
        ),
        message_type::TRACE_SOCK => match XlatePoint(sub) {
            point if point.name() != "unknown" => point.name().to_string(),
            _ => SocketTranslationPoint::try_from(flow.sock_xlate_point)
                .unwrap_or(SocketTranslationPoint::SockXlatePointUnknown)
                .as_str_name()
                .to_string(),
        },
        _ => "UNKNOWN".into(),
    }
}

/// The verdict column; policy verdicts say ALLOWED, DENIED or AUDITED.
pub fn verdict(flow: &Flow) -> String {
    let verdict = Verdict::try_from(flow.verdict).unwrap_or(Verdict::Unknown);
    let policy = flow
        .event_type
        .as_ref()
        .is_some_and(|e| e.r#type == message_type::POLICY_VERDICT);
    match (verdict, policy) {
        (Verdict::Forwarded | Verdict::Redirected, true) => "ALLOWED".into(),
        (Verdict::Dropped | Verdict::Error, true) => "DENIED".into(),
        (Verdict::Audit, true) => "AUDITED".into(),
        (v, _) => v.as_str_name().to_string(),
    }
}

/// The summary column: the flow's summary, with the authentication type when enabled.
pub fn summary(flow: &Flow) -> String {
    #[allow(deprecated)] // `Summary` is still what clients show
    let mut text = flow.summary.clone();
    let auth = AuthType::try_from(flow.auth_type).unwrap_or(AuthType::Disabled);
    if auth != AuthType::Disabled {
        text.push_str("; ");
        text.push_str(auth.as_str_name());
    }
    text
}

/// Arrow between the ends, and whether they are shown swapped: replies are shown from the
/// connection's initiator (`<-`), flows of unknown direction with `<>`.
pub fn arrow(flow: &Flow) -> (&'static str, bool) {
    match flow.is_reply {
        None => ("<>", false),
        Some(reply) if reply.value => ("<-", true),
        Some(_) => ("->", false),
    }
}
