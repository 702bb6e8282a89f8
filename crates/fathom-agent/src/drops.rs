//! Kernel drop events → drop records: reason names from the kernel's BTF, call sites from
//! kallsyms, endpoints and pods from the inventory.

use std::collections::BTreeMap;

use fathom_bpf::events::DropEvent;
use fathom_bpf::kernelsyms::{DropReasons, KernelSymbols};
use fathom_model::{DropRecord, InterfaceRef, L4Protocol};

use crate::clock::BootClock;
use crate::inventory::Inventory;

pub struct DropDecoder {
    pub reasons: DropReasons,
    pub symbols: KernelSymbols,
}

impl DropDecoder {
    pub fn load() -> Self {
        let reasons = DropReasons::from_vmlinux().unwrap_or_else(|e| {
            tracing::warn!("drop reason names unavailable ({e}): reasons print as numbers");
            DropReasons::default()
        });
        DropDecoder {
            reasons,
            symbols: KernelSymbols::load(),
        }
    }

    pub fn record(
        &self,
        e: &DropEvent,
        inv: &Inventory,
        clock: &BootClock,
        ifnames: &BTreeMap<u32, String>,
        node: &str,
    ) -> DropRecord {
        DropRecord {
            time: clock.to_wall(e.ts_ns),
            reason: self.reasons.name(e.reason),
            reason_code: e.reason,
            location: self.symbols.resolve(e.location),
            interface: (e.ifindex != 0).then(|| InterfaceRef {
                ifindex: e.ifindex,
                name: ifnames.get(&e.ifindex).cloned(),
            }),
            netns: (e.netns != 0).then_some(e.netns),
            source: e.source.map(|a| inv.endpoint(a.ip(), a.port())),
            destination: e.destination.map(|a| inv.endpoint(a.ip(), a.port())),
            protocol: e.proto.map(L4Protocol::from_ip_proto),
            length: e.len,
            suppressed: e.suppressed,
            node: node.to_string(),
        }
    }
}
