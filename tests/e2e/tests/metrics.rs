//! Prometheus metrics in the Star Wars lab: with `--prometheus-serve-addr` and
//! `--hubble-metrics-server` set on every agent, xwing's policy-denied connection to deathstar
//! shows on deathstar's node both in the agent's datapath drop counter and in Hubble's drop
//! counter, scraped over HTTP from inside the node; the agent also exposes how long its kvstore
//! calls took and how many BPF map operations it made.
#![cfg(feature = "privileged-tests")]

use std::time::Duration;

use cilium_e2e::{eventually, serial, starwars, stdout, Lab};

/// `GET http://127.0.0.1:PORT/metrics` inside `node`; the body, or `None` while not served.
fn scrape(lab: &Lab, node: &str, port: u16) -> Option<String> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let out = lab.node_exec(node, &["curl", "-sf", "--max-time", "2", &url]);
    out.status.success().then(|| stdout(&out))
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Sum of every sample of `name`, whatever its labels.
fn total(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_star_wars_drop_raises_the_agent_and_hubble_drop_counters() {
    let _serial = serial();
    let lab = Lab::up_with(
        "mt",
        &[
            "--nodes",
            "2",
            "--agent-arg=--prometheus-serve-addr=:9962",
            "--agent-arg=--hubble-metrics-server=:9965",
            "--agent-arg=--hubble-metrics=drop,flow",
        ],
    );
    let deathstar = starwars::deploy(&lab);
    for node in ["node1", "node2"] {
        lab.cilium(node, &["policy", "import", starwars::L3_L4_POLICY]);
    }
    const DENIED: &str = r#"cilium_drop_count_total{reason="Policy denied",direction="INGRESS"}"#;
    let agent_before = eventually(Duration::from_secs(10), "agent metrics served", || {
        scrape(&lab, "node2", 9962)
    });
    let denied_before = sample(&agent_before, DENIED).unwrap_or(0.0);
    assert!(
        sample(&agent_before, "cilium_policy").is_some_and(|rules| rules >= 1.0),
        "the imported rule is counted:\n{agent_before}"
    );
    // The agent's own work: kvstore calls timed (etcd in the lab), map writes counted.
    assert!(
        total(&agent_before, "cilium_kvstore_operations_duration_seconds_count") > 0.0
            && agent_before.contains(
                r#"cilium_kvstore_operations_duration_seconds_count{action="put",kind="etcd",outcome="success",scope="ip"}"#
            ),
        "kvstore operations are timed (the pods' IP entries were put):\n{agent_before}"
    );
    assert!(
        sample(
            &agent_before,
            r#"cilium_bpf_map_ops_total{map_name="cilium_lxc",operation="update",outcome="success"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "the endpoints' map writes are counted:\n{agent_before}"
    );
    let hubble_before = eventually(Duration::from_secs(10), "Hubble metrics served", || {
        scrape(&lab, "node2", 9965)
    });
    let hubble_drops_before = total(&hubble_before, "hubble_drop_total");

    assert!(
        starwars::lands(&lab, "tiefighter", &deathstar),
        "tiefighter gets in"
    );
    assert!(
        !starwars::lands(&lab, "xwing", &deathstar),
        "xwing is dropped"
    );

    eventually(
        Duration::from_secs(10),
        "the policy drop in the agent's counter",
        || {
            let body = scrape(&lab, "node2", 9962)?;
            (sample(&body, DENIED)? > denied_before).then_some(())
        },
    );
    let hubble = eventually(
        Duration::from_secs(10),
        "the drop in Hubble's counter",
        || {
            let body = scrape(&lab, "node2", 9965)?;
            (total(&body, "hubble_drop_total") > hubble_drops_before).then_some(body)
        },
    );
    assert!(
        hubble.contains(r#"hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"}"#),
        "the drop is labelled POLICY_DENIED/TCP:\n{hubble}"
    );
    assert!(
        total(&hubble, "hubble_flows_processed_total") > 0.0,
        "flows are counted:\n{hubble}"
    );
}
