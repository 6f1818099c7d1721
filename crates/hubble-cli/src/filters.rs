//! `hubble observe` filter flags → the request's whitelist and blacklist, as Hubble builds
//! them: values of one flag are ORed, different flags ANDed; a flag without `from-`/`to-`
//! (`--pod`, `--ip`, `--label`, ...) matches either end, which takes two filters (one for
//! the source, one for the destination) carrying the same other conditions; `--not` sends
//! the next filter to the blacklist.

use std::collections::BTreeMap;

use cilium_datapath::codes::{ObservationPoint, XlatePoint};
use cilium_hubble::decode::message_type;
use cilium_hubble::flow::{
    DropReason, EventTypeFilter, FlowFilter, TcpFlags, TrafficDirection, Verdict, Workload,
};
use clap::ArgMatches;

/// A filter flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag} {value:?}: expected {expected}")]
pub struct FilterFlagError {
    pub flag: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Which end of a flow a flag concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Either,
    From,
    To,
}

/// The filter flags, by what they set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Pod(End),
    Namespace(End),
    Label(End),
    Identity(End),
    Ip(End),
    Port(End),
    Service(End),
    Workload(End),
    Verdict,
    Type,
    Protocol,
    TcpFlags,
    NodeName,
    TrafficDirection,
    DropReasonDesc,
}

/// Clap argument ids (the `Observe` field names) and what they set.
const FLAGS: [(&str, Field); 31] = [
    ("pod", Field::Pod(End::Either)),
    ("from_pod", Field::Pod(End::From)),
    ("to_pod", Field::Pod(End::To)),
    ("namespace", Field::Namespace(End::Either)),
    ("from_namespace", Field::Namespace(End::From)),
    ("to_namespace", Field::Namespace(End::To)),
    ("label", Field::Label(End::Either)),
    ("from_label", Field::Label(End::From)),
    ("to_label", Field::Label(End::To)),
    ("identity", Field::Identity(End::Either)),
    ("from_identity", Field::Identity(End::From)),
    ("to_identity", Field::Identity(End::To)),
    ("ip", Field::Ip(End::Either)),
    ("from_ip", Field::Ip(End::From)),
    ("to_ip", Field::Ip(End::To)),
    ("port", Field::Port(End::Either)),
    ("from_port", Field::Port(End::From)),
    ("to_port", Field::Port(End::To)),
    ("service", Field::Service(End::Either)),
    ("from_service", Field::Service(End::From)),
    ("to_service", Field::Service(End::To)),
    ("workload", Field::Workload(End::Either)),
    ("from_workload", Field::Workload(End::From)),
    ("to_workload", Field::Workload(End::To)),
    ("verdict", Field::Verdict),
    ("event_type", Field::Type),
    ("protocol", Field::Protocol),
    ("tcp_flags", Field::TcpFlags),
    ("node_name", Field::NodeName),
    ("traffic_direction", Field::TrafficDirection),
    ("drop_reason_desc", Field::DropReasonDesc),
];

/// One filter flag as given on the command line.
#[derive(Debug, Clone)]
struct Occurrence {
    field: Field,
    value: String,
    negated: bool,
}

/// The whitelist and blacklist the filter flags of an `observe` command line ask for.
pub fn from_matches(
    matches: &ArgMatches,
) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>), FilterFlagError> {
    let mut given: Vec<(usize, Field, String)> = Vec::new();
    for (id, field) in FLAGS {
        let (Some(indices), Some(values)) =
            (matches.indices_of(id), matches.get_many::<String>(id))
        else {
            continue;
        };
        given.extend(
            indices
                .zip(values)
                .map(|(at, value)| (at, field, value.clone())),
        );
    }
    given.sort_by_key(|(at, _, _)| *at);
    let mut nots: Vec<usize> = matches
        .indices_of("not")
        .map(Iterator::collect)
        .unwrap_or_default();
    nots.sort_unstable();
    let mut occurrences = Vec::with_capacity(given.len());
    let mut pending_not = nots.into_iter().peekable();
    for (at, field, value) in given {
        // A `--not` before this flag (and after the previous one) negates it.
        let mut negated = false;
        while pending_not.next_if(|&not| not < at).is_some() {
            negated = true;
        }
        occurrences.push(Occurrence {
            field,
            value,
            negated,
        });
    }
    build(occurrences)
}

/// Source and destination halves of the filters of one list.
#[derive(Default)]
struct Tracker {
    left: FlowFilter,
    right: FlowFilter,
    used: bool,
    split: bool,
}

impl Tracker {
    /// The same condition on both filters.
    fn both(&mut self, set: impl Fn(&mut FlowFilter)) {
        set(&mut self.left);
        set(&mut self.right);
        self.used = true;
    }

    /// A condition on one end: `from` and `to` on both filters; either end as the source
    /// on one filter and the destination on the other.
    fn ends<T: Clone>(
        &mut self,
        end: End,
        value: T,
        source: fn(&mut FlowFilter) -> &mut Vec<T>,
        destination: fn(&mut FlowFilter) -> &mut Vec<T>,
    ) {
        match end {
            End::From => self.both(|f| source(f).push(value.clone())),
            End::To => self.both(|f| destination(f).push(value.clone())),
            End::Either => {
                source(&mut self.left).push(value.clone());
                destination(&mut self.right).push(value);
                self.used = true;
                self.split = true;
            }
        }
    }

    fn filters(self) -> Vec<FlowFilter> {
        match (self.used, self.split) {
            (false, _) => Vec::new(),
            (true, false) => vec![self.left],
            (true, true) => vec![self.left, self.right],
        }
    }
}

fn build(
    occurrences: Vec<Occurrence>,
) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>), FilterFlagError> {
    let occurrences = qualify_pods(occurrences);
    let mut allow = Tracker::default();
    let mut deny = Tracker::default();
    for occurrence in occurrences {
        let tracker = if occurrence.negated {
            &mut deny
        } else {
            &mut allow
        };
        apply(tracker, occurrence.field, occurrence.value)?;
    }
    Ok((allow.filters(), deny.filters()))
}

/// `-n NS --pod P` means pod `NS/P`: pods without a namespace take the namespaces given
/// for the same end (or for either end), and those namespaces are then not filters of
/// their own.
fn qualify_pods(occurrences: Vec<Occurrence>) -> Vec<Occurrence> {
    let mut namespaces: BTreeMap<(End, bool), Vec<String>> = BTreeMap::new();
    for o in &occurrences {
        if let Field::Namespace(end) = o.field {
            namespaces
                .entry((end, o.negated))
                .or_default()
                .push(o.value.clone());
        }
    }
    let mut used = Vec::new();
    let mut out = Vec::with_capacity(occurrences.len());
    for o in &occurrences {
        match o.field {
            Field::Pod(end) if !o.value.contains('/') => {
                let key = [(end, o.negated), (End::Either, o.negated)]
                    .into_iter()
                    .find(|key| namespaces.contains_key(key));
                match key {
                    Some(key) => {
                        used.push(key);
                        for ns in &namespaces[&key] {
                            out.push(Occurrence {
                                value: format!("{ns}/{}", o.value),
                                ..o.clone()
                            });
                        }
                    }
                    None => out.push(o.clone()),
                }
            }
            _ => out.push(o.clone()),
        }
    }
    out.retain(|o| !matches!(o.field, Field::Namespace(end) if used.contains(&(end, o.negated))));
    out
}

fn apply(tracker: &mut Tracker, field: Field, value: String) -> Result<(), FilterFlagError> {
    match field {
        Field::Pod(end) => tracker.ends(
            end,
            value,
            |f| &mut f.source_pod,
            |f| &mut f.destination_pod,
        ),
        Field::Namespace(end) => tracker.ends(
            end,
            format!("{value}/"),
            |f| &mut f.source_pod,
            |f| &mut f.destination_pod,
        ),
        Field::Label(end) => tracker.ends(
            end,
            value,
            |f| &mut f.source_label,
            |f| &mut f.destination_label,
        ),
        Field::Identity(end) => tracker.ends(
            end,
            identity(&value)?,
            |f| &mut f.source_identity,
            |f| &mut f.destination_identity,
        ),
        Field::Ip(end) => tracker.ends(end, value, |f| &mut f.source_ip, |f| &mut f.destination_ip),
        Field::Port(end) => tracker.ends(
            end,
            value,
            |f| &mut f.source_port,
            |f| &mut f.destination_port,
        ),
        Field::Service(end) => tracker.ends(
            end,
            value,
            |f| &mut f.source_service,
            |f| &mut f.destination_service,
        ),
        Field::Workload(end) => tracker.ends(
            end,
            workload(&value),
            |f| &mut f.source_workload,
            |f| &mut f.destination_workload,
        ),
        Field::Verdict => {
            let verdict = Verdict::from_str_name(&value.to_ascii_uppercase())
                .filter(|v| *v != Verdict::Unknown)
                .ok_or_else(|| {
                    invalid(
                        "verdict",
                        &value,
                        "FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED or TRANSLATED",
                    )
                })?;
            tracker.both(|f| f.verdict.push(verdict as i32));
        }
        Field::Type => {
            let filter = event_type(&value)?;
            tracker.both(|f| f.event_type.push(filter));
        }
        Field::Protocol => tracker.both(|f| f.protocol.push(value.clone())),
        Field::TcpFlags => {
            let flags = tcp_flags(&value)?;
            tracker.both(|f| f.tcp_flags.push(flags));
        }
        Field::NodeName => tracker.both(|f| f.node_name.push(value.clone())),
        Field::TrafficDirection => {
            let direction = TrafficDirection::from_str_name(&value.to_ascii_uppercase())
                .filter(|d| *d != TrafficDirection::Unknown)
                .ok_or_else(|| invalid("traffic-direction", &value, "ingress or egress"))?;
            tracker.both(|f| f.traffic_direction.push(direction as i32));
        }
        Field::DropReasonDesc => {
            let reason =
                DropReason::from_str_name(&value.to_ascii_uppercase()).ok_or_else(|| {
                    invalid(
                        "drop-reason-desc",
                        &value,
                        "a flow.DropReason name such as POLICY_DENIED",
                    )
                })?;
            tracker.both(|f| f.drop_reason_desc.push(reason as i32));
        }
    }
    Ok(())
}

/// Hubble's `[kind/]name` workload value (an empty part matches any).
fn workload(value: &str) -> Workload {
    match value.split_once('/') {
        Some((kind, name)) => Workload {
            name: name.to_string(),
            kind: kind.to_string(),
        },
        None => Workload {
            name: value.to_string(),
            kind: String::new(),
        },
    }
}

fn invalid(flag: &'static str, value: &str, expected: &'static str) -> FilterFlagError {
    FilterFlagError {
        flag,
        value: value.to_string(),
        expected,
    }
}

/// Cilium's reserved identities by name.
const RESERVED_IDENTITIES: [(&str, u32); 11] = [
    ("unknown", 0),
    ("host", 1),
    ("world", 2),
    ("unmanaged", 3),
    ("health", 4),
    ("init", 5),
    ("remote-node", 6),
    ("kube-apiserver", 7),
    ("ingress", 8),
    ("world-ipv4", 9),
    ("world-ipv6", 10),
];

/// Name of a reserved identity, `None` for allocated ones.
pub fn reserved_identity_name(identity: u32) -> Option<&'static str> {
    RESERVED_IDENTITIES
        .iter()
        .find(|(_, id)| *id == identity)
        .map(|(name, _)| *name)
}

fn identity(value: &str) -> Result<u32, FilterFlagError> {
    value
        .parse()
        .ok()
        .or_else(|| {
            let name = value.strip_prefix("reserved:").unwrap_or(value);
            RESERVED_IDENTITIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, id)| *id)
        })
        .ok_or_else(|| {
            invalid(
                "identity",
                value,
                "a numeric identity or a reserved name (world, host, ...)",
            )
        })
}

/// Monitor event types by their CLI names.
const EVENT_TYPES: [(&str, i32); 8] = [
    ("drop", message_type::DROP),
    ("debug", 2),
    ("capture", 3),
    ("trace", message_type::TRACE),
    ("policy-verdict", message_type::POLICY_VERDICT),
    ("trace-sock", message_type::TRACE_SOCK),
    ("l7", 129),
    ("agent", 130),
];

fn event_type(value: &str) -> Result<EventTypeFilter, FilterFlagError> {
    let expected = "TYPE[:SUBTYPE] with TYPE one of drop, debug, capture, trace, policy-verdict, trace-sock, l7, agent";
    let (name, sub) = match value.split_once(':') {
        Some((name, sub)) => (name, Some(sub)),
        None => (value, None),
    };
    let kind = EVENT_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| invalid("type", value, expected))?;
    let sub_type = match sub {
        None => None,
        Some(sub) => Some(
            sub.parse::<i32>()
                .ok()
                .or_else(|| named_sub_type(kind, sub))
                .ok_or_else(|| invalid("type", value, "a numeric SUBTYPE or, for trace, an observation point (to-endpoint, to-stack, ...), for trace-sock a translation point (pre-xlate-fwd, post-xlate-fwd, pre-xlate-rev, post-xlate-rev)"))?,
        ),
    };
    Ok(EventTypeFilter {
        r#type: kind,
        match_sub_type: sub_type.is_some(),
        sub_type: sub_type.unwrap_or(0),
    })
}

/// A subtype by name: an observation point of a trace, a translation point of a trace-sock.
fn named_sub_type(kind: i32, sub: &str) -> Option<i32> {
    let point = match kind {
        message_type::TRACE => (0..=11u8).find(|&p| ObservationPoint(p).name() == sub),
        message_type::TRACE_SOCK => (1..=4u8).find(|&p| XlatePoint(p).name() == sub),
        _ => None,
    };
    point.map(i32::from)
}

fn tcp_flags(value: &str) -> Result<TcpFlags, FilterFlagError> {
    let mut flags = TcpFlags::default();
    for name in value.split(',') {
        let flag = match name.trim().to_ascii_uppercase().as_str() {
            "FIN" => &mut flags.fin,
            "SYN" => &mut flags.syn,
            "RST" => &mut flags.rst,
            "PSH" => &mut flags.psh,
            "ACK" => &mut flags.ack,
            "URG" => &mut flags.urg,
            "ECE" => &mut flags.ece,
            "CWR" => &mut flags.cwr,
            "NS" => &mut flags.ns,
            _ => {
                return Err(invalid(
                    "tcp-flags",
                    value,
                    "comma-separated TCP flags (SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, NS)",
                ))
            }
        };
        *flag = true;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    /// The (whitelist, blacklist) of an `observe` command line.
    fn lists(args: &[&str]) -> (Vec<FlowFilter>, Vec<FlowFilter>) {
        let argv = ["hubble", "observe"].iter().chain(args);
        let matches = Cli::command()
            .try_get_matches_from(argv)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let cli = Cli::from_arg_matches(&matches).expect("parsed");
        assert!(matches!(cli.command, Command::Observe(_)));
        let observe = matches.subcommand_matches("observe").expect("observe");
        from_matches(observe).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn error(args: &[&str]) -> String {
        let argv = ["hubble", "observe"].iter().chain(args);
        let matches = Cli::command().try_get_matches_from(argv).expect("parses");
        from_matches(matches.subcommand_matches("observe").expect("observe"))
            .expect_err("invalid value")
            .to_string()
    }

    #[test]
    fn no_flags_no_filters() {
        assert_eq!(lists(&[]), (vec![], vec![]));
    }

    #[test]
    fn either_end_flags_split_into_a_source_and_a_destination_filter() {
        let (allow, deny) = lists(&["--pod", "default/xwing", "--verdict", "DROPPED"]);
        assert!(deny.is_empty());
        assert_eq!(
            allow,
            vec![
                FlowFilter {
                    source_pod: vec!["default/xwing".into()],
                    verdict: vec![Verdict::Dropped as i32],
                    ..Default::default()
                },
                FlowFilter {
                    destination_pod: vec!["default/xwing".into()],
                    verdict: vec![Verdict::Dropped as i32],
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn from_and_to_flags_and_repeated_values() {
        let (allow, _) = lists(&[
            "--from-pod",
            "default/xwing",
            "--to-pod",
            "default/deathstar",
            "--to-port",
            "80",
            "--protocol",
            "tcp",
            "--protocol",
            "udp",
            "--from-identity",
            "1234",
            "--to-identity",
            "world",
            "--from-ip",
            "10.0.1.5",
            "--to-ip",
            "10.0.2.0/24",
            "--from-label",
            "k8s:org=alliance",
            "--to-label",
            "k8s:class=deathstar",
            "--from-port",
            "39042",
            "--node-name",
            "default/node1",
            "--traffic-direction",
            "ingress",
            "--drop-reason-desc",
            "policy_denied",
            "--tcp-flags",
            "SYN,ACK",
            "-t",
            "trace:to-endpoint",
            "-t",
            "drop",
        ]);
        assert_eq!(
            allow,
            vec![FlowFilter {
                source_pod: vec!["default/xwing".into()],
                destination_pod: vec!["default/deathstar".into()],
                destination_port: vec!["80".into()],
                source_port: vec!["39042".into()],
                protocol: vec!["tcp".into(), "udp".into()],
                source_identity: vec![1234],
                destination_identity: vec![2],
                source_ip: vec!["10.0.1.5".into()],
                destination_ip: vec!["10.0.2.0/24".into()],
                source_label: vec!["k8s:org=alliance".into()],
                destination_label: vec!["k8s:class=deathstar".into()],
                node_name: vec!["default/node1".into()],
                traffic_direction: vec![TrafficDirection::Ingress as i32],
                drop_reason_desc: vec![DropReason::PolicyDenied as i32],
                tcp_flags: vec![TcpFlags {
                    syn: true,
                    ack: true,
                    ..Default::default()
                }],
                event_type: vec![
                    EventTypeFilter {
                        r#type: 4,
                        match_sub_type: true,
                        sub_type: 0
                    },
                    EventTypeFilter {
                        r#type: 1,
                        match_sub_type: false,
                        sub_type: 0
                    },
                ],
                ..Default::default()
            }]
        );
    }

    #[test]
    fn trace_sock_types_and_translation_points() {
        let (allow, _) = lists(&[
            "--type",
            "trace-sock",
            "--type",
            "trace-sock:post-xlate-fwd",
            "--type",
            "trace-sock:3",
        ]);
        let kinds: Vec<(i32, bool, i32)> = allow[0]
            .event_type
            .iter()
            .map(|t| (t.r#type, t.match_sub_type, t.sub_type))
            .collect();
        assert_eq!(kinds, [(7, false, 0), (7, true, 2), (7, true, 3)]);
    }

    #[test]
    fn not_negates_only_the_next_filter() {
        let (allow, deny) = lists(&[
            "--verdict",
            "FORWARDED",
            "--not",
            "--to-port",
            "53",
            "--protocol",
            "tcp",
        ]);
        assert_eq!(
            allow,
            vec![FlowFilter {
                verdict: vec![Verdict::Forwarded as i32],
                protocol: vec!["tcp".into()],
                ..Default::default()
            }]
        );
        assert_eq!(
            deny,
            vec![FlowFilter {
                destination_port: vec!["53".into()],
                ..Default::default()
            }]
        );
    }

    #[test]
    fn namespaces_qualify_pods_or_select_whole_namespaces() {
        let (allow, _) = lists(&["-n", "kube-system", "--pod", "coredns"]);
        assert_eq!(allow[0].source_pod, ["kube-system/coredns"]);
        assert_eq!(allow[1].destination_pod, ["kube-system/coredns"]);
        assert!(allow[0].destination_pod.is_empty());

        let (allow, _) = lists(&["--from-namespace", "default", "--label", "k8s:app=x"]);
        assert_eq!(
            allow,
            vec![
                FlowFilter {
                    source_pod: vec!["default/".into()],
                    source_label: vec!["k8s:app=x".into()],
                    ..Default::default()
                },
                FlowFilter {
                    source_pod: vec!["default/".into()],
                    destination_label: vec!["k8s:app=x".into()],
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn service_and_workload_flags_fill_their_filter_fields() {
        let (allow, _) = lists(&["--to-service", "default/web", "--from-workload", "client"]);
        assert_eq!(
            allow,
            vec![FlowFilter {
                destination_service: vec!["default/web".into()],
                source_workload: vec![Workload {
                    name: "client".into(),
                    kind: String::new()
                }],
                ..Default::default()
            }]
        );
        let (allow, _) = lists(&["--workload", "Deployment/deathstar", "--service", "web"]);
        let deathstar = Workload {
            name: "deathstar".into(),
            kind: "Deployment".into(),
        };
        assert_eq!(
            allow,
            vec![
                FlowFilter {
                    source_workload: vec![deathstar.clone()],
                    source_service: vec!["web".into()],
                    ..Default::default()
                },
                FlowFilter {
                    destination_workload: vec![deathstar],
                    destination_service: vec!["web".into()],
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(error(&["--verdict", "MAYBE"]).contains("--verdict \"MAYBE\""));
        assert!(error(&["--identity", "xwing"]).contains("--identity"));
        assert!(error(&["--tcp-flags", "SYN,NOPE"]).contains("--tcp-flags"));
        assert!(error(&["-t", "nonsense"]).contains("--type"));
        assert!(error(&["--traffic-direction", "up"]).contains("ingress or egress"));
        assert!(error(&["--drop-reason-desc", "gremlins"]).contains("POLICY_DENIED"));
    }
}
