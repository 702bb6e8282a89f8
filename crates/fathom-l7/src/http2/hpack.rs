//! HPACK header decoding for an observer (RFC 7541).
//!
//! Two decoders, because an observer does not always see a connection from its first byte:
//!
//! - While the dynamic table is known (the connection was seen from its preface), header
//!   blocks go to [`loona_hpack::Decoder`], the maintained continuation of `fluke-hpack` that
//!   decodes all of hpack-test-case and does not panic on malformed input. Its Huffman
//!   decoding is slow (it rebuilds a hash-map table per string), so Huffman-coded literals are
//!   decoded here first and the crate is given the equivalent plain block.
//! - After a mid-stream pickup, a capture gap, a block too large to keep, or a decoding error,
//!   the dynamic table is partly unknown. [`Tolerant`] (with its own table-driven Huffman
//!   decoder, see [`huffman`](super::huffman)) then keeps only the entries inserted
//!   since, in order, and reports a field that refers to an older (unknown) entry as
//!   undecodable instead of failing the whole block. Indices count from the newest entry, and
//!   the encoder only refers to entries that exist, so the known entries resolve correctly even
//!   though the unknown ones' sizes (and so evictions) are not known exactly.
//!
//! Both decoders hand each field to a callback, so the caller keeps only what it needs and a
//! block that expands to megabytes (many references to one large entry) costs no memory.

use super::huffman;
use std::collections::VecDeque;

/// Result of decoding one header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockOutcome {
    /// Fields handed to the callback.
    pub decoded: usize,
    /// Fields that referred to unknown dynamic-table entries, or could not be decoded.
    pub undecodable: usize,
    /// The block was malformed (the rest of it was not decoded).
    pub malformed: bool,
}

/// HPACK decoder that survives not knowing the start of the connection.
pub struct HeaderDecoder {
    /// `Some` while the dynamic table is fully known.
    exact: Option<loona_hpack::Decoder<'static>>,
    tolerant: Tolerant,
    /// Upper bound for dynamic table size updates: the peer's SETTINGS_HEADER_TABLE_SIZE,
    /// capped by configuration so a peer cannot make us keep a huge table.
    max_allowed: usize,
}

impl HeaderDecoder {
    /// A decoder for a connection seen from its start (empty dynamic table of 4096 bytes).
    pub fn new(cap: usize) -> Self {
        let mut d = HeaderDecoder {
            exact: None,
            tolerant: Tolerant::new(4096),
            max_allowed: cap.max(4096),
        };
        d.exact = Some(d.new_exact());
        d
    }

    /// A decoder for a connection picked up mid-stream: the dynamic table is unknown.
    pub fn unknown_state(cap: usize) -> Self {
        HeaderDecoder {
            exact: None,
            tolerant: Tolerant::new(cap.max(4096)),
            max_allowed: cap.max(4096),
        }
    }

    fn new_exact(&self) -> loona_hpack::Decoder<'static> {
        let mut d = loona_hpack::Decoder::new();
        d.set_max_allowed_table_size(self.max_allowed);
        d
    }

    /// Whether the dynamic table is fully known.
    pub fn exact(&self) -> bool {
        self.exact.is_some()
    }

    /// The decoding peer announced SETTINGS_HEADER_TABLE_SIZE = `n` (capped at `cap`). The
    /// bound only grows: until the encoder acknowledges a smaller one with a size update it
    /// may still use the old size.
    pub fn set_max_allowed(&mut self, n: usize, cap: usize) {
        let n = n.min(cap.max(4096));
        if n > self.max_allowed {
            self.max_allowed = n;
            if let Some(d) = self.exact.as_mut() {
                d.set_max_allowed_table_size(n);
            }
        }
    }

    /// Forgets the dynamic table (a header block was lost or could not be kept).
    pub fn lose_state(&mut self) {
        self.exact = None;
        self.tolerant = Tolerant::new(self.max_allowed);
    }

    /// Decodes one complete header block, calling `field(name, value)` for each field.
    pub fn decode(&mut self, block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> BlockOutcome {
        let Some(d) = self.exact.as_mut() else {
            return self.tolerant.decode(block, self.max_allowed, field);
        };
        // The crate rebuilds a Huffman table for every coded string (26 us for a typical
        // request block, 90 times our table-driven decoder): hand it the block with its
        // Huffman strings already decoded, so it only does what it is used for here: the
        // representations, the dynamic table and size updates.
        let plain = plain_literals(block);
        let mut out = BlockOutcome::default();
        let r = d.decode_with_cb(plain.as_deref().unwrap_or(block), |n, v| {
            field(&n, &v);
            out.decoded += 1;
        });
        if r.is_err() {
            // The fields before the error were reported; the table may hold part of the
            // block: from here on it is not known for sure.
            out.malformed = true;
            self.lose_state();
        }
        out
    }
}

/// `block` with every Huffman-coded string literal replaced by its plain form, or `None` when
/// it has none (or is malformed: the decoder will report that on the original).
fn plain_literals(block: &[u8]) -> Option<Vec<u8>> {
    if !has_huffman(block)? {
        return None;
    }
    let mut out = Vec::with_capacity(block.len() * 3 / 2);
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        let (prefix, strings) = match b {
            _ if b & 0x80 != 0 => (7, 0),
            _ if b & 0x40 != 0 => (6, 1),
            _ if b & 0x20 != 0 => (5, 0),
            _ => (4, 1),
        };
        let (index, used) = integer(&block[i..], prefix)?;
        out.extend_from_slice(&block[i..i + used]);
        i += used;
        let strings = if strings == 1 && index == 0 {
            2
        } else {
            strings
        };
        for _ in 0..strings {
            let huffman = *block.get(i)? & 0x80 != 0;
            let (len, used) = integer(&block[i..], 7)?;
            let raw = block.get(i + used..i.checked_add(used)?.checked_add(len)?)?;
            match huffman.then(|| super::huffman::decode(raw)).flatten() {
                Some(plain) => {
                    encode_integer(plain.len(), 7, 0, &mut out);
                    out.extend_from_slice(&plain);
                }
                // Not coded, or invalid coding (left for the decoder to reject).
                None => out.extend_from_slice(&block[i..i + used + len]),
            }
            i += used + len;
        }
    }
    Some(out)
}

/// Whether any string literal of the block is Huffman-coded; `None` if malformed.
fn has_huffman(block: &[u8]) -> Option<bool> {
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        let (prefix, strings) = match b {
            _ if b & 0x80 != 0 => (7, 0),
            _ if b & 0x40 != 0 => (6, 1),
            _ if b & 0x20 != 0 => (5, 0),
            _ => (4, 1),
        };
        let (index, used) = integer(&block[i..], prefix)?;
        i += used;
        let strings = if strings == 1 && index == 0 {
            2
        } else {
            strings
        };
        for _ in 0..strings {
            if *block.get(i)? & 0x80 != 0 {
                return Some(true);
            }
            let (len, used) = integer(&block[i..], 7)?;
            i = i.checked_add(used)?.checked_add(len)?;
        }
    }
    Some(false)
}

/// HPACK integer with an N-bit prefix; `flags` are the bits above the prefix.
fn encode_integer(v: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A decoded header field: name, value.
type Field = (Vec<u8>, Vec<u8>);

/// Decoder that tracks only the dynamic-table entries it has seen inserted.
pub struct Tolerant {
    /// Newest first. `None` name: inserted with a name from an unknown entry.
    entries: VecDeque<(Option<Vec<u8>>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

enum Rep {
    Indexed,
    Incremental,
    SizeUpdate,
    Literal,
}

impl Tolerant {
    /// `max_size`: the table size assumed until the encoder sends a size update.
    pub fn new(max_size: usize) -> Self {
        Tolerant {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    fn evict(&mut self, room_for: usize) {
        while self.size + room_for > self.max_size {
            let Some((n, v)) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry_size(n.as_deref(), &v);
        }
    }

    fn insert(&mut self, name: Option<Vec<u8>>, value: Vec<u8>) {
        let s = entry_size(name.as_deref(), &value);
        if s > self.max_size {
            // An entry larger than the table empties it (RFC 7541 §4.4).
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(s);
        self.size += s;
        self.entries.push_front((name, value));
    }

    /// Field for a 1-based HPACK index: `Ok(None)` when it refers to an unknown entry.
    fn lookup(&self, index: usize) -> Result<Option<Field>, ()> {
        if index == 0 {
            return Err(());
        }
        if let Some(&(n, v)) = STATIC_TABLE.get(index - 1) {
            return Ok(Some((n.to_vec(), v.to_vec())));
        }
        match self.entries.get(index - 1 - STATIC_TABLE.len()) {
            Some((Some(n), v)) => Ok(Some((n.clone(), v.clone()))),
            _ => Ok(None),
        }
    }

    fn name_of(&self, index: usize) -> Result<Option<Vec<u8>>, ()> {
        Ok(self.lookup(index)?.map(|(n, _)| n))
    }

    /// Decodes a block; `max_allowed` bounds size updates.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_allowed: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> BlockOutcome {
        let mut out = BlockOutcome::default();
        let mut i = 0;
        while i < block.len() {
            let b = block[i];
            let (rep, prefix) = if b & 0x80 != 0 {
                (Rep::Indexed, 7)
            } else if b & 0x40 != 0 {
                (Rep::Incremental, 6)
            } else if b & 0x20 != 0 {
                (Rep::SizeUpdate, 5)
            } else {
                (Rep::Literal, 4)
            };
            let Some((index, used)) = integer(&block[i..], prefix) else {
                out.malformed = true;
                break;
            };
            i += used;
            match rep {
                Rep::SizeUpdate => {
                    if index > max_allowed {
                        out.malformed = true;
                        break;
                    }
                    self.max_size = index;
                    self.evict(0);
                }
                Rep::Indexed => match self.lookup(index) {
                    Ok(Some((n, v))) => {
                        field(&n, &v);
                        out.decoded += 1;
                    }
                    Ok(None) => out.undecodable += 1,
                    Err(()) => {
                        out.malformed = true;
                        break;
                    }
                },
                Rep::Incremental | Rep::Literal => {
                    let name = if index == 0 {
                        match string(&block[i..]) {
                            Some((s, used)) => {
                                i += used;
                                s.map(Some)
                            }
                            None => {
                                out.malformed = true;
                                break;
                            }
                        }
                    } else {
                        self.name_of(index).map_err(|_| ())
                    };
                    let Ok(name) = name else {
                        out.malformed = true;
                        break;
                    };
                    let Some((value, used)) = string(&block[i..]) else {
                        out.malformed = true;
                        break;
                    };
                    i += used;
                    let Ok(value) = value else {
                        out.malformed = true;
                        break;
                    };
                    match &name {
                        Some(n) => {
                            field(n, &value);
                            out.decoded += 1;
                        }
                        None => out.undecodable += 1,
                    }
                    if matches!(rep, Rep::Incremental) {
                        self.insert(name, value);
                    }
                }
            }
        }
        out
    }
}

fn entry_size(name: Option<&[u8]>, value: &[u8]) -> usize {
    name.map_or(0, <[u8]>::len) + value.len() + 32
}

/// HPACK integer with an N-bit prefix (RFC 7541 §5.1); `None` if truncated or too large.
pub(crate) fn integer(b: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let mask = (1u16 << prefix) as usize - 1;
    let mut v = (*b.first()? as usize) & mask;
    if v < mask {
        return Some((v, 1));
    }
    let mut shift = 0;
    for (k, &byte) in b.iter().enumerate().skip(1) {
        if shift > 28 {
            return None;
        }
        v += ((byte & 0x7f) as usize) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((v, k + 1));
        }
    }
    None
}

/// HPACK string literal: `None` if truncated; `Some((Err, used))` if its Huffman coding is
/// invalid (the length is still known, so decoding can go on).
#[allow(clippy::type_complexity)]
fn string(b: &[u8]) -> Option<(Result<Vec<u8>, ()>, usize)> {
    let huffman = *b.first()? & 0x80 != 0;
    let (len, used) = integer(b, 7)?;
    let end = used.checked_add(len)?;
    let raw = b.get(used..end)?;
    let s = if huffman {
        huffman::decode(raw).ok_or(())
    } else {
        Ok(raw.to_vec())
    };
    Some((s, end))
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(d: &mut HeaderDecoder, block: &[u8]) -> (Vec<(String, String)>, BlockOutcome) {
        let mut v = Vec::new();
        let o = d.decode(block, |n, val| {
            v.push((
                String::from_utf8_lossy(n).into(),
                String::from_utf8_lossy(val).into(),
            ))
        });
        (v, o)
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        let blocks = [
            "828684410f7777772e6578616d706c652e636f6d",
            "828684be58086e6f2d6361636865",
            "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        ];
        for exact in [true, false] {
            let mut d = HeaderDecoder::new(4096);
            if !exact {
                // The tolerant decoder starting from a known-empty table decodes exactly too.
                d.exact = None;
            }
            let mut last = Vec::new();
            for b in blocks {
                let bytes: Vec<u8> = (0..b.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&b[i..i + 2], 16).unwrap_or(0))
                    .collect();
                let (h, o) = collect(&mut d, &bytes);
                assert_eq!(o.undecodable, 0);
                last = h;
            }
            assert_eq!(
                last[4],
                ("custom-key".to_string(), "custom-value".to_string())
            );
            assert_eq!(
                last[3],
                (":authority".to_string(), "www.example.com".to_string())
            );
        }
    }

    #[test]
    fn unknown_entries_are_counted_not_fatal() {
        let mut d = HeaderDecoder::unknown_state(4096);
        // :method GET (static), index 62 (unknown dynamic), literal with indexing "a: b",
        // then index 62 again (now the new entry).
        let block = [0x82, 0xbe, 0x40, 1, b'a', 1, b'b', 0xbe];
        let (h, o) = collect(&mut d, &block);
        assert_eq!(o.undecodable, 1);
        assert!(!o.malformed);
        assert_eq!(
            h,
            vec![
                (":method".into(), "GET".into()),
                ("a".into(), "b".into()),
                ("a".into(), "b".into())
            ]
        );
    }

    #[test]
    fn integers() {
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(integer(&[0x1f, 0x9a], 5), None);
        assert_eq!(
            integer(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 7),
            None
        );
    }
}
