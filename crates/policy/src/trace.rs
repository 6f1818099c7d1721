//! `cilium policy trace`: would traffic from one set of labels to another on
//! a port be allowed, and which rule decided it. Both sides are checked, as
//! the datapath checks them: the source's egress, then the destination's
//! ingress.

use crate::labels::Labels;
use crate::mapstate::EndpointPolicy;
use crate::repository::Repository;
use crate::resolve::{resolve, NamedPorts, ResolveOptions};
use crate::selector_cache::SelectorCache;

/// Identity numbers given to traced labels no known identity carries (in
/// the range Cilium never allocates from: above the local-scope bit).
const TRACE_SOURCE_ID: u32 = 0xFFFF_FFF0;
const TRACE_DESTINATION_ID: u32 = 0xFFFF_FFF1;

/// The answer of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the traffic passes both sides.
    pub allowed: bool,
    /// What decided it, both sides in one line.
    pub reason: String,
    /// The source's egress policy.
    pub egress: SideVerdict,
    /// The destination's ingress policy.
    pub ingress: SideVerdict,
}

/// What one side's policy says about the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideVerdict {
    /// Whether this side lets the traffic through.
    pub allowed: bool,
    /// Whether this side enforces policy at all.
    pub enforced: bool,
    /// The rules that decided it (`<Kind> <namespace>/<name> rule <n>`); empty when no
    /// rule matched or policy is not enforced.
    pub rules: Vec<String>,
    /// The decision in words.
    pub reason: String,
}

/// What is traced: traffic from `src` to `dst` on `dport` over IP protocol
/// `protocol` (ICMP: `dport` is the type).
#[derive(Clone, Copy, Debug)]
pub struct TraceQuery<'a> {
    pub src: &'a Labels,
    pub dst: &'a Labels,
    pub dport: u16,
    pub protocol: u8,
    /// The destination's named container ports, for its ingress named ports
    /// (egress named ports resolve through `options.peer_named_ports`).
    pub dst_named_ports: &'a NamedPorts,
}

/// Traces `query` through both sides' policies.
pub fn trace(
    query: TraceQuery<'_>,
    repo: &Repository,
    cache: &SelectorCache,
    options: &ResolveOptions,
) -> Verdict {
    let TraceQuery {
        src,
        dst,
        dport,
        protocol,
        dst_named_ports,
    } = query;
    let mut cache = cache.clone();
    let src_id = identity_of(&mut cache, src, TRACE_SOURCE_ID);
    let dst_id = identity_of(&mut cache, dst, TRACE_DESTINATION_ID);
    let src_policy = resolve(src, repo, &cache, &NamedPorts::new(), options);
    let dst_policy = resolve(dst, repo, &cache, dst_named_ports, options);
    let egress = side(&src_policy, dst_id, true, protocol, dport);
    let ingress = side(&dst_policy, src_id, false, protocol, dport);
    Verdict {
        allowed: egress.allowed && ingress.allowed,
        reason: format!(
            "egress of source: {}; ingress of destination: {}",
            egress.reason, ingress.reason
        ),
        egress,
        ingress,
    }
}

fn identity_of(cache: &mut SelectorCache, labels: &Labels, fallback: u32) -> u32 {
    let known = cache
        .view()
        .identities
        .iter()
        .find(|(_, l)| *l == labels)
        .map(|(&id, _)| id);
    known.unwrap_or_else(|| {
        cache.upsert_identity(fallback, labels.clone());
        fallback
    })
}

fn side(policy: &EndpointPolicy, peer: u32, egress: bool, protocol: u8, dport: u16) -> SideVerdict {
    let enforced = if egress {
        policy.egress_enforced
    } else {
        policy.ingress_enforced
    };
    if !enforced {
        return SideVerdict {
            allowed: true,
            enforced,
            rules: Vec::new(),
            reason: "allowed (not enforced)".to_owned(),
        };
    }
    match policy.lookup(peer, egress, protocol, dport) {
        None => SideVerdict {
            allowed: false,
            enforced,
            rules: Vec::new(),
            reason: "no rule matched (default deny)".to_owned(),
        },
        Some((_, entry)) => {
            let rules: Vec<String> = entry.derived_from.iter().cloned().collect();
            let verb = if entry.deny { "denied" } else { "allowed" };
            SideVerdict {
                allowed: !entry.deny,
                enforced,
                reason: format!("{verb} by {}", rules.join(", ")),
                rules,
            }
        }
    }
}
