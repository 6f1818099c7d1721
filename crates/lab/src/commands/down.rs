//! `down`: stop every process the lab started (toolbox servers, agents, etcd), delete every
//! `cilab-<lab>-*` namespace and cgroup, remove the lab's bpffs roots and its state directory
//! (etcd's data with it).
//!
//! Teardown never stops at the first failure: it carries on and reports every problem, works
//! from a half-written or missing state file (the namespace prefix and the bpffs prefix find
//! what the state does not know about), and does nothing on a lab that is already gone.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use crate::bins;
use crate::bpffs::{self, BpffsError};
use crate::cgroup::{self, CgroupError};
use crate::lab::Lab;
use crate::netns::{self, NetnsError};
use crate::process::{self, ProcessError, Stopped, TERM_GRACE};
use crate::report::Problems;
use crate::state::{LabState, StateError, StateLock};

/// Programs the lab starts inside its namespaces; others found there are left alone.
const OWN_PROGRAMS: [&str; 4] = [bins::AGENT, bins::LAB, bins::ETCD, bins::RELAY];

/// Errors of `down`, and the problems it collects while carrying on.
#[derive(Debug, thiserror::Error)]
pub enum DownError {
    #[error("cannot lock the lab's state")]
    Lock {
        #[source]
        source: StateError,
    },
    #[error("cannot read the lab's state (carrying on without it)")]
    ReadState {
        #[source]
        source: StateError,
    },
    #[error("cannot stop the {what} (pid {pid})")]
    Stop {
        what: String,
        pid: u32,
        #[source]
        source: ProcessError,
    },
    #[error("cannot clean up network namespaces")]
    Namespace {
        #[source]
        source: NetnsError,
    },
    #[error("{program} (pid {pid}) still runs in {netns}, which was not started by the lab; the namespace is freed when it exits")]
    Foreign {
        program: String,
        pid: u32,
        netns: String,
    },
    #[error("cannot remove a cgroup")]
    Cgroup {
        #[source]
        source: CgroupError,
    },
    #[error("cannot remove bpffs pins")]
    Bpffs {
        #[source]
        source: BpffsError,
    },
    #[error("cannot remove {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("tearing down lab {lab} left problems:{problems}")]
    Incomplete {
        lab: String,
        problems: Problems<DownError>,
    },
}

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Teardown {
    pub stopped: Vec<String>,
    pub namespaces: Vec<String>,
    pub problems: Vec<DownError>,
}

/// `cilium-lab down`.
pub fn down(lab: &Lab) -> Result<Teardown, DownError> {
    let lock = StateLock::acquire(lab).map_err(|source| DownError::Lock { source })?;
    let (state, read_problem) = match lock.load() {
        Ok(state) => (state, None),
        Err(source) => (None, Some(DownError::ReadState { source })),
    };
    let mut done = teardown(lab, state.as_ref());
    done.problems.extend(read_problem);
    drop(lock);
    if done.problems.is_empty() {
        Ok(done)
    } else {
        Err(DownError::Incomplete {
            lab: lab.name().to_string(),
            problems: Problems(done.problems),
        })
    }
}

/// Removes everything of `lab`, using `state` where it is known; the caller holds the lock.
pub fn teardown(lab: &Lab, state: Option<&LabState>) -> Teardown {
    let mut done = Teardown::default();
    let mut recorded = recorded_processes(state);
    match netns::list_with_prefix(&lab.name().ns_prefix()) {
        Ok(mut namespaces) => {
            // The reverse of creation: pods, nodes, etcd (after the agents, which may still
            // talk to it while they stop), the switch.
            let (etcd_ns, switch_ns) = (lab.name().etcd_ns(), lab.name().switch_ns());
            namespaces.sort_by_key(|ns| {
                if ns.contains("-p-") {
                    0
                } else if *ns == etcd_ns {
                    2
                } else if *ns == switch_ns {
                    3
                } else {
                    1
                }
            });
            for ns in namespaces {
                stop_processes_in(&mut done, &mut recorded, &ns);
                delete_namespace(&mut done, &ns);
            }
        }
        Err(source) => done.problems.push(DownError::Namespace { source }),
    }
    // Recorded processes outside the namespaces (normally none): stop them only while they
    // still run the program the lab started, in case the PID was reused.
    for (pid, (program, what)) in recorded {
        stop(
            &mut done,
            pid,
            &what,
            process::terminate(pid, program, TERM_GRACE),
        );
    }
    done.problems.extend(
        cgroup::remove_with_prefix(&lab.name().ns_prefix())
            .into_iter()
            .map(|source| DownError::Cgroup { source }),
    );
    done.problems.extend(
        bpffs::remove_with_prefix(lab.bpf_fs(), &lab.bpf_root_prefix())
            .into_iter()
            .map(|source| DownError::Bpffs { source }),
    );
    match std::fs::remove_dir_all(lab.dir()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => done.problems.push(DownError::StateDir {
            path: lab.dir().to_path_buf(),
            source,
        }),
    }
    done
}

/// PID -> (program, description) of every process the state says the lab started.
fn recorded_processes(state: Option<&LabState>) -> BTreeMap<u32, (&'static str, String)> {
    let mut recorded = BTreeMap::new();
    let Some(state) = state else {
        return recorded;
    };
    for pod in &state.pods {
        for &pid in &pod.server_pids {
            let what = format!("toolbox server of {}/{}", pod.namespace, pod.name);
            recorded.insert(pid, (bins::LAB, what));
        }
    }
    for node in &state.nodes {
        if let Some(pid) = node.agent_pid {
            recorded.insert(pid, (bins::AGENT, format!("agent of {}", node.name)));
        }
    }
    if let Some(pid) = state.etcd.pid {
        recorded.insert(pid, (bins::ETCD, "etcd".to_string()));
    }
    if let Some(pid) = state.relay.as_ref().and_then(|relay| relay.pid) {
        recorded.insert(pid, (bins::RELAY, "hubble-relay".to_string()));
    }
    recorded
}

/// Stops the lab's processes inside `ns`: those it recorded and any agent or toolbox server
/// (found even when the state was lost). Anything else is reported and left alone.
fn stop_processes_in(
    done: &mut Teardown,
    recorded: &mut BTreeMap<u32, (&'static str, String)>,
    ns: &str,
) {
    let pids = match netns::pids(ns) {
        Ok(pids) => pids,
        Err(source) => {
            done.problems.push(DownError::Namespace { source });
            return;
        }
    };
    for pid in pids {
        let what = match recorded.remove(&pid) {
            Some((_, what)) => what,
            None => match OWN_PROGRAMS.iter().find(|p| process::is_running(pid, p)) {
                Some(program) => format!("{program} in {ns}"),
                None => {
                    if let Some(program) = process::program_of(pid) {
                        done.problems.push(DownError::Foreign {
                            program,
                            pid,
                            netns: ns.to_string(),
                        });
                    }
                    continue;
                }
            },
        };
        stop(
            done,
            pid,
            &what,
            process::terminate_known(pid, &what, TERM_GRACE),
        );
    }
}

fn stop(done: &mut Teardown, pid: u32, what: &str, result: Result<Stopped, ProcessError>) {
    match result {
        Ok(Stopped::Exited) => done.stopped.push(format!("{what} (pid {pid})")),
        Ok(Stopped::NotRunning) => {}
        Err(source) => done.problems.push(DownError::Stop {
            what: what.to_string(),
            pid,
            source,
        }),
    }
}

fn delete_namespace(done: &mut Teardown, ns: &str) {
    match netns::delete(ns) {
        Ok(()) => done.namespaces.push(ns.to_string()),
        Err(_) if !netns::exists(ns) => {}
        Err(source) => done.problems.push(DownError::Namespace { source }),
    }
}
