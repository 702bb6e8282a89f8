//! The harness of the ABI layout tests: each C header has a table of sizes, offsets and
//! constants compiled from C (`csrc/*_abi_layout.c`), and each Rust mirror builds the same
//! table with [`layout!`] and compares the two.

use std::collections::BTreeMap;
use std::ffi::CStr;

#[repr(C)]
pub struct LayoutEntry {
    name: *const std::os::raw::c_char,
    value: std::os::raw::c_ulong,
}

/// Read a C layout table (a static array terminated by a NULL name).
///
/// # Safety
/// `table` must point at such an array.
pub unsafe fn c_table(table: *const LayoutEntry) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut p = table;
    // SAFETY: the caller guarantees a NULL-terminated static array.
    unsafe {
        while !(*p).name.is_null() {
            let name = CStr::from_ptr((*p).name).to_string_lossy().into_owned();
            // c_ulong is 32 bits on some targets: widen explicitly.
            #[allow(clippy::unnecessary_cast)]
            out.insert(name, (*p).value as u64);
            p = p.add(1);
        }
    }
    out
}

/// `layout!(map, "c_struct_name", RustType, [field, ...])`: the size and field offsets of a
/// Rust mirror, under the names the C table uses.
macro_rules! layout {
    ($map:ident, $c:literal, $t:ty, [$($f:ident),*]) => {
        $map.insert($c.to_string(), ::std::mem::size_of::<$t>() as u64);
        $( $map.insert(format!("{}.{}", $c, stringify!($f)), ::std::mem::offset_of!($t, $f) as u64); )*
    };
}
pub(crate) use layout;
