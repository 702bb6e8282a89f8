//! Reading and pruning the kernel flow table from user space (idle expiry, final counters).

pub use libbpf_rs::MapHandle;
use libbpf_rs::{MapCore, MapFlags};

use crate::abi::{FlowKeyRaw, FlowValueRaw, Pod};

/// Every entry of the table. Entries may change or vanish while we iterate (the kernel keeps
/// counting); a key that disappears between `keys()` and `lookup` is skipped.
pub fn snapshot(map: &MapHandle) -> Vec<(FlowKeyRaw, FlowValueRaw)> {
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
