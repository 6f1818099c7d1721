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
    /// What decided it, per side.
    pub reason: String,
}

/// Traces traffic from `src` to `dst` on `dport` over IP protocol `protocol`
/// (ICMP: `dport` is the type).
pub fn trace(
    src: &Labels,
    dst: &Labels,
    dport: u16,
    protocol: u8,
    repo: &Repository,
    cache: &SelectorCache,
    options: &ResolveOptions,
) -> Verdict {
    let mut cache = cache.clone();
    let src_id = identity_of(&mut cache, src, TRACE_SOURCE_ID);
    let dst_id = identity_of(&mut cache, dst, TRACE_DESTINATION_ID);
    let none = NamedPorts::new();
    let src_policy = resolve(src, repo, &cache, &none, options);
    let dst_policy = resolve(dst, repo, &cache, &none, options);
    let (egress_ok, egress) = side(&src_policy, dst_id, true, protocol, dport);
    let (ingress_ok, ingress) = side(&dst_policy, src_id, false, protocol, dport);
    Verdict {
        allowed: egress_ok && ingress_ok,
        reason: format!("egress of source: {egress}; ingress of destination: {ingress}"),
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

fn side(
    policy: &EndpointPolicy,
    peer: u32,
    egress: bool,
    protocol: u8,
    dport: u16,
) -> (bool, String) {
    let enforced = if egress {
        policy.egress_enforced
    } else {
        policy.ingress_enforced
    };
    if !enforced {
        return (true, "allowed (not enforced)".to_owned());
    }
    match policy.lookup(peer, egress, protocol, dport) {
        None => (false, "no rule matched (default deny)".to_owned()),
        Some((_, entry)) => {
            let rules = entry
                .derived_from
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if entry.deny {
                (false, format!("denied by {rules}"))
            } else {
                (true, format!("allowed by {rules}"))
            }
        }
    }
}
