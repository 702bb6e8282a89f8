//! Reading and pruning the kernel flow table from user space (idle expiry, final counters).

pub use libbpf_rs::MapHandle;
use libbpf_rs::{MapCore, MapFlags};

use std::mem::size_of;

use crate::abi::{FlowKeyRaw, FlowValueRaw, Pod};

/// Every entry of the table, in as few syscalls as the kernel allows (batched lookups), or one
/// per key where batching is not supported. Entries may change while we read (the kernel keeps
/// counting); that is fine, each value is read atomically per entry.
pub fn snapshot(map: &MapHandle) -> Vec<(FlowKeyRaw, FlowValueRaw)> {
    match snapshot_batched(map) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("batched flow table read failed ({e}), reading key by key");
            snapshot_by_key(map)
        }
    }
}

/// libbpf-rs's batch iterator ends silently on any error; a partial snapshot would make live
/// flows look evicted, so the batch syscall is driven here with its errors handled: ENOSPC
/// (a hash bucket larger than the batch) grows the batch, anything else falls back.
fn snapshot_batched(map: &MapHandle) -> std::io::Result<Vec<(FlowKeyRaw, FlowValueRaw)>> {
    use std::os::fd::{AsFd, AsRawFd};
    let ks = size_of::<FlowKeyRaw>();
    let vs = size_of::<FlowValueRaw>();
    let fd = map.as_fd().as_raw_fd();
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut batch: u32 = 1024;
    let mut token = vec![0u8; ks.max(8)];
    let mut next = vec![0u8; ks.max(8)];
    let mut first = true;
    loop {
        let mut n = batch;
        let mut keys = vec![0u8; ks * batch as usize];
        let mut vals = vec![0u8; vs * batch as usize];
        let in_batch = if first {
            std::ptr::null_mut()
        } else {
            token.as_mut_ptr().cast()
        };
        // SAFETY: buffers are sized for `batch` keys/values and the batch tokens for the map's
        // key size; the kernel writes at most `n` entries and updates `n`.
        let ret = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                fd,
                in_batch,
                next.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                vals.as_mut_ptr().cast(),
                &mut n,
                &opts,
            )
        };
        let errno = if ret < 0 {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(-ret)
        } else {
            0
        };
        match errno {
            0 | libc::ENOENT => {
                for i in 0..n as usize {
                    let k = FlowKeyRaw::from_bytes(&keys[i * ks..]);
                    let v = FlowValueRaw::from_bytes(&vals[i * vs..]);
                    if let (Some(k), Some(v)) = (k, v) {
                        out.push((k, v));
                    }
                }
                if errno == libc::ENOENT {
                    return Ok(out);
                }
                std::mem::swap(&mut token, &mut next);
                first = false;
            }
            libc::ENOSPC if batch < (1 << 20) => batch *= 2,
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

fn snapshot_by_key(map: &MapHandle) -> Vec<(FlowKeyRaw, FlowValueRaw)> {
    let mut out = Vec::new();
    for k in map.keys() {
        let Some(key) = FlowKeyRaw::from_bytes(&k) else {
            continue;
        };
        if let Ok(Some(v)) = map.lookup(&k, MapFlags::ANY) {
            if let Some(value) = FlowValueRaw::from_bytes(&v) {
                out.push((key, value));
            }
        }
    }
    out
}

pub fn lookup(map: &MapHandle, key: &FlowKeyRaw) -> Option<FlowValueRaw> {
    map.lookup(key.as_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .and_then(|v| FlowValueRaw::from_bytes(&v))
}

/// Remove an entry; returns its last value (the final counters) when it was still there.
pub fn remove(map: &MapHandle, key: &FlowKeyRaw) -> Option<FlowValueRaw> {
    let last = lookup(map, key);
    map.delete(key.as_bytes()).ok()?;
    last
}
