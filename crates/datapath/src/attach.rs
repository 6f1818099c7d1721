//! Attaching programs to network devices (an endpoint's host-side veth, the
//! node's tunnel device) so that they stay attached after the agent exits,
//! replacing them atomically on regeneration, and detaching them.
//!
//! TCX (Linux 6.6+): one link per hook, pinned as `link_ingress` /
//! `link_egress` in the endpoint's pin directory; regeneration swaps the
//! program inside the pinned link (`BPF_LINK_UPDATE`), so the hook is never
//! empty. Legacy tc: a clsact qdisc with direct-action filters at a fixed
//! priority and handle; regeneration replaces the filter in place, and the
//! programs are pinned as `prog_ingress` / `prog_egress` to mark the endpoint
//! as attached.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use aya::{
    pin::PinError,
    programs::{
        links::{FdLink, LinkError, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
        Link, LinkOrder, ProgramError, SchedClassifier, TcAttachType,
    },
    util::KernelVersion,
};
use thiserror::Error;

/// How programs are attached to network devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// TCX links (Linux 6.6+).
    Tcx,
    /// tc clsact qdisc with direct-action filters (netlink).
    LegacyTc,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcx => "TCX",
            Self::LegacyTc => "Legacy TC",
        })
    }
}

/// Which attach mode to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AttachPreference {
    /// TCX when the kernel has it, legacy tc otherwise.
    #[default]
    Auto,
    /// TCX; fails on kernels without it.
    Tcx,
    /// Legacy tc.
    Tc,
}

/// First kernel with TCX (`BPF_TCX_INGRESS`/`BPF_TCX_EGRESS` links).
const TCX_MIN_KERNEL: KernelVersion = KernelVersion::new(6, 6, 0);

/// Legacy tc filter priority of our programs.
const TC_PRIORITY: u16 = 1;
/// Legacy tc filter handle of our programs.
const TC_HANDLE: TcHandle = TcHandle::new(0, 1);

/// Failures attaching or detaching.
#[derive(Debug, Error)]
pub enum AttachError {
    /// The running kernel version could not be determined.
    #[error("cannot determine the kernel version to choose an attach mode: {reason}")]
    KernelVersion {
        /// What went wrong.
        reason: String,
    },
    /// TCX was requested on a kernel without it.
    #[error("TCX attachment needs Linux 6.6 or newer; this kernel is {kernel:?}")]
    TcxUnsupported {
        /// The running kernel.
        kernel: KernelVersion,
    },
    /// A program or link operation failed.
    #[error("{op} of {program} on {ifname} ({hook}) failed")]
    Program {
        /// What was being done.
        op: &'static str,
        /// Program name.
        program: &'static str,
        /// Interface.
        ifname: String,
        /// Hook.
        hook: Hook,
        /// Underlying error.
        #[source]
        source: Box<ProgramError>,
    },
    /// A link operation failed.
    #[error("{op} of link {path} failed")]
    Link {
        /// What was being done.
        op: &'static str,
        /// Pin path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: LinkError,
    },
    /// Pinning failed.
    #[error("cannot pin {path}")]
    Pin {
        /// Pin path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: PinError,
    },
    /// A tc (netlink) operation failed.
    #[error("{op} on {ifname} failed")]
    Tc {
        /// What was being done.
        op: &'static str,
        /// Interface.
        ifname: String,
        /// Underlying error.
        #[source]
        source: TcError,
    },
    /// A filesystem operation on the pin directory failed.
    #[error("{op} {path} failed")]
    Fs {
        /// What was being done.
        op: &'static str,
        /// Path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// The two tc hooks of a device (for an endpoint's host-side veth:
/// ingress = leaving the pod, egress = going to the pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// tc ingress (of a pod veth: packets leaving the pod).
    Ingress,
    /// tc egress (of a pod veth: packets going to the pod).
    Egress,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

impl Hook {
    const BOTH: [Self; 2] = [Self::Ingress, Self::Egress];

    fn tc_type(self) -> TcAttachType {
        match self {
            Self::Ingress => TcAttachType::Ingress,
            Self::Egress => TcAttachType::Egress,
        }
    }

    /// Pin file name of this hook in `mode`.
    fn pin_name(self, mode: AttachMode) -> &'static str {
        match (mode, self) {
            (AttachMode::Tcx, Self::Ingress) => "link_ingress",
            (AttachMode::Tcx, Self::Egress) => "link_egress",
            (AttachMode::LegacyTc, Self::Ingress) => "prog_ingress",
            (AttachMode::LegacyTc, Self::Egress) => "prog_egress",
        }
    }
}

/// Chooses the attach mode for `preference` on the running kernel.
pub fn resolve_mode(preference: AttachPreference) -> Result<AttachMode, AttachError> {
    if preference == AttachPreference::Tc {
        return Ok(AttachMode::LegacyTc);
    }
    let kernel = KernelVersion::current().map_err(|err| AttachError::KernelVersion {
        reason: err.to_string(),
    })?;
    let has_tcx = kernel >= TCX_MIN_KERNEL;
    match preference {
        AttachPreference::Tcx if !has_tcx => Err(AttachError::TcxUnsupported { kernel }),
        _ if has_tcx => Ok(AttachMode::Tcx),
        _ => Ok(AttachMode::LegacyTc),
    }
}

/// Whether `dir` holds any attachment pin.
pub fn has_pins(dir: &Path) -> bool {
    [AttachMode::Tcx, AttachMode::LegacyTc]
        .iter()
        .flat_map(|mode| Hook::BOTH.map(|hook| dir.join(hook.pin_name(*mode))))
        .any(|pin| pin.exists())
}

/// Attaches `program` to `hook` of `ifname` in `mode`, pinning under `dir`;
/// replaces an existing attachment of ours in place.
pub fn attach(
    mode: AttachMode,
    dir: &Path,
    ifname: &str,
    hook: Hook,
    program: &mut SchedClassifier,
    name: &'static str,
) -> Result<(), AttachError> {
    let other = match mode {
        AttachMode::Tcx => AttachMode::LegacyTc,
        AttachMode::LegacyTc => AttachMode::Tcx,
    };
    // An attachment of the other mode (agent restarted with another
    // preference) would run alongside ours: remove it first.
    let stale = dir.join(hook.pin_name(other));
    if stale.exists() {
        if other == AttachMode::LegacyTc {
            detach_tc_filter(ifname, hook)?;
        }
        remove_pin(&stale)?;
    }
    let pin = dir.join(hook.pin_name(mode));
    match mode {
        AttachMode::Tcx => attach_tcx(&pin, ifname, hook, program, name),
        AttachMode::LegacyTc => attach_tc(&pin, ifname, hook, program, name),
    }
}

fn program_err(
    op: &'static str,
    program: &'static str,
    ifname: &str,
    hook: Hook,
) -> impl FnOnce(ProgramError) -> AttachError {
    let ifname = ifname.to_string();
    move |source| AttachError::Program {
        op,
        program,
        ifname,
        hook,
        source: Box::new(source),
    }
}

fn attach_tcx(
    pin: &Path,
    ifname: &str,
    hook: Hook,
    program: &mut SchedClassifier,
    name: &'static str,
) -> Result<(), AttachError> {
    if pin.exists() {
        match pinned_link_on(pin, ifname, hook)? {
            Some(link) => {
                let id = program
                    .attach_to_link(link)
                    .map_err(program_err("replace", name, ifname, hook))?;
                // The pin keeps the link; our handle only holds an fd.
                drop(program.take_link(id).map_err(program_err(
                    "take link",
                    name,
                    ifname,
                    hook,
                ))?);
                return Ok(());
            }
            None => {
                tracing::warn!(pin = %pin.display(), %ifname, %hook,
                    "pinned link is not attached to this interface; attaching anew");
                remove_pin(pin)?;
            }
        }
    }
    let id = program
        .attach_with_options(
            ifname,
            hook.tc_type(),
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(program_err("TCX attach", name, ifname, hook))?;
    let link = program
        .take_link(id)
        .map_err(program_err("take link", name, ifname, hook))?;
    let link: FdLink = link.try_into().map_err(|source| AttachError::Link {
        op: "convert TCX link",
        path: pin.to_path_buf(),
        source,
    })?;
    link.pin(pin).map_err(|source| AttachError::Pin {
        path: pin.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Opens the pinned TCX link at `pin` when it is attached to `hook` of
/// `ifname` (not defunct, not another device's).
fn pinned_link_on(
    pin: &Path,
    ifname: &str,
    hook: Hook,
) -> Result<Option<SchedClassifierLink>, AttachError> {
    let link_err = |op| {
        move |source| AttachError::Link {
            op,
            path: pin.to_path_buf(),
            source,
        }
    };
    let link: FdLink = PinnedLink::from_pin(pin)
        .map_err(link_err("open pinned link"))?
        .into();
    let program_id = link.info().map_err(link_err("inspect link"))?.program_id();
    let (_, attached) = SchedClassifier::query_tcx(ifname, hook.tc_type()).map_err(program_err(
        "query TCX",
        "(any)",
        ifname,
        hook,
    ))?;
    if !attached.iter().any(|info| info.id() == program_id) {
        return Ok(None);
    }
    link.try_into()
        .map(Some)
        .map_err(link_err("convert pinned link"))
}

fn attach_tc(
    pin: &Path,
    ifname: &str,
    hook: Hook,
    program: &mut SchedClassifier,
    name: &'static str,
) -> Result<(), AttachError> {
    if let Err(source) = tc::qdisc_add_clsact(ifname) {
        let exists = matches!(&source, TcError::NetlinkError(err)
            if err.raw_os_error() == Some(libc::EEXIST));
        if !exists {
            return Err(AttachError::Tc {
                op: "add clsact qdisc",
                ifname: ifname.to_string(),
                source,
            });
        }
    }
    // Replace our filter in place when it is there, create it otherwise.
    let existing =
        SchedClassifierLink::attached(ifname, hook.tc_type(), TC_PRIORITY, TC_HANDLE, None)
            .map_err(|source| AttachError::Tc {
                op: "describe tc filter",
                ifname: ifname.to_string(),
                source: TcError::IoError(source),
            })?;
    let id = match program.attach_to_link(existing) {
        Ok(id) => id,
        Err(_) => program
            .attach_with_options(
                ifname,
                hook.tc_type(),
                TcAttachOptions::Netlink(NlOptions {
                    priority: TC_PRIORITY,
                    handle: TC_HANDLE,
                    classid: None,
                }),
            )
            .map_err(program_err("tc attach", name, ifname, hook))?,
    };
    let link = program
        .take_link(id)
        .map_err(program_err("take link", name, ifname, hook))?;
    // Dropping the link would delete the filter; it must outlive us. A
    // netlink link holds no file descriptor, so nothing leaks but a few bytes.
    std::mem::forget(link);

    if pin.exists() {
        remove_pin(pin)?;
    }
    program.pin(pin).map_err(|source| AttachError::Pin {
        path: pin.to_path_buf(),
        source,
    })
}

/// Deletes our legacy tc filter from `hook` of `ifname` (absent is fine).
fn detach_tc_filter(ifname: &str, hook: Hook) -> Result<(), AttachError> {
    let link = SchedClassifierLink::attached(ifname, hook.tc_type(), TC_PRIORITY, TC_HANDLE, None)
        .map_err(|source| AttachError::Tc {
            op: "describe tc filter",
            ifname: ifname.to_string(),
            source: TcError::IoError(source),
        })?;
    match link.detach() {
        Ok(()) => Ok(()),
        Err(ProgramError::NetlinkError(err)) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(source) => Err(program_err("tc detach", "(ours)", ifname, hook)(source)),
    }
}

fn remove_pin(pin: &Path) -> Result<(), AttachError> {
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AttachError::Fs {
            op: "unpin",
            path: pin.to_path_buf(),
            source,
        }),
    }
}

/// Detaches an endpoint: legacy tc filters are deleted from `ifname` (when
/// known and still present), TCX links are released by removing their pins,
/// then the pin directory goes. Keeps going on failure and returns every
/// error.
pub fn detach(dir: &Path, ifname: Option<&str>) -> Vec<AttachError> {
    let mut errors = Vec::new();
    for hook in Hook::BOTH {
        let legacy = dir.join(hook.pin_name(AttachMode::LegacyTc));
        if legacy.exists() {
            if let Some(ifname) = ifname {
                if let Err(err) = detach_tc_filter(ifname, hook) {
                    errors.push(err);
                }
            }
        }
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if let Err(err) = remove_pin(&entry.path()) {
                    errors.push(err);
                }
            }
            if let Err(source) = std::fs::remove_dir(dir) {
                errors.push(AttachError::Fs {
                    op: "remove",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => errors.push(AttachError::Fs {
            op: "list",
            path: dir.to_path_buf(),
            source,
        }),
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_display_like_cilium_status() {
        assert_eq!(AttachMode::Tcx.to_string(), "TCX");
        assert_eq!(AttachMode::LegacyTc.to_string(), "Legacy TC");
    }

    #[test]
    fn tc_preference_never_needs_tcx() {
        assert_eq!(
            resolve_mode(AttachPreference::Tc).expect("tc is always possible"),
            AttachMode::LegacyTc
        );
    }

    #[test]
    fn pin_names_differ_per_mode_and_hook() {
        let mut names: Vec<_> = [AttachMode::Tcx, AttachMode::LegacyTc]
            .iter()
            .flat_map(|mode| Hook::BOTH.map(|hook| hook.pin_name(*mode)))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4);
    }
}
