//! Cilium's metric context options: which labels describing a flow's source and destination
//! a metric group adds to its series, and how their values are taken from the flow.
//!
//! `sourceContext`/`destinationContext` (and their `Egress`/`Ingress` variants, which take
//! precedence for flows in that direction) add a `source`/`destination` label whose value is
//! the first non-empty one of a `|` chain (`pod|ip`); `labelsContext` adds one label per
//! named field (`source_namespace`, `destination_workload`, `traffic_direction`, ...).

use std::sync::LazyLock;

use cilium_hubble_proto::flow::{Endpoint, Flow, TrafficDirection};
use regex::Regex;

use super::Labels;

/// What a context value is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// Every label of the security identity, comma-separated.
    Identity,
    Namespace,
    /// `namespace/pod`.
    Pod,
    /// `namespace/pod` without the generated suffixes (deprecated in Cilium).
    PodShort,
    /// The DNS names the flow carries for that end, comma-separated.
    Dns,
    Ip,
    /// The `reserved:` label of a reserved identity (`reserved:world`, ...).
    ReservedIdentity,
    /// The name of the pod's first workload.
    WorkloadName,
    /// The pod's app label (`app.kubernetes.io/name`, else `k8s-app`, else `app`).
    App,
}

impl ContextKind {
    const NAMES: [(&'static str, ContextKind); 9] = [
        ("identity", ContextKind::Identity),
        ("namespace", ContextKind::Namespace),
        ("pod", ContextKind::Pod),
        ("pod-short", ContextKind::PodShort),
        ("dns", ContextKind::Dns),
        ("ip", ContextKind::Ip),
        ("reserved-identity", ContextKind::ReservedIdentity),
        ("workload-name", ContextKind::WorkloadName),
        ("app", ContextKind::App),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }

    fn value(self, end: End<'_>) -> String {
        let ep = end.endpoint;
        let pod_name = ep.map_or("", |ep| ep.pod_name.as_str());
        let pod = |name: &str| match ep {
            Some(ep) if !ep.pod_name.is_empty() => format!("{}/{name}", ep.namespace),
            _ => String::new(),
        };
        match self {
            ContextKind::Identity => ep.map(|ep| ep.labels.join(",")).unwrap_or_default(),
            ContextKind::Namespace => ep.map(|ep| ep.namespace.clone()).unwrap_or_default(),
            ContextKind::Pod => pod(pod_name),
            ContextKind::PodShort => pod(&short_pod_name(pod_name)),
            ContextKind::Dns => end.names.join(","),
            ContextKind::Ip => end.ip.to_string(),
            ContextKind::ReservedIdentity => ep
                .and_then(|ep| ep.labels.iter().find(|l| l.starts_with("reserved:")))
                .cloned()
                .unwrap_or_default(),
            ContextKind::WorkloadName => workload_name(ep),
            ContextKind::App => app(ep),
        }
    }
}

/// A `|`-separated fallback chain of context kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextChain(pub Vec<ContextKind>);

impl ContextChain {
    /// What a chain may name, for error messages.
    pub const EXPECTED: &'static str = "identity, namespace, pod, pod-short, dns, ip, \
         reserved-identity, workload-name, app (a|b for a fallback)";

    /// `None` when any element is not a context kind.
    pub fn parse(text: &str) -> Option<Self> {
        text.split('|')
            .map(ContextKind::parse)
            .collect::<Option<Vec<_>>>()
            .map(ContextChain)
    }

    /// The first non-empty value of the chain.
    fn value(&self, end: End<'_>) -> String {
        self.0
            .iter()
            .map(|kind| kind.value(end))
            .find(|value| !value.is_empty())
            .unwrap_or_default()
    }
}

/// The chains configured for one end: for any flow, and for egress and ingress flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndContext {
    pub any: Option<ContextChain>,
    pub egress: Option<ContextChain>,
    pub ingress: Option<ContextChain>,
}

impl EndContext {
    fn configured(&self) -> bool {
        self.any.is_some() || self.egress.is_some() || self.ingress.is_some()
    }

    /// The chain that applies to a flow in `direction`.
    fn chain(&self, direction: TrafficDirection) -> Option<&ContextChain> {
        let specific = match direction {
            TrafficDirection::Egress => self.egress.as_ref(),
            TrafficDirection::Ingress => self.ingress.as_ref(),
            _ => None,
        };
        specific.or(self.any.as_ref())
    }
}

/// One `labelsContext` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelContext {
    SourceIp,
    SourceNamespace,
    SourcePod,
    SourceWorkload,
    SourceApp,
    DestinationIp,
    DestinationNamespace,
    DestinationPod,
    DestinationWorkload,
    DestinationApp,
    TrafficDirection,
}

impl LabelContext {
    const NAMES: [(&'static str, LabelContext); 11] = [
        ("source_ip", LabelContext::SourceIp),
        ("source_namespace", LabelContext::SourceNamespace),
        ("source_pod", LabelContext::SourcePod),
        ("source_workload", LabelContext::SourceWorkload),
        ("source_app", LabelContext::SourceApp),
        ("destination_ip", LabelContext::DestinationIp),
        ("destination_namespace", LabelContext::DestinationNamespace),
        ("destination_pod", LabelContext::DestinationPod),
        ("destination_workload", LabelContext::DestinationWorkload),
        ("destination_app", LabelContext::DestinationApp),
        ("traffic_direction", LabelContext::TrafficDirection),
    ];

    /// What `labelsContext` may list, for error messages.
    pub const EXPECTED: &'static str = "a comma-separated list of source_ip, source_namespace, \
         source_pod, source_workload, source_app, destination_ip, destination_namespace, \
         destination_pod, destination_workload, destination_app, traffic_direction";

    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, label)| *label)
    }

    /// The label's name in the series.
    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, label)| *label == self)
            .map_or("", |(name, _)| name)
    }

    fn value(self, flow: &Flow, direction: TrafficDirection) -> String {
        let (source, destination) = ends(flow);
        let namespace = |end: End<'_>| end.endpoint.map(|ep| ep.namespace.clone());
        let pod = |end: End<'_>| end.endpoint.map(|ep| ep.pod_name.clone());
        match self {
            LabelContext::SourceIp => source.ip.to_string(),
            LabelContext::SourceNamespace => namespace(source).unwrap_or_default(),
            LabelContext::SourcePod => pod(source).unwrap_or_default(),
            LabelContext::SourceWorkload => workload_name(source.endpoint),
            LabelContext::SourceApp => app(source.endpoint),
            LabelContext::DestinationIp => destination.ip.to_string(),
            LabelContext::DestinationNamespace => namespace(destination).unwrap_or_default(),
            LabelContext::DestinationPod => pod(destination).unwrap_or_default(),
            LabelContext::DestinationWorkload => workload_name(destination.endpoint),
            LabelContext::DestinationApp => app(destination.endpoint),
            LabelContext::TrafficDirection => match direction {
                TrafficDirection::Ingress => "ingress",
                TrafficDirection::Egress => "egress",
                _ => "unknown",
            }
            .to_string(),
        }
    }
}

/// The context options of one metric group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextOptions {
    pub source: EndContext,
    pub destination: EndContext,
    pub labels: Vec<LabelContext>,
}

impl ContextOptions {
    /// The context labels of a flow's series: `source` and `destination` when configured
    /// (empty when no chain applies to the flow's direction), then the `labelsContext`
    /// fields in the order given.
    pub fn labels(&self, flow: &Flow) -> Labels {
        let direction =
            TrafficDirection::try_from(flow.traffic_direction).unwrap_or(TrafficDirection::Unknown);
        let (source, destination) = ends(flow);
        let mut labels = Labels::new();
        for (name, context, end) in [
            ("source", &self.source, source),
            ("destination", &self.destination, destination),
        ] {
            if context.configured() {
                let value = context
                    .chain(direction)
                    .map(|chain| chain.value(end))
                    .unwrap_or_default();
                labels.push((name, value));
            }
        }
        for label in &self.labels {
            labels.push((label.name(), label.value(flow, direction)));
        }
        labels
    }
}

/// What the context values of one end of a flow come from.
#[derive(Clone, Copy)]
struct End<'a> {
    endpoint: Option<&'a Endpoint>,
    ip: &'a str,
    names: &'a [String],
}

fn ends(flow: &Flow) -> (End<'_>, End<'_>) {
    let (source_ip, destination_ip) = flow
        .ip
        .as_ref()
        .map_or(("", ""), |ip| (ip.source.as_str(), ip.destination.as_str()));
    (
        End {
            endpoint: flow.source.as_ref(),
            ip: source_ip,
            names: &flow.source_names,
        },
        End {
            endpoint: flow.destination.as_ref(),
            ip: destination_ip,
            names: &flow.destination_names,
        },
    )
}

fn workload_name(endpoint: Option<&Endpoint>) -> String {
    endpoint
        .and_then(|ep| ep.workloads.first())
        .map(|w| w.name.clone())
        .unwrap_or_default()
}

/// The app label, by Cilium's precedence.
fn app(endpoint: Option<&Endpoint>) -> String {
    let Some(ep) = endpoint else {
        return String::new();
    };
    ["k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app="]
        .iter()
        .find_map(|prefix| ep.labels.iter().find_map(|l| l.strip_prefix(prefix)))
        .unwrap_or_default()
        .to_string()
}

/// A pod name without the one or two generated suffixes a controller adds
/// (`deathstar-c74d84667-cx5kp` → `deathstar`), the way Cilium's `pod-short` shortens it.
fn short_pod_name(name: &str) -> String {
    static GENERATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new("^(.+?)(-[a-z0-9]+){1,2}$").expect("the pod-short pattern compiles")
    });
    GENERATED.replace(name, "${1}").into_owned()
}

#[cfg(test)]
mod tests {
    use cilium_hubble_proto::flow::{Ip, Workload};

    use super::*;

    fn flow() -> Flow {
        Flow {
            ip: Some(Ip {
                source: "10.0.1.5".into(),
                destination: "10.0.2.7".into(),
                ..Default::default()
            }),
            source: Some(Endpoint {
                namespace: "default".into(),
                pod_name: "xwing".into(),
                labels: vec!["k8s:app=xwing".into(), "k8s:org=alliance".into()],
                ..Default::default()
            }),
            destination: Some(Endpoint {
                namespace: "empire".into(),
                pod_name: "deathstar-c74d84667-cx5kp".into(),
                labels: vec![
                    "k8s:app.kubernetes.io/name=deathstar".into(),
                    "k8s:app=station".into(),
                ],
                workloads: vec![Workload {
                    name: "deathstar".into(),
                    kind: "Deployment".into(),
                }],
                ..Default::default()
            }),
            traffic_direction: TrafficDirection::Egress as i32,
            ..Default::default()
        }
    }

    fn options(source: &str, destination: &str) -> ContextOptions {
        ContextOptions {
            source: EndContext {
                any: ContextChain::parse(source),
                ..Default::default()
            },
            destination: EndContext {
                any: ContextChain::parse(destination),
                ..Default::default()
            },
            labels: Vec::new(),
        }
    }

    fn labels(options: &ContextOptions, flow: &Flow) -> Vec<(&'static str, String)> {
        options.labels(flow)
    }

    #[test]
    fn context_values_come_from_the_flow_ends() {
        let flow = flow();
        let cases = [
            ("namespace", "default", "empire"),
            ("pod", "default/xwing", "empire/deathstar-c74d84667-cx5kp"),
            ("pod-short", "default/xwing", "empire/deathstar"),
            ("ip", "10.0.1.5", "10.0.2.7"),
            ("workload-name", "", "deathstar"),
            ("app", "xwing", "deathstar"),
            (
                "identity",
                "k8s:app=xwing,k8s:org=alliance",
                "k8s:app.kubernetes.io/name=deathstar,k8s:app=station",
            ),
        ];
        for (kind, source, destination) in cases {
            assert_eq!(
                labels(&options(kind, kind), &flow),
                vec![
                    ("source", source.to_string()),
                    ("destination", destination.to_string())
                ],
                "context {kind}"
            );
        }
    }

    #[test]
    fn chains_fall_back_and_direction_specific_contexts_win() {
        let mut flow = flow();
        assert_eq!(
            labels(&options("workload-name|pod", "workload-name|pod"), &flow),
            vec![
                ("source", "default/xwing".to_string()),
                ("destination", "deathstar".to_string())
            ]
        );
        flow.source = Some(Endpoint {
            identity: 2,
            labels: vec!["reserved:world".into()],
            ..Default::default()
        });
        assert_eq!(
            labels(&options("reserved-identity", "reserved-identity"), &flow),
            vec![
                ("source", "reserved:world".into()),
                ("destination", String::new())
            ]
        );

        let split = ContextOptions {
            source: EndContext {
                any: ContextChain::parse("namespace"),
                ingress: ContextChain::parse("ip"),
                egress: None,
            },
            destination: EndContext {
                ingress: ContextChain::parse("namespace"),
                ..Default::default()
            },
            labels: Vec::new(),
        };
        let flow_egress = self::flow();
        assert_eq!(
            labels(&split, &flow_egress),
            vec![("source", "default".into()), ("destination", String::new())],
            "egress: the general source context; no destination context for egress"
        );
        let mut flow_ingress = self::flow();
        flow_ingress.traffic_direction = TrafficDirection::Ingress as i32;
        assert_eq!(
            labels(&split, &flow_ingress),
            vec![
                ("source", "10.0.1.5".into()),
                ("destination", "empire".into())
            ]
        );
    }

    #[test]
    fn labels_context_adds_one_label_per_field() {
        let options = ContextOptions {
            labels: [
                "source_namespace",
                "source_pod",
                "destination_workload",
                "destination_app",
                "destination_ip",
                "traffic_direction",
            ]
            .iter()
            .map(|name| LabelContext::parse(name).expect("a label context"))
            .collect(),
            ..Default::default()
        };
        assert_eq!(
            labels(&options, &flow()),
            vec![
                ("source_namespace", "default".to_string()),
                ("source_pod", "xwing".to_string()),
                ("destination_workload", "deathstar".to_string()),
                ("destination_app", "deathstar".to_string()),
                ("destination_ip", "10.0.2.7".to_string()),
                ("traffic_direction", "egress".to_string()),
            ]
        );
        assert!(ContextOptions::default().labels(&flow()).is_empty());
    }
}
