//! Policy computation at scale: 1,000 CiliumNetworkPolicy rules and 1,000 local endpoints
//! (plus 1,000 remote identities) resolved with this crate's `resolve` and the agent's options,
//! with and without the selectors registered in the cache, then the incremental cases (one rule
//! added, one identity added) and what each costs.
//!
//! The cluster is synthetic but shaped like a real one: 10 namespaces of 100 apps each, three
//! tiers (frontend, backend, db); every app has one local endpoint (its own identity) and one
//! canary identity on another node (`version=v2`), plus kube-dns in `kube-system`. Each app is
//! selected by one rule: frontends admit `world` on 443 and reach backends and DNS, backends
//! admit one frontend app on 8080 and their own tier on a port range (metrics), and reach one
//! db app, dbs admit three backend apps on 5432. The rules are parsed from YAML (namespaced
//! as `cilium apply -f` stores them), so selectors carry the namespace label as in the agent.
//!
//! Run: `cargo bench -p cilium-policy --bench policy_scale [-- --reps N]`. Prints one Markdown
//! table (median and min–max of N repetitions, default 5; 1 when cargo runs it as a test) for
//! `docs/benchmarks.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cilium_policy::{
    parse_documents, resolve, rule_selectors, rule_selects, EndpointPolicy, IdentityView, Labels,
    NamedPorts, PolicyDocument, Repository, ResolveOptions, SelectorCache,
};

const NAMESPACES: usize = 10;
const APPS_PER_NAMESPACE: usize = 100;
const FRONTENDS: usize = 20;
const DBS: usize = 20;
/// First numeric identity of the local endpoints; the canaries follow them.
const FIRST_IDENTITY: u32 = 1000;
const KUBE_DNS_IDENTITY: u32 = 900;

/// One app: where it lives and what it is.
#[derive(Clone, Copy)]
struct App {
    namespace: usize,
    index: usize,
}

impl App {
    fn all() -> impl Iterator<Item = App> {
        (0..NAMESPACES).flat_map(|namespace| {
            (0..APPS_PER_NAMESPACE).map(move |index| App { namespace, index })
        })
    }

    fn tier(self) -> &'static str {
        match self.index {
            i if i < FRONTENDS => "frontend",
            i if i >= APPS_PER_NAMESPACE - DBS => "db",
            _ => "backend",
        }
    }

    fn name(self) -> String {
        format!("app-{:03}", self.index)
    }

    fn namespace(self) -> String {
        format!("ns-{:02}", self.namespace)
    }

    /// The labels of its pods, as the agent derives them for an identity.
    fn labels(self, version: &str) -> Labels {
        pod_labels(&self.namespace(), &self.name(), self.tier(), version)
    }

    /// Its one rule, as a CiliumNetworkPolicy document.
    fn policy(self) -> String {
        let peer = |index: usize| format!("app-{index:03}");
        let body = match self.tier() {
            "frontend" => "  ingress:\n\
                 \x20   - fromEntities: [world]\n\
                 \x20     toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n\
                 \x20 egress:\n\
                 \x20   - toEndpoints: [{matchLabels: {tier: backend}}]\n\
                 \x20     toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n\
                 \x20   - toEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": kube-system, k8s-app: kube-dns}}]\n\
                 \x20     toPorts: [{ports: [{port: \"53\", protocol: UDP}, {port: \"53\", protocol: TCP}]}]\n"
                .to_owned(),
            "backend" => format!(
                "  ingress:\n\
                 \x20   - fromEndpoints: [{{matchLabels: {{app: {frontend}}}}}]\n\
                 \x20     toPorts: [{{ports: [{{port: \"8080\", protocol: TCP}}]}}]\n\
                 \x20   - fromEndpoints: [{{matchLabels: {{tier: backend}}}}]\n\
                 \x20     toPorts: [{{ports: [{{port: \"9100\", endPort: 9199, protocol: TCP}}]}}]\n\
                 \x20 egress:\n\
                 \x20   - toEndpoints: [{{matchLabels: {{app: {db}}}}}]\n\
                 \x20     toPorts: [{{ports: [{{port: \"5432\", protocol: TCP}}]}}]\n",
                frontend = peer(self.index % FRONTENDS),
                db = peer(APPS_PER_NAMESPACE - DBS + self.index % DBS),
            ),
            _ => {
                let backends = APPS_PER_NAMESPACE - FRONTENDS - DBS;
                let first = FRONTENDS + (self.index * 3) % backends;
                let from: Vec<String> = (0..3)
                    .map(|k| {
                        let app = peer(FRONTENDS + (first - FRONTENDS + k) % backends);
                        format!("{{matchLabels: {{app: {app}}}}}")
                    })
                    .collect();
                format!(
                    "  ingress:\n\
                     \x20   - fromEndpoints: [{}]\n\
                     \x20     toPorts: [{{ports: [{{port: \"5432\", protocol: TCP}}]}}]\n",
                    from.join(", ")
                )
            }
        };
        format!(
            "apiVersion: cilium.io/v2\n\
             kind: CiliumNetworkPolicy\n\
             metadata: {{name: {name}, namespace: {namespace}}}\n\
             spec:\n\
             \x20 endpointSelector: {{matchLabels: {{app: {name}}}}}\n{body}",
            name = self.name(),
            namespace = self.namespace(),
        )
    }
}

fn pod_labels(namespace: &str, app: &str, tier: &str, version: &str) -> Labels {
    Labels::parse([
        format!("k8s:app={app}"),
        format!("k8s:tier={tier}"),
        format!("k8s:version={version}"),
        format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        format!("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={namespace}"),
        "k8s:io.cilium.k8s.policy.cluster=default".to_owned(),
        "k8s:io.cilium.k8s.policy.serviceaccount=default".to_owned(),
    ])
}

fn kube_dns() -> Labels {
    Labels::parse([
        "k8s:k8s-app=kube-dns",
        "k8s:io.kubernetes.pod.namespace=kube-system",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=kube-system",
        "k8s:io.cilium.k8s.policy.cluster=default",
        "k8s:io.cilium.k8s.policy.serviceaccount=coredns",
    ])
}

/// The synthetic cluster: every rule's YAML, the identities, the local endpoints' labels.
struct Cluster {
    yaml: String,
    view: IdentityView,
    endpoints: Vec<Labels>,
}

impl Cluster {
    fn build() -> Cluster {
        let apps: Vec<App> = App::all().collect();
        let yaml = apps
            .iter()
            .map(|app| app.policy())
            .collect::<Vec<_>>()
            .join("---\n");
        let mut view = IdentityView::with_reserved();
        view.identities.insert(KUBE_DNS_IDENTITY, kube_dns());
        let endpoints: Vec<Labels> = apps.iter().map(|app| app.labels("v1")).collect();
        let canary_base = FIRST_IDENTITY + apps.len() as u32;
        for (offset, app) in (0u32..).zip(&apps) {
            view.identities
                .insert(FIRST_IDENTITY + offset, endpoints[offset as usize].clone());
            view.identities
                .insert(canary_base + offset, app.labels("v2"));
        }
        Cluster {
            yaml,
            view,
            endpoints,
        }
    }
}

fn repository(yaml: &str) -> Repository {
    let mut repo = Repository::new();
    for document in parse_documents("bench.yaml", yaml).expect("the generated policies parse") {
        let PolicyDocument::Policy(policy) = document else {
            panic!("the generated YAML holds only policies")
        };
        repo.upsert_policy(&policy);
    }
    repo
}

fn cache(view: &IdentityView, repo: &Repository) -> SelectorCache {
    let mut cache = SelectorCache::new(view.clone());
    cache.sync_rules(repo);
    cache
}

/// The agent's settings: default enforcement, `allow-localhost`.
fn options() -> ResolveOptions {
    ResolveOptions {
        allow_localhost: true,
        ..ResolveOptions::default()
    }
}

fn resolve_all<'a>(
    endpoints: impl IntoIterator<Item = &'a Labels>,
    repo: &Repository,
    cache: &SelectorCache,
) -> Vec<EndpointPolicy> {
    let named_ports = NamedPorts::new();
    endpoints
        .into_iter()
        .map(|labels| resolve(labels, repo, cache, &named_ports, &options()))
        .collect()
}

/// The endpoints whose policy can change when the selectors `changed` select differently:
/// those selected by a rule that uses one of them.
fn affected_by_selectors<'a>(
    endpoints: &'a [Labels],
    repo: &Repository,
    changed: &BTreeSet<String>,
) -> Vec<&'a Labels> {
    let rules: Vec<_> = repo
        .rules()
        .filter(|(_, rule)| {
            rule_selectors(rule)
                .iter()
                .any(|selector| changed.contains(&selector.key()))
        })
        .map(|(_, rule)| rule)
        .collect();
    endpoints
        .iter()
        .filter(|labels| rules.iter().any(|rule| rule_selects(rule, labels)))
        .collect()
}

/// Durations of one case over every repetition.
struct Case {
    name: String,
    samples: Vec<Duration>,
    /// Divide by this for a per-item figure (endpoints resolved).
    per: Option<(usize, &'static str)>,
}

impl Case {
    fn new(name: impl Into<String>, per: Option<(usize, &'static str)>) -> Case {
        Case {
            name: name.into(),
            samples: Vec::new(),
            per,
        }
    }

    fn time<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = black_box(work());
        self.samples.push(start.elapsed());
        out
    }

    fn row(&self) -> String {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        let per = match self.per {
            Some((n, what)) => format!("{} per {what} ({n})", human(median / n as u32)),
            None => "—".to_owned(),
        };
        format!(
            "| {} | {} ({}–{}) | {per} |",
            self.name,
            human(median),
            human(min),
            human(max)
        )
    }
}

fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// Repetitions: `--reps N`, else 5 under `cargo bench` (which passes `--bench`) and 1 when
/// cargo runs the target as a test (`cargo test --all-targets`), as a smoke run.
fn reps_from_args() -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--reps") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                panic!("--reps wants a positive integer, got {:?}", args.get(i + 1))
            }),
        None if args.iter().any(|a| a == "--bench") => 5,
        None => 1,
    }
}

/// A rule added to one namespace: app-050 (a backend) also admits app-051 on 7000/TCP.
fn extra_rule() -> String {
    "apiVersion: cilium.io/v2\n\
     kind: CiliumNetworkPolicy\n\
     metadata: {name: extra, namespace: ns-03}\n\
     spec:\n\
     \x20 endpointSelector: {matchLabels: {app: app-050}}\n\
     \x20 ingress:\n\
     \x20   - fromEndpoints: [{matchLabels: {app: app-051}}]\n\
     \x20     toPorts: [{ports: [{port: \"7000\", protocol: TCP}]}]\n"
        .to_owned()
}

fn main() {
    let reps = reps_from_args();
    let cluster = Cluster::build();
    let n = cluster.endpoints.len();
    let endpoints = Some((n, "endpoint"));

    let mut parse = Case::new("Parse 1,000 CNPs (YAML) into a repository", None);
    let mut sync = Case::new(
        format!(
            "Selector cache: register every selector over {} identities",
            cluster.view.identities.len()
        ),
        None,
    );
    let mut full = Case::new("Resolve 1,000 endpoints (selectors registered)", endpoints);
    let mut unregistered = Case::new(
        "Resolve 1,000 endpoints, selectors not registered (each lookup scans every identity)",
        endpoints,
    );
    let mut add_rule = Case::new(
        "One rule added: upsert + register its selectors + re-resolve the endpoints it selects",
        None,
    );
    let mut add_rule_all = Case::new("One rule added: re-resolve all 1,000 endpoints", endpoints);
    let mut add_identity = Case::new(
        "One identity added: selector cache update + re-resolve the endpoints whose rules changed",
        None,
    );
    let mut add_identity_all = Case::new(
        "One identity added: re-resolve all 1,000 endpoints",
        endpoints,
    );

    let mut entries = 0;
    let mut affected = (0, 0);
    for _ in 0..reps {
        let repo = parse.time(|| repository(&cluster.yaml));
        let cache = sync.time(|| cache(&cluster.view, &repo));
        let policies = full.time(|| resolve_all(&cluster.endpoints, &repo, &cache));
        entries = policies.iter().map(|p| p.entries.len()).sum();

        let bare = SelectorCache::new(cluster.view.clone());
        unregistered.time(|| resolve_all(&cluster.endpoints, &repo, &bare));

        let mut repo_plus = repo.clone();
        let mut cache_plus = cache.clone();
        let extra = match parse_documents("extra.yaml", &extra_rule())
            .expect("the extra rule parses")
            .remove(0)
        {
            PolicyDocument::Policy(policy) => policy,
            PolicyDocument::Other { .. } => panic!("the extra rule is a policy"),
        };
        let touched = add_rule.time(|| {
            repo_plus.upsert_policy(&extra);
            cache_plus.sync_rules(&repo_plus);
            let selected: Vec<&Labels> = cluster
                .endpoints
                .iter()
                .filter(|labels| extra.rules.iter().any(|rule| rule_selects(rule, labels)))
                .collect();
            resolve_all(selected, &repo_plus, &cache_plus).len()
        });
        add_rule_all.time(|| resolve_all(&cluster.endpoints, &repo_plus, &cache_plus));

        let mut cache_id = cache.clone();
        let newcomer = pod_labels("ns-05", "app-030", "backend", "v3");
        let touched_id = add_identity.time(|| {
            let changed = cache_id.upsert_identity(FIRST_IDENTITY + 5000, newcomer.clone());
            let selected = affected_by_selectors(&cluster.endpoints, &repo, &changed);
            resolve_all(selected, &repo, &cache_id).len()
        });
        add_identity_all.time(|| resolve_all(&cluster.endpoints, &repo, &cache_id));
        affected = (touched, touched_id);
    }

    let mut out = String::new();
    writeln!(
        out,
        "{} rules, {n} endpoints, {} identities; {entries} policy map entries in all \
         ({:.1} per endpoint); the added rule selects {} endpoint(s), the added identity \
         changes the policy of {} endpoint(s). Median of {reps} repetitions (min–max).\n",
        App::all().count(),
        cluster.view.identities.len(),
        entries as f64 / n as f64,
        affected.0,
        affected.1,
    )
    .expect("writing to a String");
    out.push_str("| Case | Time | Per endpoint |\n|---|---|---|\n");
    for case in [
        &parse,
        &sync,
        &full,
        &unregistered,
        &add_rule,
        &add_rule_all,
        &add_identity,
        &add_identity_all,
    ] {
        out.push_str(&case.row());
        out.push('\n');
    }
    print!("{out}");
}
