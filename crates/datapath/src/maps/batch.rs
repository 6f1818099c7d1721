//! Batched hash-map operations (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_DELETE_BATCH`), which aya
//! 0.14 does not wrap: a pass over a large map costs a few syscalls instead of two or three
//! per entry (get-next-key, lookup, delete), which is what a conntrack GC pass over ~100k
//! entries spends its time on.

use std::{
    io,
    mem::{size_of, MaybeUninit},
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::{MapData, MapType};

/// Entries asked for per `BPF_MAP_LOOKUP_BATCH` call; a hash bucket holding more than this
/// makes the kernel answer ENOSPC, and the call is retried with twice as many.
const LOOKUP_CHUNK: u32 = 1024;

/// The batch member of `union bpf_attr` (`<linux/bpf.h>`).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `bpf(cmd, attr)`; on failure the errno, with `attr.count` as the kernel left it.
fn bpf_batch(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, initialised bpf_attr prefix of the size passed; the
    // pointers in it reference buffers the callers keep alive and sized for `count`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Checks that `map` is a (non-per-CPU) hash map whose keys are `K` and values `V` (a value
/// size of 0 skips the value check): the batch calls write `count` keys and values of the
/// map's sizes into buffers sized for `K` and `V`.
fn check_layout<K, V>(map: &MapData, with_values: bool) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let info = map.info().map_err(|e| invalid(format!("map info: {e}")))?;
    match info.map_type() {
        Ok(MapType::Hash | MapType::LruHash) => {}
        other => {
            return Err(invalid(format!(
                "batch operations need a hash map, not {other:?}"
            )))
        }
    }
    if info.key_size() as usize != size_of::<K>() {
        return Err(invalid(format!(
            "map key size {} is not {}",
            info.key_size(),
            size_of::<K>()
        )));
    }
    if with_values && info.value_size() as usize != size_of::<V>() {
        return Err(invalid(format!(
            "map value size {} is not {}",
            info.value_size(),
            size_of::<V>()
        )));
    }
    Ok(())
}

/// Every entry of the hash map `map`, read in batches. Fails (InvalidInput) when the map's
/// key and value sizes are not those of `K` and `V`.
pub fn lookup_all<K: aya::Pod, V: aya::Pod>(map: &MapData) -> io::Result<Vec<(K, V)>> {
    check_layout::<K, V>(map, true)?;
    let fd = map.fd().as_fd();
    let mut out = Vec::new();
    let mut chunk = LOOKUP_CHUNK;
    // The batch token of a hash map is a bucket index; the kernel copies key_size bytes
    // at most, so a buffer of the key's size (at least 8) holds it.
    let token_len = size_of::<K>().max(8);
    let mut in_token = vec![0u8; token_len];
    let mut out_token = vec![0u8; token_len];
    let mut first = true;
    loop {
        let mut keys: Vec<MaybeUninit<K>> = Vec::with_capacity(chunk as usize);
        let mut values: Vec<MaybeUninit<V>> = Vec::with_capacity(chunk as usize);
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { in_token.as_ptr() as u64 },
            out_batch: out_token.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let filled = attr.count.min(chunk) as usize;
        let last = match result {
            Ok(()) => false,
            // The end of the map: what this call filled is the last of it.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => true,
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) && filled == 0 => {
                chunk = chunk.checked_mul(2).ok_or(err)?;
                continue;
            }
            Err(err) => return Err(err),
        };
        // SAFETY: the kernel wrote `filled` keys and values of the map's sizes, which are
        // those of K and V.
        unsafe {
            keys.set_len(filled);
            values.set_len(filled);
        }
        out.extend(
            keys.into_iter()
                .zip(values)
                // SAFETY: as above, every element up to `filled` is initialised.
                .map(|(k, v)| unsafe { (k.assume_init(), v.assume_init()) }),
        );
        if last {
            return Ok(out);
        }
        std::mem::swap(&mut in_token, &mut out_token);
        first = false;
    }
}

/// Deletes `keys` from the hash map `map` in one batch per call; keys that are already gone
/// (deleted or evicted by the datapath meanwhile) are skipped. Returns how many were deleted.
/// Fails (InvalidInput) when the map's keys are not `K`.
pub fn delete_keys<K: aya::Pod>(map: &MapData, keys: &[K]) -> io::Result<usize> {
    check_layout::<K, ()>(map, false)?;
    let fd = map.fd().as_fd();
    let mut deleted = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let count = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf_batch(BPF_MAP_DELETE_BATCH, &mut attr);
        let done = (attr.count as usize).min(rest.len());
        deleted += done;
        match result {
            Ok(()) => rest = &rest[done..],
            // The key at `done` is gone already: step over it.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                rest = rest.get(done + 1..).unwrap_or_default()
            }
            Err(err) => return Err(err),
        }
    }
    Ok(deleted)
}
