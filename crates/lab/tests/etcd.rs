//! `etcd stop` and `etcd start`: the lab's etcd goes away while agents keep running, and comes
//! back on the same data.

#![cfg(feature = "privileged-tests")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{base64, etcd_http, LabGuard};

const MARKER_KEY: &str = "cilium-lab-test/marker";
const MARKER_VALUE: &str = "written before the outage";

#[test]
fn etcd_stops_and_starts_again_on_its_data() {
    common::require_bins(&["cilium-agent"]);
    let lab = LabGuard::new();
    lab.ok(&["up"]);
    let etcd_ns = format!("cilab-{}-etcd", lab.name);
    let put = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64(MARKER_KEY.as_bytes()),
        base64(MARKER_VALUE.as_bytes())
    );
    let (code, body) = etcd_http(&etcd_ns, "/v3/kv/put", &put);
    assert_eq!(code, 200, "put the marker: {body}");
    let before = common::status(&lab);
    let first_pid = before["etcd"]["pid"].as_u64().expect("etcd has a pid");
    let agent_pid = common::status_node(&before, "node1")["agent_pid"].clone();

    let out = lab.ok(&["etcd", "stop"]);
    assert!(out.contains(&format!("pid {first_pid}")), "{out}");
    let during = common::status(&lab);
    assert_eq!(during["etcd"]["running"], false, "{during:#}");
    assert_ne!(during["etcd"]["health"], "Ok", "{during:#}");
    let data_dir = format!("/run/cilium-lab/{}/etcd", lab.name);
    let left = common::processes_mentioning(&data_dir);
    assert!(
        left.is_empty(),
        "etcd still runs after `etcd stop`: {left:?}"
    );
    assert!(Path::new(&data_dir).is_dir(), "`etcd stop` keeps the data");
    let node1 = common::status_node(&during, "node1");
    assert_eq!(
        node1["agent_running"], true,
        "the agent outlives etcd: {node1}"
    );
    assert_eq!(node1["agent_pid"], agent_pid);
    let again = lab.ok(&["etcd", "stop"]);
    assert!(again.contains("not running"), "{again}");

    let out = lab.ok(&["etcd", "start"]);
    assert!(out.contains("healthy"), "{out}");
    let after = common::status(&lab);
    assert_eq!(after["etcd"]["health"], "Ok", "{after:#}");
    assert_ne!(after["etcd"]["pid"].as_u64(), Some(first_pid));
    let range = format!(r#"{{"key":"{}"}}"#, base64(MARKER_KEY.as_bytes()));
    let (code, body) = etcd_http(&etcd_ns, "/v3/kv/range", &range);
    assert_eq!(code, 200, "read the marker: {body}");
    assert!(
        body.contains(&base64(MARKER_VALUE.as_bytes())),
        "the restarted etcd lost its data: {body}"
    );
    let running = lab.ok(&["etcd", "start"]);
    assert!(running.contains("already running"), "{running}");

    common::wait_status(
        &lab,
        "the agent to be healthy with etcd back",
        Duration::from_secs(60),
        |s| common::status_node(s, "node1")["health"] == "Ok",
    );
    lab.ok(&["down"]);
    common::assert_lab_gone(&lab.name);
}
