//! Policy resolution: the rules of a [`Repository`] and what their selectors
//! select ([`SelectorCache`]) turned into one endpoint's desired policy map
//! state ([`EndpointPolicy`]), following Cilium's semantics:
//!
//! - A direction is enforced when a rule selecting the endpoint puts it into
//!   default deny for that direction ([`Rule::default_deny_ingress`]), or
//!   always/never under those [`EnforcementMode`]s. When only rules with
//!   `enableDefaultDeny: false` select it, the direction stays unenforced
//!   unless they deny something; then it is enforced with an allow-all entry
//!   so that their denies take effect.
//! - Peers without ports give identity × every protocol and port; ports
//!   without peers give identity 0 (any peer); an entry with neither
//!   (`ingress: [{}]`) allows nothing.
//! - Port ranges become prefix-aligned blocks ([`port_blocks`]). Protocol
//!   `ANY` on a port becomes TCP, UDP and SCTP entries (a policy key can only
//!   wildcard the protocol together with every port); `ANY` on port 0 is
//!   protocol 0.
//! - Named ports resolve against the endpoint's own container ports on
//!   ingress, and against the ports of the pods peers may be on egress
//!   ([`ResolveOptions::peer_named_ports`]): as in Cilium, an egress name
//!   resolves per protocol only when every pod that declares it gives it the
//!   same number; an unknown or ambiguous name allows nothing.
//! - ICMP fields become protocol 1 (or 58) with the type as the port.
//! - Deny entries replace allows on the same key and remove allows they
//!   cover; the datapath lookup lets any remaining deny win.
//! - L7 rules are treated as their L4 ports (no proxy redirect yet).
//!
//! Peers not resolved yet select nothing: `from/toNodes`, `from/toGroups`,
//! `toFQDNs`, `toServices` and CIDR group references. `from/toRequires` is
//! ignored.

use std::collections::{BTreeMap, BTreeSet};

use crate::enforcement::EnforcementMode;
use crate::identities::IDENTITY_HOST;
use crate::labels::{Labels, SOURCE_RESERVED};
use crate::mapstate::{port_blocks, proto, EndpointPolicy, PolicyEntry, PolicyKey};
use crate::peers::{Cidr, CidrRule, Entity};
use crate::ports::{IcmpFamily, IcmpRule, Port, PortProtocol, PortSpec, Protocol};
use crate::repository::Repository;
use crate::rule::{EgressRule, IngressRule, Rule};
use crate::selector::EndpointSelector;
use crate::selector_cache::{PeerSelector, Selection, SelectorCache};

/// An endpoint's named container ports: name → (port, protocol).
pub type NamedPorts = BTreeMap<String, (u16, Protocol)>;

/// Agent settings and cluster-wide facts that shape resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// `enable-policy`.
    pub enforcement: EnforcementMode,
    /// `allow-localhost=always`: the host may always reach its endpoints.
    pub allow_localhost: bool,
    /// The named container ports of every pod an egress peer may be (Cilium
    /// keeps the same union in its ipcache): name → each `(port, protocol)`
    /// some pod declares under that name.
    pub peer_named_ports: BTreeMap<String, Vec<(u16, Protocol)>>,
}

impl ResolveOptions {
    /// The one port number `name` stands for with `protocol` among the peers'
    /// ports; `None` when no pod declares it or pods disagree on the number.
    fn peer_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let mut numbers = self
            .peer_named_ports
            .get(name)?
            .iter()
            .filter(|(port, p)| *p == protocol && *port != 0)
            .map(|(port, _)| *port);
        let first = numbers.next()?;
        numbers.all(|port| port == first).then_some(first)
    }
}

/// One ingress or egress section entry, direction-neutral.
struct Section<'a, P> {
    peers: Vec<PeerSelector>,
    has_peers: bool,
    ports: &'a [P],
    icmps: &'a [IcmpRule],
}

fn cidr_peers(cidrs: &[Cidr], sets: &[CidrRule]) -> Vec<PeerSelector> {
    let plain = cidrs.iter().map(|c| PeerSelector::Cidr {
        cidr: c.0,
        except: Vec::new(),
    });
    let sets = sets.iter().filter_map(|s| {
        s.cidr.map(|cidr| PeerSelector::Cidr {
            cidr,
            except: s.except.clone(),
        })
    });
    plain.chain(sets).collect()
}

fn endpoint_peers(sels: &[EndpointSelector], entities: &[Entity]) -> Vec<PeerSelector> {
    sels.iter()
        .cloned()
        .map(PeerSelector::Endpoints)
        .chain(entities.iter().copied().map(PeerSelector::Entity))
        .collect()
}

fn ingress_section<P>(r: &IngressRule<P>) -> Section<'_, P> {
    let mut peers = endpoint_peers(&r.from_endpoints, &r.from_entities);
    peers.extend(cidr_peers(&r.from_cidr, &r.from_cidr_set));
    Section {
        has_peers: !r.from_endpoints.is_empty()
            || !r.from_entities.is_empty()
            || !r.from_cidr.is_empty()
            || !r.from_cidr_set.is_empty()
            || !r.from_nodes.is_empty()
            || !r.from_groups.is_empty(),
        peers,
        ports: &r.to_ports,
        icmps: &r.icmps,
    }
}

fn egress_section<P>(r: &EgressRule<P>) -> Section<'_, P> {
    let mut peers = endpoint_peers(&r.to_endpoints, &r.to_entities);
    peers.extend(cidr_peers(&r.to_cidr, &r.to_cidr_set));
    Section {
        has_peers: !r.to_endpoints.is_empty()
            || !r.to_entities.is_empty()
            || !r.to_cidr.is_empty()
            || !r.to_cidr_set.is_empty()
            || !r.to_nodes.is_empty()
            || !r.to_groups.is_empty()
            || !r.to_fqdns.is_empty()
            || !r.to_services.is_empty(),
        peers,
        ports: &r.to_ports,
        icmps: &r.icmps,
    }
}

/// Every peer selector a rule uses.
pub fn rule_selectors(rule: &Rule) -> Vec<PeerSelector> {
    let mut out = Vec::new();
    out.extend(rule.ingress.iter().flat_map(|r| ingress_section(r).peers));
    out.extend(
        rule.ingress_deny
            .iter()
            .flat_map(|r| ingress_section(r).peers),
    );
    out.extend(rule.egress.iter().flat_map(|r| egress_section(r).peers));
    out.extend(
        rule.egress_deny
            .iter()
            .flat_map(|r| egress_section(r).peers),
    );
    out
}

impl SelectorCache {
    /// Registers every selector the repository's rules use and forgets the
    /// others.
    pub fn sync_rules(&mut self, repo: &Repository) {
        let mut in_use = BTreeSet::new();
        for (_, rule) in repo.rules() {
            for selector in rule_selectors(rule) {
                in_use.insert(selector.key());
                self.add_selector(selector);
            }
        }
        self.retain(&in_use);
    }
}

/// Whether a rule applies to the endpoint: its endpoint selector, or for the
/// host endpoint (`reserved:host`) its node selector.
pub fn rule_selects(rule: &Rule, endpoint: &Labels) -> bool {
    let is_host = endpoint.values(SOURCE_RESERVED, "host").next().is_some();
    match (&rule.endpoint_selector, &rule.node_selector) {
        (Some(sel), _) => sel.matches(endpoint),
        (None, Some(sel)) => is_host && sel.matches(endpoint),
        (None, None) => false,
    }
}

/// Collects allow and deny keys for one endpoint.
struct Builder<'a> {
    cache: &'a SelectorCache,
    named_ports: &'a NamedPorts,
    options: &'a ResolveOptions,
    allows: BTreeMap<PolicyKey, PolicyEntry>,
    denies: BTreeMap<PolicyKey, PolicyEntry>,
}

impl Builder<'_> {
    fn add<P: PortSpec>(
        &mut self,
        section: Section<'_, P>,
        egress: bool,
        deny: bool,
        origin: &str,
    ) {
        let ports = self.port_keys(&section, egress);
        let identities = if section.has_peers {
            let mut ids = BTreeSet::new();
            for peer in &section.peers {
                match self.cache.selection(peer) {
                    Selection::Wildcard => {
                        ids.insert(0);
                    }
                    Selection::Identities(set) => ids.extend(set),
                }
            }
            if ids.contains(&0) {
                BTreeSet::from([0])
            } else {
                ids
            }
        } else if section.ports.is_empty() && section.icmps.is_empty() {
            BTreeSet::new()
        } else {
            BTreeSet::from([0])
        };
        let target = if deny {
            &mut self.denies
        } else {
            &mut self.allows
        };
        for identity in identities {
            for &(protocol, dport, prefix_len) in &ports {
                let key = PolicyKey {
                    identity,
                    egress,
                    protocol,
                    dport,
                    prefix_len,
                };
                let entry = target.entry(key).or_insert_with(|| PolicyEntry {
                    deny,
                    ..PolicyEntry::default()
                });
                entry.derived_from.insert(origin.to_owned());
            }
        }
    }

    /// `(protocol, first port, prefix length)` for a section's L4 part.
    fn port_keys<P: PortSpec>(&self, section: &Section<'_, P>, egress: bool) -> Vec<(u8, u16, u8)> {
        if section.ports.is_empty() && section.icmps.is_empty() {
            return vec![(proto::ANY, 0, 0)];
        }
        let mut keys = Vec::new();
        for rule in section.ports {
            if rule.ports().is_empty() {
                keys.push((proto::ANY, 0, 0));
            }
            for pp in rule.ports() {
                keys.extend(self.port_protocol_keys(pp, egress));
            }
        }
        for icmp in section.icmps {
            for field in &icmp.fields {
                let protocol = match field.family {
                    IcmpFamily::IPv4 => proto::ICMP,
                    IcmpFamily::IPv6 => proto::ICMPV6,
                };
                if let Some(code) = field.type_code() {
                    keys.push((protocol, u16::from(code), 16));
                }
            }
        }
        keys
    }

    fn port_protocol_keys(&self, pp: &PortProtocol, egress: bool) -> Vec<(u8, u16, u8)> {
        match &pp.port {
            Port::Name(name) => self
                .resolve_name(name, pp.protocol, egress)
                .into_iter()
                .flat_map(|(port, protocol)| range_keys(port..=port, protocol))
                .collect(),
            Port::Number(_) => match pp.range() {
                Some(range) => range_keys(range, pp.protocol),
                None => Vec::new(),
            },
        }
    }

    /// The `(port, protocol)`s a named port stands for: the endpoint's own
    /// port on ingress, the peers' ports (per protocol) on egress.
    fn resolve_name(&self, name: &str, protocol: Protocol, egress: bool) -> Vec<(u16, Protocol)> {
        if !egress {
            return match self.named_ports.get(name) {
                Some(&(port, named)) if protocol == Protocol::Any || protocol == named => {
                    vec![(port, named)]
                }
                _ => Vec::new(),
            };
        }
        let protocols: &[Protocol] = match protocol {
            Protocol::Any => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            Protocol::Tcp => &[Protocol::Tcp],
            Protocol::Udp => &[Protocol::Udp],
            Protocol::Sctp => &[Protocol::Sctp],
        };
        protocols
            .iter()
            .filter_map(|&p| self.options.peer_port(name, p).map(|port| (port, p)))
            .collect()
    }
}

/// `(protocol, first port, prefix length)` blocks covering `range` for
/// `protocol`.
fn range_keys(range: std::ops::RangeInclusive<u16>, protocol: Protocol) -> Vec<(u8, u16, u8)> {
    let every_port = range == (0..=u16::MAX);
    let protocols: &[u8] = match protocol {
        Protocol::Tcp => &[proto::TCP],
        Protocol::Udp => &[proto::UDP],
        Protocol::Sctp => &[proto::SCTP],
        Protocol::Any if every_port => &[proto::ANY],
        Protocol::Any => &[proto::TCP, proto::UDP, proto::SCTP],
    };
    let blocks = port_blocks(range);
    protocols
        .iter()
        .flat_map(|&p| blocks.iter().map(move |&(port, len)| (p, port, len)))
        .collect()
}

/// Resolves the policy of the endpoint with `endpoint` labels and its own
/// `named_ports` (its containers' ports, for ingress named ports).
pub fn resolve(
    endpoint: &Labels,
    repo: &Repository,
    cache: &SelectorCache,
    named_ports: &NamedPorts,
    options: &ResolveOptions,
) -> EndpointPolicy {
    let mut builder = Builder {
        cache,
        named_ports,
        options,
        allows: BTreeMap::new(),
        denies: BTreeMap::new(),
    };
    let (mut default_deny_in, mut default_deny_eg) = (false, false);
    let (mut section_in, mut section_eg) = (false, false);
    for (origin, rule) in repo.rules().filter(|(_, r)| rule_selects(r, endpoint)) {
        let origin = origin.to_string();
        default_deny_in |= rule.default_deny_ingress();
        default_deny_eg |= rule.default_deny_egress();
        section_in |= !rule.ingress.is_empty() || !rule.ingress_deny.is_empty();
        section_eg |= !rule.egress.is_empty() || !rule.egress_deny.is_empty();
        for r in &rule.ingress {
            builder.add(ingress_section(r), false, false, &origin);
        }
        for r in &rule.ingress_deny {
            builder.add(ingress_section(r), false, true, &origin);
        }
        for r in &rule.egress {
            builder.add(egress_section(r), true, false, &origin);
        }
        for r in &rule.egress_deny {
            builder.add(egress_section(r), true, true, &origin);
        }
    }
    let Builder {
        mut allows, denies, ..
    } = builder;
    let has_deny = |egress: bool| denies.keys().any(|k| k.egress == egress);
    let ingress = enforcement(
        options.enforcement,
        default_deny_in,
        section_in,
        has_deny(false),
    );
    let egress = enforcement(
        options.enforcement,
        default_deny_eg,
        section_eg,
        has_deny(true),
    );
    for (egress_dir, state) in [(false, ingress), (true, egress)] {
        if state == Enforced::WithAllowAll {
            allow_all(&mut allows, egress_dir, "enableDefaultDeny: false");
        }
    }
    if options.allow_localhost && ingress != Enforced::No {
        let key = PolicyKey {
            identity: IDENTITY_HOST,
            egress: false,
            protocol: proto::ANY,
            dport: 0,
            prefix_len: 0,
        };
        allows
            .entry(key)
            .or_default()
            .derived_from
            .insert("allow-localhost".to_owned());
    }
    allows.retain(|key, _| !denies.keys().any(|d| d.covers(key)));
    let mut entries = allows;
    entries.extend(denies);
    entries.retain(|k, _| {
        if k.egress {
            egress != Enforced::No
        } else {
            ingress != Enforced::No
        }
    });
    EndpointPolicy {
        ingress_enforced: ingress != Enforced::No,
        egress_enforced: egress != Enforced::No,
        entries,
    }
}

/// How one direction is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enforced {
    No,
    Yes,
    WithAllowAll,
}

fn enforcement(mode: EnforcementMode, default_deny: bool, section: bool, deny: bool) -> Enforced {
    match mode {
        EnforcementMode::Never => Enforced::No,
        EnforcementMode::Always => Enforced::Yes,
        EnforcementMode::Default if default_deny => Enforced::Yes,
        EnforcementMode::Default if section && deny => Enforced::WithAllowAll,
        EnforcementMode::Default => Enforced::No,
    }
}

fn allow_all(allows: &mut BTreeMap<PolicyKey, PolicyEntry>, egress: bool, origin: &str) {
    let key = PolicyKey {
        identity: 0,
        egress,
        protocol: proto::ANY,
        dport: 0,
        prefix_len: 0,
    };
    allows
        .entry(key)
        .or_default()
        .derived_from
        .insert(origin.to_owned());
}
