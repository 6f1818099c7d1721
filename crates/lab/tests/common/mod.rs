//! Helpers shared by the privileged lab tests: unique names, running `cilium-lab`, and guards
//! that tear labs and namespaces down even when a test fails.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `cilium-lab` binary under test.
pub fn lab_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cilium-lab"))
}

/// Where `cilium-lab` takes the other binaries from: `$CILIUM_LAB_BIN_DIR`, else its own
/// directory (the workspace's target directory).
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("CILIUM_LAB_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => lab_bin()
            .parent()
            .expect("binaries live in a directory")
            .to_path_buf(),
    }
}

/// Panics unless the named binaries exist in [`bin_dir`] (privileged tests never skip).
pub fn require_bins(names: &[&str]) {
    let dir = bin_dir();
    for name in names {
        let path = dir.join(name);
        assert!(
            path.is_file(),
            "{} is missing: build the workspace first (`cargo build --workspace`)",
            path.display()
        );
    }
}

/// Eight random hex digits.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails loudly unless running as root (privileged tests never skip).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged tests need root: run `cargo test --all-features` as root"
    );
}

/// Runs `cilium-lab ARGS` with extra environment, capturing output.
pub fn lab_cmd(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(lab_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run cilium-lab {args:?}: {e}"))
}

/// Like [`lab_cmd`] but panics, with both output streams, unless it succeeds.
pub fn lab_ok(args: &[&str], env: &[(&str, &Path)]) -> String {
    let out = lab_cmd(args, env);
    assert!(
        out.status.success(),
        "cilium-lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces whose names start with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Entries of /sys/fs/bpf whose names start with `prefix`.
pub fn bpf_entries_with_prefix(prefix: &str) -> Vec<String> {
    match std::fs::read_dir("/sys/fs/bpf") {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// PIDs of live processes whose command line mentions `needle` (agents and etcd name the lab's
/// state directory in their arguments).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z");
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

/// Asserts that nothing of lab `name` is left: namespaces, state directory, bpffs roots, and
/// processes (agents, etcd) working in its state directory.
pub fn assert_lab_gone(name: &str) {
    let dir_text = format!("/run/cilium-lab/{name}/");
    let procs = processes_mentioning(&dir_text);
    assert!(
        procs.is_empty(),
        "processes of the lab left running: {procs:?}"
    );
    let namespaces = namespaces_with_prefix(&format!("cilab-{name}-"));
    assert!(
        namespaces.is_empty(),
        "namespaces left behind: {namespaces:?}"
    );
    let dir = Path::new("/run/cilium-lab").join(name);
    assert!(
        !dir.exists(),
        "state directory {} left behind",
        dir.display()
    );
    let pins = bpf_entries_with_prefix(&format!("cilium-lab-{name}-"));
    assert!(pins.is_empty(), "bpffs roots left behind: {pins:?}");
}

/// `cilium-lab status -o json` of `lab`.
pub fn status(lab: &LabGuard) -> serde_json::Value {
    serde_json::from_str(&lab.ok(&["status", "-o", "json"])).expect("status -o json is JSON")
}

/// The node named `name` in a status report.
pub fn status_node<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .expect("status lists nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {status}"))
}

/// Names of the nodes `node`'s agent knows, from a status report (empty when unknown).
pub fn known_nodes(status: &serde_json::Value, node: &str) -> Vec<String> {
    status_node(status, node)["cluster_nodes"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `status` until `cond` holds, for up to `limit`; panics with `what` and the last
/// report otherwise. Returns the report that satisfied it.
pub fn wait_status(
    lab: &LabGuard,
    what: &str,
    limit: Duration,
    mut cond: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let report = status(lab);
        if cond(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last status:\n{report:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `limit` for `cond`, panicking with `what` on timeout.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lab with a unique name, torn down with `cilium-lab down` on drop.
pub struct LabGuard {
    pub name: String,
    pub env: Vec<(&'static str, PathBuf)>,
}

impl LabGuard {
    pub fn new() -> Self {
        require_root();
        LabGuard {
            name: format!("t{}", random_suffix()),
            env: Vec::new(),
        }
    }

    /// The same, with `CILIUM_LAB_BIN_DIR` set for every command.
    pub fn with_bin_dir(dir: &Path) -> Self {
        let mut guard = Self::new();
        guard.env.push(("CILIUM_LAB_BIN_DIR", dir.to_path_buf()));
        guard
    }

    fn env(&self) -> Vec<(&str, &Path)> {
        self.env.iter().map(|(k, v)| (*k, v.as_path())).collect()
    }

    /// `cilium-lab ARGS --name <lab>`, captured (for arguments after `--`, use [`Self::run_raw`]).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--name", &self.name]);
        lab_cmd(&all, &self.env())
    }

    /// Like [`Self::run`], panicking unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--name", &self.name]);
        lab_ok(&all, &self.env())
    }

    /// `cilium-lab ARGS` exactly as given (the caller places `--name`).
    pub fn run_raw(&self, args: &[&str]) -> Output {
        lab_cmd(args, &self.env())
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let out = lab_cmd(&["down", "--name", &self.name], &self.env());
        if !out.status.success() {
            eprintln!(
                "cleanup: cilium-lab down --name {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Network namespaces created by a test, deleted on drop.
pub struct NetnsGuard {
    pub names: Vec<String>,
}

impl NetnsGuard {
    /// Creates `cilt-<random>-<suffix>` for each suffix.
    pub fn new(suffixes: &[&str]) -> Self {
        require_root();
        let base = format!("cilt-{}", random_suffix());
        let mut guard = NetnsGuard { names: Vec::new() };
        for s in suffixes {
            let name = format!("{base}-{s}");
            sh(&["ip", "netns", "add", &name]);
            guard.names.push(name.clone());
            sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        }
        guard
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

/// Runs a helper command, panicking with its stderr if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends one HTTP/1.0 request to etcd's JSON gateway at `172.18.0.2:2379` from inside its
/// namespace `netns`; returns the status code and the body.
pub fn etcd_http(netns: &str, path: &str, body: &str) -> (u16, String) {
    let ns = std::fs::File::open(format!("/run/netns/{netns}"))
        .unwrap_or_else(|e| panic!("open namespace {netns}: {e}"));
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 172.18.0.2\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter etcd's netns");
        let addr = "172.18.0.2:2379".parse().unwrap();
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect to etcd");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).expect("send to etcd");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read etcd's answer");
        answer
    })
    .join()
    .expect("the etcd request thread panicked");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {answer}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, body.to_string())
}

/// Standard base64 (with padding), as etcd's JSON gateway wants keys and values.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
