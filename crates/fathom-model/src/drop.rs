//! A packet the kernel dropped, with the kernel's own reason and the code that dropped it.

use serde::{Deserialize, Serialize};

use crate::flow::{Endpoint, InterfaceRef, L4Protocol};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropRecord {
    pub time: Timestamp,
    /// The kernel's drop reason name without its prefix ("NO_SOCKET", "NETFILTER_DROP", …),
    /// read from this kernel's BTF.
    pub reason: String,
    pub reason_code: u32,
    /// Where the kernel freed the packet: `function+0xoffset`.
    pub location: String,
    pub interface: Option<InterfaceRef>,
    /// Network namespace (inode) of the device, when known.
    pub netns: Option<u32>,
    /// Present when the packet was IP.
    pub source: Option<Endpoint>,
    pub destination: Option<Endpoint>,
    pub protocol: Option<L4Protocol>,
    pub length: u32,
    /// Drops of this reason that were not reported individually since the previous record of
    /// the same reason (rate limit). The per-reason totals in `fathom drops` are exact.
    pub suppressed: u32,
    pub node: String,
}
