//! IPv4/IPv6 fragment reassembly with hard bounds: a limit on datagrams in flight (oldest
//! evicted first), on the size of one datagram, and a timeout in capture time. Overlapping
//! fragments resolve "first copy wins", the policy most receivers and IDSs default to.
//! (`etherparse`'s own defragmenter is documented as unbounded, hence this module.)

use std::collections::HashMap;
use std::net::IpAddr;

use super::decode::IpPacket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragLimits {
    /// Datagrams being reassembled at once.
    pub max_pending: usize,
    /// Largest reassembled datagram payload (IPv4 caps at 65515; jumbograms are not fragmented).
    pub max_datagram_bytes: usize,
    /// Give up on a datagram when no fragment arrived for this long (capture time).
    pub timeout_ns: u64,
}

impl Default for FragLimits {
    fn default() -> Self {
        FragLimits {
            max_pending: 1024,
            max_datagram_bytes: 65_535,
            timeout_ns: 30_000_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Datagrams abandoned: timed out, evicted for room, or too large.
    pub timed_out: u64,
    pub evicted: u64,
    pub oversized: u64,
    pub overlapping_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

#[derive(Debug)]
struct Pending {
    first_ts: u64,
    last_ts: u64,
    pieces: Vec<(u32, Vec<u8>)>,
    total: Option<u32>,
    bytes: usize,
    wire_bytes: u64,
    tags: Vec<u64>,
}

/// A complete datagram: the transport header and payload, plus what it cost on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: Vec<u8>,
    pub fragments: u32,
    /// Sum of the fragments' IP packet sizes.
    pub wire_bytes: u64,
    pub first_ts: u64,
    /// The caller's tags of the fragments (e.g. packet numbers), in arrival order.
    pub tags: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Defragmenter {
    limits: FragLimits,
    pending: HashMap<Key, Pending, ahash::RandomState>,
    stats: FragStats,
}

impl Defragmenter {
    pub fn new(limits: FragLimits) -> Self {
        Defragmenter {
            limits,
            pending: HashMap::default(),
            stats: FragStats::default(),
        }
    }

    pub fn stats(&self) -> FragStats {
        self.stats
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Add one fragment (`ip.frag` must be set). Returns the datagram when it is complete.
    pub fn push(&mut self, ts_ns: u64, ip: &IpPacket<'_>) -> Option<Reassembled> {
        self.push_tagged(ts_ns, ip, 0)
    }

    /// As [`Defragmenter::push`], remembering `tag` for this fragment.
    pub fn push_tagged(&mut self, ts_ns: u64, ip: &IpPacket<'_>, tag: u64) -> Option<Reassembled> {
        let frag = ip.frag?;
        self.stats.fragments += 1;
        let key = Key {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            id: frag.id,
        };
        let end = frag.offset as usize + ip.payload.len();
        if end > self.limits.max_datagram_bytes {
            self.stats.oversized += 1;
            self.pending.remove(&key);
            return None;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= self.limits.max_pending {
            self.evict_oldest();
        }
        let p = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_ts: ts_ns,
            last_ts: ts_ns,
            pieces: Vec::new(),
            total: None,
            bytes: 0,
            wire_bytes: 0,
            tags: Vec::new(),
        });
        p.last_ts = ts_ns;
        p.wire_bytes += u64::from(ip.wire_len);
        if !frag.more {
            p.total = Some(frag.offset + ip.payload_wire_len);
        }
        // Bound the bytes one datagram may pin, duplicates included.
        if p.bytes + ip.payload.len() > 2 * self.limits.max_datagram_bytes {
            self.stats.oversized += 1;
            self.pending.remove(&key);
            return None;
        }
        p.bytes += ip.payload.len();
        p.pieces.push((frag.offset, ip.payload.to_vec()));
        p.tags.push(tag);
        let total = p.total? as usize;
        let assembled = assemble(&p.pieces, total, &mut self.stats.overlapping_bytes)?;
        let p = self.pending.remove(&key)?;
        self.stats.reassembled += 1;
        Some(Reassembled {
            src: key.src,
            dst: key.dst,
            proto: key.proto,
            payload: assembled,
            fragments: p.pieces.len() as u32,
            wire_bytes: p.wire_bytes,
            first_ts: p.first_ts,
            tags: p.tags,
        })
    }

    /// Drop datagrams that saw no fragment for the timeout.
    pub fn expire(&mut self, now_ns: u64) {
        let timeout = self.limits.timeout_ns;
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now_ns.saturating_sub(p.last_ts) <= timeout);
        self.stats.timed_out += (before - self.pending.len()) as u64;
    }

    /// End of input: whatever is still incomplete is abandoned.
    pub fn finish(&mut self) {
        self.stats.timed_out += self.pending.len() as u64;
        self.pending.clear();
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.last_ts)
            .map(|(k, _)| k.clone())
        {
            self.pending.remove(&k);
            self.stats.evicted += 1;
        }
    }
}

/// The datagram if `pieces` cover `[0, total)`; earlier pieces win where they overlap.
fn assemble(pieces: &[(u32, Vec<u8>)], total: usize, overlap: &mut u64) -> Option<Vec<u8>> {
    let mut covered = vec![false; total];
    let mut out = vec![0u8; total];
    let mut overlapped = 0u64;
    for (off, data) in pieces {
        let off = *off as usize;
        for (i, b) in data.iter().enumerate() {
            let at = off + i;
            if at >= total {
                break;
            }
            if covered[at] {
                overlapped += 1;
            } else {
                covered[at] = true;
                out[at] = *b;
            }
        }
    }
    if covered.iter().all(|c| *c) {
        *overlap += overlapped;
        Some(out)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::Fragment;

    fn frag<'a>(id: u32, offset: u32, more: bool, payload: &'a [u8]) -> IpPacket<'a> {
        IpPacket {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            proto: 17,
            wire_len: 20 + payload.len() as u32,
            frag: Some(Fragment { id, offset, more }),
            payload,
            payload_wire_len: payload.len() as u32,
            header_checksum_ok: Some(true),
        }
    }

    #[test]
    fn out_of_order_with_overlap() {
        let mut d = Defragmenter::new(FragLimits::default());
        assert!(d.push(1, &frag(7, 16, false, b"CCCCCCCC")).is_none());
        assert!(d.push(2, &frag(7, 8, true, b"BBBBBBBBXXXX")).is_none());
        let r = d.push(3, &frag(7, 0, true, b"AAAAAAAA")).unwrap();
        assert_eq!(r.payload, b"AAAAAAAABBBBBBBBCCCCCCCC");
        assert_eq!((r.fragments, d.stats().overlapping_bytes), (3, 4));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn bounded_and_expiring() {
        let limits = FragLimits {
            max_pending: 2,
            max_datagram_bytes: 100,
            timeout_ns: 10,
        };
        let mut d = Defragmenter::new(limits);
        d.push(1, &frag(1, 0, true, b"a"));
        d.push(2, &frag(2, 0, true, b"b"));
        d.push(3, &frag(3, 0, true, b"c"));
        assert_eq!((d.pending(), d.stats().evicted), (2, 1));
        d.push(4, &frag(4, 96, false, b"toolong"));
        assert_eq!(d.stats().oversized, 1);
        d.expire(100);
        assert_eq!((d.pending(), d.stats().timed_out), (0, 2));
    }
}
