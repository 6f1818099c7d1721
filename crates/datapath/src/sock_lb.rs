//! Socket load balancing: `bpf_sock.o` loaded once per node on the node's pinned service
//! maps, its four hooks (`connect4`, `sendmsg4`, `recvmsg4`, `getpeername4`) attached to one
//! cgroup v2 directory, so that sockets of processes in that cgroup (and its descendants)
//! connect straight to a backend.
//!
//! The attachments are BPF links held by [`SocketLb`]: dropping it, or the process exiting
//! for any reason, detaches them, so a restarted agent attaches afresh and never finds a
//! duplicate of its own hooks. Between the two, connections take the per-packet path.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

use aya::programs::{CgroupAttachMode, ProgramError};
use thiserror::Error;

use crate::{
    bpffs::BpfPaths,
    loader::{self, LoaderError, MapSizes, SockObject},
};

/// Failures setting socket load balancing up.
#[derive(Debug, Error)]
pub enum SocketLbError {
    /// Loading `bpf_sock.o` or one of its programs failed.
    #[error("cannot load the socket load balancer")]
    Load {
        /// Underlying error.
        #[source]
        source: LoaderError,
    },
    /// The cgroup directory could not be opened.
    #[error("cannot open cgroup {path}")]
    Cgroup {
        /// The cgroup v2 directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused an attachment.
    #[error("cannot attach {program} to cgroup {cgroup}")]
    Attach {
        /// Program (function) name.
        program: &'static str,
        /// The cgroup v2 directory.
        cgroup: PathBuf,
        /// Underlying error.
        #[source]
        source: Box<ProgramError>,
    },
}

/// The socket load balancer attached to a cgroup; detached on drop.
#[derive(Debug)]
pub struct SocketLb {
    // Owns the programs and, through them, the links.
    _object: SockObject,
    cgroup: PathBuf,
}

impl SocketLb {
    /// Loads `bpf_sock.o` on the maps pinned under `paths` (created with `sizes` when
    /// missing) and attaches its programs to the cgroup v2 directory `cgroup`.
    pub fn attach(
        paths: &BpfPaths,
        sizes: &MapSizes,
        cgroup: &Path,
    ) -> Result<Self, SocketLbError> {
        let mut object =
            loader::load_sock(paths, sizes).map_err(|source| SocketLbError::Load { source })?;
        let dir = File::open(cgroup).map_err(|source| SocketLbError::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        for program in SockObject::PROGRAMS {
            object
                .program_mut(program)
                .map_err(|source| SocketLbError::Load { source })?
                .attach(&dir, CgroupAttachMode::Single)
                .map_err(|source| SocketLbError::Attach {
                    program,
                    cgroup: cgroup.to_path_buf(),
                    source: Box::new(source),
                })?;
        }
        tracing::info!(cgroup = %cgroup.display(), "socket load balancing attached");
        Ok(Self {
            _object: object,
            cgroup: cgroup.to_path_buf(),
        })
    }

    /// The cgroup the hooks are attached to.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }
}
