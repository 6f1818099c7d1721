//! The IPv4 prefixes a repository's CIDR peers need an identity for.
//!
//! Cilium gives every prefix a rule names a local-scope CIDR identity and
//! puts it in the ipcache, so the datapath finds it by longest-prefix match.
//! A CIDR peer with `except` prefixes is expanded into the prefixes that
//! cover the CIDR without the exceptions (plus the exceptions themselves),
//! so an address in an exception matches the exception's identity, which
//! the peer does not select, and every other address of the CIDR matches a
//! prefix the peer does select. `/0` is the world identity and needs none.

use std::collections::BTreeSet;

use ipnet::{IpNet, Ipv4Net};

use crate::repository::Repository;
use crate::resolve::rule_selectors;
use crate::selector_cache::PeerSelector;

/// Every IPv4 prefix the repository's CIDR peers need an identity for.
pub fn cidr_prefixes(repo: &Repository) -> BTreeSet<Ipv4Net> {
    let mut prefixes = BTreeSet::new();
    for (_, rule) in repo.rules() {
        for selector in rule_selectors(rule) {
            let PeerSelector::Cidr {
                cidr: IpNet::V4(cidr),
                except,
            } = selector
            else {
                continue;
            };
            let except: Vec<Ipv4Net> = except
                .iter()
                .filter_map(|x| match x {
                    IpNet::V4(x) if cidr.contains(x) || x.contains(&cidr) => Some(x.trunc()),
                    _ => None,
                })
                .collect();
            let cidr = cidr.trunc();
            prefixes.extend(subtract(cidr, &except));
            prefixes.extend(except.iter().filter(|x| cidr.contains(*x)));
        }
    }
    prefixes.retain(|p| p.prefix_len() > 0);
    prefixes
}

/// The fewest prefixes covering `cidr` without any of `except`.
fn subtract(cidr: Ipv4Net, except: &[Ipv4Net]) -> Vec<Ipv4Net> {
    if except.iter().any(|x| x.contains(&cidr)) {
        return Vec::new();
    }
    if !except.iter().any(|x| cidr.contains(x)) {
        return vec![cidr];
    }
    // An exception lies strictly inside: split in halves and carve each.
    let halves = cidr
        .subnets(cidr.prefix_len() + 1)
        .expect("a prefix that strictly contains another can be split");
    halves.flat_map(|half| subtract(half, except)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::PolicyDocument;
    use crate::file::parse_documents;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn repo(spec: &str) -> Repository {
        let yaml = format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: t, namespace: default}}\nspec:\n{spec}"
        );
        let mut repo = Repository::new();
        for doc in parse_documents("t.yaml", &yaml).unwrap() {
            let PolicyDocument::Policy(policy) = doc else {
                panic!("not a policy")
            };
            repo.upsert_policy(&policy);
        }
        repo
    }

    #[test]
    fn exceptions_are_carved_out_and_kept_apart() {
        let pieces = subtract(net("10.0.0.0/24"), &[net("10.0.0.201/32")]);
        assert_eq!(pieces.len(), 8, "{pieces:?}");
        assert!(pieces.iter().all(|p| !p.contains(&net("10.0.0.201/32"))));
        let covered: u32 = pieces.iter().map(|p| 1u32 << (32 - p.prefix_len())).sum();
        assert_eq!(covered, 255, "every address but the exception: {pieces:?}");
        assert!(pieces.contains(&net("10.0.0.200/32")));
        assert_eq!(subtract(net("10.0.0.0/24"), &[net("10.0.0.0/16")]), vec![]);
        assert_eq!(
            subtract(net("10.0.0.0/24"), &[net("10.1.0.0/24")]),
            vec![net("10.0.0.0/24")]
        );
    }

    #[test]
    fn a_repository_names_its_prefixes() {
        let repo = repo(
            "  endpointSelector: {}
  ingress:
  - fromCIDR: [192.168.1.0/24]
  - fromCIDRSet: [{cidr: 172.18.0.0/24, except: [172.18.0.128/25]}]
  egress:
  - toCIDR: [0.0.0.0/0]
  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
",
        );
        let prefixes = cidr_prefixes(&repo);
        for wanted in [
            "192.168.1.0/24",
            "172.18.0.0/25",
            "172.18.0.128/25",
            "10.0.0.0/8",
            "11.0.0.0/8",
            "128.0.0.0/1",
        ] {
            assert!(prefixes.contains(&net(wanted)), "{wanted} in {prefixes:?}");
        }
        assert!(!prefixes.contains(&net("172.18.0.0/24")), "{prefixes:?}");
        assert!(prefixes.iter().all(|p| p.prefix_len() > 0), "{prefixes:?}");
    }
}
