//! Running helper programs (`ip`, `sysctl`, the CNI plugin) with a time limit, capturing what
//! they print.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Default limit for a helper program.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a running helper is checked.
const POLL: Duration = Duration::from_millis(5);

/// Errors running a helper program.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("waiting for `{command}` failed")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
}

/// Runs `cmd`, feeding `input` on stdin, and returns its output whatever its exit status.
pub fn capture(cmd: &mut Command, input: &[u8], timeout: Duration) -> Result<Output, RunError> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdin = child.stdin.take();
    let input = input.to_vec();
    // A plugin that exits without reading stdin makes this write fail; that is its business.
    let writer = thread::spawn(move || stdin.map(|mut s| s.write_all(&input)));
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = wait_until(&mut child, timeout).map_err(|source| RunError::Wait {
        command: command.clone(),
        source,
    })?;
    let _ = writer.join();
    let Some(status) = status else {
        return Err(RunError::Timeout { command, timeout });
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `cmd` with empty stdin and fails unless it exits with 0.
pub fn check(cmd: &mut Command) -> Result<Output, RunError> {
    let output = capture(cmd, &[], DEFAULT_TIMEOUT)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(RunError::Failed {
            command: describe(cmd),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for `child` to exit; kills it and returns `None` when `timeout` passes first.
fn wait_until(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_feeds_stdin() {
        let out = capture(Command::new("cat").arg("-"), b"hello", DEFAULT_TIMEOUT).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello");
    }

    #[test]
    fn failures_carry_the_command_and_stderr() {
        let err = check(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c") && text.contains("oops"), "{text}");
    }

    #[test]
    fn a_hanging_program_is_killed_at_the_deadline() {
        let started = Instant::now();
        let err = capture(
            Command::new("sleep").arg("30"),
            &[],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
