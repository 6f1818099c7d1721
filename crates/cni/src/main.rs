//! `cilium-cni`: exec'd by a container runtime with `CNI_*` variables and the network
//! configuration on stdin. Prints only the CNI result or error JSON on stdout; logs go to
//! the configuration's `log-file`, or stderr. `CILIUM_CNI_LOG` overrides the log filter.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use cilium_cni::config::{self, Peek};
use cilium_cni::error::{CniFailure, ErrorCode, ErrorReply};
use cilium_cni::plugin;
use cilium_cni::version::CniVersion;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// Reading the request failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the network configuration from stdin")]
struct StdinError {
    #[source]
    source: std::io::Error,
}

impl CniFailure for StdinError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(source) = std::io::stdin().read_to_end(&mut stdin) {
        return fail(&ErrorReply::new(CniVersion::LATEST, &StdinError { source }));
    }
    init_logging(&config::peek(&stdin));
    let lookup = |key: &str| std::env::var(key).ok();
    match plugin::run(&stdin, &lookup) {
        Ok(output) => {
            if let Some(json) = output {
                print_line(&json);
            }
            ExitCode::SUCCESS
        }
        Err(reply) => {
            tracing::error!(code = reply.code, details = %reply.details, "{}", reply.msg);
            fail(&reply)
        }
    }
}

fn fail(reply: &ErrorReply) -> ExitCode {
    print_line(&reply.to_json());
    ExitCode::FAILURE
}

/// Writes one line to stdout. A closed stdout leaves nobody to tell, so a failed write is
/// only logged (the exit status still speaks).
fn print_line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        tracing::warn!(%error, "cannot write to stdout");
    }
}

/// Logs to `log-file` when the configuration names one that can be opened, else stderr;
/// debug level with `enable-debug`, info otherwise.
fn init_logging(peek: &Peek) {
    let default_level = if peek.enable_debug { "debug" } else { "info" };
    let filter =
        EnvFilter::try_from_env("CILIUM_CNI_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let file = peek.log_file.as_ref().and_then(|path| {
        if let Some(parent) = path.parent() {
            // A missing directory just means logging falls back to stderr.
            let _ = std::fs::create_dir_all(parent);
        }
        OpenOptions::new().create(true).append(true).open(path).ok()
    });
    let writer = match file {
        Some(file) => BoxMakeWriter::new(Mutex::new(file)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
}
