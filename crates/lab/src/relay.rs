//! The lab's Hubble relay: `hubble-relay` in etcd's namespace (a control-plane host on the
//! underlay), finding the agents through their peer records in etcd, serving on TCP next to
//! etcd and on a unix socket in the lab's directory — the socket `cilium-lab hubble` points
//! `hubble` at, from the root namespace.

use std::io;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::{self, BinDir, BinError};
use crate::lab::Lab;
use crate::netns;
use crate::plan;
use crate::process::{self, ProcessError};
use crate::state::{EtcdState, RelayState};

/// How long `up` waits for the relay's socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 20;

/// Errors starting or stopping the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot start the Hubble relay")]
    Binary {
        #[source]
        source: BinError,
    },
    #[error("cannot create {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the Hubble relay")]
    Start {
        #[source]
        source: ProcessError,
    },
    #[error("the Hubble relay exited before it was ready; the end of its log:\n{tail}")]
    Exited { tail: String },
    #[error(
        "the Hubble relay did not serve {socket} within {timeout:?}; the end of its log:\n{tail}"
    )]
    NotReady {
        socket: PathBuf,
        timeout: Duration,
        tail: String,
    },
}

/// Where the relay of `lab` lives; not started yet.
pub fn layout(lab: &Lab) -> RelayState {
    RelayState {
        netns: lab.name().etcd_ns(),
        address: SocketAddrV4::new(plan::ETCD_IP, plan::RELAY_PORT),
        socket: lab.relay_socket(),
        log: lab.relay_log(),
        pid: None,
    }
}

/// Starts the relay detached, pointed at the lab's etcd; returns its PID.
pub fn start(bins: &BinDir, relay: &RelayState, etcd: &EtcdState) -> Result<u32, RelayError> {
    let program = bins
        .require(bins::RELAY)
        .map_err(|source| RelayError::Binary { source })?;
    if let Some(dir) = relay.socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| RelayError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut cmd = netns::enter_net(&relay.netns, program);
    cmd.arg("--kvstore-endpoints")
        .arg(&etcd.client_url)
        .arg("--listen-address")
        .arg(relay.address.to_string())
        .arg("--unix-socket")
        .arg(&relay.socket);
    tracing::info!(netns = %relay.netns, log = %relay.log.display(), "starting hubble-relay");
    process::spawn_detached(&mut cmd, &relay.log).map_err(|source| RelayError::Start { source })
}

/// Waits until the relay accepts connections on its unix socket.
pub fn wait_ready(relay: &RelayState, pid: u32) -> Result<(), RelayError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if !process::is_alive(pid) {
            return Err(RelayError::Exited {
                tail: process::log_tail(&relay.log, LOG_TAIL_LINES),
            });
        }
        if std::os::unix::net::UnixStream::connect(&relay.socket).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RelayError::NotReady {
                socket: relay.socket.clone(),
                timeout: READY_TIMEOUT,
                tail: process::log_tail(&relay.log, LOG_TAIL_LINES),
            });
        }
        thread::sleep(POLL);
    }
}
