//! Network policy in the agent: the rule repository, the selector cache fed with the cluster's
//! identities, and resolution of each local endpoint's policy into its datapath policy map.
//!
//! Rules arrive through `PUT /v1/policy` (Cilium's `policy import`). Whenever rules or the
//! set of known identities change, every local endpoint is resolved again and its map is
//! brought to the result in place (`Datapath::set_policy`: no reload, established connections
//! that stay allowed keep flowing through conntrack).

use std::collections::BTreeMap;
use std::sync::Mutex;

use cilium_datapath::maps::{Direction, Enforcement, PolicyEntry as MapEntry, PolicyMapKey};
use cilium_policy::{
    cidr_prefixes, parse_documents, resolve, trace, EndpointPolicy, EnforcementMode, IdentityView,
    Labels, NamedPorts, PolicyDocument, PolicyError, PolicySource, Protocol, Repository,
    ResolveOptions, SelectorCache, TraceQuery, Verdict,
};
use ipnet::{IpNet, Ipv4Net};

use crate::cidr_identity::CidrIdentities;

#[derive(Debug, thiserror::Error)]
pub enum PolicyImportError {
    #[error(transparent)]
    Parse(#[from] PolicyError),
    #[error("document {index} is a {kind}, not a policy")]
    NotAPolicy { index: usize, kind: String },
}

struct EngineState {
    repo: Repository,
    cache: SelectorCache,
    /// Identities fed into the cache, to diff the next snapshot against.
    known: BTreeMap<u32, Vec<String>>,
    /// Local identities of the prefixes the rules name.
    cidrs: CidrIdentities,
}

impl EngineState {
    /// Registers the selectors the rules use (and forgets unused ones), so the selector
    /// cache keeps their selections as identities come and go and resolution reads them
    /// instead of matching every identity again.
    fn rules_changed(&mut self) {
        self.cache.sync_rules(&self.repo);
    }
}

/// Rules and identities, and what they mean for one endpoint.
pub struct PolicyEngine {
    state: Mutex<EngineState>,
    options: Mutex<ResolveOptions>,
}

impl PolicyEngine {
    /// An engine with no rules, enforcing in `mode`.
    pub fn new(mode: EnforcementMode) -> Self {
        PolicyEngine {
            state: Mutex::new(EngineState {
                repo: Repository::new(),
                cache: SelectorCache::new(IdentityView::with_reserved()),
                known: BTreeMap::new(),
                cidrs: CidrIdentities::default(),
            }),
            // Cilium's default `allow-localhost=auto`: the node may reach its pods.
            options: Mutex::new(ResolveOptions {
                enforcement: mode,
                allow_localhost: true,
                ..ResolveOptions::default()
            }),
        }
    }

    /// How many rules the repository holds (`cilium_policy`).
    pub fn rule_count(&self) -> usize {
        self.state.lock().expect("policy lock").repo.rules().count()
    }

    /// The enforcement mode (`enable-policy`).
    pub fn enforcement(&self) -> EnforcementMode {
        self.options.lock().expect("options lock").enforcement
    }

    /// Switches the enforcement mode; returns whether it changed (then every endpoint's
    /// policy must be resolved again).
    pub fn set_enforcement(&self, mode: EnforcementMode) -> bool {
        let mut options = self.options.lock().expect("options lock");
        let changed = options.enforcement != mode;
        options.enforcement = mode;
        changed
    }

    /// Parses `text` (YAML or JSON, one or more documents) and stores every policy in it,
    /// replacing earlier versions of the same policies. Nothing is stored when any document
    /// is invalid. Returns the repository revision.
    pub fn import(&self, file: &str, text: &str) -> Result<u64, PolicyImportError> {
        let documents = parse_documents(file, text)?;
        let mut policies = Vec::new();
        for (index, document) in documents.into_iter().enumerate() {
            match document {
                PolicyDocument::Policy(policy) => policies.push(policy),
                other => {
                    return Err(PolicyImportError::NotAPolicy {
                        index: index + 1,
                        kind: other.kind().to_string(),
                    })
                }
            }
        }
        let mut state = self.state.lock().expect("policy lock");
        let mut revision = state.repo.revision();
        for policy in &policies {
            revision = state.repo.upsert_policy(policy);
        }
        state.rules_changed();
        Ok(revision)
    }

    /// Stores (or replaces) one policy.
    pub fn upsert(&self, policy: &cilium_policy::Policy) -> u64 {
        let mut state = self.state.lock().expect("policy lock");
        let revision = state.repo.upsert_policy(policy);
        state.rules_changed();
        revision
    }

    /// Removes one policy.
    pub fn delete(&self, source: &PolicySource) {
        let mut state = self.state.lock().expect("policy lock");
        state.repo.delete(source);
        state.rules_changed();
    }

    /// Deletes every policy (Cilium's `policy delete --all`). Returns the revision.
    pub fn delete_all(&self) -> u64 {
        let mut state = self.state.lock().expect("policy lock");
        let sources: Vec<PolicySource> = state
            .repo
            .rules()
            .map(|(rule, _)| rule.source.clone())
            .collect();
        for source in sources {
            state.repo.delete(&source);
        }
        state.rules_changed();
        state.repo.revision()
    }

    /// The rules as JSON (`GET /v1/policy`), with the revision.
    pub fn rules_json(&self) -> serde_json::Value {
        let state = self.state.lock().expect("policy lock");
        let rules: Vec<&cilium_policy::Rule> = state.repo.rules().map(|(_, rule)| rule).collect();
        serde_json::json!({
            "revision": state.repo.revision(),
            "policy": serde_json::to_string_pretty(&rules).unwrap_or_default(),
        })
    }

    /// Feeds a snapshot of the cluster's identities (id → `source:key=value` labels) into the
    /// selector cache; returns whether anything changed.
    pub fn sync_identities(&self, identities: BTreeMap<u32, Vec<String>>) -> bool {
        let mut state = self.state.lock().expect("policy lock");
        if state.known == identities {
            return false;
        }
        let gone: Vec<u32> = state
            .known
            .keys()
            .filter(|id| !identities.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            state.cache.remove_identity(id);
        }
        for (id, labels) in &identities {
            if state.known.get(id) != Some(labels) {
                state.cache.upsert_identity(*id, Labels::parse(labels));
            }
        }
        state.known = identities;
        true
    }

    /// Gives every prefix the rules name a local CIDR identity (and tells the selector cache).
    /// Returns every prefix with its identity, for the ipcache, when anything changed.
    pub fn sync_cidr_identities(&self) -> Option<BTreeMap<Ipv4Net, u32>> {
        let mut state = self.state.lock().expect("policy lock");
        let wanted = cidr_prefixes(&state.repo);
        let changes = state.cidrs.sync(&wanted);
        if changes.is_empty() {
            return None;
        }
        for id in changes.removed {
            state.cache.remove_identity(id);
        }
        for (prefix, id) in changes.added {
            state.cache.upsert_cidr_identity(IpNet::V4(prefix), id);
        }
        Some(state.cidrs.entries().clone())
    }

    /// The CIDR identities in use, by prefix.
    pub fn cidr_identities(&self) -> BTreeMap<Ipv4Net, u32> {
        self.state
            .lock()
            .expect("policy lock")
            .cidrs
            .entries()
            .clone()
    }

    /// Would traffic from `src` to `dst` on `dport` over IP protocol `protocol` pass both
    /// sides' policies, and what decided it (`cilium policy trace`). Named ports resolve
    /// against the cluster's pods (`peer_named_ports`): egress as for any endpoint, ingress
    /// with the names every pod that declares them agrees on, since a traced destination is
    /// a label set rather than one pod.
    pub fn trace(
        &self,
        src: &Labels,
        dst: &Labels,
        (dport, protocol): (u16, u8),
        peer_named_ports: &BTreeMap<String, Vec<(u16, Protocol)>>,
    ) -> Verdict {
        let dst_named_ports: NamedPorts = peer_named_ports
            .iter()
            .filter_map(|(name, ports)| match ports.as_slice() {
                [only] => Some((name.clone(), *only)),
                _ => None,
            })
            .collect();
        let options = ResolveOptions {
            peer_named_ports: peer_named_ports.clone(),
            ..self.options.lock().expect("options lock").clone()
        };
        let query = TraceQuery {
            src,
            dst,
            dport,
            protocol,
            dst_named_ports: &dst_named_ports,
        };
        let state = self.state.lock().expect("policy lock");
        trace(query, &state.repo, &state.cache, &options)
    }

    /// The policy of an endpoint with these identity labels and its pod's `named_ports`
    /// (ingress named ports), given the named ports of every pod in the cluster
    /// (`peer_named_ports`, for egress named ports).
    pub fn resolve(
        &self,
        identity_labels: &[String],
        named_ports: &NamedPorts,
        peer_named_ports: &BTreeMap<String, Vec<(u16, Protocol)>>,
    ) -> EndpointPolicy {
        let options = ResolveOptions {
            peer_named_ports: peer_named_ports.clone(),
            ..self.options.lock().expect("options lock").clone()
        };
        let state = self.state.lock().expect("policy lock");
        resolve(
            &Labels::parse(identity_labels),
            &state.repo,
            &state.cache,
            named_ports,
            &options,
        )
    }
}

/// An endpoint policy as the datapath's map wants it.
pub fn to_map_state(policy: &EndpointPolicy) -> (Enforcement, Vec<(PolicyMapKey, MapEntry)>) {
    let enforcement = Enforcement {
        ingress: policy.ingress_enforced,
        egress: policy.egress_enforced,
    };
    let entries = policy
        .entries
        .iter()
        .map(|(key, entry)| {
            let map_key = PolicyMapKey {
                identity: key.identity,
                direction: if key.egress {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                protocol: key.protocol,
                dport: key.dport,
                dport_prefix_bits: key.prefix_len,
            };
            let value = if entry.deny {
                MapEntry::deny()
            } else {
                MapEntry::allow()
            };
            (map_key, value)
        })
        .collect();
    (enforcement, entries)
}
