//! Names the kernel knows and we must not hard-code: drop reasons from the BTF enum
//! `skb_drop_reason` (its values change between releases), and call sites from /proc/kallsyms.

use std::collections::BTreeMap;

use libbpf_rs::btf::types::{Enum, Enum64};
use libbpf_rs::btf::Btf;

/// Drop reason value → name without the `SKB_DROP_REASON_` prefix ("NO_SOCKET", …).
#[derive(Debug, Clone, Default)]
pub struct DropReasons {
    names: BTreeMap<u32, String>,
}

impl DropReasons {
    pub fn from_vmlinux() -> Result<Self, String> {
        let btf = Btf::from_vmlinux().map_err(|e| format!("reading kernel BTF: {e}"))?;
        let mut names = BTreeMap::new();
        if let Some(en) = btf.type_by_name::<Enum<'_>>("skb_drop_reason") {
            for m in en.iter() {
                if let Some(n) = m.name {
                    names.insert(m.value as u32, clean(&n.to_string_lossy()));
                }
            }
        } else if let Some(en) = btf.type_by_name::<Enum64<'_>>("skb_drop_reason") {
            for m in en.iter() {
                if let Some(n) = m.name {
                    names.insert(m.value as u32, clean(&n.to_string_lossy()));
                }
            }
        } else {
            return Err(
                "the kernel's BTF has no enum skb_drop_reason (kernel before 5.17?)".into(),
            );
        }
        Ok(DropReasons { names })
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (u32, String)>) -> Self {
        DropReasons {
            names: pairs.into_iter().collect(),
        }
    }

    /// The reason's name, or `reason_N` for values this kernel's BTF does not list (subsystem
    /// reasons carry the subsystem in the high 16 bits).
    pub fn name(&self, value: u32) -> String {
        self.names
            .get(&value)
            .cloned()
            .unwrap_or_else(|| format!("reason_{value}"))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn clean(n: &str) -> String {
    n.strip_prefix("SKB_DROP_REASON_")
        .or_else(|| n.strip_prefix("SKB_"))
        .unwrap_or(n)
        .to_string()
}

/// Kernel text symbols for turning a call-site address into `function+0xoff`.
#[derive(Debug, Clone, Default)]
pub struct KernelSymbols {
    /// Sorted by address.
    syms: Vec<(u64, String)>,
}

impl KernelSymbols {
    /// Reads /proc/kallsyms; addresses are only visible to root (kptr_restrict), otherwise the
    /// table is empty and locations print as raw addresses.
    pub fn load() -> Self {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "W" | "w"))
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable();
        KernelSymbols { syms }
    }

    pub fn resolve(&self, addr: u64) -> String {
        let i = self.syms.partition_point(|(a, _)| *a <= addr);
        match i.checked_sub(1).and_then(|i| self.syms.get(i)) {
            Some((base, name)) => format!("{name}+0x{:x}", addr - base),
            None => format!("0x{addr:x}"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_come_from_this_kernels_btf() {
        let r = DropReasons::from_vmlinux().expect("BTF");
        assert_eq!(r.name(2), "NOT_SPECIFIED");
        assert_eq!(r.name(3), "NO_SOCKET");
        assert!(r.len() > 50, "{} reasons", r.len());
        assert_eq!(r.name(0xdead_0001), "reason_3735879681");
    }

    #[test]
    fn symbols_resolve_to_the_enclosing_function() {
        let k = KernelSymbols::parse("ffffffff81000000 T _stext\nffffffff81000100 t foo\nffffffff81000200 T bar [mod]\n0000000000000000 A zero\n");
        assert_eq!(k.resolve(0xffffffff81000150), "foo+0x50");
        assert_eq!(k.resolve(0xffffffff81000200), "bar+0x0");
        assert_eq!(k.resolve(0x10), "0x10");
    }
}
