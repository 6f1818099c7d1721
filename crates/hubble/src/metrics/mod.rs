//! Hubble's Prometheus metrics (`--hubble-metrics`): counters over every flow the node
//! observes, by group — `flow`, `drop`, `tcp`, `port-distribution`, `policy` — rendered in
//! the text exposition format with the `hubble_` prefix. Each group's series carry the
//! context labels its options ask for ([`context`]), as parsed by [`config`].
//!
//! The observer counts each flow once, when it is recorded (see
//! [`Observer::enable_metrics`](crate::Observer::enable_metrics)); without metrics nothing is
//! decoded on the event path.

use cilium_datapath::codes::{ObservationPoint, XlatePoint};
use cilium_hubble_proto::flow::{
    layer4::Protocol, DropReason, Flow, IpVersion, TrafficDirection, Verdict,
};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::decode::message_type;

pub mod config;
pub mod context;

pub use config::{MetricGroups, MetricsConfigError};
pub use context::ContextOptions;

/// Labels of one series: name and value pairs in a fixed order.
type Labels = Vec<(&'static str, String)>;

/// The counters of the enabled groups.
pub struct FlowMetrics {
    groups: MetricGroups,
    registry: Registry,
    flows: Family<Labels, Counter>,
    drops: Family<Labels, Counter>,
    tcp_flags: Family<Labels, Counter>,
    ports: Family<Labels, Counter>,
    policy: Family<Labels, Counter>,
}

impl FlowMetrics {
    /// Counters for `groups`, registered under the `hubble_` prefix.
    pub fn new(groups: MetricGroups) -> Self {
        let mut metrics = Self {
            groups,
            registry: Registry::with_prefix("hubble"),
            flows: Family::default(),
            drops: Family::default(),
            tcp_flags: Family::default(),
            ports: Family::default(),
            policy: Family::default(),
        };
        let registry = &mut metrics.registry;
        if metrics.groups.flow.is_some() {
            registry.register(
                "flows_processed",
                "Total number of flows processed",
                metrics.flows.clone(),
            );
        }
        if metrics.groups.drop.is_some() {
            registry.register("drop", "Number of drops", metrics.drops.clone());
        }
        if metrics.groups.tcp.is_some() {
            registry.register(
                "tcp_flags",
                "TCP flag occurrences",
                metrics.tcp_flags.clone(),
            );
        }
        if metrics.groups.port_distribution.is_some() {
            registry.register(
                "port_distribution",
                "Numbers of packets distributed by destination port",
                metrics.ports.clone(),
            );
        }
        if metrics.groups.policy.is_some() {
            registry.register(
                "policy_verdicts",
                "Number of policy verdict events",
                metrics.policy.clone(),
            );
        }
        metrics
    }

    /// Counts one flow in every enabled group it belongs to.
    pub fn observe(&self, flow: &Flow) {
        let kind = flow.event_type.map_or(0, |e| e.r#type);
        let verdict = Verdict::try_from(flow.verdict).unwrap_or(Verdict::Unknown);
        let protocol = protocol_name(flow);
        if let Some(context) = &self.groups.flow {
            let (type_name, subtype) = match kind {
                message_type::DROP => ("Drop", String::new()),
                message_type::TRACE => {
                    let point = flow.event_type.map_or(0, |e| e.sub_type);
                    let point = u8::try_from(point).unwrap_or(u8::MAX);
                    ("Trace", ObservationPoint(point).name().to_string())
                }
                message_type::POLICY_VERDICT => ("PolicyVerdict", String::new()),
                message_type::TRACE_SOCK => {
                    let point = flow.event_type.map_or(0, |e| e.sub_type);
                    let point = u8::try_from(point).unwrap_or(u8::MAX);
                    ("SockLB", XlatePoint(point).name().to_string())
                }
                _ => ("Unknown", String::new()),
            };
            let labels = with_context(
                context,
                flow,
                [
                    ("type", type_name.to_string()),
                    ("subtype", subtype),
                    ("verdict", verdict.as_str_name().to_string()),
                ],
            );
            self.flows.get_or_create(&labels).inc();
        }
        if let Some(context) = self
            .groups
            .drop
            .as_ref()
            .filter(|_| verdict == Verdict::Dropped)
        {
            let reason = DropReason::try_from(flow.drop_reason_desc).unwrap_or(DropReason::Unknown);
            let labels = with_context(
                context,
                flow,
                [
                    ("reason", reason.as_str_name().to_string()),
                    ("protocol", protocol.to_string()),
                ],
            );
            self.drops.get_or_create(&labels).inc();
        }
        if verdict == Verdict::Forwarded {
            self.observe_forwarded(flow, protocol);
        }
        if let Some(context) = self
            .groups
            .policy
            .as_ref()
            .filter(|_| kind == message_type::POLICY_VERDICT)
        {
            let direction = match TrafficDirection::try_from(flow.traffic_direction) {
                Ok(TrafficDirection::Ingress) => "ingress",
                Ok(TrafficDirection::Egress) => "egress",
                _ => "unknown",
            };
            let match_name = u8::try_from(flow.policy_match_type)
                .map_or("none", cilium_monitor::names::policy_match_name);
            let labels = with_context(
                context,
                flow,
                [
                    ("direction", direction.to_string()),
                    ("match", match_name.to_lowercase()),
                    ("action", verdict.as_str_name().to_lowercase()),
                ],
            );
            self.policy.get_or_create(&labels).inc();
        }
    }

    /// TCP flags and destination ports of forwarded flows (replies count no port).
    fn observe_forwarded(&self, flow: &Flow, protocol: &str) {
        let l4 = flow.l4.and_then(|l4| l4.protocol);
        if let Some(context) = &self.groups.tcp {
            if let Some(Protocol::Tcp(tcp)) = l4 {
                let family = match flow
                    .ip
                    .as_ref()
                    .map(|ip| IpVersion::try_from(ip.ip_version))
                {
                    Some(Ok(IpVersion::IPv6)) => "IPv6",
                    _ => "IPv4",
                };
                let flags = tcp.flags.unwrap_or_default();
                let names = [
                    (flags.syn && !flags.ack, "SYN"),
                    (flags.syn && flags.ack, "SYN-ACK"),
                    (flags.fin, "FIN"),
                    (flags.rst, "RST"),
                ];
                for (_, flag) in names.into_iter().filter(|(set, _)| *set) {
                    let labels = with_context(
                        context,
                        flow,
                        [("flag", flag.to_string()), ("family", family.to_string())],
                    );
                    self.tcp_flags.get_or_create(&labels).inc();
                }
            }
        }
        let is_reply = flow.is_reply.is_some_and(|r| r.value);
        if let Some(context) = self.groups.port_distribution.as_ref().filter(|_| !is_reply) {
            let port = match l4 {
                Some(Protocol::Tcp(tcp)) => Some(tcp.destination_port),
                Some(Protocol::Udp(udp)) => Some(udp.destination_port),
                Some(Protocol::Sctp(sctp)) => Some(sctp.destination_port),
                _ => None,
            };
            if let Some(port) = port {
                let labels = with_context(
                    context,
                    flow,
                    [
                        ("protocol", protocol.to_string()),
                        ("port", port.to_string()),
                    ],
                );
                self.ports.get_or_create(&labels).inc();
            }
        }
    }

    /// The text exposition of every enabled series.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// A series' labels: the group's context labels, then its own.
fn with_context<const N: usize>(
    context: &ContextOptions,
    flow: &Flow,
    own: [(&'static str, String); N],
) -> Labels {
    let mut labels = context.labels(flow);
    labels.extend(own);
    labels
}

/// The L4 protocol as Hubble's metrics name it.
fn protocol_name(flow: &Flow) -> &'static str {
    match flow.l4.and_then(|l4| l4.protocol) {
        Some(Protocol::Tcp(_)) => "TCP",
        Some(Protocol::Udp(_)) => "UDP",
        Some(Protocol::IcmPv4(_)) => "ICMPv4",
        Some(Protocol::IcmPv6(_)) => "ICMPv6",
        Some(Protocol::Sctp(_)) => "SCTP",
        None => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cilium_hubble_proto::flow::{
        CiliumEventType, Endpoint, Ip, Layer4, Tcp, TcpFlags, Workload,
    };
    use cilium_hubble_proto::well_known::BoolValue;

    use super::*;
    use crate::context::NoContext;
    use crate::{Capacity, FlowDecoder, Observer};

    fn tcp_flow(kind: i32, sub_type: i32, verdict: Verdict, flags: TcpFlags) -> Flow {
        Flow {
            verdict: verdict as i32,
            event_type: Some(CiliumEventType {
                r#type: kind,
                sub_type,
            }),
            ip: Some(Ip {
                ip_version: IpVersion::IPv4 as i32,
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(Protocol::Tcp(Tcp {
                    source_port: 40000,
                    destination_port: 80,
                    flags: Some(flags),
                })),
            }),
            is_reply: Some(BoolValue { value: false }),
            ..Default::default()
        }
    }

    /// A sample's name, sorted labels and value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Every sample, parsed by a Prometheus text parser.
    fn scrape(text: &str) -> Vec<Sample> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("exposition does not parse: {e}\n{text}"));
        scrape
            .samples
            .into_iter()
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    other => panic!("{} is not a counter: {other:?}", s.metric),
                };
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                (s.metric, labels, value)
            })
            .collect()
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        scrape(text)
            .into_iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| v)
    }

    #[test]
    fn observer_counts_recorded_flows_per_enabled_group() {
        let observer = Observer::new(
            FlowDecoder::new("default/n1", Arc::new(NoContext)),
            Capacity::default(),
        );
        let groups = MetricGroups::parse(&["flow", "drop", "tcp", "port-distribution", "policy"])
            .expect("valid");
        let metrics = Arc::new(FlowMetrics::new(groups));
        assert!(observer.enable_metrics(Arc::clone(&metrics)));
        assert!(!observer.enable_metrics(Arc::clone(&metrics)));

        let syn = TcpFlags {
            syn: true,
            ..Default::default()
        };
        let mut drop = tcp_flow(message_type::DROP, 133, Verdict::Dropped, syn);
        drop.drop_reason_desc = DropReason::PolicyDenied as i32;
        observer.record_flow(drop.clone());
        observer.record_flow(drop);
        // A forwarded SYN seen at to-endpoint (observation point 0).
        observer.record_flow(tcp_flow(message_type::TRACE, 0, Verdict::Forwarded, syn));
        let mut verdict = tcp_flow(message_type::POLICY_VERDICT, 0, Verdict::Forwarded, syn);
        verdict.traffic_direction = TrafficDirection::Ingress as i32;
        verdict.policy_match_type = 2;
        observer.record_flow(verdict);

        let text = metrics.render();
        let get = |name: &str, labels: &[(&str, &str)]| {
            value(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
        };
        assert_eq!(
            get(
                "hubble_drop_total",
                &[("reason", "POLICY_DENIED"), ("protocol", "TCP")]
            ),
            2.0
        );
        assert_eq!(
            get(
                "hubble_flows_processed_total",
                &[("type", "Drop"), ("subtype", ""), ("verdict", "DROPPED")]
            ),
            2.0
        );
        assert_eq!(
            get(
                "hubble_flows_processed_total",
                &[
                    ("type", "Trace"),
                    ("subtype", "to-endpoint"),
                    ("verdict", "FORWARDED")
                ]
            ),
            1.0
        );
        assert_eq!(
            get(
                "hubble_tcp_flags_total",
                &[("flag", "SYN"), ("family", "IPv4")]
            ),
            2.0
        );
        assert_eq!(
            get(
                "hubble_port_distribution_total",
                &[("protocol", "TCP"), ("port", "80")]
            ),
            2.0
        );
        assert_eq!(
            get(
                "hubble_policy_verdicts_total",
                &[
                    ("direction", "ingress"),
                    ("match", "l3-l4"),
                    ("action", "forwarded")
                ]
            ),
            1.0
        );
    }

    #[test]
    fn disabled_groups_expose_nothing() {
        let metrics = FlowMetrics::new(MetricGroups::parse(&["drop"]).expect("valid"));
        let flow = tcp_flow(
            message_type::TRACE,
            0,
            Verdict::Forwarded,
            TcpFlags::default(),
        );
        metrics.observe(&flow);
        let samples = scrape(&metrics.render());
        assert!(samples.is_empty(), "only drops are counted: {samples:?}");
    }

    #[test]
    fn context_options_label_the_series() {
        let groups = MetricGroups::parse(&[
            "drop:sourceContext=namespace;destinationContext=pod|ip",
            "flow:labelsContext=source_namespace",
            "destination_workload",
            "traffic_direction",
        ])
        .expect("valid");
        let metrics = FlowMetrics::new(groups);
        let syn = TcpFlags {
            syn: true,
            ..Default::default()
        };
        let mut drop = tcp_flow(message_type::DROP, 133, Verdict::Dropped, syn);
        drop.drop_reason_desc = DropReason::PolicyDenied as i32;
        drop.traffic_direction = TrafficDirection::Ingress as i32;
        drop.ip = Some(Ip {
            source: "192.0.2.1".into(),
            destination: "10.0.2.7".into(),
            ip_version: IpVersion::IPv4 as i32,
            ..Default::default()
        });
        drop.source = Some(Endpoint {
            identity: 2,
            labels: vec!["reserved:world".into()],
            ..Default::default()
        });
        drop.destination = Some(Endpoint {
            namespace: "empire".into(),
            pod_name: "deathstar-c74d84667-cx5kp".into(),
            workloads: vec![Workload {
                name: "deathstar".into(),
                kind: "Deployment".into(),
            }],
            ..Default::default()
        });
        metrics.observe(&drop);
        // The same drop to an address that is no pod: the chain falls back to the IP.
        let mut to_world = drop.clone();
        to_world.destination = None;
        metrics.observe(&to_world);

        let text = metrics.render();
        let get = |name: &str, labels: &[(&str, &str)]| {
            value(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
        };
        assert_eq!(
            get(
                "hubble_drop_total",
                &[
                    ("source", ""),
                    ("destination", "empire/deathstar-c74d84667-cx5kp"),
                    ("reason", "POLICY_DENIED"),
                    ("protocol", "TCP")
                ]
            ),
            1.0
        );
        assert_eq!(
            get(
                "hubble_drop_total",
                &[
                    ("source", ""),
                    ("destination", "10.0.2.7"),
                    ("reason", "POLICY_DENIED"),
                    ("protocol", "TCP")
                ]
            ),
            1.0
        );
        assert_eq!(
            get(
                "hubble_flows_processed_total",
                &[
                    ("source_namespace", ""),
                    ("destination_workload", "deathstar"),
                    ("traffic_direction", "ingress"),
                    ("type", "Drop"),
                    ("subtype", ""),
                    ("verdict", "DROPPED")
                ]
            ),
            1.0
        );
    }
}
