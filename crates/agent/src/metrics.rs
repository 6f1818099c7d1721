//! Prometheus metrics over plain HTTP (`GET /metrics`): the agent's own on
//! `--prometheus-serve-addr` (endpoints, policy rules, identities, the datapath's forward
//! and drop counters read from `cilium_metrics` at scrape time, kvstore operation durations
//! and BPF map operation counts), and Hubble's flow counters on
//! `--hubble-metrics-server` for the groups `--hubble-metrics` names.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{map_op_counts, MapOpCount, MetricsMap};
use cilium_hubble::metrics::{FlowMetrics, MetricGroups, MetricsConfigError};
use cilium_hubble::EventSender;
use cilium_identity::ReservedIdentity;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agent::Agent;

/// What the exposition (OpenMetrics text, which Prometheus scrapes) is served as.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A metrics server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--{flag} {address:?} is not [HOST]:PORT")]
    Address {
        flag: &'static str,
        address: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("listening for metrics scrapes on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--hubble-metrics")]
    Groups {
        #[source]
        source: MetricsConfigError,
    },
    #[error("--hubble-metrics-server needs Hubble (--enable-hubble)")]
    HubbleDisabled,
}

/// Starts the servers the configuration asks for; `hubble` is the running Hubble's intake.
pub async fn start(agent: &Arc<Agent>, hubble: Option<&EventSender>) -> Result<(), MetricsError> {
    let config = &agent.config;
    let groups = MetricGroups::parse(&config.hubble_metrics)
        .map_err(|source| MetricsError::Groups { source })?;
    if let Some(text) = &config.prometheus_serve_addr {
        let address = socket_address("prometheus-serve-addr", text)?;
        let agent = Arc::clone(agent);
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let agent = Arc::clone(&agent);
                async move {
                    let text = tokio::task::spawn_blocking(move || render_agent(&agent))
                        .await
                        .unwrap_or_default();
                    ([(CONTENT_TYPE, CONTENT)], text)
                }
            }),
        );
        serve(address, router).await?;
    }
    if let Some(text) = &config.hubble_metrics_server {
        let address = socket_address("hubble-metrics-server", text)?;
        let sender = hubble.ok_or(MetricsError::HubbleDisabled)?;
        let metrics = Arc::new(FlowMetrics::new(groups));
        sender.observer().enable_metrics(Arc::clone(&metrics));
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move { ([(CONTENT_TYPE, CONTENT)], metrics.render()) }
            }),
        );
        serve(address, router).await?;
    }
    Ok(())
}

async fn serve(address: SocketAddr, router: Router) -> Result<(), MetricsError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Listen { address, source })?;
    tracing::info!(%address, "serving Prometheus metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, %address, "metrics server stopped");
        }
    });
    Ok(())
}

/// `HOST:PORT`, or `:PORT` for every address (Cilium's form).
fn socket_address(flag: &'static str, text: &str) -> Result<SocketAddr, MetricsError> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map_err(|source| MetricsError::Address {
        flag,
        address: text.to_string(),
        source,
    })
}

/// What the agent's exposition reports, gathered at scrape time.
#[derive(Debug, Default)]
struct AgentSnapshot {
    /// Endpoint count per state name.
    endpoint_states: Vec<(String, i64)>,
    endpoints: i64,
    policy_rules: i64,
    /// Identity count per type (`global`, `local`, `reserved`).
    identities: Vec<(&'static str, i64)>,
    /// `(reason text, direction, packets)` of drops.
    drops: Vec<(String, &'static str, u64)>,
    /// `(direction, packets)` forwarded.
    forwards: Vec<(&'static str, u64)>,
    /// This process's BPF map operations so far.
    map_ops: Vec<MapOpCount>,
}

fn render_agent(agent: &Agent) -> String {
    let mut snapshot = AgentSnapshot::default();
    {
        let endpoints = agent.endpoints.lock().expect("endpoints lock");
        for endpoint in endpoints.list() {
            snapshot.endpoints += 1;
            let state = endpoint.state.to_string();
            match snapshot
                .endpoint_states
                .iter_mut()
                .find(|(s, _)| *s == state)
            {
                Some((_, count)) => *count += 1,
                None => snapshot.endpoint_states.push((state, 1)),
            }
        }
    }
    snapshot.policy_rules = agent.policy.rule_count() as i64;
    snapshot.map_ops = map_op_counts();
    snapshot.identities = vec![
        ("global", agent.identity_cache.len() as i64),
        ("local", agent.policy.cidr_identities().len() as i64),
        ("reserved", ReservedIdentity::ALL.len() as i64),
    ];
    match MetricsMap::open(&BpfPaths::new(agent.config.bpf_root.clone())).and_then(|m| m.entries())
    {
        Ok(entries) => {
            for entry in entries {
                let direction = entry.direction.name();
                match entry.drop_reason() {
                    Some(reason) => {
                        snapshot
                            .drops
                            .push((reason.description(), direction, entry.packets))
                    }
                    None => snapshot.forwards.push((direction, entry.packets)),
                }
            }
        }
        Err(error) => {
            tracing::warn!(error = %crate::api::chain(&error), "metrics map not readable")
        }
    }
    render(&snapshot)
}

fn render(snapshot: &AgentSnapshot) -> String {
    let mut registry = Registry::with_prefix("cilium");
    let endpoints = Gauge::<i64>::default();
    endpoints.set(snapshot.endpoints);
    registry.register(
        "endpoint",
        "Number of endpoints managed by this agent",
        endpoints,
    );
    let states = Family::<Vec<(&'static str, String)>, Gauge<i64>>::default();
    for (state, count) in &snapshot.endpoint_states {
        states
            .get_or_create(&vec![("endpoint_state", state.clone())])
            .set(*count);
    }
    registry.register("endpoint_state", "Count of all endpoints by state", states);
    let policy = Gauge::<i64>::default();
    policy.set(snapshot.policy_rules);
    registry.register("policy", "Number of policy rules loaded", policy);
    let identities = Family::<Vec<(&'static str, String)>, Gauge<i64>>::default();
    for (kind, count) in &snapshot.identities {
        identities
            .get_or_create(&vec![("type", kind.to_string())])
            .set(*count);
    }
    registry.register("identity", "Number of identities by type", identities);
    let drops = Family::<Vec<(&'static str, String)>, Counter>::default();
    for (reason, direction, packets) in &snapshot.drops {
        drops
            .get_or_create(&vec![
                ("reason", reason.clone()),
                ("direction", direction.to_string()),
            ])
            .inc_by(*packets);
    }
    registry.register(
        "drop_count",
        "Total dropped packets by reason and direction",
        drops,
    );
    let forwards = Family::<Vec<(&'static str, String)>, Counter>::default();
    for (direction, packets) in &snapshot.forwards {
        forwards
            .get_or_create(&vec![("direction", direction.to_string())])
            .inc_by(*packets);
    }
    registry.register(
        "forward_count",
        "Total forwarded packets by direction",
        forwards,
    );
    registry.register(
        "kvstore_operations_duration_seconds",
        "Duration in seconds of kvstore operations",
        crate::kvstore_metrics::operations().clone(),
    );
    let map_ops = Family::<Vec<(&'static str, String)>, Counter>::default();
    for op in &snapshot.map_ops {
        map_ops
            .get_or_create(&vec![
                ("map_name", op.map_name.clone()),
                ("operation", op.operation.to_string()),
                ("outcome", op.outcome.to_string()),
            ])
            .inc_by(op.count);
    }
    registry.register(
        "bpf_map_ops",
        "Total operations on BPF maps by map name, operation and outcome",
        map_ops,
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> Vec<prometheus_parse::Sample> {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("exposition does not parse: {e}\n{text}"))
            .samples
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = samples(text).into_iter().find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        });
        match found.map(|s| s.value) {
            // Counters come as `_total` samples of a family typed `counter`, which the
            // parser reports untyped; the TYPE lines are checked separately.
            Some(
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v),
            ) => v,
            other => panic!("{name}{labels:?}: {other:?} in\n{text}"),
        }
    }

    #[test]
    fn exposition_has_cilium_names_labels_and_counts() {
        let mut snapshot = AgentSnapshot {
            endpoint_states: vec![("ready".into(), 3)],
            endpoints: 3,
            policy_rules: 2,
            identities: vec![("global", 5), ("local", 1), ("reserved", 10)],
            drops: vec![("Policy denied".into(), "INGRESS", 4)],
            forwards: vec![("EGRESS", 100)],
            map_ops: vec![MapOpCount {
                map_name: "cilium_lxc".into(),
                operation: "update",
                outcome: "success",
                count: 7,
            }],
        };
        let text = render(&snapshot);
        assert_eq!(value(&text, "cilium_endpoint", &[]), 3.0);
        assert_eq!(
            value(
                &text,
                "cilium_endpoint_state",
                &[("endpoint_state", "ready")]
            ),
            3.0
        );
        assert_eq!(value(&text, "cilium_policy", &[]), 2.0);
        assert_eq!(value(&text, "cilium_identity", &[("type", "global")]), 5.0);
        assert_eq!(
            value(&text, "cilium_identity", &[("type", "reserved")]),
            10.0
        );
        let denied = [("reason", "Policy denied"), ("direction", "INGRESS")];
        assert_eq!(value(&text, "cilium_drop_count_total", &denied), 4.0);
        assert_eq!(
            value(
                &text,
                "cilium_forward_count_total",
                &[("direction", "EGRESS")]
            ),
            100.0
        );

        assert_eq!(
            value(
                &text,
                "cilium_bpf_map_ops_total",
                &[
                    ("map_name", "cilium_lxc"),
                    ("operation", "update"),
                    ("outcome", "success")
                ]
            ),
            7.0
        );
        assert!(
            text.contains("# TYPE cilium_kvstore_operations_duration_seconds histogram"),
            "the kvstore histogram is exposed:\n{text}"
        );

        for family in [
            "cilium_drop_count",
            "cilium_forward_count",
            "cilium_bpf_map_ops",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} counter")),
                "{family} is a counter:\n{text}"
            );
        }

        // The next scrape reads the datapath's counters again: they move.
        snapshot.drops[0].2 = 9;
        let text = render(&snapshot);
        assert_eq!(value(&text, "cilium_drop_count_total", &denied), 9.0);
    }

    #[test]
    fn addresses_take_cilium_port_only_form() {
        assert_eq!(
            socket_address("prometheus-serve-addr", ":9962").expect("valid"),
            "0.0.0.0:9962".parse::<SocketAddr>().expect("literal")
        );
        assert_eq!(
            socket_address("hubble-metrics-server", "10.0.0.1:9965")
                .expect("valid")
                .port(),
            9965
        );
        let err = socket_address("prometheus-serve-addr", "nope").expect_err("invalid");
        assert!(err.to_string().contains("prometheus-serve-addr"), "{err}");
    }
}
