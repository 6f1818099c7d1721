//! Runs the real `cilium` binary with a clean environment and a time limit.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cilium ARGS` with `CILIUM_SOCK`/`CILIUM_BPF_ROOT` cleared, then `env` applied;
/// fails the test if it runs longer than 30 seconds.
pub fn run_cilium(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cilium"));
    command
        .args(args)
        .env_remove("CILIUM_SOCK")
        .env_remove("CILIUM_BPF_ROOT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn cilium {args:?}: {e}"));
    wait_bounded(child, Duration::from_secs(30), args)
}

/// Waits for a child, killing it (and failing the test) after `limit`.
fn wait_bounded(mut child: std::process::Child, limit: Duration, what: &[&str]) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => {
                return child
                    .wait_with_output()
                    .unwrap_or_else(|e| panic!("collect output of cilium {what:?}: {e}"))
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let out = child.wait_with_output().ok();
                panic!("cilium {what:?} did not finish within {limit:?}; output: {out:?}");
            }
            Err(e) => panic!("wait for cilium {what:?}: {e}"),
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
