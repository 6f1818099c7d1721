//! `cilium monitor`: follows the agent's monitor socket and prints each datapath event as a
//! Cilium-style line (or JSON object) until interrupted.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use cilium_monitor::{format_verbose, read_frame, EventFilter, FrameError, MonitorEvent};

use crate::cli::{MonitorArgs, OutputFormat};
use crate::output::{self, OutputError};
use crate::target::AgentTarget;

/// Errors of `cilium monitor`.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot connect to the agent's monitor socket at {}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the monitor stream from {} failed", socket.display())]
    Stream {
        socket: PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("the agent closed the monitor stream at {}", socket.display())]
    Closed { socket: PathBuf },
    #[error("cannot print events")]
    Output {
        #[source]
        source: OutputError,
    },
}

pub fn run(
    target: &AgentTarget,
    format: OutputFormat,
    args: &MonitorArgs,
) -> Result<(), MonitorError> {
    let socket = target.monitor_socket();
    let stream = UnixStream::connect(&socket).map_err(|source| MonitorError::Connect {
        socket: socket.clone(),
        source,
    })?;
    let filter = EventFilter {
        kinds: args.types.iter().copied().collect(),
        related_to: args.related_to,
        from: args.from,
        to: args.to,
    };
    let print = |text: &str| output::print(text).map_err(|source| MonitorError::Output { source });
    if format == OutputFormat::Text {
        print(&header())?;
    }
    let mut reader = BufReader::new(stream);
    loop {
        let record = read_frame(&mut reader)
            .map_err(|source| MonitorError::Stream {
                socket: socket.clone(),
                source,
            })?
            .ok_or_else(|| MonitorError::Closed {
                socket: socket.clone(),
            })?;
        let event = match MonitorEvent::from_record(&record, &interface_name) {
            Ok(event) => event,
            Err(err) => {
                eprintln!("ignoring an event: {}", output::error_chain(&err));
                continue;
            }
        };
        if !filter.matches(&event) {
            continue;
        }
        let text = match (format, args.verbose) {
            (OutputFormat::Json, _) => {
                let mut line =
                    serde_json::to_string(&event).expect("monitor events always serialize");
                line.push('\n');
                line
            }
            (OutputFormat::Text, true) => format_verbose(&event),
            (OutputFormat::Text, false) => format!("{event}\n"),
        };
        print(&text)?;
    }
}

/// The banner cilium-dbg prints before the first event.
fn header() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    format!(
        "Listening for events on {cpus} CPUs with the agent's BPF ring buffer\n\
         Press Ctrl-C to quit\n"
    )
}

/// The name of an interface in this network namespace.
fn interface_name(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name() {
        assert_eq!(interface_name(1).as_deref(), Some("lo"));
        assert_eq!(interface_name(0), None);
    }

    #[test]
    fn header_names_the_cpus() {
        let header = header();
        assert!(header.starts_with("Listening for events on "), "{header}");
        assert!(header.ends_with("Press Ctrl-C to quit\n"), "{header}");
    }
}
