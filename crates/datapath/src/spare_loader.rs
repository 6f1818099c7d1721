//! A ready-made aya loader for the next object load.
//!
//! `EbpfLoader::new()` reads and parses the kernel's BTF
//! (`/sys/kernel/btf/vmlinux`, several MB) every time it is called, which is
//! a large part of an endpoint's load time. Our objects need no CO-RE
//! relocations, but aya offers no way around the parse, so one loader is
//! made in advance on a background thread: an endpoint load takes it and
//! leaves the parse of its successor off its own critical path. The parsed
//! BTF is dropped right away (`btf(None)`): it is only used for CO-RE
//! relocations, and keeping it would cost tens of MB of agent memory.
//! `EbpfLoader<'static>` coerces to any shorter lifetime, so a spare made
//! before the load's inputs exist still borrows them.

use std::sync::Mutex;

use aya::EbpfLoader;

static SPARE: Mutex<Option<EbpfLoader<'static>>> = Mutex::new(None);

/// A fresh loader: the spare if one is ready (another is then made in the
/// background), else one made now.
pub(crate) fn take() -> EbpfLoader<'static> {
    let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).take();
    refill();
    spare.unwrap_or_else(|| {
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        loader
    })
}

/// Makes the next spare on a background thread, unless one is waiting.
fn refill() {
    let spawned = std::thread::Builder::new()
        .name("bpf-loader".into())
        .spawn(|| {
            let mut loader = EbpfLoader::new();
            loader.btf(None);
            let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
            if spare.is_none() {
                *spare = Some(loader);
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot prepare a spare BPF loader; the next load makes its own");
    }
}
