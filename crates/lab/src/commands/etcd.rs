//! `etcd stop` and `etcd start`: take the lab's kvstore away and bring it back on the same
//! data, as a control-plane outage would, while agents and pods keep running.

use crate::etcd::{self, EtcdError};
use crate::lab::Lab;
use crate::process::Stopped;
use crate::state::{LabState, StateError, StateLock};

#[derive(Debug, thiserror::Error)]
pub enum EtcdCommandError {
    #[error("cannot access the lab's state")]
    State {
        #[source]
        source: StateError,
    },
    #[error("lab {lab} is not up (run `cilium-lab up{flag}`)")]
    NotUp { lab: String, flag: String },
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// What `etcd stop` and `etcd start` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// etcd `pid` was stopped, or started and is healthy.
    Done { pid: u32 },
    /// Nothing to do: etcd was already stopped, or already runs as `pid`.
    Already { pid: Option<u32> },
}

/// `cilium-lab etcd stop`: stops etcd; its data stays for `etcd start`.
pub fn stop(lab: &Lab) -> Result<Outcome, EtcdCommandError> {
    let lock = StateLock::acquire(lab).map_err(|source| EtcdCommandError::State { source })?;
    let mut state = load(lab, &lock)?;
    let outcome = match (state.etcd.pid, etcd::stop(&state.etcd)?) {
        (Some(pid), Stopped::Exited) => Outcome::Done { pid },
        _ => Outcome::Already { pid: None },
    };
    state.etcd.pid = None;
    save(&lock, &state)?;
    Ok(outcome)
}

/// `cilium-lab etcd start`: starts etcd again on its data and waits until it is healthy.
pub fn start(lab: &Lab) -> Result<Outcome, EtcdCommandError> {
    let lock = StateLock::acquire(lab).map_err(|source| EtcdCommandError::State { source })?;
    let mut state = load(lab, &lock)?;
    if etcd::is_running(&state.etcd) {
        return Ok(Outcome::Already {
            pid: state.etcd.pid,
        });
    }
    let pid = etcd::start(&state.etcd)?;
    state.etcd.pid = Some(pid);
    save(&lock, &state)?;
    etcd::wait_healthy(&state.etcd, pid)?;
    Ok(Outcome::Done { pid })
}

fn save(lock: &StateLock, state: &LabState) -> Result<(), EtcdCommandError> {
    lock.save(state)
        .map_err(|source| EtcdCommandError::State { source })
}

fn load(lab: &Lab, lock: &StateLock) -> Result<LabState, EtcdCommandError> {
    lock.load()
        .map_err(|source| EtcdCommandError::State { source })?
        .ok_or_else(|| EtcdCommandError::NotUp {
            lab: lab.name().to_string(),
            flag: lab.name_flag(),
        })
}
