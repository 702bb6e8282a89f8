//! L4 prefixes: the 24 bits of (protocol, destination port) that a policy map key matches by
//! prefix, and the decomposition of port ranges into aligned prefixes.

use std::fmt;

use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::packet::L4;
use crate::policy::{L4Match, PortSel};

/// A prefix of the 24-bit value `protocol << 16 | port`. `len` 0 = any traffic, 8 = one
/// protocol, 8 + n = the first n bits of the port (or of ICMP type<<8|code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct L4Prefix {
    pub len: u8,
    pub protocol: u8,
    pub port: u16,
}

impl L4Prefix {
    pub const ANY: L4Prefix = L4Prefix {
        len: 0,
        protocol: 0,
        port: 0,
    };
    pub const BITS: u8 = 24;

    /// A prefix with the bits beyond `len` cleared.
    pub fn new(len: u8, protocol: u8, port: u16) -> Self {
        let len = len.min(Self::BITS);
        let v = mask(value(protocol, port), len);
        Self {
            len,
            protocol: (v >> 16) as u8,
            port: (v & 0xffff) as u16,
        }
    }

    /// The exact (full-length) prefix of a packet.
    pub fn of_packet(l4: L4) -> Self {
        Self::new(Self::BITS, l4.protocol(), l4.key_bits())
    }

    pub fn value(self) -> u32 {
        value(self.protocol, self.port)
    }

    /// Does this prefix contain `other` (equal or longer and agreeing on the first `len` bits)?
    pub fn contains(self, other: L4Prefix) -> bool {
        other.len >= self.len && mask(other.value(), self.len) == self.value()
    }

    /// The lengths the kernel probes (a fixed number of hash lookups per packet): any traffic,
    /// one protocol, a 256-port block (or an ICMP type), an exact port (or ICMP type + code).
    pub const LEVELS: [u8; 4] = [0, 8, 16, 24];

    /// The same set of packets as prefixes of the probed lengths only: a prefix between two
    /// levels becomes the 2^k prefixes of the next longer level it covers (at most 128: an
    /// aligned port block of 128..32768 ports → up to 128 blocks of 256, of 2..128 ports →
    /// up to 128 exact ports).
    pub fn to_levels(self) -> Vec<L4Prefix> {
        let Some(&level) = Self::LEVELS.iter().find(|&&l| l >= self.len) else {
            return vec![self];
        };
        if level == self.len {
            return vec![self];
        }
        let count = 1u32 << (level - self.len);
        let step = 1u32 << (Self::BITS - level);
        (0..count)
            .map(|i| {
                let v = self.value() + i * step;
                Self::new(level, (v >> 16) as u8, (v & 0xffff) as u16)
            })
            .collect()
    }

    /// The prefix of length `len` that contains this one.
    pub fn truncate(self, len: u8) -> Self {
        Self::new(len.min(self.len), self.protocol, self.port)
    }
}

impl fmt::Display for L4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len {
            0 => f.write_str("any"),
            8 => write!(f, "proto {}", self.protocol),
            n => write!(f, "proto {} port {}/{}", self.protocol, self.port, n - 8),
        }
    }
}

fn value(protocol: u8, port: u16) -> u32 {
    u32::from(protocol) << 16 | u32::from(port)
}

fn mask(v: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        v & (0xff_ffff_u32 << (24 - u32::from(len)) & 0xff_ffff)
    }
}

/// Split an inclusive port range into the fewest aligned blocks: (first port, prefix bits).
pub fn port_range_prefixes(first: u16, last: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let mut lo = u32::from(first);
    let hi = u32::from(last);
    while lo <= hi {
        let mut k = if lo == 0 {
            16
        } else {
            lo.trailing_zeros().min(16)
        };
        while lo + (1u32 << k) - 1 > hi {
            k -= 1;
        }
        out.push((lo as u16, (16 - k) as u8));
        lo += 1u32 << k;
    }
    out
}

/// The prefixes a rule's traffic selector covers. Named ports resolve on `owner` (the pod
/// that will receive the packet); with no owner, or no such port, they cover nothing.
pub fn match_prefixes(m: &L4Match, owner: Option<&Endpoint>) -> Vec<L4Prefix> {
    match m {
        L4Match::Port { protocol, port } => {
            let p = protocol.number();
            match port {
                PortSel::Any => vec![L4Prefix::new(8, p, 0)],
                PortSel::Range { first, last } => port_range_prefixes(*first, *last)
                    .into_iter()
                    .map(|(start, bits)| L4Prefix::new(8 + bits, p, start))
                    .collect(),
                PortSel::Named(name) => owner
                    .and_then(|o| o.named_port(name, *protocol))
                    .map(|port| vec![L4Prefix::new(24, p, port)])
                    .unwrap_or_default(),
            }
        }
        L4Match::Icmp {
            family,
            icmp_type,
            code,
        } => {
            let bits = u16::from(*icmp_type) << 8 | u16::from(code.unwrap_or(0));
            let len = if code.is_some() { 24 } else { 16 };
            vec![L4Prefix::new(len, family.number(), bits)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(first: u16, last: u16) -> Vec<u32> {
        let mut v: Vec<u32> = port_range_prefixes(first, last)
            .into_iter()
            .flat_map(|(s, bits)| {
                let size = 1u32 << (16 - bits);
                (u32::from(s)..u32::from(s) + size).collect::<Vec<_>>()
            })
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn ranges_decompose_exactly() {
        for (a, b) in [
            (80, 80),
            (80, 103),
            (1, 65535),
            (0, 65535),
            (1024, 2047),
            (3, 9),
            (65535, 65535),
            (32768, 65534),
        ] {
            assert_eq!(
                expand(a, b),
                (u32::from(a)..=u32::from(b)).collect::<Vec<_>>(),
                "{a}-{b}"
            );
        }
        assert_eq!(port_range_prefixes(80, 103), vec![(80, 12), (96, 13)]);
        assert_eq!(port_range_prefixes(0, 65535), vec![(0, 0)]);
        assert!(port_range_prefixes(1, 65535).len() <= 16);
    }

    #[test]
    fn levels_cover_the_same_packets() {
        let exact = |v: &[L4Prefix]| {
            let mut out: Vec<u32> = v
                .iter()
                .flat_map(|p| {
                    let size = 1u32 << (24 - p.len);
                    (p.value()..p.value() + size).collect::<Vec<_>>()
                })
                .collect();
            out.sort_unstable();
            out
        };
        for p in [
            L4Prefix::new(12, 6, 80 & 0xf000),
            L4Prefix::new(20, 6, 80),
            L4Prefix::new(9, 17, 0x8000),
            L4Prefix::new(23, 6, 1000),
            L4Prefix::new(16, 1, 8 << 8),
            L4Prefix::new(24, 6, 80),
            L4Prefix::new(8, 6, 0),
            L4Prefix::ANY,
        ] {
            let levels = p.to_levels();
            assert!(levels.iter().all(|l| L4Prefix::LEVELS.contains(&l.len)));
            assert!(levels.len() <= 128, "{p}");
            assert_eq!(exact(&levels), exact(&[p]), "{p}");
        }
        assert_eq!(L4Prefix::new(20, 6, 80).to_levels().len(), 16);
        assert_eq!(L4Prefix::new(12, 6, 0).to_levels().len(), 16);
    }

    #[test]
    fn containment() {
        let tcp = L4Prefix::new(8, 6, 0);
        let p80 = L4Prefix::new(24, 6, 80);
        let block = L4Prefix::new(20, 6, 80); // 80-95
        assert!(L4Prefix::ANY.contains(tcp));
        assert!(tcp.contains(p80));
        assert!(block.contains(p80));
        assert!(block.contains(L4Prefix::new(24, 6, 95)));
        assert!(!block.contains(L4Prefix::new(24, 6, 96)));
        assert!(!p80.contains(tcp));
        assert!(!L4Prefix::new(8, 17, 0).contains(p80));
        assert_eq!(L4Prefix::new(20, 6, 87), block, "host bits are cleared");
    }
}
