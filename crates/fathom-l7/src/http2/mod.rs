//! HTTP/2 (RFC 9113) and gRPC over it.
//!
//! Frames are read per direction ([`frame`]); header blocks (HEADERS, PUSH_PROMISE, and their
//! CONTINUATIONs) are reassembled and decoded with HPACK ([`hpack`]); each stream becomes one
//! exchange when both sides have ended it or it was reset ([`stream`]). A stream whose
//! content-type is `application/grpc*` is reported as a gRPC call with the service and method
//! from `:path`, `grpc-status`/`grpc-message` from the trailers (or a trailers-only response)
//! and the message counts and sizes from the length-prefixed messages in DATA ([`grpc`]).
//!
//! Picked up mid-stream (no preface), the frame boundary is found by looking for two
//! consecutive plausible frame headers, and header blocks are decoded without knowledge of
//! the dynamic table: fields that refer to it are counted ([`Http2Stats`]) and left out, the
//! frames and streams are still reported.

mod detect;
mod frame;
mod grpc;
pub mod hpack;
mod huffman;
mod stream;

pub use detect::detect;

use std::collections::{BTreeMap, BTreeSet};

use fathom_model::l7::http::HttpExchange;
use fathom_model::l7::{L7Detail, L7Exchange, L7Protocol};

use crate::parser::{Direction, ParserStats, ProtocolParser};
use crate::wire::{build, Cursor, Half};
use frame::{Event, FrameHeader, FrameReader};
use hpack::HeaderDecoder;
use stream::Stream;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Http2Config {
    /// Largest non-DATA frame payload kept (a larger header block cannot be decoded).
    pub max_frame: usize,
    /// Largest header block (HEADERS + CONTINUATIONs) assembled.
    pub max_header_block: usize,
    /// Streams tracked at once; beyond this the oldest is reported as it stands.
    pub max_streams: usize,
    /// Cap on the HPACK dynamic table a peer may make us keep.
    pub max_table_size: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_frame: 64 * 1024,
            max_header_block: 256 * 1024,
            max_streams: 1024,
            max_table_size: 64 * 1024,
        }
    }
}

/// HPACK counters: what could not be decoded (mostly after a mid-stream pickup or a gap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Header fields that referred to dynamic-table entries from before the pickup/gap.
    pub undecodable_fields: u64,
    /// Header blocks that were malformed, cut by a limit, or lost their start.
    pub failed_blocks: u64,
    /// Frames seen.
    pub frames: u64,
}

/// A header block being reassembled from HEADERS/PUSH_PROMISE and CONTINUATION frames.
struct Block {
    stream: u32,
    /// PUSH_PROMISE: the promised stream whose request this block is.
    promised: Option<u32>,
    ts: u64,
    bytes: Vec<u8>,
    too_big: bool,
}

/// Streams remembered as finished, so late frames (WINDOW_UPDATE, RST_STREAM after END_STREAM)
/// do not bring them back.
const FINISHED_MEMORY: usize = 1024;

pub struct Http2Parser {
    cfg: Http2Config,
    readers: [FrameReader; 2],
    decoders: [HeaderDecoder; 2],
    blocks: [Option<Block>; 2],
    streams: BTreeMap<u32, Stream>,
    finished: BTreeSet<u32>,
    stats: ParserStats,
    h2: Http2Stats,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Default for Http2Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Http2Parser {
    /// HTTP/2 from the connection's first byte: prior-knowledge h2c, or h2 after ALPN.
    pub fn new() -> Self {
        Self::with_config(Http2Config::default())
    }

    pub fn with_config(cfg: Http2Config) -> Self {
        Http2Parser {
            cfg,
            readers: [
                FrameReader::client(cfg.max_frame.max(64)),
                FrameReader::server(cfg.max_frame.max(64)),
            ],
            decoders: [
                HeaderDecoder::new(cfg.max_table_size),
                HeaderDecoder::new(cfg.max_table_size),
            ],
            blocks: [None, None],
            streams: BTreeMap::new(),
            finished: BTreeSet::new(),
            stats: ParserStats::default(),
            h2: Http2Stats::default(),
        }
    }

    /// h2c after an HTTP/1.1 `Upgrade: h2c` (the parser is fed from the bytes after the 101):
    /// the client's first bytes are the preface, and stream 1 is the upgraded request, whose
    /// response comes over HTTP/2. Without [`with_upgrade_request`](Self::with_upgrade_request)
    /// stream 1 is reported response-only.
    pub fn after_upgrade() -> Self {
        let mut p = Self::new();
        let mut s = Stream::new(1);
        // The request (and any body) went over HTTP/1.1.
        s.client.ended = true;
        p.streams.insert(1, s);
        p
    }

    /// The HTTP/1.1 request that was upgraded (as the HTTP/1 parser saw it, with the time of its
    /// first byte): stream 1's exchange then carries it, and its latency runs from it.
    pub fn with_upgrade_request(mut self, request_ts_ns: u64, request: HttpExchange) -> Self {
        if let Some(s) = self.streams.get_mut(&1) {
            s.upgraded = Some((request_ts_ns, request));
        }
        self
    }

    pub fn h2_stats(&self) -> Http2Stats {
        self.h2
    }

    /// The stream a frame belongs to; `None` for finished streams (late frames).
    fn stream(&mut self, id: u32, create: bool, out: &mut Vec<L7Exchange>) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if !create || self.finished.contains(&id) {
                return None;
            }
            if self.streams.len() >= self.cfg.max_streams.max(1) {
                if let Some((_, old)) = self.streams.pop_first() {
                    self.stats.overflow_bytes += old.client.bytes + old.server.bytes;
                    self.emit(old, out);
                }
            }
            self.streams.insert(id, Stream::new(id));
        }
        self.streams.get_mut(&id)
    }

    fn emit(&mut self, s: Stream, out: &mut Vec<L7Exchange>) {
        if self.finished.len() >= FINISHED_MEMORY {
            self.finished.pop_first();
        }
        self.finished.insert(s.id);
        self.stats.records += 1;
        out.push(s.into_exchange());
    }

    fn emit_if_complete(&mut self, id: u32, out: &mut Vec<L7Exchange>) {
        if self.streams.get(&id).is_some_and(Stream::complete) {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, out);
            }
        }
    }

    fn run(&mut self, dir: Direction, out: &mut Vec<L7Exchange>) {
        let d = idx(dir);
        loop {
            let ev = self.readers[d].next();
            self.stats.skipped_bytes += std::mem::take(&mut self.readers[d].skipped);
            let Some(ev) = ev else { return };
            self.on_event(dir, ev, out);
        }
    }

    fn on_event(&mut self, dir: Direction, ev: Event, out: &mut Vec<L7Exchange>) {
        let d = idx(dir);
        match ev {
            Event::Preface => {}
            Event::NoPreface => {
                // Picked up after the start: neither dynamic table is known.
                for dec in &mut self.decoders {
                    dec.lose_state();
                }
            }
            Event::DataStart { h, ts } => {
                self.h2.frames += 1;
                if let Some(s) = self.stream(h.stream, true, out) {
                    let side = if d == 0 { &mut s.client } else { &mut s.server };
                    side.bytes += h.wire();
                    side.ts.get_or_insert(ts);
                }
            }
            Event::Data { stream, bytes } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    let side = if d == 0 { &mut s.client } else { &mut s.server };
                    side.grpc.feed(&bytes);
                }
            }
            Event::DataEnd { h } => {
                if h.flags & frame::END_STREAM != 0 {
                    if let Some(s) = self.streams.get_mut(&h.stream) {
                        let side = if d == 0 { &mut s.client } else { &mut s.server };
                        side.ended = true;
                    }
                    self.emit_if_complete(h.stream, out);
                }
            }
            Event::Frame {
                h,
                ts,
                payload,
                truncated,
            } => {
                self.h2.frames += 1;
                self.on_frame(dir, h, ts, &payload, truncated, out);
            }
        }
    }

    fn on_frame(
        &mut self,
        dir: Direction,
        h: FrameHeader,
        ts: u64,
        payload: &[u8],
        truncated: bool,
        out: &mut Vec<L7Exchange>,
    ) {
        let d = idx(dir);
        match h.ty {
            frame::HEADERS | frame::PUSH_PROMISE => {
                if self.blocks[d].take().is_some() {
                    // A new block while one was unfinished: the unfinished one is lost.
                    self.block_lost(d);
                }
                let promised = h.ty == frame::PUSH_PROMISE;
                let Some(s) = self.stream(h.stream, true, out) else {
                    // A header block we will not use still changes the HPACK table.
                    self.decode_orphan_block(d, h, payload, truncated);
                    return;
                };
                let side = if d == 0 { &mut s.client } else { &mut s.server };
                side.bytes += h.wire();
                if !promised {
                    side.ts.get_or_insert(ts);
                    if h.flags & frame::END_STREAM != 0 {
                        side.ended = true;
                    }
                }
                let (fragment, promised_id) = match header_fragment(h, payload, promised) {
                    Some(x) => x,
                    None => {
                        self.block_lost(d);
                        return;
                    }
                };
                self.blocks[d] = Some(Block {
                    stream: h.stream,
                    promised: promised_id,
                    ts,
                    bytes: fragment.to_vec(),
                    too_big: truncated,
                });
                if h.flags & frame::END_HEADERS != 0 {
                    self.finish_block(dir, out);
                }
            }
            frame::CONTINUATION => {
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    let side = if d == 0 { &mut s.client } else { &mut s.server };
                    side.bytes += h.wire();
                }
                let max = self.cfg.max_header_block;
                match self.blocks[d].as_mut() {
                    Some(b) if b.stream == h.stream => {
                        if truncated || b.bytes.len() + payload.len() > max {
                            b.too_big = true;
                        } else {
                            b.bytes.extend_from_slice(payload);
                        }
                    }
                    _ => {
                        // Its HEADERS was not seen: the block (and its table updates) is lost.
                        self.blocks[d] = None;
                        self.block_lost(d);
                        self.stats.skipped_bytes += h.len as u64;
                        return;
                    }
                }
                if h.flags & frame::END_HEADERS != 0 {
                    self.finish_block(dir, out);
                }
            }
            frame::RST_STREAM => {
                let code = Cursor::new(payload).be_u32().unwrap_or(0);
                if let Some(s) = self.stream(h.stream, true, out) {
                    let side = if d == 0 { &mut s.client } else { &mut s.server };
                    side.bytes += h.wire();
                    side.ts.get_or_insert(ts);
                    s.reset = Some(stream::error_name(code));
                }
                self.emit_if_complete(h.stream, out);
            }
            frame::SETTINGS if h.flags & frame::ACK == 0 => {
                // Settings the sender applies to what the *other* side sends it.
                let other = 1 - d;
                for s in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    match id {
                        1 => self.decoders[other]
                            .set_max_allowed(v as usize, self.cfg.max_table_size),
                        5 => {
                            self.readers[other].max_frame =
                                v.clamp(frame::DEFAULT_MAX_FRAME, (1 << 24) - 1)
                        }
                        _ => {}
                    }
                }
            }
            frame::GOAWAY => self.on_goaway(dir, h, ts, payload, out),
            frame::WINDOW_UPDATE | frame::PRIORITY if h.stream != 0 => {
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    let side = if d == 0 { &mut s.client } else { &mut s.server };
                    side.bytes += h.wire();
                }
            }
            _ => {}
        }
    }

    fn on_goaway(
        &mut self,
        dir: Direction,
        h: FrameHeader,
        ts: u64,
        payload: &[u8],
        out: &mut Vec<L7Exchange>,
    ) {
        let mut c = Cursor::new(payload);
        let last = c.be_u32().unwrap_or(u32::MAX) & 0x7fff_ffff;
        let code = c.be_u32().unwrap_or(0);
        let name = stream::error_name(code);
        let http = HttpExchange {
            version: Some("HTTP/2".to_string()),
            reason: Some(name.to_string()),
            stream_id: Some(0),
            ..HttpExchange::default()
        };
        let half = Half::new(ts, h.wire());
        let (req, resp) = if dir == Direction::ClientToServer {
            (Some(half), None)
        } else {
            (None, Some(half))
        };
        self.stats.records += 1;
        out.push(build(
            req,
            resp,
            true,
            Some("GOAWAY".to_string()),
            code != 0,
            L7Detail::Http2(http),
        ));
        // Streams the receiver opened above `last` were never processed.
        let receiver_parity = if dir == Direction::ServerToClient {
            1
        } else {
            0
        };
        let dead: Vec<u32> = self
            .streams
            .range(last.saturating_add(1)..)
            .map(|(&id, _)| id)
            .filter(|id| id % 2 == receiver_parity)
            .collect();
        for id in dead {
            if let Some(mut s) = self.streams.remove(&id) {
                s.reset = Some("REFUSED_STREAM");
                self.emit(s, out);
            }
        }
    }

    fn block_lost(&mut self, d: usize) {
        self.h2.failed_blocks += 1;
        self.decoders[d].lose_state();
    }

    /// A header block on a finished stream: decode it for the table's sake only.
    fn decode_orphan_block(&mut self, d: usize, h: FrameHeader, payload: &[u8], truncated: bool) {
        if truncated || h.flags & frame::END_HEADERS == 0 {
            self.block_lost(d);
            return;
        }
        if let Some((fragment, _)) = header_fragment(h, payload, h.ty == frame::PUSH_PROMISE) {
            let o = self.decoders[d].decode(fragment, |_, _| {});
            self.h2.undecodable_fields += o.undecodable as u64;
        }
    }

    fn finish_block(&mut self, dir: Direction, out: &mut Vec<L7Exchange>) {
        let d = idx(dir);
        let Some(block) = self.blocks[d].take() else {
            return;
        };
        if block.too_big {
            self.block_lost(d);
            self.stats.overflow_bytes += block.bytes.len() as u64;
            if let Some(s) = self.streams.get_mut(&block.stream) {
                let side = if d == 0 { &mut s.client } else { &mut s.server };
                side.undecodable = true;
                side.blocks += 1;
            }
            self.emit_if_complete(block.stream, out);
            return;
        }
        // Keep only the fields a record uses (bounded whatever the block expands to).
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let o = self.decoders[d].decode(&block.bytes, |n, v| {
            if fields.len() < 32 && is_wanted(n) {
                fields.push((n.to_vec(), v.to_vec()));
            }
        });
        self.h2.undecodable_fields += o.undecodable as u64;
        if o.malformed {
            self.h2.failed_blocks += 1;
            self.stats.skipped_bytes += block.bytes.len() as u64;
            self.decoders[d].lose_state();
        }
        let target = block.promised.unwrap_or(block.stream);
        let Some(s) = self.stream(target, true, out) else {
            return;
        };
        if block.promised.is_some() {
            // A pushed request: the server sends it on the client's behalf.
            s.client.ts.get_or_insert(block.ts);
            s.client.ended = true;
            s.client.blocks += 1;
            for (n, v) in &fields {
                s.client_field(n, v);
            }
            return;
        }
        let side = if d == 0 { &mut s.client } else { &mut s.server };
        side.undecodable |= o.undecodable > 0 || o.malformed;
        let informational = d == 1
            && fields
                .iter()
                .any(|(n, v)| n == b":status" && v.first() == Some(&b'1'));
        if informational {
            // 1xx: the final head is still to come.
            return;
        }
        let first = side.blocks == 0;
        side.blocks += 1;
        for (n, v) in &fields {
            match (d, first) {
                (0, true) => s.client_field(n, v),
                (1, true) => s.server_field(n, v),
                // Trailers: only the gRPC status matters.
                (1, false) if n.starts_with(b"grpc-") => s.server_field(n, v),
                _ => {}
            }
        }
        self.emit_if_complete(target, out);
    }
}

/// Header names a record uses.
fn is_wanted(n: &[u8]) -> bool {
    n.starts_with(b":")
        || matches!(
            n,
            b"host"
                | b"content-type"
                | b"content-length"
                | b"user-agent"
                | b"grpc-status"
                | b"grpc-message"
        )
}

/// The header block fragment of HEADERS / PUSH_PROMISE (padding and priority removed) and the
/// promised stream id. `None` if the padding does not fit.
fn header_fragment(h: FrameHeader, payload: &[u8], push: bool) -> Option<(&[u8], Option<u32>)> {
    let mut c = Cursor::new(payload);
    let pad = if h.flags & frame::PADDED != 0 {
        c.u8()? as usize
    } else {
        0
    };
    let promised = if push {
        Some(c.be_u32()? & 0x7fff_ffff)
    } else {
        None
    };
    if !push && h.flags & frame::PRIORITY_FLAG != 0 {
        c.skip(5)?;
    }
    let rest = c.rest();
    // A cut payload (over the frame limit) loses its padding from the end: keep what is there.
    let end = rest.len().saturating_sub(pad);
    Some((&rest[..end], promised))
}

impl ProtocolParser for Http2Parser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http2
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        let piece = self.cfg.max_frame.max(64);
        for chunk in data.chunks(piece) {
            self.readers[idx(dir)].buf.push(ts_ns, chunk);
            self.run(dir, out);
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        let d = idx(dir);
        self.stats.gap_bytes += len;
        self.stats.skipped_bytes += self.readers[d].lose_sync();
        if self.blocks[d].take().is_some() {
            self.h2.failed_blocks += 1;
        }
        // A lost header block may have changed the dynamic table.
        self.decoders[d].lose_state();
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        for r in &mut self.readers {
            self.stats.skipped_bytes += r.buf.len() as u64;
            r.buf.clear();
        }
        while let Some((_, s)) = self.streams.pop_first() {
            // The upgraded stream 1 that never got an answer has nothing to report.
            if s.upgraded.is_none() && s.client.ts.is_none() && s.server.ts.is_none() {
                continue;
            }
            self.emit(s, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}
