//! Runs the real `cilium-cni` binary the way a runtime does: inside the "host" namespace,
//! with `CNI_*` variables and the configuration on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::netns::TestNetns;

/// What one plugin invocation produced.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The stdout JSON of a successful call that prints a result.
    pub fn result(&self) -> Value {
        assert!(self.success, "plugin failed: {self:#?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Asserts success with nothing on stdout (DEL, CHECK, STATUS, GC).
    pub fn assert_silent_success(&self) {
        assert!(self.success, "plugin failed: {self:#?}");
        assert!(
            self.stdout.trim().is_empty(),
            "unexpected stdout: {self:#?}"
        );
    }

    /// Asserts failure with a CNI error JSON carrying `code`; returns the error.
    pub fn assert_error(&self, code: u64) -> Value {
        assert!(
            !self.success,
            "plugin succeeded but should fail with {code}: {self:#?}"
        );
        let error: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not error JSON ({e}): {self:#?}"));
        assert_eq!(error["code"], code, "{self:#?}");
        for key in ["cniVersion", "msg", "details"] {
            assert!(error[key].is_string(), "error lacks {key}: {error}");
        }
        error
    }
}

/// Runs the plugin in `host` with `vars` (CNI_* and friends) and `stdin`.
pub fn run_plugin(host: &TestNetns, vars: &[(&str, &str)], stdin: &str) -> Outcome {
    let mut command = Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            &host.name,
            env!("CARGO_BIN_EXE_cilium-cni"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for inherited in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
        "CILIUM_SOCK",
    ] {
        command.env_remove(inherited);
    }
    command.env("CNI_PATH", "/opt/cni/bin");
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn the plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for the plugin");
    Outcome {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
