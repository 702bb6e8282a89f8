//! A per-direction byte buffer for incremental parsers.
//!
//! Parsers append each chunk, look at [`StreamBuf::data`], and [`consume`](StreamBuf::consume)
//! whole messages. Two things make the result independent of how the stream was chunked:
//! every byte keeps the timestamp of the chunk it arrived in (so a message's time is the time of
//! its first byte, wherever the chunk boundaries fell), and a message too large to keep is cut
//! at a fixed size and the rest of it is discarded as it arrives ([`skip_message`]), instead of
//! being dropped at whatever size the buffer happened to reach.
//!
//! [`skip_message`]: StreamBuf::skip_message

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct StreamBuf {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed; compacted lazily so that consuming is O(1).
    start: usize,
    /// Absolute stream offset of `buf[start]`.
    base: u64,
    /// `(absolute offset, ts)` of each chunk's first byte, oldest first. Only chunks that
    /// still have unconsumed bytes (plus the one straddling `base`) are kept.
    marks: VecDeque<(u64, u64)>,
    /// Bytes of an oversized message still to be discarded as they arrive.
    skip: u64,
}

impl StreamBuf {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk. Bytes that belong to the tail of a message being skipped are discarded
    /// first; the number of such bytes is returned (they are part of a message the parser has
    /// already accounted for, so they are not "skipped" in the stats sense).
    pub(crate) fn push(&mut self, ts: u64, data: &[u8]) -> u64 {
        let discard = self.skip.min(data.len() as u64);
        self.skip -= discard;
        // A skip is only pending while nothing is buffered, so the discarded bytes sit at `base`.
        self.base += discard;
        let rest = &data[discard as usize..];
        if rest.is_empty() {
            return discard;
        }
        if self.is_empty() {
            // Nothing pending: start afresh so that `base` points at the first new byte.
            self.buf.clear();
            self.start = 0;
            self.marks.clear();
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let offset = self.base + self.len() as u64;
        if self.marks.back().map(|&(_, t)| t) != Some(ts) {
            self.marks.push_back((offset, ts));
        }
        self.buf.extend_from_slice(rest);
        discard
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Absolute offset of the first unconsumed byte (bytes consumed or skipped so far).
    #[allow(dead_code)]
    pub(crate) fn offset(&self) -> u64 {
        self.base
    }

    /// Timestamp of the byte at `rel` (relative to the first unconsumed byte).
    pub(crate) fn ts_at(&self, rel: usize) -> u64 {
        let abs = self.base + rel as u64;
        let i = self.marks.partition_point(|&(off, _)| off <= abs);
        self.marks.get(i.saturating_sub(1)).map_or(0, |&(_, t)| t)
    }

    /// Timestamp of the first unconsumed byte.
    pub(crate) fn ts(&self) -> u64 {
        self.ts_at(0)
    }

    /// Drops `n` bytes from the front (at most what is buffered).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        self.start += n;
        self.base += n as u64;
        // Keep the mark that covers `base`; drop the ones before it.
        while self.marks.len() > 1 && self.marks[1].0 <= self.base {
            self.marks.pop_front();
        }
        if self.is_empty() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Consumes a message of `total` bytes of which only a prefix may be buffered: what is
    /// buffered (up to `total`) is consumed now, the remainder is discarded as it arrives.
    pub(crate) fn skip_message(&mut self, total: u64) {
        let now = (self.len() as u64).min(total);
        self.consume(now as usize);
        self.skip += total - now;
    }

    /// Bytes of the current oversized message that are still to come.
    pub(crate) fn pending_skip(&self) -> u64 {
        self.skip
    }

    /// Forgets everything (after a capture gap). Returns the number of buffered bytes dropped.
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.len();
        self.base += dropped as u64;
        self.buf.clear();
        self.start = 0;
        self.marks.clear();
        self.skip = 0;
        dropped
    }

    /// Capacity held, for memory-bound tests.
    #[allow(dead_code)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_bytes() {
        let mut b = StreamBuf::new();
        b.push(10, b"ab");
        b.push(20, b"cd");
        assert_eq!(b.ts_at(0), 10);
        assert_eq!(b.ts_at(1), 10);
        assert_eq!(b.ts_at(2), 20);
        b.consume(1);
        assert_eq!(b.ts(), 10);
        b.consume(1);
        assert_eq!(b.ts(), 20);
        assert_eq!(b.data(), b"cd");
    }

    #[test]
    fn skip_spans_chunks() {
        let mut b = StreamBuf::new();
        b.push(1, b"0123");
        b.skip_message(10);
        assert!(b.is_empty());
        assert_eq!(b.push(2, b"4567"), 4);
        assert_eq!(b.push(3, b"89XY"), 2);
        assert_eq!(b.data(), b"XY");
        assert_eq!(b.ts(), 3);
        assert_eq!(b.offset(), 10);
    }
}
