//! Streaming pcap / pcapng reading on top of `pcap-parser`, with the byte offset of every
//! record so that a truncated or corrupt file is reported precisely and everything before the
//! break is still usable.
//!
//! Supported: legacy pcap in both byte orders with micro- or nanosecond timestamps (and the
//! "modified" variant), pcapng with any number of sections (each with its own byte order) and
//! interfaces (each with its own link type, `if_tsresol` and `if_tsoffset`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap_parser::nom;
use pcap_parser::{
    parse_block_be, parse_block_le, parse_pcap_frame, parse_pcap_frame_be,
    parse_pcap_frame_modified, parse_pcap_header, parse_sectionheaderblock, Block, LegacyPcapBlock,
    PcapBlockOwned, PcapError,
};

/// Largest record (pcap) or block (pcapng) accepted. The read buffer grows up to this on
/// demand; bigger claims are treated as corruption rather than allocated, which bounds memory
/// on hostile files.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One captured packet as stored in the file.
#[derive(Debug, Clone, Copy)]
pub struct CapturePacket<'a> {
    /// Nanoseconds since the Unix epoch (interface offset applied for pcapng).
    pub ts_ns: u64,
    /// LINKTYPE_* value of the interface the packet was captured on.
    pub linktype: u32,
    /// Length of the packet on the wire; `data.len()` is what was captured (snaplen).
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Byte offset of this packet's record (pcap) or block (pcapng) in the file.
    pub offset: u64,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// 1-based packet number, as tcpdump and Wireshark count.
    pub number: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not pcap or pcapng.
    NotACapture,
    /// The file ends in the middle of a record.
    Truncated,
    /// A record or block is malformed.
    Corrupt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte offset {offset})")]
pub struct CaptureError {
    pub kind: CaptureErrorKind,
    /// Byte offset in the file where the unreadable record starts.
    pub offset: u64,
    pub message: String,
}

impl CaptureError {
    fn new(kind: CaptureErrorKind, offset: u64, message: impl Into<String>) -> Self {
        CaptureError {
            kind,
            offset,
            message: message.into(),
        }
    }
}

/// The file-level format, for callers that want to say what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap { nanosecond: bool, big_endian: bool },
    PcapNg,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second (10^6 by default).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Legacy { be: bool, modified: bool },
    Ng { be: bool },
}

pub struct CaptureReader<'r> {
    input: Box<dyn Read + Send + 'r>,
    /// `buf[start..]` holds bytes read but not consumed; `base` is the file offset of `buf[0]`.
    buf: Vec<u8>,
    start: usize,
    base: u64,
    eof: bool,
    /// Bytes of the packet returned last time, consumed on the next call (the packet borrows
    /// the buffer until then).
    pending: usize,
    kind: Kind,
    format: Option<CaptureFormat>,
    legacy_linktype: u32,
    legacy_nanos: bool,
    interfaces: Vec<Interface>,
    number: u64,
    done: bool,
}

impl std::fmt::Debug for CaptureReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("number", &self.number)
            .finish()
    }
}

impl CaptureReader<'static> {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let f = File::open(path).map_err(|e| {
            CaptureError::new(
                CaptureErrorKind::Io,
                0,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        CaptureReader::new(f)
    }
}

enum Parsed<'a> {
    Block(usize, PcapBlockOwned<'a>),
    NeedMore(usize),
    Bad(String),
}

fn classify<'a, T>(
    data: &'a [u8],
    r: nom::IResult<&'a [u8], T, PcapError<&'a [u8]>>,
    wrap: impl FnOnce(T) -> PcapBlockOwned<'a>,
) -> Parsed<'a> {
    match r {
        Ok((rest, b)) => Parsed::Block(data.len() - rest.len(), wrap(b)),
        Err(nom::Err::Incomplete(nom::Needed::Size(n))) => Parsed::NeedMore(data.len() + n.get()),
        Err(nom::Err::Incomplete(nom::Needed::Unknown)) => Parsed::NeedMore(data.len() + 1),
        Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => Parsed::Bad(short_error(&e)),
    }
}

impl<'r> CaptureReader<'r> {
    pub fn new<R: Read + Send + 'r>(reader: R) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            input: Box::new(reader),
            buf: Vec::new(),
            start: 0,
            base: 0,
            eof: false,
            pending: 0,
            kind: Kind::Legacy {
                be: false,
                modified: false,
            },
            format: None,
            legacy_linktype: 0,
            legacy_nanos: false,
            interfaces: Vec::new(),
            number: 0,
            done: false,
        };
        r.fill(24)?;
        let avail = &r.buf[r.start..];
        if avail.is_empty() {
            return Err(CaptureError::new(
                CaptureErrorKind::NotACapture,
                0,
                "empty file (0 bytes)",
            ));
        }
        if avail.len() >= 4 && avail[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            // pcapng: the section header decides the byte order (read below, as a block).
            r.kind = Kind::Ng { be: false };
            r.format = Some(CaptureFormat::PcapNg);
            return Ok(r);
        }
        match parse_pcap_header(avail) {
            Ok((_, h)) => {
                r.legacy_linktype = h.network.0 as u32;
                r.legacy_nanos = h.is_nanosecond_precision();
                r.kind = Kind::Legacy {
                    be: h.is_bigendian(),
                    modified: h.is_modified_format(),
                };
                r.format = Some(CaptureFormat::Pcap {
                    nanosecond: r.legacy_nanos,
                    big_endian: h.is_bigendian(),
                });
                r.start += 24;
                Ok(r)
            }
            Err(nom::Err::Incomplete(_)) => Err(CaptureError::new(
                CaptureErrorKind::Truncated,
                0,
                "file too short for a pcap/pcapng header",
            )),
            Err(_) => Err(CaptureError::new(
                CaptureErrorKind::NotACapture,
                0,
                "not a pcap or pcapng file (unknown magic number)",
            )),
        }
    }

    pub fn format(&self) -> Option<CaptureFormat> {
        self.format
    }

    /// Byte offset of the next unread record.
    pub fn offset(&self) -> u64 {
        self.base + (self.start + self.pending) as u64
    }

    /// Make at least `want` unconsumed bytes available, unless the file ends first.
    fn fill(&mut self, want: usize) -> Result<(), CaptureError> {
        while self.buf.len() - self.start < want && !self.eof {
            if self.start > 0 && self.start >= self.buf.len() / 2 {
                // Drop consumed bytes before growing.
                self.buf.drain(..self.start);
                self.base += self.start as u64;
                self.start = 0;
            }
            let old = self.buf.len();
            let grow = READ_CHUNK.max(want - (old - self.start));
            self.buf.resize(old + grow, 0);
            match self.input.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(CaptureError::new(
                        CaptureErrorKind::Io,
                        self.base + self.buf.len() as u64,
                        format!("read error: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The next packet, `Ok(None)` at a clean end of file. After an error the reader stays at
    /// the failing offset and keeps returning `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<CapturePacket<'_>>, CaptureError> {
        self.start += std::mem::take(&mut self.pending);
        if self.done {
            return Ok(None);
        }
        let mut want = 16;
        loop {
            let offset = self.offset();
            if let Err(e) = self.fill(want) {
                self.done = true;
                return Err(e);
            }
            let data = &self.buf[self.start..];
            if data.is_empty() && self.eof {
                self.done = true;
                return Ok(None);
            }
            let parsed = match self.kind {
                Kind::Legacy { be, modified } => {
                    let f = if modified {
                        parse_pcap_frame_modified
                    } else if be {
                        parse_pcap_frame_be
                    } else {
                        parse_pcap_frame
                    };
                    classify(data, f(data), PcapBlockOwned::Legacy)
                }
                Kind::Ng { be } => {
                    if data.len() >= 4 && data[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                        classify(data, parse_sectionheaderblock(data), |b| {
                            PcapBlockOwned::NG(Block::SectionHeader(b))
                        })
                    } else if be {
                        classify(data, parse_block_be(data), PcapBlockOwned::NG)
                    } else {
                        classify(data, parse_block_le(data), PcapBlockOwned::NG)
                    }
                }
            };
            let fail = |kind, msg: String| CaptureError::new(kind, offset, msg);
            match parsed {
                Parsed::NeedMore(n) if n > MAX_RECORD_BYTES => {
                    self.done = true;
                    return Err(fail(
                        CaptureErrorKind::Corrupt,
                        format!("record claims more than {MAX_RECORD_BYTES} bytes"),
                    ));
                }
                Parsed::NeedMore(_) if self.eof => {
                    self.done = true;
                    return Err(fail(
                        CaptureErrorKind::Truncated,
                        "file truncated in the middle of a record".into(),
                    ));
                }
                Parsed::NeedMore(n) => want = n,
                Parsed::Bad(why) => {
                    self.done = true;
                    return Err(fail(
                        CaptureErrorKind::Corrupt,
                        format!("malformed record: {why}"),
                    ));
                }
                Parsed::Block(len, block) => {
                    let block_start = data.as_ptr() as usize;
                    let meta = handle_block(
                        block,
                        &mut self.kind,
                        &mut self.format,
                        &mut self.legacy_linktype,
                        &mut self.legacy_nanos,
                        &mut self.interfaces,
                        offset,
                        block_start,
                    );
                    match meta {
                        Ok(Some(m)) => {
                            self.number += 1;
                            self.pending = len;
                            let block = &self.buf[self.start..self.start + len];
                            return Ok(Some(CapturePacket {
                                ts_ns: m.ts_ns,
                                linktype: m.linktype,
                                orig_len: m.orig_len,
                                data: &block[m.data.0..m.data.1],
                                offset,
                                interface: m.interface,
                                number: self.number,
                            }));
                        }
                        Ok(None) => {
                            self.start += len;
                            want = 16;
                        }
                        Err(e) => {
                            self.done = true;
                            return Err(e);
                        }
                    }
                }
            }
        }
    }
}

struct PacketMeta {
    ts_ns: u64,
    linktype: u32,
    orig_len: u32,
    interface: u32,
    /// Where the packet bytes are within the block.
    data: (usize, usize),
}

fn short_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) => format!("{kind:?}"),
        PcapError::OwnedNomError(_, kind) => format!("{kind:?}"),
        PcapError::HeaderNotRecognized => "unknown block".into(),
        other => format!("{other:?}"),
    }
}

/// Updates reader state from header blocks; for packets, returns their metadata and where
/// their bytes are within the block (`block_start` is the block's address, used only to
/// turn the parser's sub-slices into offsets).
#[allow(clippy::too_many_arguments)]
fn handle_block(
    block: PcapBlockOwned<'_>,
    kind: &mut Kind,
    format: &mut Option<CaptureFormat>,
    legacy_linktype: &mut u32,
    legacy_nanos: &mut bool,
    interfaces: &mut Vec<Interface>,
    offset: u64,
    block_start: usize,
) -> Result<Option<PacketMeta>, CaptureError> {
    let span = |d: &[u8], len: usize| {
        let at = (d.as_ptr() as usize).saturating_sub(block_start);
        (at, at + len.min(d.len()))
    };
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            *legacy_linktype = h.network.0 as u32;
            *legacy_nanos = h.is_nanosecond_precision();
            *format = Some(CaptureFormat::Pcap {
                nanosecond: *legacy_nanos,
                big_endian: h.is_bigendian(),
            });
            Ok(None)
        }
        PcapBlockOwned::Legacy(b) => Ok(Some(legacy_meta(
            &b,
            *legacy_nanos,
            *legacy_linktype,
            span(b.data, b.data.len()),
        ))),
        PcapBlockOwned::NG(block) => match block {
            Block::SectionHeader(shb) => {
                *format = Some(CaptureFormat::PcapNg);
                // Each section has its own byte order and its own interface ids.
                *kind = Kind::Ng {
                    be: shb.big_endian(),
                };
                interfaces.clear();
                Ok(None)
            }
            Block::InterfaceDescription(idb) => {
                interfaces.push(Interface {
                    linktype: idb.linktype.0 as u32,
                    units_per_sec: ts_units_per_sec(idb.if_tsresol),
                    offset_s: idb.if_tsoffset,
                });
                Ok(None)
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize).copied() else {
                    return Err(CaptureError::new(
                        CaptureErrorKind::Corrupt,
                        offset,
                        format!("packet refers to undeclared interface {}", epb.if_id),
                    ));
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                Ok(Some(PacketMeta {
                    ts_ns: ng_ts_ns(raw, iface),
                    linktype: iface.linktype,
                    orig_len: epb.origlen,
                    interface: epb.if_id,
                    data: span(epb.data, epb.caplen as usize),
                }))
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = interfaces.first().copied() else {
                    return Err(CaptureError::new(
                        CaptureErrorKind::Corrupt,
                        offset,
                        "simple packet block before any interface description",
                    ));
                };
                // Simple packet blocks carry no timestamp.
                Ok(Some(PacketMeta {
                    ts_ns: 0,
                    linktype: iface.linktype,
                    orig_len: spb.origlen,
                    interface: 0,
                    data: span(spb.data, spb.origlen as usize),
                }))
            }
            _ => Ok(None),
        },
    }
}

fn legacy_meta(
    b: &LegacyPcapBlock<'_>,
    nanos: bool,
    linktype: u32,
    data: (usize, usize),
) -> PacketMeta {
    let unit = if nanos { 1 } else { 1_000 };
    let ts = u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec) * unit;
    PacketMeta {
        ts_ns: ts,
        linktype,
        orig_len: b.origlen,
        interface: 0,
        data,
    }
}

/// `if_tsresol`: high bit clear → 10^-n seconds, set → 2^-n seconds (pcapng spec §4.2).
fn ts_units_per_sec(tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n).unwrap_or(1_000_000)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64).unwrap_or(1_000_000)
    }
}

fn ng_ts_ns(raw: u64, iface: Interface) -> u64 {
    let units = u128::from(iface.units_per_sec.max(1));
    let ns = u128::from(raw) * 1_000_000_000 / units;
    let off = i128::from(iface.offset_s) * 1_000_000_000;
    let total = ns as i128 + off;
    total.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(magic: [u8; 4], linktype: u32, be: bool) -> Vec<u8> {
        let mut v = magic.to_vec();
        let w16 = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        v.extend_from_slice(&w16(2));
        v.extend_from_slice(&w16(4));
        v.extend_from_slice(&w32(0));
        v.extend_from_slice(&w32(0));
        v.extend_from_slice(&w32(65535));
        v.extend_from_slice(&w32(linktype));
        v
    }

    #[test]
    fn truncated_record_reports_offset() {
        let mut f = pcap_header([0xd4, 0xc3, 0xb2, 0xa1], 101, false);
        for _ in 0..2 {
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&2u32.to_le_bytes());
            f.extend_from_slice(&4u32.to_le_bytes());
            f.extend_from_slice(&4u32.to_le_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.truncate(f.len() - 2);
        let mut r = CaptureReader::new(&f[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.ts_ns, p.offset, p.number), (1_000_002_000, 24, 1));
        let e = r.next_packet().unwrap_err();
        assert_eq!((e.kind, e.offset), (CaptureErrorKind::Truncated, 44));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn big_endian_nanosecond_header() {
        let mut f = pcap_header([0xa1, 0xb2, 0x3c, 0x4d], 1, true);
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&60u32.to_be_bytes());
        let mut r = CaptureReader::new(&f[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.ts_ns, p.linktype, p.orig_len), (5_000_000_007, 1, 60));
        assert_eq!(
            r.format(),
            Some(CaptureFormat::Pcap {
                nanosecond: true,
                big_endian: true
            })
        );
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let e = CaptureReader::new(&b"hello world, this is not a pcap file"[..]).unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::NotACapture);
        let e = CaptureReader::new(&b""[..]).unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::NotACapture);
    }

    #[test]
    fn tsresol_forms() {
        assert_eq!(ts_units_per_sec(6), 1_000_000);
        assert_eq!(ts_units_per_sec(9), 1_000_000_000);
        assert_eq!(ts_units_per_sec(0x80 | 10), 1024);
        let i = Interface {
            linktype: 1,
            units_per_sec: 1024,
            offset_s: 1,
        };
        assert_eq!(ng_ts_ns(2048, i), 3_000_000_000);
    }
}
