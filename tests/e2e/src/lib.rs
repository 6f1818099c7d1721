//! Helpers for the end-to-end tests: a lab guard that tears its lab down on drop, and ways to
//! run the project's binaries (found next to the test executable's target directory) inside
//! lab pods and nodes.
//!
//! Labs are heavy (agents, namespaces, BPF programs), so tests take [`serial`] to run one at
//! a time within a test binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

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
        let lab = Lab {
            name: unique_name(prefix),
            bin: bin_dir(),
        };
        lab.lab_ok(&["up", "--nodes", &nodes.to_string()]);
        lab
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

/// stdout of an output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
