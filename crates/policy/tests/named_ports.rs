//! Named ports in `toPorts`: ingress names resolve against the endpoint's own container
//! ports, egress names against the ports of the pods peers may be, as Cilium resolves them.

use std::collections::BTreeMap;

use cilium_policy::{
    parse_documents, proto, resolve, EndpointPolicy, IdentityView, Labels, NamedPorts,
    PolicyDocument, Protocol, Repository, ResolveOptions, SelectorCache,
};

const CLIENT: u32 = 1000;
const SERVER: u32 = 1001;

fn pod(app: &str) -> Labels {
    Labels::parse([
        "k8s:io.kubernetes.pod.namespace=default".to_string(),
        format!("k8s:app={app}"),
    ])
}

fn repo(spec: &str) -> Repository {
    let yaml = format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: named, namespace: default}}\nspec:\n{spec}"
    );
    let mut repo = Repository::new();
    for doc in parse_documents("named.yaml", &yaml).expect("valid policy") {
        let PolicyDocument::Policy(policy) = doc else {
            panic!("expected a policy")
        };
        repo.upsert_policy(&policy);
    }
    repo
}

fn cache(repo: &Repository) -> SelectorCache {
    let mut view = IdentityView::with_reserved();
    view.identities.insert(CLIENT, pod("client"));
    view.identities.insert(SERVER, pod("server"));
    let mut cache = SelectorCache::new(view);
    cache.sync_rules(repo);
    cache
}

/// The client's policy, given the cluster's named ports.
fn client_policy(repo: &Repository, peers: &[(&str, u16, Protocol)]) -> EndpointPolicy {
    let mut peer_named_ports: BTreeMap<String, Vec<(u16, Protocol)>> = BTreeMap::new();
    for (name, port, protocol) in peers {
        peer_named_ports
            .entry((*name).to_string())
            .or_default()
            .push((*port, *protocol));
    }
    let options = ResolveOptions {
        peer_named_ports,
        ..ResolveOptions::default()
    };
    resolve(
        &pod("client"),
        repo,
        &cache(repo),
        &NamedPorts::new(),
        &options,
    )
}

const EGRESS_HTTP: &str = "  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: http}]}]
";

#[test]
fn egress_named_ports_resolve_against_the_peers_ports() {
    let repo = repo(EGRESS_HTTP);
    let policy = client_policy(
        &repo,
        &[
            ("http", 8080, Protocol::Tcp),
            ("metrics", 9090, Protocol::Tcp),
        ],
    );
    assert!(policy.egress_enforced);
    assert!(policy.allows(SERVER, true, proto::TCP, 8080), "{policy:?}");
    assert!(!policy.allows(SERVER, true, proto::TCP, 9090), "{policy:?}");
    assert!(!policy.allows(SERVER, true, proto::UDP, 8080), "{policy:?}");
    assert!(
        !policy.allows(CLIENT, true, proto::TCP, 8080),
        "only the selected peers: {policy:?}"
    );
}

#[test]
fn pods_agreeing_on_a_name_resolve_it_and_disagreeing_pods_make_it_allow_nothing() {
    let repo = repo(EGRESS_HTTP);
    let agreeing = client_policy(
        &repo,
        &[("http", 8080, Protocol::Tcp), ("http", 8080, Protocol::Tcp)],
    );
    assert!(agreeing.allows(SERVER, true, proto::TCP, 8080));

    let ambiguous = client_policy(
        &repo,
        &[("http", 8080, Protocol::Tcp), ("http", 80, Protocol::Tcp)],
    );
    assert!(
        ambiguous.egress_enforced,
        "the rule still selects the client"
    );
    assert!(!ambiguous.allows(SERVER, true, proto::TCP, 8080));
    assert!(!ambiguous.allows(SERVER, true, proto::TCP, 80));

    let unknown = client_policy(&repo, &[]);
    assert!(unknown.egress_enforced);
    assert!(
        unknown.entries.is_empty(),
        "an unknown name allows nothing: {unknown:?}"
    );
}

#[test]
fn egress_names_resolve_per_protocol() {
    let repo = repo(EGRESS_HTTP);
    // `http` is TCP/8080 on some pods and UDP/8443 on others (e.g. HTTP/3): each protocol
    // has one number, so both resolve.
    let policy = client_policy(
        &repo,
        &[("http", 8080, Protocol::Tcp), ("http", 8443, Protocol::Udp)],
    );
    assert!(policy.allows(SERVER, true, proto::TCP, 8080));
    assert!(policy.allows(SERVER, true, proto::UDP, 8443));
    assert!(!policy.allows(SERVER, true, proto::TCP, 8443));

    let udp_rule = self::repo(
        "  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: http, protocol: UDP}]}]
",
    );
    let policy = client_policy(
        &udp_rule,
        &[("http", 8080, Protocol::Tcp), ("http", 8443, Protocol::Udp)],
    );
    assert!(policy.allows(SERVER, true, proto::UDP, 8443));
    assert!(!policy.allows(SERVER, true, proto::TCP, 8080));
}

#[test]
fn ingress_named_ports_ignore_the_peers_ports() {
    let repo = repo(
        "  endpointSelector: {matchLabels: {app: client}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: http}]}]
",
    );
    let policy = client_policy(&repo, &[("http", 8080, Protocol::Tcp)]);
    assert!(policy.ingress_enforced);
    assert!(
        !policy.allows(SERVER, false, proto::TCP, 8080),
        "the client declares no port named http: {policy:?}"
    );
}
