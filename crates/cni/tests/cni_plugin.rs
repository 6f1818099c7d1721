//! Privileged: the real `cilium-cni` binary, run as a runtime runs it inside a throw-away
//! "host" namespace, wiring throw-away pod namespaces against a fake agent.
#![cfg(feature = "privileged-tests")]

mod support;

use serde_json::{json, Value};

use support::fake_agent::{FakeAgent, ROUTER_IP};
use support::netns::TestNetns;
use support::runtime::{run_plugin, Outcome};

/// A node namespace, a fake agent, and helpers to call the plugin there.
struct Node {
    host: TestNetns,
    agent: FakeAgent,
}

impl Node {
    fn new() -> Self {
        Self {
            host: TestNetns::new(),
            agent: FakeAgent::start(),
        }
    }

    fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "cilium",
            "type": "cilium-cni",
            "agent-socket": self.agent.socket_str(),
            "mtu": 1450,
        })
    }

    fn call(
        &self,
        command: &str,
        container: &str,
        pod: Option<&TestNetns>,
        conf: &Value,
    ) -> Outcome {
        let netns = pod.map(TestNetns::path).unwrap_or_default();
        run_plugin(
            &self.host,
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", container),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", "eth0"),
                (
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
                ),
            ],
            &conf.to_string(),
        )
    }

    fn lxc_links(&self) -> Vec<String> {
        self.host
            .link_names()
            .into_iter()
            .filter(|name| name.starts_with("lxc"))
            .collect()
    }

    /// Asserts that nothing of any container is left: no host veth, no endpoint, no IP
    /// except the router's.
    fn assert_clean(&self) {
        assert_eq!(
            self.lxc_links(),
            Vec::<String>::new(),
            "host veths left behind"
        );
        let state = self.agent.state();
        assert!(
            state.endpoints.is_empty(),
            "endpoints left: {:?}",
            state.endpoints
        );
        let owners: Vec<&String> = state.allocations.values().collect();
        assert_eq!(owners, vec!["router"], "IPs left allocated");
    }
}

fn default_route_via(pod: &TestNetns) -> Option<(String, String)> {
    pod.routes()
        .iter()
        .find(|r| r["dst"] == "default")
        .map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["dev"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[test]
fn add_check_del_wire_and_unwire_a_pod() {
    let node = Node::new();
    let pod = TestNetns::new();
    let mut conf = node.conf("1.0.0");
    conf["args"] = json!({"cni": {"labels": [{"key": "app", "value": "web"}]}});

    let result = node.call("ADD", "c-roundtrip", Some(&pod), &conf).result();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["ips"][0]["address"], "10.200.0.2/32");
    assert_eq!(result["ips"][0]["gateway"], ROUTER_IP);
    assert!(result["ips"][0].get("version").is_none(), "{result}");
    assert_eq!(
        result["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": ROUTER_IP})
    );
    let host_name = result["interfaces"][0]["name"]
        .as_str()
        .expect("host name")
        .to_string();
    assert!(
        host_name.starts_with("lxc") && host_name.len() == 15,
        "{host_name}"
    );
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["sandbox"], pod.path());

    // The pod side, as `ip` sees it.
    assert_eq!(pod.ipv4_addresses("eth0"), vec!["10.200.0.2/32"]);
    assert_eq!(
        default_route_via(&pod),
        Some((ROUTER_IP.to_string(), "eth0".to_string()))
    );
    assert!(pod
        .routes()
        .iter()
        .any(|r| r["dst"] == ROUTER_IP && r["dev"] == "eth0" && r["scope"] == "link"));
    let eth0 = pod.link("eth0");
    assert_eq!(eth0["mtu"], 1450);
    assert_eq!(eth0["address"], result["interfaces"][1]["mac"]);
    assert!(
        eth0["flags"].as_array().unwrap().contains(&json!("UP")),
        "{eth0}"
    );
    assert!(pod.link("lo")["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("UP")));

    // The host side.
    let host_link = node.host.link(&host_name);
    assert!(
        host_link["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("UP")),
        "{host_link}"
    );
    assert_eq!(host_link["address"], result["interfaces"][0]["mac"]);

    // What the agent was told.
    {
        let state = node.agent.state();
        assert_eq!(
            state.allocations.get("10.200.0.2").map(String::as_str),
            Some("c-roundtrip")
        );
        let request = state.put_requests.last().expect("endpoint registered");
        assert_eq!(request.container_id, "c-roundtrip");
        assert_eq!(request.interface_name, host_name);
        assert_eq!(
            request.interface_index as u64,
            host_link["ifindex"].as_u64().unwrap()
        );
        assert_eq!(request.container_interface_name, "eth0");
        assert_eq!(json!(request.mac), result["interfaces"][1]["mac"]);
        assert_eq!(json!(request.host_mac), result["interfaces"][0]["mac"]);
        assert_eq!(request.addressing.ipv4, "10.200.0.2");
        assert_eq!(request.netns, pod.path());
        assert_eq!(
            (
                request.k8s_namespace.as_str(),
                request.k8s_pod_name.as_str()
            ),
            ("default", "web-0")
        );
        assert_eq!(request.labels, vec!["k8s:app=web"]);
        assert!(request.sync_build_endpoint);
    }

    // CHECK passes on the intact setup...
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    node.call("CHECK", "c-roundtrip", Some(&pod), &check_conf)
        .assert_silent_success();
    // ...and notices a missing default route.
    support::netns::ip(&["-n", &pod.name, "route", "del", "default"]);
    let error = node
        .call("CHECK", "c-roundtrip", Some(&pod), &check_conf)
        .assert_error(100);
    assert!(error["msg"].as_str().unwrap().contains("route"), "{error}");

    // DEL removes everything, and is idempotent, also without a netns (containerd).
    node.call("DEL", "c-roundtrip", Some(&pod), &conf)
        .assert_silent_success();
    node.assert_clean();
    assert_eq!(
        pod.link_names(),
        vec!["lo"],
        "the pod interface went with the veth"
    );
    node.call("DEL", "c-roundtrip", Some(&pod), &conf)
        .assert_silent_success();
    node.call("DEL", "c-roundtrip", None, &conf)
        .assert_silent_success();
    node.assert_clean();
}

#[test]
fn del_of_an_unknown_container_succeeds_silently() {
    let node = Node::new();
    node.call("DEL", "never-added", None, &node.conf("1.1.0"))
        .assert_silent_success();
    node.assert_clean();
}

#[test]
fn bad_requests_change_nothing() {
    let node = Node::new();
    let pod = TestNetns::new();
    let stdin_of = |text: &str| {
        run_plugin(
            &node.host,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c-bad"),
                ("CNI_NETNS", &pod.path()),
                ("CNI_IFNAME", "eth0"),
            ],
            text,
        )
    };

    stdin_of("{\"cniVersion\": \"1.0.0\", ").assert_error(6);

    let mut wrong_type = node.conf("1.0.0");
    wrong_type["type"] = json!("bridge");
    stdin_of(&wrong_type.to_string()).assert_error(7);

    let mut bad_mtu = node.conf("1.0.0");
    bad_mtu["mtu"] = json!("big");
    stdin_of(&bad_mtu.to_string()).assert_error(7);

    let error = stdin_of(&node.conf("9.9.9").to_string()).assert_error(1);
    let msg = error["msg"].as_str().unwrap();
    assert!(msg.contains("incompatible CNI version"), "{error}");
    assert!(
        msg.contains("9.9.9") && msg.contains("0.3.1") && msg.contains("1.1.0"),
        "{error}"
    );

    let missing_netns = TestNetns::new();
    let gone = missing_netns.path();
    drop(missing_netns);
    let error = run_plugin(
        &node.host,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c-bad"),
            ("CNI_NETNS", &gone),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.conf("1.0.0").to_string(),
    )
    .assert_error(4);
    assert!(error["msg"].as_str().unwrap().contains(&gone), "{error}");

    let no_netns = run_plugin(
        &node.host,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c-bad"),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.conf("1.0.0").to_string(),
    );
    no_netns.assert_error(4);

    let unknown_args = run_plugin(
        &node.host,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c-bad"),
            ("CNI_NETNS", &pod.path()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "COLOUR=blue"),
        ],
        &node.conf("1.0.0").to_string(),
    );
    unknown_args.assert_error(4);

    node.assert_clean();
    assert!(
        !node.agent.state().saw("POST /v1/ipam"),
        "an IP was allocated"
    );
    assert_eq!(pod.link_names(), vec!["lo"]);
}

#[test]
fn an_interface_name_taken_in_the_pod_is_refused_and_kept() {
    let node = Node::new();
    let pod = TestNetns::new();
    support::netns::ip(&[
        "-n", &pod.name, "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let taken_index = pod.link("eth0")["ifindex"].clone();

    let error = node
        .call("ADD", "c-taken", Some(&pod), &node.conf("1.0.0"))
        .assert_error(999);
    let msg = error["msg"].as_str().unwrap();
    assert!(msg.contains("eth0") && msg.contains(&pod.path()), "{error}");
    assert!(
        !node.agent.state().saw("POST /v1/ipam"),
        "an IP was allocated"
    );
    node.assert_clean();
    let mut left = pod.link_names();
    left.sort();
    assert_eq!(left, vec!["eth0", "lo", "other0"]);
    assert_eq!(
        pod.link("eth0")["ifindex"],
        taken_index,
        "the pod's own eth0 was replaced"
    );
}

#[test]
fn a_failed_endpoint_registration_is_rolled_back() {
    let node = Node::new();
    let pod = TestNetns::new();
    node.agent.state().reject_endpoints = true;
    let outcome = node.call("ADD", "c-rollback", Some(&pod), &node.conf("1.0.0"));
    let error = outcome.assert_error(999);
    assert!(outcome.stderr.contains("rolling back"), "{outcome:#?}");
    assert!(
        error["details"]
            .as_str()
            .unwrap()
            .contains("rejected by the test"),
        "{error}"
    );
    assert!(
        node.agent.state().saw("POST /v1/ipam"),
        "the IP was allocated first"
    );
    node.assert_clean();
    assert_eq!(pod.link_names(), vec!["lo"]);
}

#[test]
fn an_unreachable_agent_means_try_again_later() {
    let node = Node::new();
    let pod = TestNetns::new();
    let mut conf = node.conf("1.0.0");
    conf["agent-socket"] = json!("/nonexistent/cilium.sock");
    node.call("ADD", "c-down", Some(&pod), &conf)
        .assert_error(11);
    node.call("DEL", "c-down", Some(&pod), &conf)
        .assert_error(11);
    // A malformed config is still reported as such.
    run_plugin(
        &node.host,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c-down"),
            ("CNI_IFNAME", "eth0"),
        ],
        "not json",
    )
    .assert_error(6);
    node.assert_clean();
    assert_eq!(pod.link_names(), vec!["lo"]);
}

#[test]
fn version_lists_the_supported_versions() {
    let node = Node::new();
    let result = run_plugin(
        &node.host,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion": "1.1.0"}"#,
    )
    .result();
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.1.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        })
    );
}

#[test]
fn status_follows_the_agent() {
    let node = Node::new();
    let conf = node.conf("1.1.0").to_string();
    run_plugin(&node.host, &[("CNI_COMMAND", "STATUS")], &conf).assert_silent_success();

    node.agent.state().healthy = false;
    let error = run_plugin(&node.host, &[("CNI_COMMAND", "STATUS")], &conf).assert_error(50);
    assert!(
        error["msg"].as_str().unwrap().contains("Failure"),
        "{error}"
    );

    let mut down = node.conf("1.1.0");
    down["agent-socket"] = json!("/nonexistent/cilium.sock");
    run_plugin(&node.host, &[("CNI_COMMAND", "STATUS")], &down.to_string()).assert_error(50);
}

#[test]
fn old_versions_get_old_results() {
    let node = Node::new();
    let pod = TestNetns::new();
    let conf = node.conf("0.3.1");
    let result = node.call("ADD", "c-old", Some(&pod), &conf).result();
    assert_eq!(result["cniVersion"], "0.3.1");
    assert_eq!(result["ips"][0]["version"], "4");
    node.call("DEL", "c-old", Some(&pod), &conf)
        .assert_silent_success();
    node.assert_clean();
}

#[test]
fn gc_removes_what_the_runtime_no_longer_lists() {
    let node = Node::new();
    let keep_pod = TestNetns::new();
    let stale_pod = TestNetns::new();
    let conf = node.conf("1.1.0");
    let keep = node.call("ADD", "c-keep", Some(&keep_pod), &conf).result();
    let stale = node
        .call("ADD", "c-stale", Some(&stale_pod), &conf)
        .result();
    let keep_host = keep["interfaces"][0]["name"].as_str().unwrap().to_string();
    let stale_host = stale["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(node.lxc_links().len(), 2);

    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "c-keep", "ifname": "eth0"}]);
    run_plugin(&node.host, &[("CNI_COMMAND", "GC")], &gc_conf.to_string()).assert_silent_success();

    assert_eq!(
        node.lxc_links(),
        vec![keep_host],
        "{stale_host} should be gone"
    );
    {
        let state = node.agent.state();
        let containers: Vec<&str> = state
            .endpoints
            .values()
            .map(|e| e.status.external_identifiers.container_id.as_str())
            .collect();
        assert_eq!(containers, vec!["c-keep"]);
        let owners: Vec<&str> = state.allocations.values().map(String::as_str).collect();
        assert_eq!(owners, vec!["router", "c-keep"]);
    }
    assert_eq!(stale_pod.link_names(), vec!["lo"]);
    assert_eq!(keep_pod.ipv4_addresses("eth0"), vec!["10.200.0.2/32"]);

    node.call("DEL", "c-keep", Some(&keep_pod), &conf)
        .assert_silent_success();
    node.assert_clean();
}
