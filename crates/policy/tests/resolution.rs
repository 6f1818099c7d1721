//! Policy resolution end to end: YAML policies into a repository, identities
//! into a selector cache, and the policy map state an endpoint gets.

use std::collections::BTreeSet;

use cilium_policy::{
    parse_documents, proto, resolve, trace, EndpointPolicy, EnforcementMode, IdentityView, Labels,
    NamedPorts, PolicyDocument, PolicyKey, PolicySource, Protocol, Repository, ResolveOptions,
    SelectorCache, TraceQuery, IDENTITY_HOST, IDENTITY_WORLD,
};

const L3_L4: &str = include_str!("../../../examples/starwars/sw_l3_l4_policy.yaml");

const TIEFIGHTER: u32 = 1000;
const XWING: u32 = 1001;
const DEATHSTAR: u32 = 1002;

fn pod(labels: &[&str]) -> Labels {
    let mut all = vec!["k8s:io.kubernetes.pod.namespace=default"];
    all.extend_from_slice(labels);
    Labels::parse(all)
}

fn tiefighter() -> Labels {
    pod(&["k8s:org=empire", "k8s:class=tiefighter"])
}

fn xwing() -> Labels {
    pod(&["k8s:org=alliance", "k8s:class=xwing"])
}

fn deathstar() -> Labels {
    pod(&["k8s:org=empire", "k8s:class=deathstar"])
}

fn view() -> IdentityView {
    let mut view = IdentityView::with_reserved();
    view.identities.insert(TIEFIGHTER, tiefighter());
    view.identities.insert(XWING, xwing());
    view.identities.insert(DEATHSTAR, deathstar());
    view
}

/// A repository with every policy in `yaml` (one source per object).
fn repo(file: &str, yaml: &str) -> Repository {
    let mut repo = Repository::new();
    for doc in parse_documents(file, yaml).unwrap_or_else(|e| panic!("{file}: {e:?}")) {
        let PolicyDocument::Policy(policy) = doc else {
            panic!("{file}: expected only policies")
        };
        repo.upsert_policy(&policy);
    }
    repo
}

fn cnp(spec: &str) -> String {
    format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: test, namespace: default}}\nspec:\n{spec}")
}

fn cache(view: IdentityView, repo: &Repository) -> SelectorCache {
    let mut cache = SelectorCache::new(view);
    cache.sync_rules(repo);
    cache
}

fn resolved(endpoint: &Labels, repo: &Repository, view: IdentityView) -> EndpointPolicy {
    resolve(
        endpoint,
        repo,
        &cache(view, repo),
        &NamedPorts::new(),
        &ResolveOptions::default(),
    )
}

fn key(identity: u32, egress: bool, protocol: u8, dport: u16, prefix_len: u8) -> PolicyKey {
    PolicyKey {
        identity,
        egress,
        protocol,
        dport,
        prefix_len,
    }
}

fn keys(policy: &EndpointPolicy) -> Vec<PolicyKey> {
    policy.entries.keys().copied().collect()
}

fn identities(policy: &EndpointPolicy) -> BTreeSet<u32> {
    policy.entries.keys().map(|k| k.identity).collect()
}

#[test]
fn starwars_deathstar_admits_only_empire_ships_on_tcp_80() {
    let repo = repo("sw_l3_l4_policy.yaml", L3_L4);
    let policy = resolved(&deathstar(), &repo, view());
    assert!(policy.ingress_enforced, "deathstar ingress is enforced");
    assert!(!policy.egress_enforced, "no rule has egress: {policy:?}");
    // Deathstar is itself org=empire, so it may reach itself too.
    assert_eq!(
        keys(&policy),
        [
            key(TIEFIGHTER, false, proto::TCP, 80, 16),
            key(DEATHSTAR, false, proto::TCP, 80, 16)
        ]
    );
    assert!(policy.allows(TIEFIGHTER, false, proto::TCP, 80));
    assert!(!policy.allows(TIEFIGHTER, false, proto::TCP, 81));
    assert!(!policy.allows(TIEFIGHTER, false, proto::UDP, 80));
    assert!(!policy.allows(XWING, false, proto::TCP, 80));
    assert!(policy.allows(XWING, true, proto::TCP, 80), "egress is open");

    let ships = resolved(&xwing(), &repo, view());
    assert!(!ships.ingress_enforced && !ships.egress_enforced);
    assert!(ships.entries.is_empty());
}

/// A trace of TCP to `dport` from `src` to `dst`, whose pod has `dst_ports`.
fn trace_tcp(
    src: &Labels,
    dst: &Labels,
    dport: u16,
    dst_ports: &NamedPorts,
    repo: &Repository,
) -> cilium_policy::Verdict {
    let query = TraceQuery {
        src,
        dst,
        dport,
        protocol: proto::TCP,
        dst_named_ports: dst_ports,
    };
    trace(
        query,
        repo,
        &cache(view(), repo),
        &ResolveOptions::default(),
    )
}

#[test]
fn trace_names_the_rule_or_default_deny() {
    let repo = repo("sw_l3_l4_policy.yaml", L3_L4);
    let none = NamedPorts::new();
    let ok = trace_tcp(&tiefighter(), &deathstar(), 80, &none, &repo);
    assert!(ok.allowed, "{ok:?}");
    assert!(
        ok.reason
            .contains("allowed by CiliumNetworkPolicy default/rule1 rule 0"),
        "{ok:?}"
    );
    assert!(ok.egress.allowed && !ok.egress.enforced, "{ok:?}");
    assert!(ok.ingress.enforced, "{ok:?}");
    assert_eq!(
        ok.ingress.rules,
        ["CiliumNetworkPolicy default/rule1 rule 0"],
        "{ok:?}"
    );
    let no = trace_tcp(&xwing(), &deathstar(), 80, &none, &repo);
    assert!(!no.allowed);
    assert!(!no.ingress.allowed && no.ingress.rules.is_empty(), "{no:?}");
    assert!(
        no.reason.contains("no rule matched (default deny)"),
        "{no:?}"
    );
    // Labels no identity carries yet are traced all the same.
    let new_ship = pod(&["k8s:org=empire", "k8s:class=interceptor"]);
    assert!(trace_tcp(&new_ship, &deathstar(), 80, &none, &repo).allowed);
}

#[test]
fn trace_resolves_the_destinations_named_ports() {
    let repo = repo(
        "named.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts: [{ports: [{port: http, protocol: TCP}]}]
"),
    );
    let http: NamedPorts = [("http".to_string(), (8080, Protocol::Tcp))].into();
    let allowed = trace_tcp(&tiefighter(), &deathstar(), 8080, &http, &repo);
    assert!(allowed.allowed, "{allowed:?}");
    let other_port = trace_tcp(&tiefighter(), &deathstar(), 80, &http, &repo);
    assert!(!other_port.allowed, "{other_port:?}");
    let unnamed = trace_tcp(&tiefighter(), &deathstar(), 8080, &NamedPorts::new(), &repo);
    assert!(
        !unnamed.allowed,
        "a name no port carries allows nothing: {unnamed:?}"
    );
}

#[test]
fn deny_beats_allow() {
    let repo = repo(
        "deny.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
  - fromEndpoints: [{matchLabels: {class: xwing}}]
    toPorts: [{ports: [{port: '443', protocol: TCP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
    toPorts: [{ports: [{port: '80', protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {class: xwing}}]
"),
    );
    let policy = resolved(&deathstar(), &repo, view());
    assert!(policy.allows(TIEFIGHTER, false, proto::TCP, 443));
    assert!(
        !policy.allows(TIEFIGHTER, false, proto::TCP, 80),
        "{policy:?}"
    );
    assert!(policy.allows(DEATHSTAR, false, proto::TCP, 80));
    assert!(
        !policy.allows(XWING, false, proto::TCP, 443),
        "the xwing allow on 443 is covered by the deny: {policy:?}"
    );
    assert!(!policy
        .entries
        .contains_key(&key(XWING, false, proto::TCP, 443, 16)));
    assert!(policy.entries[&key(XWING, false, 0, 0, 0)].deny);
}

#[test]
fn port_ranges_become_prefix_blocks_for_any_peer() {
    let repo = repo(
        "range.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - toPorts: [{ports: [{port: '8000', endPort: 8010, protocol: TCP}]}]
"),
    );
    let policy = resolved(&deathstar(), &repo, view());
    assert_eq!(
        keys(&policy),
        [
            key(0, false, proto::TCP, 8000, 13),
            key(0, false, proto::TCP, 8008, 15),
            key(0, false, proto::TCP, 8010, 16),
        ]
    );
    for port in 8000..=8010 {
        assert!(policy.allows(XWING, false, proto::TCP, port), "port {port}");
    }
    assert!(!policy.allows(XWING, false, proto::TCP, 8011));
    assert!(!policy.allows(XWING, false, proto::TCP, 7999));
}

#[test]
fn any_protocol_expands_per_port_and_wildcards_all_ports() {
    let repo = repo(
        "any.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  egress:
  - toEndpoints: [{matchLabels: {class: xwing}}]
    toPorts: [{ports: [{port: '53'}]}]
  - toEndpoints: [{matchLabels: {class: tiefighter}}]
    toPorts: [{ports: [{port: '0'}]}]
  - icmps: [{fields: [{type: EchoRequest}]}]
"),
    );
    let policy = resolved(&deathstar(), &repo, view());
    assert!(policy.egress_enforced && !policy.ingress_enforced);
    assert_eq!(
        keys(&policy),
        [
            key(0, true, proto::ICMP, 8, 16),
            key(TIEFIGHTER, true, 0, 0, 0),
            key(XWING, true, proto::TCP, 53, 16),
            key(XWING, true, proto::UDP, 53, 16),
            key(XWING, true, proto::SCTP, 53, 16),
        ]
    );
}

#[test]
fn entities_select_world_cluster_and_host() {
    let mut view = view();
    view.cidr_identities
        .insert("192.0.2.0/24".parse().unwrap(), 16_777_217);
    let ingress_from = |entity: &str| {
        let repo = repo(
            "entity.yaml",
            &cnp(&format!(
                "  endpointSelector: {{matchLabels: {{class: deathstar}}}}
  ingress:
  - fromEntities: [{entity}]
"
            )),
        );
        identities(&resolved(&deathstar(), &repo, view.clone()))
    };
    assert_eq!(
        ingress_from("world"),
        BTreeSet::from([IDENTITY_WORLD, 16_777_217])
    );
    assert_eq!(
        ingress_from("cluster"),
        BTreeSet::from([1, 3, 4, 5, 6, 7, 8, TIEFIGHTER, XWING, DEATHSTAR])
    );
    assert_eq!(ingress_from("host"), BTreeSet::from([IDENTITY_HOST]));
    assert_eq!(ingress_from("remote-node"), BTreeSet::from([6, 7]));
    assert_eq!(ingress_from("all"), BTreeSet::from([0]));
    assert_eq!(ingress_from("none"), BTreeSet::new());
}

#[test]
fn cidr_set_excepts_prefixes() {
    let mut view = view();
    for (cidr, id) in [
        ("10.0.0.0/8", 16_777_217),
        ("10.1.0.0/16", 16_777_218),
        ("10.1.2.0/24", 16_777_219),
        ("10.2.0.0/16", 16_777_220),
        ("192.168.0.0/16", 16_777_221),
    ] {
        view.cidr_identities.insert(cidr.parse().unwrap(), id);
    }
    let repo = repo(
        "cidr.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  egress:
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
  - toCIDR: [192.168.1.0/24]
"),
    );
    let policy = resolved(&deathstar(), &repo, view);
    // 10.0.0.0/8 overlaps the exception, 10.1.* are inside it, and
    // 192.168.0.0/16 is wider than 192.168.1.0/24.
    assert_eq!(identities(&policy), BTreeSet::from([16_777_220]));
}

#[test]
fn network_policy_with_empty_ingress_denies_all_ingress() {
    let repo = repo(
        "deny-all.yaml",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
",
    );
    let policy = resolved(&xwing(), &repo, view());
    assert!(policy.ingress_enforced && !policy.egress_enforced);
    assert!(policy.entries.is_empty());
    assert!(!policy.allows(TIEFIGHTER, false, proto::TCP, 80));
    let elsewhere = Labels::parse(["k8s:io.kubernetes.pod.namespace=prod", "k8s:app=x"]);
    assert!(!resolved(&elsewhere, &repo, view()).ingress_enforced);
}

#[test]
fn enforcement_modes_override_default_deny() {
    let repo = Repository::new();
    let cache = cache(view(), &repo);
    let ports = NamedPorts::new();
    let mode = |enforcement| ResolveOptions {
        enforcement,
        allow_localhost: false,
        ..ResolveOptions::default()
    };
    let always = resolve(
        &xwing(),
        &repo,
        &cache,
        &ports,
        &mode(EnforcementMode::Always),
    );
    assert!(always.ingress_enforced && always.egress_enforced && always.entries.is_empty());
    let sw = self::repo("sw_l3_l4_policy.yaml", L3_L4);
    let never = resolve(
        &deathstar(),
        &sw,
        &cache,
        &ports,
        &mode(EnforcementMode::Never),
    );
    assert!(!never.ingress_enforced && never.entries.is_empty());
    let localhost = ResolveOptions {
        allow_localhost: true,
        ..ResolveOptions::default()
    };
    let with_host = resolve(&deathstar(), &sw, &cache, &ports, &localhost);
    assert!(with_host.allows(IDENTITY_HOST, false, proto::UDP, 9));
}

#[test]
fn default_deny_off_keeps_traffic_open_but_denies_still_apply() {
    let repo = repo(
        "no-default-deny.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  enableDefaultDeny: {ingress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
"),
    );
    assert!(!resolved(&deathstar(), &repo, view()).ingress_enforced);
    let mut repo = repo;
    let deny = parse_documents(
        "deny.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  enableDefaultDeny: {ingress: false}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {class: xwing}}]
"),
    )
    .unwrap();
    let PolicyDocument::Policy(deny) = &deny[0] else {
        panic!("a policy")
    };
    repo.upsert(
        PolicySource {
            name: "deny".into(),
            ..PolicySource::of(deny)
        },
        deny.rules.clone(),
    );
    let policy = resolved(&deathstar(), &repo, view());
    assert!(policy.ingress_enforced);
    assert!(policy.allows(IDENTITY_WORLD, false, proto::TCP, 80));
    assert!(!policy.allows(XWING, false, proto::TCP, 80));
}

#[test]
fn named_ports_resolve_against_the_endpoints_own_ports() {
    let repo = repo(
        "named.yaml",
        &cnp("  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
    toPorts: [{ports: [{port: http}, {port: dns, protocol: TCP}]}]
"),
    );
    let ports = NamedPorts::from([
        ("http".to_owned(), (8080, Protocol::Tcp)),
        ("dns".to_owned(), (53, Protocol::Udp)),
    ]);
    let policy = resolve(
        &deathstar(),
        &repo,
        &cache(view(), &repo),
        &ports,
        &ResolveOptions::default(),
    );
    assert_eq!(
        keys(&policy),
        [key(TIEFIGHTER, false, proto::TCP, 8080, 16)],
        "dns is UDP, the rule asks for TCP"
    );
}

#[test]
fn changes_to_identities_and_rules_update_the_result() {
    let mut repo = repo("sw_l3_l4_policy.yaml", L3_L4);
    let mut cache = cache(view(), &repo);
    let opts = ResolveOptions::default();
    let ports = NamedPorts::new();

    let changed = cache.upsert_identity(2000, pod(&["k8s:org=empire", "k8s:class=interceptor"]));
    assert_eq!(
        changed.len(),
        1,
        "the org=empire selector changed: {changed:?}"
    );
    assert!(changed.iter().next().unwrap().contains("empire"));
    let policy = resolve(&deathstar(), &repo, &cache, &ports, &opts);
    assert!(policy.allows(2000, false, proto::TCP, 80));

    assert!(
        cache.upsert_identity(2001, xwing()).is_empty(),
        "xwings are selected by nothing"
    );
    assert_eq!(cache.remove_identity(2000).len(), 1);
    let policy = resolve(&deathstar(), &repo, &cache, &ports, &opts);
    assert!(!policy.allows(2000, false, proto::TCP, 80));

    let source = repo.rules().next().unwrap().0.source;
    let before = repo.revision();
    assert_eq!(repo.delete(&source), Some(before + 1));
    cache.sync_rules(&repo);
    assert!(cache.is_empty(), "unused selectors are forgotten");
    let policy = resolve(&deathstar(), &repo, &cache, &ports, &opts);
    assert!(!policy.ingress_enforced && policy.entries.is_empty());
}
