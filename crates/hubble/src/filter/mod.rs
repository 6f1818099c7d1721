//! `FlowFilter` matching with Hubble's semantics: the fields set in one filter must all
//! match, a field holding several values matches when any does; a request's whitelist
//! admits a flow matching any of its filters (everything when empty) and its blacklist
//! removes a flow matching any of its filters.
//!
//! Filters are compiled once per request ([`FlowFilterSet::new`]) so malformed input
//! (addresses, ports, selectors, patterns, regular expressions) is refused up front with the
//! field and value named.

mod patterns;
mod selector;

use std::collections::HashSet;
use std::net::IpAddr;

use cilium_hubble_proto::flow::{
    layer4::Protocol, layer7::Record, Endpoint, EventTypeFilter, Flow, FlowFilter,
    NetworkInterface, Service, TcpFlags, Workload,
};
use ipnet::IpNet;
use regex::Regex;

use crate::layers;
use patterns::{FqdnPattern, NamePrefix, NodePattern, StatusPattern};
pub use patterns::{NodePatternError, StatusPatternError};
pub use selector::{LabelSelector, SelectorError};

/// A filter field whose value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{field}: {value:?} is neither an IP address nor a CIDR")]
    Address {
        field: &'static str,
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
    #[error("{field}: {value:?} is not a port number")]
    Port {
        field: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("protocol: unknown protocol {value:?} (tcp, udp, sctp, icmp, icmpv4, icmpv6, http, dns, kafka)")]
    Protocol { value: String },
    #[error("{field}: bad label selector")]
    Selector {
        field: &'static str,
        #[source]
        source: SelectorError,
    },
    #[error("node_name: bad pattern")]
    NodeName {
        #[source]
        source: NodePatternError,
    },
    #[error("http_status_code: bad pattern")]
    Status {
        #[source]
        source: StatusPatternError,
    },
    #[error("{field}: {value:?} is not a valid regular expression")]
    Regex {
        field: &'static str,
        value: String,
        #[source]
        source: Box<regex::Error>,
    },
}

type Condition = Box<dyn Fn(&Flow) -> bool + Send + Sync>;

/// One compiled `FlowFilter`: the conjunction of its set fields.
pub struct CompiledFilter {
    conditions: Vec<Condition>,
}

impl std::fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFilter")
            .field("conditions", &self.conditions.len())
            .finish()
    }
}

/// A request's whitelist and blacklist, compiled.
#[derive(Debug, Default)]
pub struct FlowFilterSet {
    whitelist: Vec<CompiledFilter>,
    blacklist: Vec<CompiledFilter>,
}

impl FlowFilterSet {
    /// Compiles both lists; the first malformed field is reported.
    pub fn new(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Self, FilterError> {
        Ok(Self {
            whitelist: whitelist
                .iter()
                .map(CompiledFilter::new)
                .collect::<Result<_, _>>()?,
            blacklist: blacklist
                .iter()
                .map(CompiledFilter::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the flow is in `whitelist − blacklist`.
    pub fn allows(&self, flow: &Flow) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|f| f.matches(flow)))
            && !self.blacklist.iter().any(|f| f.matches(flow))
    }
}

impl CompiledFilter {
    /// Compiles every field that is set.
    pub fn new(filter: &FlowFilter) -> Result<Self, FilterError> {
        let mut c = Conditions::default();
        c.set_of(&filter.uuid, |f| Some(f.uuid.clone()));
        c.addresses("source_ip", &filter.source_ip, |f| {
            f.ip.as_ref().map(|ip| &ip.source)
        })?;
        c.addresses("destination_ip", &filter.destination_ip, |f| {
            f.ip.as_ref().map(|ip| &ip.destination)
        })?;
        c.pods(&filter.source_pod, |f| f.source.as_ref());
        c.pods(&filter.destination_pod, |f| f.destination.as_ref());
        c.fqdns(&filter.source_fqdn, |f| &f.source_names);
        c.fqdns(&filter.destination_fqdn, |f| &f.destination_names);
        c.labels("source_label", &filter.source_label, |f| f.source.as_ref())?;
        c.labels("destination_label", &filter.destination_label, |f| {
            f.destination.as_ref()
        })?;
        c.services(&filter.source_service, |f| f.source_service.as_ref());
        c.services(&filter.destination_service, |f| {
            f.destination_service.as_ref()
        });
        c.workloads(&filter.source_workload, |f| f.source.as_ref());
        c.workloads(&filter.destination_workload, |f| f.destination.as_ref());
        c.set_of(&filter.traffic_direction, |f| Some(f.traffic_direction));
        c.set_of(&filter.verdict, |f| Some(f.verdict));
        c.set_of(&filter.drop_reason_desc, |f| Some(f.drop_reason_desc));
        c.interfaces(&filter.interface);
        c.event_types(&filter.event_type);
        c.status_codes(&filter.http_status_code)?;
        c.protocols(&filter.protocol)?;
        c.ports("source_port", &filter.source_port, |(src, _)| src)?;
        c.ports("destination_port", &filter.destination_port, |(_, dst)| dst)?;
        c.set_of(&filter.reply, |f| f.is_reply.map(|r| r.value));
        c.regexes("dns_query", &filter.dns_query, |f| match l7_record(f) {
            Some(Record::Dns(dns)) => Some(dns.query.clone()),
            _ => None,
        })?;
        c.set_of(&filter.source_identity, |f| {
            f.source.as_ref().map(|e| e.identity)
        });
        c.set_of(&filter.destination_identity, |f| {
            f.destination.as_ref().map(|e| e.identity)
        });
        c.http_methods(&filter.http_method);
        c.regexes("http_path", &filter.http_path, |f| match l7_record(f) {
            Some(Record::Http(http)) => Some(url_path(&http.url).to_string()),
            _ => None,
        })?;
        c.tcp_flags(&filter.tcp_flags);
        c.node_names(&filter.node_name)?;
        c.set_of(&filter.ip_version, |f| {
            Some(f.ip.as_ref().map_or(0, |ip| ip.ip_version))
        });
        c.set_of(&filter.trace_id, |f| {
            f.trace_context
                .as_ref()
                .and_then(|t| t.parent.as_ref())
                .map(|p| p.trace_id.clone())
        });
        Ok(Self { conditions: c.0 })
    }

    /// Whether every condition holds (an empty filter matches every flow).
    pub fn matches(&self, flow: &Flow) -> bool {
        self.conditions.iter().all(|condition| condition(flow))
    }
}

fn l7_record(flow: &Flow) -> Option<&Record> {
    flow.l7.as_ref()?.record.as_ref()
}

/// The path of `scheme://authority/path?query` (or of a bare path).
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = if url.contains("://") {
        after_scheme.find('/').map_or("", |at| &after_scheme[at..])
    } else {
        after_scheme
    };
    path.split(['?', '#']).next().unwrap_or("")
}

fn endpoint_labels(endpoint: Option<&Endpoint>) -> &[String] {
    endpoint.map_or(&[], |e| e.labels.as_slice())
}

/// An IP filter entry: one address or a prefix.
enum AddressMatch {
    Exact(IpAddr),
    Prefix(IpNet),
}

impl AddressMatch {
    fn parse(field: &'static str, value: &str) -> Result<Self, FilterError> {
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(Self::Exact(ip));
        }
        value
            .parse::<IpNet>()
            .map(Self::Prefix)
            .map_err(|source| FilterError::Address {
                field,
                value: value.to_string(),
                source,
            })
    }

    fn matches(&self, ip: IpAddr) -> bool {
        match self {
            Self::Exact(exact) => *exact == ip,
            Self::Prefix(net) => net.contains(&ip),
        }
    }
}

/// The conditions collected while compiling one filter.
#[derive(Default)]
struct Conditions(Vec<Condition>);

impl Conditions {
    fn push(&mut self, condition: impl Fn(&Flow) -> bool + Send + Sync + 'static) {
        self.0.push(Box::new(condition));
    }

    /// Matches when the flow's value is one of `values`; flows without the value never match.
    fn set_of<T>(&mut self, values: &[T], get: fn(&Flow) -> Option<T>)
    where
        T: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    {
        if values.is_empty() {
            return;
        }
        let set: HashSet<T> = values.iter().cloned().collect();
        self.push(move |flow| get(flow).is_some_and(|v| set.contains(&v)));
    }

    fn addresses(
        &mut self,
        field: &'static str,
        values: &[String],
        get: fn(&Flow) -> Option<&String>,
    ) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let matches: Vec<AddressMatch> = values
            .iter()
            .map(|v| AddressMatch::parse(field, v))
            .collect::<Result<_, _>>()?;
        self.push(move |flow| {
            get(flow)
                .and_then(|text| text.parse::<IpAddr>().ok())
                .is_some_and(|ip| matches.iter().any(|m| m.matches(ip)))
        });
        Ok(())
    }

    fn pods(&mut self, values: &[String], get: fn(&Flow) -> Option<&Endpoint>) {
        if values.is_empty() {
            return;
        }
        let prefixes: Vec<NamePrefix> = values.iter().map(|v| NamePrefix::parse(v)).collect();
        self.push(move |flow| {
            get(flow).is_some_and(|ep| {
                prefixes
                    .iter()
                    .any(|p| p.matches(&ep.namespace, &ep.pod_name))
            })
        });
    }

    fn services(&mut self, values: &[String], get: fn(&Flow) -> Option<&Service>) {
        if values.is_empty() {
            return;
        }
        let prefixes: Vec<NamePrefix> = values.iter().map(|v| NamePrefix::parse(v)).collect();
        self.push(move |flow| {
            get(flow).is_some_and(|svc| {
                prefixes
                    .iter()
                    .any(|p| p.matches(&svc.namespace, &svc.name))
            })
        });
    }

    fn fqdns(&mut self, values: &[String], get: fn(&Flow) -> &Vec<String>) {
        if values.is_empty() {
            return;
        }
        let patterns: Vec<FqdnPattern> = values.iter().map(|v| FqdnPattern::parse(v)).collect();
        self.push(move |flow| {
            get(flow)
                .iter()
                .any(|name| patterns.iter().any(|p| p.matches(name)))
        });
    }

    fn labels(
        &mut self,
        field: &'static str,
        values: &[String],
        get: fn(&Flow) -> Option<&Endpoint>,
    ) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let selectors: Vec<LabelSelector> = values
            .iter()
            .map(|v| LabelSelector::parse(v))
            .collect::<Result<_, _>>()
            .map_err(|source| FilterError::Selector { field, source })?;
        self.push(move |flow| {
            let labels = endpoint_labels(get(flow));
            selectors.iter().any(|s| s.matches(labels))
        });
        Ok(())
    }

    fn workloads(&mut self, values: &[Workload], get: fn(&Flow) -> Option<&Endpoint>) {
        if values.is_empty() {
            return;
        }
        let wanted = values.to_vec();
        self.push(move |flow| {
            get(flow).is_some_and(|ep| {
                ep.workloads.iter().any(|w| {
                    wanted.iter().any(|want| {
                        (want.name.is_empty() || want.name == w.name)
                            && (want.kind.is_empty() || want.kind == w.kind)
                    })
                })
            })
        });
    }

    fn interfaces(&mut self, values: &[NetworkInterface]) {
        if values.is_empty() {
            return;
        }
        let wanted = values.to_vec();
        self.push(move |flow| {
            flow.interface.as_ref().is_some_and(|have| {
                wanted.iter().any(|want| {
                    (want.index == 0 || want.index == have.index)
                        && (want.name.is_empty() || want.name == have.name)
                })
            })
        });
    }

    fn event_types(&mut self, values: &[EventTypeFilter]) {
        if values.is_empty() {
            return;
        }
        let wanted = values.to_vec();
        self.push(move |flow| {
            flow.event_type.as_ref().is_some_and(|have| {
                wanted.iter().any(|want| {
                    want.r#type == have.r#type
                        && (!want.match_sub_type || want.sub_type == have.sub_type)
                })
            })
        });
    }

    fn status_codes(&mut self, values: &[String]) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let patterns: Vec<StatusPattern> = values
            .iter()
            .map(|v| StatusPattern::parse(v))
            .collect::<Result<_, _>>()
            .map_err(|source| FilterError::Status { source })?;
        self.push(move |flow| match l7_record(flow) {
            Some(Record::Http(http)) if http.code != 0 => {
                patterns.iter().any(|p| p.matches(http.code))
            }
            _ => false,
        });
        Ok(())
    }

    fn protocols(&mut self, values: &[String]) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        const KNOWN: [&str; 8] = [
            "tcp", "udp", "sctp", "icmpv4", "icmpv6", "http", "dns", "kafka",
        ];
        let mut wanted: HashSet<&'static str> = HashSet::new();
        for value in values {
            let name = value.to_ascii_lowercase();
            if name == "icmp" {
                wanted.extend(["icmpv4", "icmpv6"]);
                continue;
            }
            match KNOWN.iter().find(|known| **known == name) {
                Some(known) => {
                    wanted.insert(known);
                }
                None => {
                    return Err(FilterError::Protocol {
                        value: value.clone(),
                    })
                }
            }
        }
        self.push(move |flow| {
            let l7 = match l7_record(flow) {
                Some(Record::Http(_)) => Some("http"),
                Some(Record::Dns(_)) => Some("dns"),
                Some(Record::Kafka(_)) => Some("kafka"),
                None => None,
            };
            [layers::protocol_name(flow), l7]
                .into_iter()
                .flatten()
                .any(|p| wanted.contains(p))
        });
        Ok(())
    }

    fn ports(
        &mut self,
        field: &'static str,
        values: &[String],
        pick: fn((u32, u32)) -> u32,
    ) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let ports: HashSet<u32> = values
            .iter()
            .map(|v| {
                v.trim()
                    .parse::<u16>()
                    .map(u32::from)
                    .map_err(|source| FilterError::Port {
                        field,
                        value: v.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        self.push(move |flow| layers::ports(flow).is_some_and(|p| ports.contains(&pick(p))));
        Ok(())
    }

    fn regexes(
        &mut self,
        field: &'static str,
        values: &[String],
        get: fn(&Flow) -> Option<String>,
    ) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let regexes: Vec<Regex> = values
            .iter()
            .map(|v| {
                Regex::new(v).map_err(|source| FilterError::Regex {
                    field,
                    value: v.clone(),
                    source: Box::new(source),
                })
            })
            .collect::<Result<_, _>>()?;
        self.push(move |flow| {
            get(flow).is_some_and(|text| regexes.iter().any(|r| r.is_match(&text)))
        });
        Ok(())
    }

    fn http_methods(&mut self, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let methods: Vec<String> = values.iter().map(|m| m.to_ascii_uppercase()).collect();
        self.push(move |flow| match l7_record(flow) {
            Some(Record::Http(http)) => {
                methods.iter().any(|m| m.eq_ignore_ascii_case(&http.method))
            }
            _ => false,
        });
    }

    fn tcp_flags(&mut self, values: &[TcpFlags]) {
        if values.is_empty() {
            return;
        }
        let wanted = values.to_vec();
        self.push(move |flow| {
            let Some(Protocol::Tcp(tcp)) = flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref())
            else {
                return false;
            };
            let Some(have) = tcp.flags.as_ref() else {
                return false;
            };
            wanted.iter().any(|want| flags_subset(want, have))
        });
    }

    fn node_names(&mut self, values: &[String]) -> Result<(), FilterError> {
        if values.is_empty() {
            return Ok(());
        }
        let patterns: Vec<NodePattern> = values
            .iter()
            .map(|v| NodePattern::parse(v))
            .collect::<Result<_, _>>()
            .map_err(|source| FilterError::NodeName { source })?;
        self.push(move |flow| patterns.iter().any(|p| p.matches(&flow.node_name)));
        Ok(())
    }
}

/// Every flag set in `want` is set in `have`.
fn flags_subset(want: &TcpFlags, have: &TcpFlags) -> bool {
    let bits = |f: &TcpFlags| [f.fin, f.syn, f.rst, f.psh, f.ack, f.urg, f.ece, f.cwr, f.ns];
    bits(want).iter().zip(bits(have)).all(|(w, h)| !*w || h)
}

#[cfg(test)]
mod tests;
