//! Ranges of a per-CPU array read and cleared with one batch syscall each (libbpf-rs refuses
//! batch operations on per-CPU maps), so that a range of thousands of entries costs two
//! syscalls, not two per entry.

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;

use libbpf_rs::MapCore;

/// Bytes of one CPU's copy of a value as the batch syscalls lay them out (8-byte aligned).
fn percpu_stride(map: &dyn MapCore) -> usize {
    (map.value_size() as usize).div_ceil(8) * 8
}

fn cpus() -> io::Result<usize> {
    // SAFETY: no arguments; returns a count or a negative errno.
    let n = unsafe { libbpf_sys::libbpf_num_possible_cpus() };
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(-n))
}

fn batch_opts() -> libbpf_sys::bpf_map_batch_opts {
    libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as libbpf_sys::size_t,
        ..Default::default()
    }
}

fn last_errno(ret: i32) -> io::Error {
    io::Error::last_os_error().raw_os_error().map_or_else(
        || io::Error::from_raw_os_error(-ret),
        io::Error::from_raw_os_error,
    )
}

/// Runs one batch syscall after the other until `total` entries are done: `call(done, n)`
/// asks for `n` entries from `done` on and sets `n` to how many it handled.
fn batched(total: usize, mut call: impl FnMut(usize, &mut u32) -> i32) -> io::Result<()> {
    let mut done = 0usize;
    while done < total {
        let mut n = (total - done) as u32;
        let ret = call(done, &mut n);
        if ret < 0 {
            return Err(last_errno(ret));
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        done += n as usize;
    }
    Ok(())
}

/// Entries `first..first + count` (first > 0), each as its per-CPU values in CPU order.
pub fn read_range(map: &dyn MapCore, first: u32, count: u32) -> io::Result<Vec<Vec<Vec<u8>>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if first == 0
        || first
            .checked_add(count)
            .is_none_or(|end| end > map.max_entries())
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (stride, ncpu, vs) = (percpu_stride(map), cpus()?, map.value_size() as usize);
    let n_total = count as usize;
    let mut keys = vec![0u32; n_total];
    let mut vals = vec![0u8; n_total * stride * ncpu];
    // The batch starts after the key in `in_batch`: the one before the range.
    let mut token = first - 1;
    let mut next = 0u32;
    let opts = batch_opts();
    batched(n_total, |done, n| {
        // SAFETY: keys/values have room for `n` entries from `done` on (per-CPU values are
        // ncpu * stride bytes each); the tokens are u32 keys.
        let ret = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                map.as_fd().as_raw_fd(),
                (&mut token as *mut u32).cast(),
                (&mut next as *mut u32).cast(),
                keys[done..].as_mut_ptr().cast(),
                vals[done * stride * ncpu..].as_mut_ptr().cast(),
                n,
                &opts,
            )
        };
        token = next;
        ret
    })?;
    let out = (0..n_total)
        .map(|i| {
            (0..ncpu)
                .map(|c| {
                    let at = (i * ncpu + c) * stride;
                    vals[at..at + vs].to_vec()
                })
                .collect()
        })
        .collect();
    Ok(out)
}

/// Zero entries `first..first + count` on every CPU.
pub fn zero_range(map: &dyn MapCore, first: u32, count: u32) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    if first
        .checked_add(count)
        .is_none_or(|end| end > map.max_entries())
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (stride, ncpu) = (percpu_stride(map), cpus()?);
    let keys: Vec<u32> = (first..first + count).collect();
    let vals = vec![0u8; keys.len() * stride * ncpu];
    let opts = batch_opts();
    batched(keys.len(), |done, n| {
        // SAFETY: `n` keys and `n` per-CPU values from `done` on are in the buffers.
        unsafe {
            libbpf_sys::bpf_map_update_batch(
                map.as_fd().as_raw_fd(),
                keys[done..].as_ptr().cast(),
                vals[done * stride * ncpu..].as_ptr().cast(),
                n,
                &opts,
            )
        }
    })
}
