//! `cilium bpf endpoint|ct|metrics|ipcache list` and `cilium bpf policy get` against real
//! pinned maps, created by the datapath crate (and bpftool, for a per-endpoint policy map) in a
//! throw-away bpffs root (`/sys/fs/bpf/cilt-<random>`, removed on drop) and filled from the
//! test. Needs root.

#![cfg(feature = "privileged-tests")]

#[path = "support/fake_agent.rs"]
mod fake_agent;
#[path = "support/run.rs"]
mod run;

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use aya::maps::{HashMap, Map, MapData, PerCpuHashMap, PerCpuValues};
use cilium_datapath::abi::{
    CtEntry, EndpointInfo, Ipv4CtTuple, MacAddr, MetricsKey, MetricsValue, RemoteEndpointInfo,
    CT_ANY4_MAP, CT_TCP4_MAP, ENDPOINT_F_HOST, FLAG_SKIP_TUNNEL, METRICS_MAP, TUPLE_F_IN,
    TUPLE_F_OUT,
};
use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::loader::create_maps;
use cilium_datapath::maps::{
    monotonic_seconds, Direction, Enforcement, IpcacheMap, LxcMap, PolicyEnforcementMap,
    PolicyEntry, PolicyMap, PolicyMapKey,
};
use cilium_datapath::MapSizes;
use fake_agent::FakeAgent;
use run::{run_cilium, stderr, stdout};
use serde_json::Value;

/// A bpffs directory of our own, removed with every pin in it on drop.
struct TestRoot {
    path: PathBuf,
}

impl TestRoot {
    fn new() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "privileged CLI tests need root (run `cargo test --all-features` as root)"
        );
        let mut bytes = [0u8; 4];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            path: PathBuf::from(format!("/sys/fs/bpf/cilt-{suffix}")),
        }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if self.path.exists() {
            if let Err(err) = std::fs::remove_dir_all(&self.path) {
                eprintln!("cannot remove test bpf root {}: {err}", self.path.display());
            }
        }
    }
}

fn open_pinned(paths: &BpfPaths, name: &str) -> Map {
    let path = paths.map(name);
    let data =
        MapData::from_pin(&path).unwrap_or_else(|e| panic!("open pinned {}: {e}", path.display()));
    Map::from_map_data(data).unwrap_or_else(|e| panic!("typed map {name}: {e}"))
}

fn ct_tuple(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    proto: u8,
    flags: u8,
) -> Ipv4CtTuple {
    Ipv4CtTuple {
        daddr: dst,
        saddr: src,
        dport: dport.to_be(),
        sport: sport.to_be(),
        nexthdr: proto,
        flags,
    }
}

/// Fills the maps the way the datapath would after one TCP connection, one ping and a
/// policy drop.
fn populate(paths: &BpfPaths) -> u32 {
    let mut lxc = LxcMap::open(paths).expect("open cilium_lxc");
    lxc.upsert(
        Ipv4Addr::new(10, 0, 1, 5),
        &EndpointInfo {
            ifindex: 8,
            lxc_id: 829,
            mac: MacAddr::new([0x0a, 0, 0, 0, 0, 0x05]),
            node_mac: MacAddr::new([0x0a, 0, 0, 0, 0, 0x01]),
            ..Default::default()
        },
    )
    .expect("insert endpoint");
    lxc.upsert(
        Ipv4Addr::new(10, 0, 1, 1),
        &EndpointInfo {
            flags: ENDPOINT_F_HOST,
            ..Default::default()
        },
    )
    .expect("insert host address");

    let now = monotonic_seconds().expect("monotonic clock");
    let mut tcp: HashMap<MapData, Ipv4CtTuple, CtEntry> =
        HashMap::try_from(open_pinned(paths, CT_TCP4_MAP)).expect("ct tcp map type");
    let entry = CtEntry {
        tx_packets: 4,
        tx_bytes: 300,
        rx_packets: 3,
        rx_bytes: 222,
        lifetime: now + 3600,
        tx_flags_seen: 0x12,
        rx_flags_seen: 0x12,
        src_sec_id: 40321,
        ..Default::default()
    };
    tcp.insert(
        ct_tuple([10, 0, 1, 5], 34219, [10, 0, 1, 7], 80, 6, TUPLE_F_OUT),
        entry,
        0,
    )
    .expect("insert tcp ct entry");
    let mut any: HashMap<MapData, Ipv4CtTuple, CtEntry> =
        HashMap::try_from(open_pinned(paths, CT_ANY4_MAP)).expect("ct any map type");
    let ping = CtEntry {
        tx_packets: 1,
        tx_bytes: 98,
        lifetime: now + 60,
        src_sec_id: 40322,
        ..Default::default()
    };
    any.insert(
        ct_tuple([10, 0, 1, 9], 7, [10, 0, 1, 5], 0, 1, TUPLE_F_IN),
        ping,
        0,
    )
    .expect("insert icmp ct entry");

    let mut metrics: PerCpuHashMap<MapData, MetricsKey, MetricsValue> =
        PerCpuHashMap::try_from(open_pinned(paths, METRICS_MAP)).expect("metrics map type");
    let cpus = aya::util::nr_cpus().expect("count possible CPUs") as u32;
    for (reason, dir, count, bytes) in [(0u8, 2u8, 5u64, 500u64), (133, 1, 1, 74)] {
        let values = PerCpuValues::try_from(vec![MetricsValue { count, bytes }; cpus as usize])
            .expect("per-cpu values");
        let key = MetricsKey {
            reason,
            dir,
            ..Default::default()
        };
        metrics.insert(key, values, 0).expect("insert metrics");
    }
    cpus
}

/// Creates the datapath's pinned maps in a fresh test root.
fn root_with_maps() -> (TestRoot, BpfPaths) {
    let root = TestRoot::new();
    let paths = BpfPaths::new(&root.path);
    paths.prepare().expect("prepare the test bpf root");
    create_maps(
        &paths,
        &MapSizes {
            ct_tcp: 1024,
            ct_any: 1024,
        },
    )
    .expect("create the pinned maps");
    (root, paths)
}

/// Runs `cilium --bpf-root ROOT ARGS` with no agent (the flag alone must be enough) and
/// returns its stdout, failing the test if the command fails.
fn cli(root: &TestRoot, args: &[&str]) -> String {
    let root_arg = root.path.to_str().expect("utf-8 root");
    let mut argv = vec!["-H", "/nonexistent/cilium.sock", "--bpf-root", root_arg];
    argv.extend_from_slice(args);
    let out = run_cilium(&argv, &[]);
    assert!(
        out.status.success(),
        "cilium {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn bpf_list_commands_read_the_pinned_maps() {
    let (root, paths) = root_with_maps();
    let cpus = u64::from(populate(&paths));
    let cli = |args: &[&str]| cli(&root, args);

    let text = cli(&["bpf", "endpoint", "list"]);
    assert_eq!(
        text,
        "IP ADDRESS   LOCAL ENDPOINT INFO\n\
         10.0.1.1:0   (localhost)\n\
         10.0.1.5:0   id=829   flags=0x0000 ifindex=8   mac=0a:00:00:00:00:05 nodemac=0a:00:00:00:00:01\n"
    );

    let text = cli(&["bpf", "ct", "list", "global"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("ICMP IN 10.0.1.9:7 -> 10.0.1.5:0 expires="),
        "{text}"
    );
    assert!(lines[0].contains("TxPackets=1 TxBytes=98"), "{text}");
    assert!(
        lines[1].starts_with("TCP OUT 10.0.1.5:34219 -> 10.0.1.7:80 expires="),
        "{text}"
    );
    assert!(
        lines[1].contains("RxPackets=3 RxBytes=222")
            && lines[1].ends_with("SourceSecurityID=40321 IfIndex=0"),
        "{text}"
    );

    let text = cli(&["bpf", "metrics", "list"]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows[0], ["REASON", "DIRECTION", "PACKETS", "BYTES"]);
    assert_eq!(
        rows[1],
        [
            "Success",
            "EGRESS",
            &(5 * cpus).to_string(),
            &(500 * cpus).to_string()
        ]
    );
    assert_eq!(
        rows[2],
        [
            "Policy denied",
            "INGRESS",
            &cpus.to_string(),
            &(74 * cpus).to_string()
        ]
    );

    let json: Value = serde_json::from_str(&cli(&["bpf", "ct", "list", "global", "-o", "json"]))
        .expect("ct -o json");
    assert_eq!(json[1]["src"], "10.0.1.5");
    assert_eq!(json[1]["tx_packets"], 4);
    let json: Value =
        serde_json::from_str(&cli(&["bpf", "endpoint", "list", "-o", "json"])).expect("json");
    assert_eq!(json[1]["endpoint_id"], 829);
    assert_eq!(json[0]["host"], true);
}

#[test]
fn bpf_ipcache_list_reads_the_pinned_trie() {
    let (root, paths) = root_with_maps();
    // Empty: just the header.
    assert_eq!(
        cli(&root, &["bpf", "ipcache", "list"]),
        "IP PREFIX/ADDRESS   IDENTITY\n"
    );

    // What an agent of a three-node cluster writes: the world, a remote pod, a remote node
    // and a remote node's pod CIDR.
    let mut ipcache = IpcacheMap::open(&paths).expect("open cilium_ipcache");
    let remote_node = Ipv4Addr::new(172, 18, 0, 12);
    for (prefix, info) in [
        (
            "10.0.2.5/32",
            RemoteEndpointInfo::with_tunnel(40321, remote_node),
        ),
        ("0.0.0.0/0", RemoteEndpointInfo::new(2)),
        (
            "172.18.0.12/32",
            RemoteEndpointInfo {
                flags: FLAG_SKIP_TUNNEL,
                ..RemoteEndpointInfo::new(6)
            },
        ),
        (
            "10.0.2.0/24",
            RemoteEndpointInfo::with_tunnel(2, remote_node),
        ),
    ] {
        let net = prefix
            .parse()
            .unwrap_or_else(|e| panic!("prefix {prefix}: {e}"));
        ipcache
            .upsert(net, &info)
            .unwrap_or_else(|e| panic!("insert {prefix}: {e}"));
    }

    assert_eq!(
        cli(&root, &["bpf", "ipcache", "list"]),
        "IP PREFIX/ADDRESS   IDENTITY\n\
         0.0.0.0/0           identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n\
         10.0.2.0/24         identity=2 encryptkey=0 tunnelendpoint=172.18.0.12 flags=hastunnel\n\
         10.0.2.5/32         identity=40321 encryptkey=0 tunnelendpoint=172.18.0.12 flags=hastunnel\n\
         172.18.0.12/32      identity=6 encryptkey=0 tunnelendpoint=0.0.0.0 flags=skiptunnel\n"
    );

    let json: Value = serde_json::from_str(&cli(&root, &["bpf", "ipcache", "list", "-o", "json"]))
        .expect("ipcache -o json");
    let rows = json.as_array().expect("array of entries");
    assert_eq!(rows.len(), 4, "{json}");
    assert_eq!(rows[2]["prefix"], "10.0.2.5/32");
    assert_eq!(rows[2]["identity"], 40321);
    assert_eq!(rows[2]["tunnel_endpoint"], "172.18.0.12");
    assert_eq!(rows[2]["flag_names"], serde_json::json!(["hastunnel"]));
    assert_eq!(rows[0]["tunnel_endpoint"], Value::Null);

    // A deleted entry disappears from the listing.
    ipcache
        .delete("10.0.2.5/32".parse().expect("valid prefix"))
        .expect("delete 10.0.2.5/32");
    let text = cli(&root, &["bpf", "ipcache", "list"]);
    assert!(!text.contains("10.0.2.5/32"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}

/// Creates endpoint `id`'s policy map the way the loader pins it (an LPM trie with 12-byte
/// keys and values) and fills it through the datapath crate.
fn policy_map(paths: &BpfPaths, id: u16, entries: &[(PolicyMapKey, PolicyEntry)]) {
    let path = PolicyMap::pin_path(paths, id);
    let out = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&path)
        .args([
            "type",
            "lpm_trie",
            "key",
            "12",
            "value",
            "12",
            "entries",
            "64",
            "name",
            "cilium_policy",
            "flags",
            "1",
        ])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool map create {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PolicyMap::open(paths, id)
        .expect("open the new policy map")
        .sync(entries)
        .expect("fill the policy map");
}

#[test]
fn bpf_policy_get_names_identities_through_the_agent() {
    let (root, paths) = root_with_maps();
    policy_map(
        &paths,
        25,
        &[
            (
                PolicyMapKey::l4(40321, Direction::Ingress, 6, 8080),
                PolicyEntry::allow(),
            ),
            (
                PolicyMapKey::proto(777, Direction::Ingress, 17),
                PolicyEntry::deny(),
            ),
            (PolicyMapKey::l3(0, Direction::Egress), PolicyEntry::allow()),
        ],
    );
    PolicyEnforcementMap::open(&paths)
        .and_then(|mut switches| {
            switches.set(
                25,
                Enforcement {
                    ingress: true,
                    egress: false,
                },
            )
        })
        .expect("set endpoint 25's enforcement");
    let agent = FakeAgent::start(&[(
        "/v1/identity",
        200,
        serde_json::json!([{"id": 40321, "labels": ["k8s:app=dashboard"]}]),
    )]);
    let root_arg = root.path.to_str().expect("utf-8 root");
    let socket = agent.socket();
    let socket_arg = socket.to_str().expect("utf-8 socket");
    let run = |extra: &[&str]| {
        let mut argv = vec![
            "-H",
            socket_arg,
            "--bpf-root",
            root_arg,
            "bpf",
            "policy",
            "get",
        ];
        argv.extend_from_slice(extra);
        let out = run_cilium(&argv, &[]);
        assert!(out.status.success(), "cilium {argv:?}: {}", stderr(&out));
        stdout(&out)
    };

    let text = run(&["25"]);
    let path = PolicyMap::pin_path(&paths, 25);
    assert_eq!(
        text,
        format!(
            "Endpoint ID: 25\n\
             Path: {}\n\
             Policy enforcement: ingress enabled, egress disabled\n\n\
             POLICY   DIRECTION   LABELS (source:key[=value])   PORT/PROTO   PROXY PORT   AUTH TYPE   BYTES   PACKETS   PREFIX\n\
             Allow    Egress      ANY                           ANY          NONE         disabled    -       -         0\n\
             Deny     Ingress     777                           ANY/UDP      NONE         disabled    -       -         8\n\
             Allow    Ingress     k8s:app=dashboard             8080/TCP     NONE         disabled    -       -         24\n",
            path.display()
        )
    );
    let json: Value = serde_json::from_str(&run(&["25", "-o", "json"])).expect("JSON output");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(3), "{json}");
    assert_eq!(
        json["entries"][2]["labels"],
        serde_json::json!(["k8s:app=dashboard"])
    );
    assert_eq!(agent.requests(), vec!["GET /v1/identity"; 2]);

    let out = run_cilium(
        &[
            "-H",
            socket_arg,
            "--bpf-root",
            root_arg,
            "bpf",
            "policy",
            "get",
            "26",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the policy map of endpoint 26"),
        "{}",
        stderr(&out)
    );
}
