//! HTTP/2 framing for one direction (RFC 9113 §4): the client preface, 9-byte frame headers,
//! and payloads. DATA payloads are handed over piece by piece as they arrive (only gRPC
//! message prefixes are looked at), other frames are kept whole up to a limit. When the byte
//! stream is not known to be at a frame boundary (mid-stream pickup, after a gap) the reader
//! hunts for two consecutive plausible frame headers.

use crate::wire::StreamBuf;

pub(crate) const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
pub(crate) const PRIORITY: u8 = 2;
pub(crate) const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PUSH_PROMISE: u8 = 5;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 7;
pub(crate) const WINDOW_UPDATE: u8 = 8;
pub(crate) const CONTINUATION: u8 = 9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The default SETTINGS_MAX_FRAME_SIZE; frames up to this size are plausible while hunting.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    /// The reserved high bit of the stream id.
    pub reserved: bool,
}

impl FrameHeader {
    pub(crate) fn parse(b: &[u8]) -> Option<FrameHeader> {
        let b = b.get(..9)?;
        let raw = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            ty: b[3],
            flags: b[4],
            stream: raw & 0x7fff_ffff,
            reserved: raw & 0x8000_0000 != 0,
        })
    }

    /// Wire size including the header.
    pub(crate) fn wire(&self) -> u64 {
        9 + self.len as u64
    }

    /// Could this be a real frame header? Strict: used to find frame boundaries.
    pub(crate) fn plausible(&self, max_len: u32) -> bool {
        if self.reserved || self.len > max_len {
            return false;
        }
        let (stream_ok, flags_ok, len_ok) = match self.ty {
            DATA => (
                self.stream != 0,
                self.flags & !(END_STREAM | PADDED) == 0,
                true,
            ),
            HEADERS => (
                self.stream != 0,
                self.flags & !(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG) == 0,
                true,
            ),
            PRIORITY => (self.stream != 0, self.flags == 0, self.len == 5),
            RST_STREAM => (self.stream != 0, self.flags == 0, self.len == 4),
            SETTINGS => (
                self.stream == 0,
                self.flags & !ACK == 0,
                self.len.is_multiple_of(6) && (self.flags & ACK == 0 || self.len == 0),
            ),
            PUSH_PROMISE => (
                self.stream != 0,
                self.flags & !(END_HEADERS | PADDED) == 0,
                self.len >= 4,
            ),
            PING => (self.stream == 0, self.flags & !ACK == 0, self.len == 8),
            GOAWAY => (self.stream == 0, self.flags == 0, self.len >= 8),
            WINDOW_UPDATE => (true, self.flags == 0, self.len == 4),
            CONTINUATION => (self.stream != 0, self.flags & !END_HEADERS == 0, true),
            _ => (false, false, false),
        };
        stream_ok && flags_ok && len_ok
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    /// First server bytes: synchronised only if they start with a SETTINGS frame.
    ServerStart,
    /// Looking for a frame boundary.
    Hunt,
    /// At a frame header.
    Header,
    /// DATA frame with PADDED: the pad length byte comes first.
    DataPad(FrameHeader),
    /// Inside a DATA payload: data bytes, then padding bytes, still to come.
    Data {
        h: FrameHeader,
        data_left: u32,
        pad_left: u32,
    },
}

/// What the reader found.
#[derive(Debug)]
pub(crate) enum Event {
    /// The client preface was seen whole.
    Preface,
    /// The client preface is not there: the connection was picked up after its start.
    NoPreface,
    /// A complete non-DATA frame (payload cut to the limit when `truncated`).
    Frame {
        h: FrameHeader,
        ts: u64,
        payload: Vec<u8>,
        truncated: bool,
    },
    /// A DATA frame header (payload follows as `Data` pieces, then `DataEnd`).
    DataStart {
        h: FrameHeader,
        ts: u64,
    },
    Data {
        stream: u32,
        bytes: Vec<u8>,
    },
    DataEnd {
        h: FrameHeader,
    },
}

pub(crate) struct FrameReader {
    pub(crate) buf: StreamBuf,
    state: State,
    /// Largest non-DATA payload kept.
    max_keep: usize,
    /// Largest frame considered plausible while hunting (the receiver's SETTINGS_MAX_FRAME_SIZE).
    pub(crate) max_frame: u32,
    pub(crate) skipped: u64,
}

impl FrameReader {
    pub(crate) fn client(max_keep: usize) -> Self {
        Self::with_state(State::Preface(0), max_keep)
    }

    pub(crate) fn server(max_keep: usize) -> Self {
        Self::with_state(State::ServerStart, max_keep)
    }

    fn with_state(state: State, max_keep: usize) -> Self {
        FrameReader {
            buf: StreamBuf::new(),
            state,
            max_keep,
            max_frame: DEFAULT_MAX_FRAME,
            skipped: 0,
        }
    }

    /// After a gap: drop what is buffered and hunt for the next frame.
    pub(crate) fn lose_sync(&mut self) -> u64 {
        self.state = State::Hunt;
        self.buf.clear() as u64
    }

    pub(crate) fn next(&mut self) -> Option<Event> {
        loop {
            match self.state {
                State::Preface(matched) => {
                    let data = self.buf.data();
                    let want = &PREFACE[matched..];
                    let n = data.len().min(want.len());
                    if n == 0 {
                        return None;
                    }
                    if data[..n] != want[..n] {
                        // Not a preface after all (the bytes matched so far included).
                        self.skipped += matched as u64;
                        self.state = State::Hunt;
                        return Some(Event::NoPreface);
                    }
                    self.buf.consume(n);
                    if matched + n == PREFACE.len() {
                        self.state = State::Header;
                        return Some(Event::Preface);
                    }
                    self.state = State::Preface(matched + n);
                    return None;
                }
                State::ServerStart => {
                    let h = FrameHeader::parse(self.buf.data())?;
                    self.state = if h.ty == SETTINGS && h.plausible(u32::MAX) {
                        State::Header
                    } else {
                        State::Hunt
                    };
                }
                State::Hunt => {
                    let h = FrameHeader::parse(self.buf.data())?;
                    let limit = self.max_frame.min(1 << 20);
                    if !h.plausible(limit) {
                        self.buf.consume(1);
                        self.skipped += 1;
                        continue;
                    }
                    // Confirm with the header that follows this frame.
                    let next_at = 9 + h.len as usize;
                    let next = FrameHeader::parse(self.buf.data().get(next_at..).unwrap_or(&[]));
                    match next {
                        None => return None,
                        Some(n) if n.plausible(limit) => self.state = State::Header,
                        Some(_) => {
                            self.buf.consume(1);
                            self.skipped += 1;
                        }
                    }
                }
                State::Header => {
                    let h = FrameHeader::parse(self.buf.data())?;
                    let ts = self.buf.ts();
                    if h.ty == DATA {
                        self.buf.consume(9);
                        self.state = if h.flags & PADDED != 0 {
                            State::DataPad(h)
                        } else {
                            State::Data {
                                h,
                                data_left: h.len,
                                pad_left: 0,
                            }
                        };
                        return Some(Event::DataStart { h, ts });
                    }
                    let keep = (h.len as usize).min(self.max_keep);
                    let payload = self.buf.data().get(9..9 + keep)?.to_vec();
                    self.buf.skip_message(h.wire());
                    return Some(Event::Frame {
                        h,
                        ts,
                        payload,
                        truncated: keep < h.len as usize,
                    });
                }
                State::DataPad(h) => {
                    let &pad = self.buf.data().first()?;
                    self.buf.consume(1);
                    let body = h.len.saturating_sub(1);
                    let pad = (pad as u32).min(body);
                    self.state = State::Data {
                        h,
                        data_left: body - pad,
                        pad_left: pad,
                    };
                }
                State::Data {
                    h,
                    data_left,
                    pad_left,
                } => {
                    if data_left == 0 && pad_left == 0 {
                        self.state = State::Header;
                        return Some(Event::DataEnd { h });
                    }
                    let avail = self.buf.len() as u32;
                    if avail == 0 {
                        return None;
                    }
                    if data_left > 0 {
                        let n = avail.min(data_left);
                        let bytes = self.buf.data()[..n as usize].to_vec();
                        self.buf.consume(n as usize);
                        self.state = State::Data {
                            h,
                            data_left: data_left - n,
                            pad_left,
                        };
                        return Some(Event::Data {
                            stream: h.stream,
                            bytes,
                        });
                    }
                    let n = avail.min(pad_left);
                    self.buf.consume(n as usize);
                    self.state = State::Data {
                        h,
                        data_left,
                        pad_left: pad_left - n,
                    };
                }
            }
        }
    }
}
