//! The lab's etcd: one member (Debian's `etcd` 3.4) started detached in its own namespace on
//! the underlay, as a control-plane host would run it, with its data under the lab's state
//! directory so that it can be stopped and started again with everything it stored.

pub mod health;

use std::io;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::{self, BinError};
use crate::lab::Lab;
use crate::netns;
use crate::plan;
use crate::process::{self, ProcessError, Stopped, TERM_GRACE};
use crate::report;
use crate::state::EtcdState;

/// How long etcd gets to answer `/health` after it is started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one health probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a starting etcd is probed.
const POLL: Duration = Duration::from_millis(100);

/// Lines of `etcd.log` shown when etcd fails.
const LOG_TAIL_LINES: usize = 20;

/// Raft timings, in milliseconds: a single member elects itself within a fraction of a second
/// instead of Debian's default of about one second.
const HEARTBEAT_MS: u32 = 10;
const ELECTION_TIMEOUT_MS: u32 = 100;

/// Errors starting and stopping etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot start etcd")]
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
    #[error("cannot start etcd")]
    Start {
        #[source]
        source: ProcessError,
    },
    #[error("etcd exited before it was healthy; the end of its log:\n{tail}")]
    Exited { tail: String },
    #[error("etcd was not healthy within {timeout:?} ({last}); the end of its log:\n{tail}")]
    NotReady {
        timeout: Duration,
        last: String,
        tail: String,
    },
    #[error("cannot stop etcd (pid {pid})")]
    Stop {
        pid: u32,
        #[source]
        source: ProcessError,
    },
}

/// Where the etcd of `lab` lives and how agents reach it; not started yet.
pub fn layout(lab: &Lab) -> EtcdState {
    EtcdState {
        netns: lab.name().etcd_ns(),
        ip: plan::ETCD_IP,
        client_url: plan::etcd_client_url(),
        data_dir: lab.etcd_data_dir(),
        log: lab.etcd_log(),
        pid: None,
    }
}

/// The address agents (and health probes) connect to.
pub fn client_addr(etcd: &EtcdState) -> SocketAddrV4 {
    SocketAddrV4::new(etcd.ip, plan::ETCD_CLIENT_PORT)
}

/// Starts etcd detached in its namespace, on its data directory (new or from an earlier run);
/// returns its PID.
pub fn start(etcd: &EtcdState) -> Result<u32, EtcdError> {
    let program = bins::etcd().map_err(|source| EtcdError::Binary { source })?;
    std::fs::create_dir_all(&etcd.data_dir).map_err(|source| EtcdError::Dir {
        path: etcd.data_dir.clone(),
        source,
    })?;
    let client_url = &etcd.client_url;
    let peer_url = plan::etcd_peer_url();
    let loopback_url = format!("http://127.0.0.1:{}", plan::ETCD_CLIENT_PORT);
    let mut cmd = netns::enter_net(&etcd.netns, program);
    cmd.arg("--name")
        .arg(&etcd.netns)
        .arg("--data-dir")
        .arg(&etcd.data_dir)
        .arg("--listen-client-urls")
        .arg(format!("{client_url},{loopback_url}"))
        .arg("--advertise-client-urls")
        .arg(client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("{}={peer_url}", etcd.netns))
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--heartbeat-interval")
        .arg(HEARTBEAT_MS.to_string())
        .arg("--election-timeout")
        .arg(ELECTION_TIMEOUT_MS.to_string())
        .arg("--logger")
        .arg("zap");
    tracing::info!(netns = %etcd.netns, log = %etcd.log.display(), "starting etcd");
    process::spawn_detached(&mut cmd, &etcd.log).map_err(|source| EtcdError::Start { source })
}

/// Waits until etcd `pid` answers `/health` with `true`.
pub fn wait_healthy(etcd: &EtcdState, pid: u32) -> Result<(), EtcdError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if !process::is_alive(pid) {
            return Err(EtcdError::Exited {
                tail: process::log_tail(&etcd.log, LOG_TAIL_LINES),
            });
        }
        let last = match health::probe(&etcd.netns, client_addr(etcd), PROBE_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) => report::chain(&e),
        };
        if Instant::now() >= deadline {
            return Err(EtcdError::NotReady {
                timeout: READY_TIMEOUT,
                last,
                tail: process::log_tail(&etcd.log, LOG_TAIL_LINES),
            });
        }
        thread::sleep(POLL);
    }
}

/// Whether the recorded etcd process is running.
pub fn is_running(etcd: &EtcdState) -> bool {
    etcd.pid
        .is_some_and(|pid| process::is_running(pid, bins::ETCD))
}

/// Stops the recorded etcd process (SIGTERM, then SIGKILL after a grace period).
pub fn stop(etcd: &EtcdState) -> Result<Stopped, EtcdError> {
    let Some(pid) = etcd.pid else {
        return Ok(Stopped::NotRunning);
    };
    process::terminate(pid, bins::ETCD, TERM_GRACE)
        .map_err(|source| EtcdError::Stop { pid, source })
}
