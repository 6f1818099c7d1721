//! Background processes the lab starts (agents, toolbox servers) and stops again, by PID.
//!
//! A recorded PID is only signalled while `/proc/<pid>/cmdline` still names the program the
//! lab started, so a PID reused by an unrelated process is left alone.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::run::describe;

/// How long a process gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);

/// Programs that exec the real one inside a namespace; a PID still shows them for a moment
/// after it is started.
const WRAPPERS: [&str; 2] = ["ip", "nsenter"];

/// How often an exiting process is checked.
const POLL: Duration = Duration::from_millis(20);

/// Errors starting or stopping background processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot signal {program} (pid {pid})")]
    Signal {
        program: String,
        pid: u32,
        #[source]
        source: Errno,
    },
    #[error("{program} (pid {pid}) is still running after SIGKILL")]
    Unkillable { program: String, pid: u32 },
}

/// What [`terminate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was running and has exited.
    Exited,
    /// It had already exited (or the PID now belongs to another program).
    NotRunning,
}

/// Starts `cmd` in its own session, stdin from /dev/null, stdout and stderr appended to `log`.
/// Returns its PID.
pub fn spawn_detached(cmd: &mut Command, log: &Path) -> Result<u32, ProcessError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ProcessError::Log {
                path: log.to_path_buf(),
                source,
            })
    };
    let out: File = open()?;
    let err: File = open()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the closure runs between fork and exec and only calls setsid(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: describe(cmd),
        source,
    })?;
    Ok(child.id())
}

/// Whether `pid` is alive and still runs `program` (or one of the namespace [`WRAPPERS`] that
/// is about to exec it), judged by the file name of argv[0], or of argv[1] for a script run by
/// its interpreter.
pub fn is_running(pid: u32, program: &str) -> bool {
    let argv = live_argv(pid).unwrap_or_default();
    argv.iter().take(2).any(|name| name == program)
        || argv
            .first()
            .is_some_and(|name| WRAPPERS.contains(&name.as_str()))
}

/// Whether `pid` is alive (not a zombie), whatever it runs; for PIDs known to be the lab's
/// own, such as a child this process just started.
pub fn is_alive(pid: u32) -> bool {
    live_argv(pid).is_some()
}

/// The file name of argv[0] of a live (not zombie) process.
pub fn program_of(pid: u32) -> Option<String> {
    live_argv(pid)?.into_iter().next()
}

/// File names of the first two arguments of a live (not zombie) process; `None` if it is gone.
fn live_argv(pid: u32) -> Option<Vec<String>> {
    reap(pid);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may itself contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())?;
    if matches!(state, "Z" | "X") {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        cmdline
            .split(|&b| b == 0)
            .take(2)
            .map(|arg| {
                let arg = String::from_utf8_lossy(arg);
                Path::new(&*arg)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
    )
}

/// Stops `pid` if it still runs `program`: SIGTERM, up to `grace` to exit, then SIGKILL.
pub fn terminate(pid: u32, program: &str, grace: Duration) -> Result<Stopped, ProcessError> {
    stop_while(pid, program, grace, || is_running(pid, program))
}

/// Kills `pid` with SIGKILL if it still runs `program`, giving it no chance to clean up (a
/// machine that dies), and waits until it is gone.
pub fn kill_now(pid: u32, program: &str) -> Result<Stopped, ProcessError> {
    let alive = || is_running(pid, program);
    if !alive() {
        return Ok(Stopped::NotRunning);
    }
    signal(pid, program, Signal::SIGKILL)?;
    if wait_until_gone(&alive, Duration::from_secs(5)) {
        Ok(Stopped::Exited)
    } else {
        Err(ProcessError::Unkillable {
            program: program.to_string(),
            pid,
        })
    }
}

/// Stops `pid`, known to be the lab's own (its child, or a process inside one of its
/// namespaces), whatever program it runs now.
pub fn terminate_known(pid: u32, what: &str, grace: Duration) -> Result<Stopped, ProcessError> {
    stop_while(pid, what, grace, || is_alive(pid))
}

fn stop_while(
    pid: u32,
    what: &str,
    grace: Duration,
    alive: impl Fn() -> bool,
) -> Result<Stopped, ProcessError> {
    if !alive() {
        return Ok(Stopped::NotRunning);
    }
    signal(pid, what, Signal::SIGTERM)?;
    if wait_until_gone(&alive, grace) {
        return Ok(Stopped::Exited);
    }
    tracing::warn!(pid, what, "did not exit after SIGTERM; sending SIGKILL");
    signal(pid, what, Signal::SIGKILL)?;
    if wait_until_gone(&alive, Duration::from_secs(5)) {
        Ok(Stopped::Exited)
    } else {
        Err(ProcessError::Unkillable {
            program: what.to_string(),
            pid,
        })
    }
}

/// Waits up to `limit` for `pid` to exit.
pub fn wait_exit(pid: u32, limit: Duration) -> bool {
    wait_until_gone(&|| is_alive(pid), limit)
}

fn wait_until_gone(alive: &impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

fn signal(pid: u32, program: &str, sig: Signal) -> Result<(), ProcessError> {
    let raw = i32::try_from(pid).expect("PIDs fit in i32");
    match kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Signal {
            program: program.to_string(),
            pid,
            source,
        }),
    }
}

/// Collects the exit status if `pid` is our own exited child (after a failed `up` in this
/// process); for anyone else's process this is a no-op.
fn reap(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG));
    }
}

/// The last `lines` lines of a log file, indented, or why it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let shown = &all[all.len().saturating_sub(lines)..];
            if shown.is_empty() {
                "  (the log is empty)".to_string()
            } else {
                shown
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Err(e) => format!("  (cannot read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_process_is_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let pid = spawn_detached(Command::new("sleep").arg("60"), &log).expect("spawn sleep");
        assert!(is_running(pid, "sleep"), "sleep {pid} should be running");
        assert!(
            !is_running(pid, "cilium-agent"),
            "wrong program must not match"
        );
        assert_eq!(
            terminate(pid, "sleep", TERM_GRACE).unwrap(),
            Stopped::Exited
        );
        assert!(!is_running(pid, "sleep"));
        assert_eq!(
            terminate(pid, "sleep", TERM_GRACE).unwrap(),
            Stopped::NotRunning
        );
    }

    #[test]
    fn kill_now_does_not_wait_for_a_term_handler() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        // An ignored signal stays ignored across exec: this sleep shrugs SIGTERM off.
        let pid = spawn_detached(
            Command::new("sh").args(["-c", "trap '' TERM; exec sleep 60"]),
            &log,
        )
        .expect("spawn sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while program_of(pid).as_deref() != Some("sleep") {
            assert!(Instant::now() < deadline, "sh {pid} never became sleep");
            thread::sleep(POLL);
        }
        let started = Instant::now();
        assert_eq!(kill_now(pid, "sleep").unwrap(), Stopped::Exited);
        assert!(started.elapsed() < TERM_GRACE, "SIGKILL must not wait");
        assert!(!is_running(pid, "sleep"));
        assert_eq!(kill_now(pid, "sleep").unwrap(), Stopped::NotRunning);
    }

    #[test]
    fn output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("echo.log");
        let pid = spawn_detached(
            Command::new("sh").args(["-c", "echo hello; echo oops >&2"]),
            &log,
        )
        .expect("spawn sh");
        assert!(wait_exit(pid, Duration::from_secs(10)), "sh did not exit");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("hello") && text.contains("oops"), "{text}");
    }

    #[test]
    fn log_tail_shows_the_last_lines_indented() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        assert_eq!(log_tail(&log, 2), "  two\n  three");
        std::fs::write(&log, "").unwrap();
        assert_eq!(log_tail(&log, 2), "  (the log is empty)");
        assert!(log_tail(&dir.path().join("missing"), 2).contains("cannot read"));
    }
}
