//! Semantic checks of parsed policies, the ones Cilium's rule sanitizer and
//! the Kubernetes API server make, each failure located by its field path
//! (`spec.ingress[0].toPorts[0].ports[0].endPort`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::l7::{HttpRule, KafkaRule, L7Rules, KAFKA_API_KEYS};
use crate::labels::{split_source, SOURCE_ANY};
use crate::peers::{CidrRule, FqdnSelector, ServiceSelector};
use crate::ports::{IcmpRule, IcmpType, Port, PortProtocol, PortSpec, Protocol};
use crate::rule::{EgressRule, IngressRule, Rule};
use crate::selector::{EndpointSelector, LabelSelectorRequirement, Operator};
use crate::violation::{Violation, MAX_ICMP_FIELDS, MAX_KAFKA_TOPIC, MAX_PORTS};

/// A dotted field path, as printed in errors.
#[derive(Clone, Debug)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// A path starting at a top-level field.
    pub(crate) fn root(name: &str) -> FieldPath {
        FieldPath(name.to_owned())
    }

    /// The path of a field below this one.
    pub(crate) fn field(&self, name: &str) -> FieldPath {
        FieldPath(format!("{}.{name}", self.0))
    }

    /// The path of a list element below this one.
    pub(crate) fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }
}

/// A violation at a path.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) path: String,
    pub(crate) violation: Violation,
}

pub(crate) type Check = Result<(), Invalid>;

/// Fails the check at `path`.
pub(crate) fn fail(path: &FieldPath, violation: Violation) -> Check {
    Err(Invalid {
        path: path.0.clone(),
        violation,
    })
}

/// Checks a rule; `clusterwide` allows `nodeSelector`.
pub(crate) fn check_rule(rule: &Rule, path: &FieldPath, clusterwide: bool) -> Check {
    let host = match (&rule.endpoint_selector, &rule.node_selector) {
        (None, None) => return fail(path, Violation::NoSelector),
        (Some(_), Some(_)) => return fail(&path.field("nodeSelector"), Violation::BothSelectors),
        (Some(sel), None) => {
            check_endpoint_selector(sel, &path.field("endpointSelector"))?;
            false
        }
        (None, Some(sel)) => {
            let path = path.field("nodeSelector");
            if !clusterwide {
                return fail(&path, Violation::NodeSelectorNotClusterwide);
            }
            check_endpoint_selector(sel, &path)?;
            true
        }
    };
    let section = path.field("ingress");
    for (i, r) in rule.ingress.iter().enumerate() {
        check_ingress(r, &section.index(i), false, host)?;
    }
    let section = path.field("ingressDeny");
    for (i, r) in rule.ingress_deny.iter().enumerate() {
        check_ingress(r, &section.index(i), true, host)?;
    }
    let section = path.field("egress");
    for (i, r) in rule.egress.iter().enumerate() {
        check_egress(r, &section.index(i), false, host)?;
    }
    let section = path.field("egressDeny");
    for (i, r) in rule.egress_deny.iter().enumerate() {
        check_egress(r, &section.index(i), true, host)?;
    }
    Ok(())
}

fn check_ingress<P: PortSpec>(
    r: &IngressRule<P>,
    path: &FieldPath,
    deny: bool,
    host: bool,
) -> Check {
    check_l3_exclusive(
        path,
        &[
            ("fromEndpoints", r.from_endpoints.len()),
            ("fromCIDR", r.from_cidr.len()),
            ("fromCIDRSet", r.from_cidr_set.len()),
            ("fromEntities", r.from_entities.len()),
            ("fromNodes", r.from_nodes.len()),
            ("fromGroups", r.from_groups.len()),
        ],
    )?;
    if deny && r.authentication.is_some() {
        return fail(
            &path.field("authentication"),
            Violation::NotInDeny {
                field: "authentication",
            },
        );
    }
    check_selectors(&r.from_endpoints, &path.field("fromEndpoints"))?;
    check_selectors(&r.from_requires, &path.field("fromRequires"))?;
    check_selectors(&r.from_nodes, &path.field("fromNodes"))?;
    check_cidr_rules(&r.from_cidr_set, &path.field("fromCIDRSet"))?;
    check_l4(&r.to_ports, &r.icmps, path, true, host)
}

fn check_egress<P: PortSpec>(r: &EgressRule<P>, path: &FieldPath, deny: bool, host: bool) -> Check {
    check_l3_exclusive(
        path,
        &[
            ("toEndpoints", r.to_endpoints.len()),
            ("toCIDR", r.to_cidr.len()),
            ("toCIDRSet", r.to_cidr_set.len()),
            ("toEntities", r.to_entities.len()),
            ("toServices", r.to_services.len()),
            ("toFQDNs", r.to_fqdns.len()),
            ("toNodes", r.to_nodes.len()),
            ("toGroups", r.to_groups.len()),
        ],
    )?;
    if deny && !r.to_fqdns.is_empty() {
        return fail(
            &path.field("toFQDNs"),
            Violation::NotInDeny { field: "toFQDNs" },
        );
    }
    if deny && r.authentication.is_some() {
        return fail(
            &path.field("authentication"),
            Violation::NotInDeny {
                field: "authentication",
            },
        );
    }
    if !r.to_services.is_empty() && !r.to_ports.is_empty() {
        return fail(&path.field("toPorts"), Violation::ToServicesWithToPorts);
    }
    check_selectors(&r.to_endpoints, &path.field("toEndpoints"))?;
    check_selectors(&r.to_requires, &path.field("toRequires"))?;
    check_selectors(&r.to_nodes, &path.field("toNodes"))?;
    check_cidr_rules(&r.to_cidr_set, &path.field("toCIDRSet"))?;
    let fqdns = path.field("toFQDNs");
    for (i, f) in r.to_fqdns.iter().enumerate() {
        check_fqdn(f, &fqdns.index(i))?;
    }
    let services = path.field("toServices");
    for (i, s) in r.to_services.iter().enumerate() {
        check_service(s, &services.index(i))?;
    }
    check_l4(&r.to_ports, &r.icmps, path, false, host)
}

fn check_l3_exclusive(path: &FieldPath, members: &[(&'static str, usize)]) -> Check {
    let mut present = members
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, _)| *name);
    if let (Some(first), Some(second)) = (present.next(), present.next()) {
        return fail(
            &path.field(second),
            Violation::L3Combination { first, second },
        );
    }
    Ok(())
}

fn check_l4<P: PortSpec>(
    to_ports: &[P],
    icmps: &[IcmpRule],
    path: &FieldPath,
    ingress: bool,
    host: bool,
) -> Check {
    if !icmps.is_empty() && !to_ports.is_empty() {
        return fail(&path.field("icmps"), Violation::IcmpsWithToPorts);
    }
    let section = path.field("toPorts");
    for (i, p) in to_ports.iter().enumerate() {
        check_port_rule(p, &section.index(i), ingress, host)?;
    }
    let section = path.field("icmps");
    for (i, r) in icmps.iter().enumerate() {
        check_icmp(r, &section.index(i))?;
    }
    Ok(())
}

fn check_port_rule<P: PortSpec>(p: &P, path: &FieldPath, ingress: bool, host: bool) -> Check {
    let ports = p.ports();
    let ports_path = path.field("ports");
    if ports.len() > MAX_PORTS {
        return fail(&ports_path, Violation::TooManyPorts { count: ports.len() });
    }
    for (i, pp) in ports.iter().enumerate() {
        check_port_protocol(pp, &ports_path.index(i))?;
    }
    let Some(rule) = p.allow_rule() else {
        return Ok(());
    };
    let l7 = rule.rules.as_ref().filter(|r| !r.is_empty());
    let names = path.field("serverNames");
    for (i, name) in rule.server_names.iter().enumerate() {
        if name.is_empty() {
            return fail(&names.index(i), Violation::EmptyServerName);
        }
    }
    if !rule.server_names.is_empty() && l7.is_some() && rule.terminating_tls.is_none() {
        return fail(&names, Violation::ServerNamesWithoutTls);
    }
    for (field, tls) in [
        ("terminatingTLS", &rule.terminating_tls),
        ("originatingTLS", &rule.originating_tls),
    ] {
        if tls.as_ref().is_some_and(|t| t.secret.name.is_empty()) {
            return fail(
                &path.field(field).field("secret").field("name"),
                Violation::EmptySecretName,
            );
        }
    }
    if rule.listener.is_some() {
        if ingress {
            return fail(&path.field("listener"), Violation::ListenerOnIngress);
        }
        if l7.is_some() {
            return fail(&path.field("listener"), Violation::ListenerWithL7);
        }
    }
    match l7 {
        Some(_) if host => fail(&path.field("rules"), Violation::L7InHostPolicy),
        Some(l7) => check_l7(l7, ports, path, ingress),
        None => Ok(()),
    }
}

fn check_port_protocol(pp: &PortProtocol, path: &FieldPath) -> Check {
    let Some(end_port) = pp.end_port.filter(|e| *e != 0) else {
        return Ok(());
    };
    let at = path.field("endPort");
    match &pp.port {
        Port::Name(name) => fail(
            &at,
            Violation::EndPortWithNamedPort {
                port: name.clone(),
                end_port,
            },
        ),
        Port::Number(0) => fail(&at, Violation::EndPortWithoutPort { end_port }),
        Port::Number(port) if end_port < *port => fail(
            &at,
            Violation::EndPortBelowPort {
                port: *port,
                end_port,
            },
        ),
        Port::Number(_) => Ok(()),
    }
}

/// Checks the L7 rules of the port rule at `path`, which lists `ports`.
fn check_l7(l7: &L7Rules, ports: &[PortProtocol], path: &FieldPath, ingress: bool) -> Check {
    let rules_path = path.field("rules");
    let kinds = l7.kinds();
    if kinds.len() > 1 {
        return fail(
            &rules_path,
            Violation::L7MixedKinds {
                kinds: kinds.join(" and "),
            },
        );
    }
    if l7.l7.is_some() && l7.l7proto.is_none() {
        return fail(&rules_path.field("l7"), Violation::L7WithoutProto);
    }
    let dns = l7.dns.is_some();
    if dns && ingress {
        return fail(&rules_path.field("dns"), Violation::DnsOnIngress);
    }
    if dns && ports.is_empty() {
        return fail(&path.field("ports"), Violation::DnsWithoutPorts);
    }
    let (kind, allowed) = match kinds.first() {
        Some(&"dns") => ("DNS", "TCP, UDP or ANY"),
        Some(&"kafka") => ("Kafka", "TCP or ANY"),
        Some(&"l7proto") => ("l7proto", "TCP or ANY"),
        _ => ("HTTP", "TCP or ANY"),
    };
    let ports_path = path.field("ports");
    for (i, pp) in ports.iter().enumerate() {
        let at = ports_path.index(i);
        let carries = match pp.protocol {
            Protocol::Tcp | Protocol::Any => true,
            Protocol::Udp => dns,
            Protocol::Sctp => false,
        };
        if !carries {
            return fail(
                &at.field("protocol"),
                Violation::L7Protocol {
                    kind,
                    allowed,
                    protocol: pp.protocol,
                },
            );
        }
        if pp.port == Port::Number(0) {
            return fail(&at.field("port"), Violation::L7OnPortZero);
        }
        if dns && matches!(pp.port, Port::Number(p) if pp.end_port.is_some_and(|e| e > p)) {
            return fail(&at.field("endPort"), Violation::DnsPortRange);
        }
    }
    if let Some(http) = &l7.http {
        let section = rules_path.field("http");
        for (i, h) in http.iter().enumerate() {
            check_http(h, &section.index(i))?;
        }
    }
    if let Some(kafka) = &l7.kafka {
        let section = rules_path.field("kafka");
        for (i, k) in kafka.iter().enumerate() {
            check_kafka(k, &section.index(i))?;
        }
    }
    if let Some(dns) = &l7.dns {
        let section = rules_path.field("dns");
        for (i, f) in dns.iter().enumerate() {
            check_fqdn(f, &section.index(i))?;
        }
    }
    Ok(())
}

fn check_http(h: &HttpRule, path: &FieldPath) -> Check {
    for (field, value) in [("path", &h.path), ("method", &h.method), ("host", &h.host)] {
        if let Some(pattern) = value {
            if let Err(source) = Regex::new(pattern) {
                return fail(
                    &path.field(field),
                    Violation::Regex {
                        field,
                        pattern: pattern.clone(),
                        source,
                    },
                );
            }
        }
    }
    let section = path.field("headerMatches");
    for (i, m) in h.header_matches.iter().enumerate() {
        let at = section.index(i);
        if m.name.is_empty() {
            return fail(&at.field("name"), Violation::EmptyHeaderName);
        }
        if m.secret.as_ref().is_some_and(|s| s.name.is_empty()) {
            return fail(
                &at.field("secret").field("name"),
                Violation::EmptySecretName,
            );
        }
    }
    Ok(())
}

fn check_kafka(k: &KafkaRule, path: &FieldPath) -> Check {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let (role, api_key) = (non_empty(&k.role), non_empty(&k.api_key));
    if role.is_some() && api_key.is_some() {
        return fail(path, Violation::KafkaRoleAndApiKey);
    }
    if let Some(api_key) = api_key {
        if !KAFKA_API_KEYS.contains(&api_key.to_ascii_lowercase().as_str()) {
            return fail(&path.field("apiKey"), Violation::KafkaApiKey { api_key });
        }
    }
    if let Some(role) = role {
        if !matches!(role.to_ascii_lowercase().as_str(), "produce" | "consume") {
            return fail(&path.field("role"), Violation::KafkaRole { role });
        }
    }
    if let Some(api_version) = non_empty(&k.api_version) {
        if api_version.parse::<i16>().map_or(true, |v| v < 0) {
            return fail(
                &path.field("apiVersion"),
                Violation::KafkaApiVersion { api_version },
            );
        }
    }
    if let Some(topic) = non_empty(&k.topic) {
        let valid = topic.len() <= MAX_KAFKA_TOPIC
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return fail(&path.field("topic"), Violation::KafkaTopic { topic });
        }
    }
    Ok(())
}

fn check_fqdn(f: &FqdnSelector, path: &FieldPath) -> Check {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    match (&f.match_name, &f.match_pattern) {
        (None, None) => fail(path, Violation::FqdnEmpty),
        (Some(_), Some(_)) => fail(path, Violation::FqdnBoth),
        (Some(name), None) => {
            if name.is_empty() || !name.bytes().all(name_char) {
                return fail(
                    &path.field("matchName"),
                    Violation::FqdnCharacters {
                        field: "matchName",
                        value: name.clone(),
                        extra: "",
                    },
                );
            }
            Ok(())
        }
        (None, Some(pattern)) => {
            if pattern.is_empty() || !pattern.bytes().all(|b| name_char(b) || b == b'*') {
                return fail(
                    &path.field("matchPattern"),
                    Violation::FqdnCharacters {
                        field: "matchPattern",
                        value: pattern.clone(),
                        extra: " or '*'",
                    },
                );
            }
            Ok(())
        }
    }
}

fn check_service(s: &ServiceSelector, path: &FieldPath) -> Check {
    match (&s.k8s_service, &s.k8s_service_selector) {
        (None, Some(labels)) => check_endpoint_selector(
            &labels.selector,
            &path.field("k8sServiceSelector").field("selector"),
        ),
        (Some(_), None) => Ok(()),
        _ => fail(path, Violation::ServiceSelectorCount),
    }
}

fn check_icmp(r: &IcmpRule, path: &FieldPath) -> Check {
    let fields = path.field("fields");
    if r.fields.len() > MAX_ICMP_FIELDS {
        return fail(
            &fields,
            Violation::TooManyIcmpFields {
                count: r.fields.len(),
            },
        );
    }
    for (i, f) in r.fields.iter().enumerate() {
        if let (IcmpType::Name(name), None) = (&f.icmp_type, f.type_code()) {
            return fail(
                &fields.index(i).field("type"),
                Violation::IcmpType {
                    name: name.clone(),
                    family: f.family,
                },
            );
        }
    }
    Ok(())
}

fn check_cidr_rules(rules: &[CidrRule], path: &FieldPath) -> Check {
    for (i, c) in rules.iter().enumerate() {
        let at = path.index(i);
        match (&c.cidr, &c.cidr_group_ref) {
            (None, None) => return fail(&at, Violation::CidrMissing),
            (Some(_), Some(_)) => return fail(&at, Violation::CidrAndGroup),
            (None, Some(_)) if !c.except.is_empty() => {
                return fail(&at.field("except"), Violation::ExceptWithoutCidr)
            }
            _ => {}
        }
        if let Some(cidr) = &c.cidr {
            check_except(cidr, &c.except, &at.field("except"))?;
        }
    }
    Ok(())
}

/// Checks that every exception lies inside `cidr`.
pub(crate) fn check_except(
    cidr: &ipnet::IpNet,
    except: &[ipnet::IpNet],
    path: &FieldPath,
) -> Check {
    for (i, e) in except.iter().enumerate() {
        if !cidr.contains(e) {
            return fail(
                &path.index(i),
                Violation::ExceptOutside {
                    cidr: cidr.to_string(),
                    except: e.to_string(),
                },
            );
        }
    }
    Ok(())
}

fn check_selectors(selectors: &[EndpointSelector], path: &FieldPath) -> Check {
    for (i, sel) in selectors.iter().enumerate() {
        check_endpoint_selector(sel, &path.index(i))?;
    }
    Ok(())
}

fn check_endpoint_selector(sel: &EndpointSelector, path: &FieldPath) -> Check {
    check_selector_parts(&sel.match_labels, &sel.match_expressions, path, true)
}

/// Checks a selector's keys, values and operators. With `sourced` keys may
/// carry a Cilium source prefix (`k8s:app`).
pub(crate) fn check_selector_parts(
    match_labels: &BTreeMap<String, String>,
    match_expressions: &[LabelSelectorRequirement],
    path: &FieldPath,
    sourced: bool,
) -> Check {
    let labels_path = path.field("matchLabels");
    for (key, value) in match_labels {
        check_label_key(key, &labels_path, sourced)?;
        check_label_value(value, &labels_path)?;
    }
    let section = path.field("matchExpressions");
    for (i, r) in match_expressions.iter().enumerate() {
        let at = section.index(i);
        check_label_key(&r.key, &at.field("key"), sourced)?;
        match r.operator {
            Operator::In | Operator::NotIn if r.values.is_empty() => {
                return fail(
                    &at.field("values"),
                    Violation::ValuesRequired {
                        operator: r.operator,
                    },
                )
            }
            Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                return fail(
                    &at.field("values"),
                    Violation::ValuesNotAllowed {
                        operator: r.operator,
                    },
                )
            }
            _ => {}
        }
        for (j, v) in r.values.iter().enumerate() {
            check_label_value(v, &at.field("values").index(j))?;
        }
    }
    Ok(())
}

fn check_label_key(key: &str, path: &FieldPath, sourced: bool) -> Check {
    let name_part = if sourced {
        split_source(key, SOURCE_ANY).1
    } else {
        key
    };
    let bad = |reason| {
        fail(
            path,
            Violation::LabelKey {
                key: key.to_owned(),
                reason,
            },
        )
    };
    let (prefix, name) = match name_part.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, name_part),
    };
    if let Some(prefix) = prefix {
        if !is_dns_subdomain(prefix) {
            return bad("the prefix is not a DNS subdomain");
        }
    }
    if name.is_empty() {
        return bad("the name is empty");
    }
    if !is_label_token(name) {
        return bad("the name has characters or length Kubernetes does not allow");
    }
    Ok(())
}

fn check_label_value(value: &str, path: &FieldPath) -> Check {
    if value.is_empty() || is_label_token(value) {
        return Ok(());
    }
    fail(
        path,
        Violation::LabelValue {
            value: value.to_owned(),
        },
    )
}

/// A label name or value: 1–63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_label_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// RFC 1123 subdomain: at most 253 of `[a-z0-9.-]`, alphanumeric at both ends.
fn is_dns_subdomain(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=253).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}
