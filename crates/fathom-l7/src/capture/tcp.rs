//! TCP stream reassembly for one direction of a connection.
//!
//! Bytes come out in sequence order exactly once: retransmissions and overlaps are trimmed
//! ("first copy wins"), out-of-order segments wait in a bounded buffer, and holes that will not
//! be filled become explicit gaps instead of stalling the stream. A hole is declared a gap when
//! - the out-of-order buffer exceeds its limit (oldest hole first),
//! - the peer acknowledges data beyond the hole while later data is buffered (the receiver got
//!   it, the capture did not),
//! - the captured segment was cut by the snap length (the tail will never be seen), or
//! - the stream is flushed (FIN/RST or end of capture).
//!
//! Sequence numbers are 32-bit and wrap; positions are kept as 64-bit stream offsets computed
//! from the signed distance to the next expected sequence number.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Out-of-order bytes buffered per direction before the oldest hole is given up.
    pub max_ooo_bytes: usize,
    pub max_ooo_segments: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_ooo_bytes: 1 << 20,
            max_ooo_segments: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStreamStats {
    pub segments: u64,
    pub delivered_bytes: u64,
    /// Payload bytes already delivered when they arrived again (retransmissions, overlaps).
    pub retransmitted_bytes: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Gaps forced because the out-of-order buffer was full.
    pub overflow_gaps: u64,
}

impl TcpStreamStats {
    /// Add the counts of `o` (another stream, or the streams of another shard).
    pub fn absorb(&mut self, o: &TcpStreamStats) {
        self.segments += o.segments;
        self.delivered_bytes += o.delivered_bytes;
        self.retransmitted_bytes += o.retransmitted_bytes;
        self.out_of_order_segments += o.out_of_order_segments;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.overflow_gaps += o.overflow_gaps;
    }
}

/// What the reassembler hands on, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    Data {
        ts_ns: u64,
        bytes: &'a [u8],
    },
    /// `len` bytes of the stream were never seen.
    Gap {
        len: u64,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    ts_ns: u64,
    data: Vec<u8>,
}

/// One direction of a TCP connection.
#[derive(Debug, Clone, Default)]
pub struct HalfStream {
    limits: TcpLimits,
    /// Sequence number of the next in-order byte, once known (SYN or first data).
    next_seq: Option<u32>,
    /// Stream offset of `next_seq`: bytes delivered plus gaps.
    delivered: u64,
    ooo: BTreeMap<u64, Pending>,
    ooo_bytes: usize,
    fin_at: Option<u64>,
    syn_seen: bool,
    rst_seen: bool,
    stats: TcpStreamStats,
}

impl HalfStream {
    pub fn new(limits: TcpLimits) -> Self {
        HalfStream {
            limits,
            ..Default::default()
        }
    }

    pub fn stats(&self) -> TcpStreamStats {
        self.stats
    }

    pub fn syn_seen(&self) -> bool {
        self.syn_seen
    }

    /// FIN seen and every byte before it delivered (or given up as a gap).
    pub fn fin_done(&self) -> bool {
        self.fin_at.is_some_and(|f| self.delivered >= f)
    }

    pub fn fin_seen(&self) -> bool {
        self.fin_at.is_some()
    }

    pub fn rst_seen(&self) -> bool {
        self.rst_seen
    }

    pub fn buffered_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// Stream offset of a sequence number relative to what was delivered.
    fn offset_of(&self, seq: u32) -> i64 {
        let next = self.next_seq.unwrap_or(seq);
        self.delivered as i64 + i64::from(seq.wrapping_sub(next) as i32)
    }

    /// One segment of this direction. `wire_len` is the payload size on the wire; when it is
    /// larger than `payload.len()` the capture cut the segment and the tail becomes a gap.
    pub fn segment(
        &mut self,
        ts_ns: u64,
        seq: u32,
        flags: u8,
        payload: &[u8],
        wire_len: u32,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        self.stats.segments += 1;
        let mut data_seq = seq;
        if flags & SYN != 0 {
            data_seq = seq.wrapping_add(1);
            if !self.syn_seen && self.delivered == 0 && self.ooo.is_empty() {
                self.next_seq = Some(data_seq);
            }
            self.syn_seen = true;
        }
        if self.next_seq.is_none() {
            if payload.is_empty() && flags & FIN == 0 {
                // A bare ACK says nothing about where this direction's data starts.
                if flags & RST != 0 {
                    self.rst_seen = true;
                }
                return;
            }
            // Mid-stream pickup: the stream starts at the first byte we see.
            self.next_seq = Some(data_seq);
        }
        let start = self.offset_of(data_seq);
        let wire = u64::from(wire_len.max(payload.len() as u32));
        if !payload.is_empty() {
            let in_order = start <= self.delivered as i64;
            self.place(start, ts_ns, payload, out);
            let missing = wire - payload.len() as u64;
            if missing > 0 && in_order && start + payload.len() as i64 >= self.delivered as i64 {
                // Cut by the snap length: the rest of this segment will not show up.
                self.gap(missing, out);
                self.drain(out);
            }
        }
        if flags & FIN != 0 {
            let end = start + wire as i64;
            if end >= 0 && self.fin_at.is_none() {
                self.fin_at = Some(end as u64);
            }
        }
        if flags & RST != 0 {
            self.rst_seen = true;
        }
    }

    /// The other direction acknowledged `ack`: holes below it that have buffered data after
    /// them will not be filled by this capture.
    pub fn peer_ack(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        if self.next_seq.is_none() || self.ooo.is_empty() {
            return;
        }
        let acked = self.offset_of(ack);
        while let Some((&first, _)) = self.ooo.first_key_value() {
            if first as i64 > acked || first <= self.delivered {
                break;
            }
            self.gap(first - self.delivered, out);
            self.drain(out);
        }
    }

    /// Deliver everything buffered, declaring the remaining holes as gaps (FIN/RST, end).
    pub fn flush(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some((&first, _)) = self.ooo.first_key_value() {
            if first > self.delivered {
                self.gap(first - self.delivered, out);
            }
            self.drain(out);
        }
    }

    fn gap(&mut self, len: u64, out: &mut dyn FnMut(Chunk<'_>)) {
        if len == 0 {
            return;
        }
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        self.delivered += len;
        self.advance_seq(len);
        out(Chunk::Gap { len });
    }

    fn advance_seq(&mut self, len: u64) {
        if let Some(n) = self.next_seq {
            self.next_seq = Some(n.wrapping_add(len as u32));
        }
    }

    fn emit(&mut self, ts_ns: u64, bytes: &[u8], out: &mut dyn FnMut(Chunk<'_>)) {
        if bytes.is_empty() {
            return;
        }
        self.stats.delivered_bytes += bytes.len() as u64;
        self.delivered += bytes.len() as u64;
        self.advance_seq(bytes.len() as u64);
        out(Chunk::Data { ts_ns, bytes });
    }

    fn place(&mut self, start: i64, ts_ns: u64, payload: &[u8], out: &mut dyn FnMut(Chunk<'_>)) {
        let delivered = self.delivered as i64;
        let end = start + payload.len() as i64;
        if end <= delivered {
            self.stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        if start <= delivered {
            let skip = (delivered - start) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            self.emit(ts_ns, &payload[skip..], out);
            self.drain(out);
            return;
        }
        // Out of order: keep it (the earlier copy wins for an identical start).
        self.stats.out_of_order_segments += 1;
        let key = start as u64;
        match self.ooo.get(&key) {
            Some(p) if p.data.len() >= payload.len() => {
                self.stats.retransmitted_bytes += payload.len() as u64;
                return;
            }
            Some(p) => {
                self.ooo_bytes -= p.data.len();
            }
            None => {}
        }
        self.ooo_bytes += payload.len();
        self.ooo.insert(
            key,
            Pending {
                ts_ns,
                data: payload.to_vec(),
            },
        );
        while self.ooo_bytes > self.limits.max_ooo_bytes
            || self.ooo.len() > self.limits.max_ooo_segments
        {
            let Some((&first, _)) = self.ooo.first_key_value() else {
                break;
            };
            self.stats.overflow_gaps += 1;
            if first > self.delivered {
                self.gap(first - self.delivered, out);
            }
            self.drain(out);
        }
    }

    /// Deliver buffered segments that are now in order.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.ooo.first_entry() {
            let start = *entry.key();
            if start > self.delivered {
                break;
            }
            let p = entry.remove();
            self.ooo_bytes -= p.data.len();
            let end = start + p.data.len() as u64;
            if end <= self.delivered {
                self.stats.retransmitted_bytes += p.data.len() as u64;
                continue;
            }
            let skip = (self.delivered - start) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            self.emit(p.ts_ns, &p.data[skip..], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(h: &mut HalfStream, segs: &[(u32, u8, &[u8])]) -> (Vec<u8>, u64) {
        let mut data = Vec::new();
        let mut gaps = 0;
        for (seq, flags, p) in segs {
            h.segment(0, *seq, *flags, p, p.len() as u32, &mut |c| match c {
                Chunk::Data { bytes, .. } => data.extend_from_slice(bytes),
                Chunk::Gap { len } => gaps += len,
            });
        }
        h.flush(&mut |c| match c {
            Chunk::Data { bytes, .. } => data.extend_from_slice(bytes),
            Chunk::Gap { len } => gaps += len,
        });
        (data, gaps)
    }

    #[test]
    fn reorder_retransmit_overlap_and_wrap() {
        let isn = u32::MAX - 3;
        let mut h = HalfStream::new(TcpLimits::default());
        let (d, g) = collect(
            &mut h,
            &[
                (isn, 0x02, b""),
                (isn.wrapping_add(5), 0x10, b"efgh"),
                (isn.wrapping_add(1), 0x10, b"abcd"),
                (isn.wrapping_add(1), 0x10, b"abcd"),
                (isn.wrapping_add(3), 0x10, b"cdefghij"),
            ],
        );
        assert_eq!((d.as_slice(), g), (&b"abcdefghij"[..], 0));
        assert_eq!(h.stats().retransmitted_bytes, 4 + 6);
    }

    #[test]
    fn holes_become_gaps_on_flush_and_overflow() {
        let mut h = HalfStream::new(TcpLimits::default());
        let (d, g) = collect(&mut h, &[(100, 0x10, b"abc"), (110, 0x11, b"xyz")]);
        assert_eq!((d.as_slice(), g), (&b"abcxyz"[..], 7));
        assert!(h.fin_done());

        let mut h = HalfStream::new(TcpLimits {
            max_ooo_bytes: 4,
            max_ooo_segments: 10,
        });
        let mut data = Vec::new();
        let mut gaps = 0;
        for (seq, p) in [(0u32, &b"ab"[..]), (10, b"cc"), (20, b"dddd")] {
            h.segment(0, seq, 0x10, p, p.len() as u32, &mut |c| match c {
                Chunk::Data { bytes, .. } => data.extend_from_slice(bytes),
                Chunk::Gap { len } => gaps += len,
            });
        }
        assert_eq!(
            (data.as_slice(), gaps, h.stats().overflow_gaps),
            (&b"abcc"[..], 8, 1)
        );
    }

    #[test]
    fn snaplen_cut_is_a_gap_and_ack_fills_holes() {
        let mut h = HalfStream::new(TcpLimits::default());
        let mut ev = Vec::new();
        h.segment(0, 1, 0x10, b"ab", 5, &mut |c| ev.push(format!("{c:?}")));
        assert_eq!(ev.len(), 2);
        h.segment(0, 10, 0x10, b"zz", 2, &mut |c| ev.push(format!("{c:?}")));
        h.peer_ack(12, &mut |c| ev.push(format!("{c:?}")));
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(h.buffered_bytes(), 0);
    }
}
