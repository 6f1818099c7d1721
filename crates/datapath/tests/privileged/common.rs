//! Shared helpers of the privileged datapath tests: a throw-away bpffs root,
//! crafted packets, BPF_PROG_TEST_RUN, event draining, and network
//! namespaces that clean up after themselves.

use std::{
    fs::File,
    io::Read,
    net::Ipv4Addr,
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aya::{programs::SchedClassifier, TestRun, TestRunOptions};
use cilium_datapath::{
    abi::CtEntry,
    maps::{CtEntryRecord, LbMaps},
    AttachPreference, Datapath, DatapathConfig, DatapathEvent, DropEvent, EndpointDatapathConfig,
    MapSizes, Routing, TraceEvent,
};
use cilium_loadbalancer::{
    Algorithm, Backend, BackendAddr, BackendId, BackendState, FrontendAddr, FrontendKey, LbOp,
    MapWriter, Master, Protocol, RevNatIndex, Scope, ServiceFlags, ServiceKey, ServiceValue, Slot,
};

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// `err` with every source, for panic messages.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fails loudly unless running as root: these tests must run, not skip.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged datapath tests need root (run `cargo test --all-features` as root)"
    );
}

/// A random lowercase hex suffix.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bpffs root `/sys/fs/bpf/cilt-<random>` removed (with every pin in it)
/// on drop.
pub struct TestRoot {
    pub path: PathBuf,
}

impl TestRoot {
    pub fn new() -> Self {
        require_root();
        Self {
            path: PathBuf::from(format!("/sys/fs/bpf/cilt-{}", random_suffix())),
        }
    }

    /// Datapath settings for this root (native routing).
    pub fn config(&self, monitor_aggregation: u32, attach: AttachPreference) -> DatapathConfig {
        DatapathConfig {
            bpf_root: self.path.clone(),
            attach,
            monitor_aggregation,
            routing: Routing::default(),
            underlay: None,
        }
    }

    /// Opens (or reopens) the datapath in this root with small conntrack maps.
    pub fn open(&self, monitor_aggregation: u32, attach: AttachPreference) -> Datapath {
        open_datapath(self.config(monitor_aggregation, attach))
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if self.path.exists() {
            if let Err(err) = std::fs::remove_dir_all(&self.path) {
                eprintln!("cleanup: removing {}: {err}", self.path.display());
            }
        }
    }
}

/// Opens a datapath with small conntrack maps, panicking with the cause.
pub fn open_datapath(config: DatapathConfig) -> Datapath {
    let root = config.bpf_root.clone();
    let sizes = MapSizes {
        ct_tcp: 4096,
        ct_any: 4096,
    };
    Datapath::open_with_sizes(config, sizes).unwrap_or_else(|err| {
        panic!(
            "opening the datapath in {}: {}",
            root.display(),
            chain(&err)
        )
    })
}

/// An endpoint for test runs; `n` makes ids, addresses and MACs distinct.
pub fn endpoint(n: u8, ifname: &str, ifindex: u32) -> EndpointDatapathConfig {
    EndpointDatapathConfig {
        id: 100 + u16::from(n),
        identity: 1000 + u32::from(n),
        ipv4: Ipv4Addr::new(10, 200, 0, n),
        mac: [0x02, 0, 0, 0, 0, n],
        node_mac: [0x02, 0, 0, 0, 1, n],
        ifindex,
        ifname: ifname.to_string(),
    }
}

/// Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

/// An IPv4 header (20 bytes, valid checksum) for `payload_len` bytes of L4.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    payload_len: usize,
) -> Vec<u8> {
    let tot_len = (20 + payload_len) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&tot_len.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let csum = checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    ip
}

pub fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp
}

/// A TCP packet between two endpoints, as the sender's pod emits it
/// (destination MAC = the sender's node MAC).
pub fn tcp_packet(
    from: &EndpointDatapathConfig,
    to_ip: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    ttl: u8,
) -> Vec<u8> {
    let tcp = tcp_header(sport, dport, flags);
    let mut frame = ethernet(from.node_mac, from.mac, ETH_P_IP);
    frame.extend(ipv4_header(from.ipv4, to_ip, IPPROTO_TCP, ttl, tcp.len()));
    frame.extend(tcp);
    frame
}

/// An ARP request from `ep` asking for `target`.
pub fn arp_request(ep: &EndpointDatapathConfig, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = ethernet([0xff; 6], ep.mac, ETH_P_ARP);
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&ep.mac);
    frame.extend_from_slice(&ep.ipv4.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// Result of one BPF_PROG_TEST_RUN.
pub struct Verdict {
    pub retval: u32,
    pub packet: Vec<u8>,
}

/// Runs `program` once on `packet`.
pub fn run(program: &SchedClassifier, packet: &[u8]) -> Verdict {
    let mut out = vec![0u8; 2048];
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|err| {
            panic!(
                "BPF_PROG_TEST_RUN of {} bytes failed: {}",
                packet.len(),
                chain(&err)
            )
        });
    out.truncate(result.data_size_out as usize);
    Verdict {
        retval: result.return_value,
        packet: out,
    }
}

/// Every event currently in the ring buffer of `datapath`.
pub fn drain_events(datapath: &cilium_datapath::Datapath) -> Vec<DatapathEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("building a tokio runtime");
    let _guard = runtime.enter();
    let mut reader = datapath.event_reader().expect("opening the event reader");
    let mut events = Vec::new();
    while let Some(record) = reader.try_next() {
        let event = DatapathEvent::parse(&record)
            .unwrap_or_else(|err| panic!("undecodable event {record:02x?}: {err}"));
        events.push(event);
    }
    events
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|err| panic!("running {args:?}: {err}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace `cilt-<tag>-<random>`, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> Self {
        require_root();
        let name = format!("cilt-{tag}-{}", random_suffix());
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread that lives inside this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|err| panic!("opening {path:?}: {err}"));
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|err| panic!("entering {path:?}: {err}"));
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// `ip -n <ns> ...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", self.name.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// ifindex of `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let out = self.ip(&["-o", "link", "show", "dev", ifname]);
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex in {out:?}"))
    }

    /// MAC address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = self.ip(&["-o", "link", "show", "dev", ifname]);
        let text = out
            .split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in {out:?}"));
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte =
                u8::from_str_radix(part, 16).unwrap_or_else(|err| panic!("MAC {text:?}: {err}"));
        }
        mac
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let status = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("cleanup: deleting netns {} failed: {status:?}", self.name);
        }
    }
}

/// Wires a new pod namespace `cilt-<tag>-…` to `node`: a veth with `host_if`
/// on the node and `eth0` in the pod, the pod's address `ep.ipv4`/32, a
/// link route to `gateway` and a default route through it, and `mtu` on
/// both ends. Returns the pod and `ep` with the real ifindex and MACs.
pub fn wire_pod(
    node: &NetNs,
    tag: &str,
    mut ep: EndpointDatapathConfig,
    gateway: Ipv4Addr,
    mtu: u32,
) -> (NetNs, EndpointDatapathConfig) {
    let pod = NetNs::new(tag);
    let host_if = ep.ifname.clone();
    let mtu = mtu.to_string();
    node.ip(&[
        "link", "add", &host_if, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "mtu", &mtu,
        "netns", &pod.name,
    ]);
    node.ip(&["link", "set", &host_if, "up"]);
    ep.ifindex = node.ifindex(&host_if);
    ep.node_mac = node.mac(&host_if);
    ep.mac = pod.mac("eth0");
    let gateway = gateway.to_string();
    pod.ip(&["addr", "add", &format!("{}/32", ep.ipv4), "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", &gateway, "dev", "eth0", "scope", "link"]);
    pod.ip(&["route", "add", "default", "via", &gateway, "dev", "eth0"]);
    (pod, ep)
}

/// One ping from `from` to `to`; true when answered.
pub fn ping(from: &NetNs, to: Ipv4Addr) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &from.name, "busybox", "ping", "-c", "1", "-W", "1",
        ])
        .arg(to.to_string())
        .output()
        .map(|out| out.status.success())
        .unwrap_or_else(|err| panic!("running ping: {err}"))
}

/// Pings `to` from `from` until answered (bounded).
pub fn assert_pings(from: &NetNs, to: Ipv4Addr, when: &str) {
    wait_until(
        Duration::from_secs(10),
        &format!("{} to ping {to} {when}", from.name),
        || ping(from, to),
    );
}

/// The trace notifications among `events`.
pub fn traces(events: &[DatapathEvent]) -> Vec<&TraceEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            DatapathEvent::Trace(t) => Some(t),
            DatapathEvent::Drop(_)
            | DatapathEvent::PolicyVerdict(_)
            | DatapathEvent::TraceSock(_) => None,
        })
        .collect()
}

/// The drop notifications among `events`.
pub fn drops(events: &[DatapathEvent]) -> Vec<&DropEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            DatapathEvent::Drop(d) => Some(d),
            DatapathEvent::Trace(_)
            | DatapathEvent::PolicyVerdict(_)
            | DatapathEvent::TraceSock(_) => None,
        })
        .collect()
}

/// The conntrack entry of one tuple among `entries` (panics when absent).
pub fn find_ct(
    entries: &[CtEntryRecord],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
) -> &CtEntry {
    &entries
        .iter()
        .find(|r| {
            r.tuple.source() == src
                && r.tuple.destination() == dst
                && r.tuple.source_port() == sport
                && r.tuple.destination_port() == dport
                && r.tuple.flags == flags
        })
        .unwrap_or_else(|| {
            panic!(
                "no conntrack entry {src}:{sport} -> {dst}:{dport} flags {flags} in {entries:#?}"
            )
        })
        .entry
}

/// Programs a frontend into `dp`'s LB maps as the agent would, random selection: its
/// reverse-NAT entry, `backends` (TCP, all on `backend_port`, ids from `first_backend_id`),
/// one slot per backend and the master, `flags` on every service entry.
pub fn program_random_service(
    dp: &Datapath,
    frontend: FrontendAddr,
    rev_nat: RevNatIndex,
    flags: ServiceFlags,
    backends: &[Ipv4Addr],
    backend_port: u16,
    first_backend_id: u32,
) {
    let mut maps = LbMaps::open(dp.paths())
        .unwrap_or_else(|err| panic!("opening the LB maps: {}", chain(&err)));
    let fe = FrontendKey {
        addr: frontend,
        scope: Scope::External,
    };
    let mut ops = vec![LbOp::UpsertRevNat {
        index: rev_nat,
        frontend,
    }];
    for (i, ip) in backends.iter().enumerate() {
        let id = BackendId(first_backend_id + i as u32);
        ops.push(LbOp::UpsertBackend {
            id,
            backend: Backend {
                addr: BackendAddr {
                    ip: *ip,
                    port: backend_port,
                    protocol: Protocol::Tcp,
                },
                state: BackendState::Active,
            },
        });
        ops.push(LbOp::UpsertService {
            key: ServiceKey {
                frontend: fe,
                slot: i as u16 + 1,
            },
            value: ServiceValue::Slot(Slot {
                backend: id,
                rev_nat,
                flags,
            }),
        });
    }
    ops.push(LbOp::UpsertService {
        key: ServiceKey {
            frontend: fe,
            slot: 0,
        },
        value: ServiceValue::Master(Master {
            count: backends.len() as u16,
            rev_nat,
            flags,
            algorithm: Algorithm::Random,
            affinity_timeout: 0,
        }),
    });
    for op in &ops {
        maps.apply(op)
            .unwrap_or_else(|err| panic!("{op}: {}", chain(&err)));
    }
}
