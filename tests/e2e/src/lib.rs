//! Helpers for the end-to-end tests: a lab guard that tears its lab down on drop, and ways to
//! run the project's binaries (found next to the test executable's target directory) inside
//! lab pods and nodes.
//!
//! Labs are heavy (agents, namespaces, BPF programs), so tests take [`serial`] to run one at
//! a time within a test binary.
//!
//! Network-policy truth tables: [`policy_cluster`] (the x/y namespaces test cluster),
//! [`matrix`] (tables, comparison, printing), [`probe`] (probes from inside namespaces) and
//! [`external`] (hosts outside the cluster). Load-balanced services: [`load`] (traffic) and
//! [`services`] (what the agents programmed).

pub mod external;
pub mod load;
pub mod matrix;
pub mod policy_cluster;
pub mod probe;
pub mod services;
pub mod starwars;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// A manifest in the temp directory, named after its lab, removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    /// Writes `text` to `<temp>/<lab>-<name>`.
    pub fn new(lab: &Lab, name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("{}-{name}", lab.name));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        TempFile(path)
    }

    /// The file's path, for `-f`.
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serialises lab tests; a test that panicked does not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `target/<profile>` of the running test: the test executable lives in its `deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    for bin in ["cilium-lab", "cilium-agent", "cilium-cni", "cilium"] {
        assert!(
            dir.join(bin).exists(),
            "{bin} is not built in {}: run `cargo build --workspace --bins` first (scripts/test.sh does)",
            dir.display()
        );
    }
    dir
}

/// A unique lab name for one test.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!("{prefix}{:x}", (nanos ^ std::process::id()) & 0xffff)
}

/// A running lab; `down` on drop, whatever the test did.
pub struct Lab {
    pub name: String,
    bin: PathBuf,
}

impl Lab {
    /// Brings a lab up (`cilium-lab up --nodes N --name ...`), panicking with its output if it
    /// fails.
    pub fn up(prefix: &str, nodes: usize) -> Lab {
        Lab::up_with(prefix, &["--nodes", &nodes.to_string()])
    }

    /// Brings a lab up with further `up` flags (`--nodes`, `--routing`, …).
    pub fn up_with(prefix: &str, flags: &[&str]) -> Lab {
        let lab = Lab {
            name: unique_name(prefix),
            bin: bin_dir(),
        };
        let mut args = vec!["up"];
        args.extend_from_slice(flags);
        lab.lab_ok(&args);
        lab
    }

    /// `cilium-lab status -o json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.lab_ok(&["status", "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON: {e}\n{out}"))
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs `cilium-lab <args>` against this lab (`CILIUM_LAB_NAME`) and returns its output.
    pub fn lab(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin("cilium-lab"));
        cmd.args(args).env("CILIUM_LAB_NAME", &self.name);
        run(cmd)
    }

    /// Like [`Lab::lab`], panicking with the output unless it succeeded; returns stdout.
    pub fn lab_ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        assert!(
            out.status.success(),
            "cilium-lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cilium-lab apply -f` of `text` (through a [`TempFile`] called `name`); returns its
    /// output and panics when the lab refuses it.
    pub fn apply(&self, name: &str, text: &str) -> String {
        let file = TempFile::new(self, name, text);
        self.lab_ok(&["apply", "-f", file.path()])
    }

    /// Adds a pod; `extra` are further `pod add` flags.
    pub fn pod_add(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["pod", "add", name];
        args.extend_from_slice(extra);
        self.lab_ok(&args);
    }

    /// The pods as `pod list -o json` reports them.
    pub fn pods(&self) -> Vec<serde_json::Value> {
        let out = self.lab_ok(&["pod", "list", "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("pod list JSON: {e}\n{out}"))
    }

    /// The IP of a pod in the default namespace.
    pub fn pod_ip(&self, name: &str) -> String {
        self.pods()
            .into_iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["ip"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("pod {name} not in `pod list`"))
    }

    /// Runs a command inside a pod.
    pub fn exec(&self, pod: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(cmd);
        self.lab(&args)
    }

    /// Runs a command inside a node (with `CILIUM_SOCK` set to its agent).
    pub fn node_exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["node", "exec", node, "--"];
        args.extend_from_slice(cmd);
        self.lab(&args)
    }

    /// Runs the `cilium` CLI against a node's agent; panics unless it succeeds.
    pub fn cilium(&self, node: &str, args: &[&str]) -> String {
        let cli = self.bin("cilium");
        let mut cmd = vec![cli.to_str().expect("utf-8 path")];
        cmd.extend_from_slice(args);
        let out = self.node_exec(node, &cmd);
        assert!(
            out.status.success(),
            "cilium {args:?} on {node} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.lab(&["down"]);
        if !out.status.success() {
            eprintln!(
                "cilium-lab down --name {} failed:\n{}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Runs a command to completion with stdin closed.
pub fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A packet capture running in a namespace (`tcpdump -w`), stopped on drop.
pub struct Capture {
    child: std::process::Child,
    file: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -w FILE FILTER` in network namespace `netns` and waits until
    /// it listens.
    pub fn start(netns: &str, iface: &str, filter: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{}.pcap", unique_name(netns)));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "tcpdump",
                "--immediate-mode",
                "-U",
                "-n",
                "-i",
                iface,
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpdump (apt-get install tcpdump)");
        let stderr = child.stderr.take().expect("piped");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.contains("listening on"),
            "tcpdump did not start: {first}"
        );
        // Keep reading its stderr, so its exit statistics never hit a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Capture { child, file }
    }

    /// Stops the capture and returns the captured Ethernet frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).expect("reading the capture");
        pcap_frames(&bytes)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The frames of a classic (microsecond, little-endian) pcap file.
pub fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert!(bytes.len() >= 24, "capture too short for a pcap header");
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "not a little-endian pcap file"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        let Some(frame) = bytes.get(at..at + len) else {
            break;
        };
        frames.push(frame.to_vec());
        at += len;
    }
    frames
}

/// What a VXLAN-in-UDP/IPv4 frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanFrame {
    pub dst_port: u16,
    pub vni: u32,
    /// Source and destination of the encapsulated IPv4 packet, if there is one.
    pub inner: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
}

/// Decodes a frame as VXLAN over UDP/IPv4, if it is one.
pub fn vxlan_frame(frame: &[u8]) -> Option<VxlanFrame> {
    if frame.len() < 14 + 20 + 8 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 17 || ip.len() < ihl + 16 {
        return None;
    }
    let udp = &ip[ihl..];
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let vxlan = &udp[8..];
    let vni = u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]);
    let inner_eth = &vxlan[8..];
    let inner = (inner_eth.len() >= 14 + 20 && inner_eth[12..14] == [0x08, 0x00]).then(|| {
        let ip = &inner_eth[14..];
        (
            std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        )
    });
    Some(VxlanFrame {
        dst_port,
        vni,
        inner,
    })
}

/// stdout of an output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
