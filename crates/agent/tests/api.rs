//! The real agent in its own network namespace, driven through its REST API: bad input gets a
//! clear error and changes nothing, and IPAM state survives a restart.
#![cfg(feature = "privileged-tests")]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cilium_api::models::{AddressPair, EndpointChangeRequest};
use cilium_api::AgentClient;

/// A namespace, a bpffs root and a state directory for one agent; all removed on drop.
struct Node {
    netns: String,
    bpf_root: PathBuf,
    dir: tempfile::TempDir,
    agent: Option<Child>,
}

impl Node {
    fn new() -> Node {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let netns = format!("cilt-ag{:x}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &netns])
            .output()
            .expect("ip netns add");
        assert!(
            out.status.success(),
            "creating {netns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Node {
            bpf_root: PathBuf::from(format!("/sys/fs/bpf/{netns}")),
            netns,
            dir: tempfile::tempdir().expect("temp dir"),
            agent: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("cilium.sock")
    }

    fn client(&self) -> AgentClient {
        AgentClient::new(self.socket()).with_timeout(Duration::from_secs(5))
    }

    fn start_agent(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(env!("CARGO_BIN_EXE_cilium-agent"))
            .args(["--node-name", "test", "--pod-cidr", "10.0.7.0/24"])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--bpf-root")
            .arg(&self.bpf_root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting cilium-agent");
        self.agent = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.client().healthz().is_err() {
            assert!(Instant::now() < deadline, "agent did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("waiting for agent").is_none() {
                assert!(Instant::now() < deadline, "agent ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_dir_all(&self.bpf_root);
    }
}

/// Sends raw bytes as one HTTP request and returns the status code.
fn raw_request(socket: &Path, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut stream = UnixStream::connect(socket).expect("connecting to the agent");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line")
}

fn request(ip: &str, ifindex: u32) -> EndpointChangeRequest {
    EndpointChangeRequest {
        container_id: "c1".into(),
        interface_name: "lxcnothere".into(),
        interface_index: ifindex,
        mac: "02:00:00:00:00:01".into(),
        host_mac: "02:00:00:00:00:02".into(),
        addressing: AddressPair {
            ipv4: ip.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let mut node = Node::new();
    node.start_agent();
    let client = node.client();
    let socket = node.socket();

    assert_eq!(
        raw_request(&socket, "PUT", "/v1/endpoint/0", b"{not json"),
        400
    );
    let err = client
        .put_endpoint("0", &request("10.9.9.9", 5))
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string().contains("not in this node's pod CIDR"),
        "{err}"
    );
    let err = client
        .put_endpoint("0", &request("10.0.7.1", 5))
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "router IP: {err}");
    let mut bad_mac = request("10.0.7.9", 5);
    bad_mac.mac = "zz".into();
    let err = client.put_endpoint("0", &bad_mac).unwrap_err();
    assert!(err.to_string().contains("invalid MAC address"), "{err}");
    // A veth that does not exist: the datapath refuses, and nothing is left allocated.
    let err = client
        .put_endpoint("0", &request("10.0.7.9", 4000))
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");

    for reference in ["77", "container-id:nope", "pod-name:default/ghost"] {
        let err = client.endpoint(reference).unwrap_err();
        assert_eq!(err.status(), Some(404), "{reference}: {err}");
        assert_eq!(
            client.delete_endpoint(reference).unwrap_err().status(),
            Some(404)
        );
    }
    assert_eq!(client.endpoint("bogus:1").unwrap_err().status(), Some(400));
    assert_eq!(
        client.ipam_release("10.0.7.200").unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        client.ipam_release("not-an-ip").unwrap_err().status(),
        Some(400)
    );
    assert_eq!(
        raw_request(&socket, "POST", "/v1/ipam?family=ipv6&owner=x", b""),
        501
    );

    assert_eq!(raw_request(&socket, "GET", "/v1/identity/abc", b""), 400);
    assert_eq!(raw_request(&socket, "GET", "/v1/identity/99999", b""), 404);
    let host = client.identity(1).unwrap();
    assert_eq!(host.labels, vec!["reserved:host".to_string()]);
    assert_eq!(
        raw_request(&socket, "PUT", "/v1/policy", b"kind: Nope"),
        400
    );
    assert_eq!(
        raw_request(&socket, "PUT", "/v1/resources", b"not: [yaml"),
        400
    );
    assert_eq!(
        raw_request(
            &socket,
            "PATCH",
            "/v1/config",
            br#"{"policy-enforcement":"sometimes"}"#
        ),
        400
    );
    assert_eq!(
        raw_request(
            &socket,
            "PATCH",
            "/v1/config",
            br#"{"options":{"Debug":"true"}}"#
        ),
        400
    );
    assert_eq!(client.config().unwrap().policy_enforcement, "default");
    let always = client
        .patch_config(&cilium_api::models::DaemonConfigurationSpec {
            policy_enforcement: Some("always".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(always.policy_enforcement, "always");

    assert!(client.endpoints().unwrap().is_empty());
    let ipam = client.ipam_status().unwrap();
    assert_eq!(
        ipam.allocations.len(),
        1,
        "only the router holds an address: {ipam:?}"
    );
    assert_eq!(client.healthz().unwrap().cilium.state, "Ok");
}

#[test]
fn restarted_agent_never_hands_out_an_address_twice() {
    let mut node = Node::new();
    node.start_agent();
    let first: Vec<String> = (0..5)
        .map(|i| {
            node.client()
                .ipam_allocate(&format!("pod{i}"))
                .unwrap()
                .ipv4
                .ip
        })
        .collect();
    let config = node.client().config().unwrap();
    assert_eq!(config.router_ip, "10.0.7.1");
    assert!(
        first
            .iter()
            .all(|ip| ip.starts_with("10.0.7.") && ip != "10.0.7.1"),
        "{first:?}"
    );

    node.stop_agent();
    assert!(
        !node.socket().exists(),
        "a clean shutdown removes the API socket"
    );
    node.start_agent();

    let client = node.client();
    assert_eq!(client.ipam_status().unwrap().allocations.len(), 6);
    // Same owner, same address; a new owner gets a fresh one.
    assert_eq!(client.ipam_allocate("pod2").unwrap().ipv4.ip, first[2]);
    let fresh = client.ipam_allocate("new").unwrap().ipv4.ip;
    assert!(
        !first.contains(&fresh),
        "{fresh} was handed out before the restart"
    );
    client.ipam_release_owner("pod0").unwrap();
    assert_eq!(
        client.ipam_release_owner("pod0").unwrap_err().status(),
        Some(404)
    );
}
