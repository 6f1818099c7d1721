//! Helpers shared by the privileged lab tests: unique names, running `cilium-lab`, and guards
//! that tear labs and namespaces down even when a test fails.

#![allow(dead_code)] // each test file uses a different subset

use std::io::Read;
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

/// Asserts that nothing of lab `name` is left: namespaces, state directory, bpffs roots.
pub fn assert_lab_gone(name: &str) {
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
