//! The bytes of a message head being accumulated, with what is already known about its first
//! line.
//!
//! Every arriving chunk asks "does the buffer start with a complete HTTP/0.9 request line?".
//! Answering from scratch means looking for the first line end from the start of the buffer
//! each time, which makes a long line that trickles in (a large headerless stream, one byte
//! per segment) quadratic up to the head limit. [`HeadBuf`] remembers how far it has looked
//! and, once the line has ended, the answer, so each byte is scanned once. The buffer is only
//! changed through methods that keep that memory right: appending keeps it, anything else
//! (clear, take, replace, split) resets it.

use std::ops::Deref;

use super::framing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstLine {
    /// No line feed in the first `scanned` bytes.
    Open { scanned: usize },
    /// The first line has ended; `http09` is the head length when it is an HTTP/0.9
    /// request line.
    Ended { http09: Option<usize> },
}

#[derive(Debug)]
pub(super) struct HeadBuf {
    bytes: Vec<u8>,
    first_line: FirstLine,
    /// Bytes looked at while searching for the first line end, over the buffer's life (so a
    /// test can check that the search is linear without timing it).
    #[cfg(test)]
    pub(super) scanned_total: u64,
}

impl Default for HeadBuf {
    fn default() -> Self {
        HeadBuf {
            bytes: Vec::new(),
            first_line: FirstLine::Open { scanned: 0 },
            #[cfg(test)]
            scanned_total: 0,
        }
    }
}

impl Deref for HeadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl HeadBuf {
    fn forget(&mut self) {
        self.first_line = FirstLine::Open { scanned: 0 };
    }

    /// Append: what was learnt about the bytes already there stays true.
    pub(super) fn extend_from_slice(&mut self, more: &[u8]) {
        self.bytes.extend_from_slice(more);
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.forget();
    }

    /// The bytes, leaving the buffer empty.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.forget();
        std::mem::take(&mut self.bytes)
    }

    /// Replace the contents.
    pub(super) fn set(&mut self, bytes: Vec<u8>) {
        self.forget();
        self.bytes = bytes;
    }

    /// Keep `[..at]`, return the rest.
    pub(super) fn split_off(&mut self, at: usize) -> Vec<u8> {
        self.forget();
        self.bytes.split_off(at.min(self.bytes.len()))
    }

    /// When the buffer starts with a complete HTTP/0.9 request line (`METHOD SP target`, line
    /// end included): its length. Same answer as [`framing::http09_request`], in time
    /// proportional to the bytes appended since the last call.
    pub(super) fn http09_end(&mut self) -> Option<usize> {
        match self.first_line {
            FirstLine::Ended { http09 } => http09,
            FirstLine::Open { scanned } => {
                let from = scanned.min(self.bytes.len());
                let found = memchr::memchr(b'\n', &self.bytes[from..]);
                #[cfg(test)]
                {
                    let looked = found.map_or(self.bytes.len() - from, |p| p + 1);
                    self.scanned_total += looked as u64;
                }
                match found {
                    None => {
                        self.first_line = FirstLine::Open {
                            scanned: self.bytes.len(),
                        };
                        None
                    }
                    Some(p) => {
                        let nl = from + p;
                        let http09 = framing::http09_request(&self.bytes[..=nl]).map(|(_, n)| n);
                        self.first_line = FirstLine::Ended { http09 };
                        http09
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(b: &[u8]) -> Option<usize> {
        framing::http09_request(b).map(|(_, n)| n)
    }

    #[test]
    fn agrees_with_the_plain_scan_across_appends_and_resets() {
        let text = b"GET /a\r\nGET /b c\r\nxx\nPOST\n";
        for split in 0..=text.len() {
            let mut h = HeadBuf::default();
            h.extend_from_slice(&text[..split]);
            assert_eq!(h.http09_end(), old(&text[..split]), "split {split}");
            h.extend_from_slice(&text[split..]);
            assert_eq!(h.http09_end(), old(text), "split {split}");
            // After any reset the answer is about the new contents.
            let rest = h.split_off(split);
            assert_eq!(h.http09_end(), old(&text[..split]));
            h.set(rest);
            assert_eq!(h.http09_end(), old(&text[split..]));
            h.clear();
            assert_eq!(h.http09_end(), None);
            h.extend_from_slice(b"PUT /x\n");
            assert_eq!(h.http09_end(), Some(7));
            assert_eq!(h.take(), b"PUT /x\n");
            assert_eq!(h.http09_end(), None);
        }
    }

    #[test]
    fn each_byte_is_scanned_once() {
        let mut h = HeadBuf::default();
        h.extend_from_slice(b"GET /");
        for _ in 0..100_000 {
            h.extend_from_slice(b"a");
            assert_eq!(h.http09_end(), None);
        }
        h.extend_from_slice(b"\r\n");
        assert_eq!(h.http09_end(), Some(100_007));
        for _ in 0..1000 {
            h.extend_from_slice(b"b");
            assert_eq!(h.http09_end(), Some(100_007));
        }
        assert_eq!(h.scanned_total, 100_007);
    }
}
