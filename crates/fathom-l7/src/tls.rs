//! TLS handshake metadata without decryption: the ClientHello (SNI, ALPN offered, versions
//! offered) paired with the ServerHello (version, cipher and ALPN chosen) or with the alert
//! the server answered instead.
//!
//! The record layer is followed on both directions so that handshake messages split over
//! several records (or records split over several segments) reassemble; records after
//! ChangeCipherSpec or of other content types are skipped by length without buffering.
//! `tls-parser` decodes the hello messages and names the cipher suites.

use fathom_model::l7::tls::TlsHandshake;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use fathom_model::Timestamp;
use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

use crate::parser::{Detection, Direction, ParserStats, ProtocolParser};

/// Largest record body allowed by RFC 8446 §5.2 (2^14 + 256 for TLS 1.3 ciphertext, + 2048
/// for TLS 1.2 ciphertext expansion).
const MAX_RECORD: usize = 16384 + 2048;
/// Handshake bytes buffered per direction before giving up on the hellos.
const MAX_HANDSHAKE: usize = 64 * 1024;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

fn plausible_record_header(h: &[u8]) -> bool {
    h.len() >= 5
        && (CT_CCS..=CT_HEARTBEAT).contains(&h[0])
        && h[1] == 3
        && h[2] <= 4
        && usize::from(u16::from_be_bytes([h[3], h[4]])) <= MAX_RECORD
}

/// Inference: a handshake record carrying a ClientHello (client side) or ServerHello
/// (server side, mid-stream pickup).
pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    let want_type = match dir {
        Direction::ClientToServer => 1,
        Direction::ServerToClient => 2,
    };
    let expect: [Option<u8>; 3] = [Some(CT_HANDSHAKE), Some(3), None];
    for (i, b) in data.iter().take(3).enumerate() {
        match expect[i] {
            Some(e) if *b != e => return Detection::NoMatch,
            None if *b > 4 => return Detection::NoMatch,
            _ => {}
        }
    }
    if data.len() < 6 {
        return Detection::NeedMore;
    }
    let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
    if !(4..=MAX_RECORD).contains(&len) || data[5] != want_type {
        return Detection::NoMatch;
    }
    Detection::Match
}

/// TLS version as commonly written ("TLSv1.2"); GREASE values (RFC 8701) give `None`.
pub fn version_name(v: u16) -> Option<String> {
    if v & 0x0f0f == 0x0a0a {
        return None;
    }
    Some(match v {
        0x0200 => "SSLv2".into(),
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        0x7f00..=0x7fff => format!("TLSv1.3-draft{}", v & 0xff),
        0xfeff => "DTLSv1.0".into(),
        0xfefd => "DTLSv1.2".into(),
        0xfefc => "DTLSv1.3".into(),
        other => format!("0x{other:04x}"),
    })
}

/// Alert description names (RFC 8446 §6, IANA registry).
pub fn alert_name(code: u8) -> String {
    let s = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        other => return format!("alert_{other}"),
    };
    s.into()
}

#[derive(Debug, Default)]
struct Side {
    /// Partial record header.
    hdr: Vec<u8>,
    /// Current record: content type and bytes left.
    rec_type: u8,
    rec_left: usize,
    /// Reassembled handshake messages not parsed yet.
    hs: Vec<u8>,
    /// Timestamp of the first byte of the oldest unparsed handshake byte.
    hs_ts: u64,
    /// Alert record body being collected (2 bytes).
    alert: Vec<u8>,
    /// Stop collecting handshake bytes (hello seen, or encrypted from here).
    hs_done: bool,
    /// Lost the record framing; bytes are skipped.
    lost: bool,
    /// Bytes of this side processed so far.
    pos: u64,
    /// Stream offset just past the current record: a hello is "sent" once its record is,
    /// which makes byte counts independent of how the stream was chunked.
    rec_end: u64,
    /// Timestamp of this side's first byte.
    first_ts: Option<u64>,
}

#[derive(Debug, Default)]
struct Hello {
    ts: u64,
    info: TlsHandshake,
    /// Bytes of the side up to the end of the record that completed the hello.
    bytes: u64,
}

#[derive(Default)]
pub struct TlsParser {
    sides: [Side; 2],
    client: Option<Hello>,
    server: Option<Hello>,
    /// Server alert before any ServerHello: time, name, bytes up to its record's end.
    alert: Option<(u64, String, u64)>,
    emitted: bool,
    stats: ParserStats,
}

impl TlsParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn idx(d: Direction) -> usize {
        match d {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }

    fn feed_side(&mut self, dir: Direction, ts: u64, mut data: &[u8], out: &mut Vec<L7Exchange>) {
        let i = Self::idx(dir);
        self.sides[i].first_ts.get_or_insert(ts);
        while !data.is_empty() {
            let s = &mut self.sides[i];
            if s.lost {
                self.stats.skipped_bytes += data.len() as u64;
                s.pos += data.len() as u64;
                return;
            }
            if s.rec_left == 0 {
                let take = (5 - s.hdr.len()).min(data.len());
                s.hdr.extend_from_slice(&data[..take]);
                s.pos += take as u64;
                data = &data[take..];
                if s.hdr.len() < 5 {
                    return;
                }
                if !plausible_record_header(&s.hdr) {
                    // Not TLS framing (or we lost it): give up on this direction.
                    s.lost = true;
                    self.stats.skipped_bytes += 5;
                    continue;
                }
                s.rec_type = s.hdr[0];
                s.rec_left = usize::from(u16::from_be_bytes([s.hdr[3], s.hdr[4]]));
                s.rec_end = s.pos + s.rec_left as u64;
                s.hdr.clear();
                if s.rec_type == CT_CCS {
                    // Everything after ChangeCipherSpec is encrypted.
                    s.hs_done = true;
                }
                continue;
            }
            let take = s.rec_left.min(data.len());
            let body = &data[..take];
            data = &data[take..];
            s.rec_left -= take;
            s.pos += take as u64;
            match s.rec_type {
                CT_HANDSHAKE if !s.hs_done => {
                    if s.hs.is_empty() {
                        s.hs_ts = ts;
                    }
                    if s.hs.len() + body.len() > MAX_HANDSHAKE {
                        self.stats.overflow_bytes += body.len() as u64;
                        s.hs_done = true;
                        s.hs.clear();
                    } else {
                        s.hs.extend_from_slice(body);
                        self.parse_handshake(dir, out);
                    }
                }
                CT_ALERT if !s.hs_done => {
                    s.alert.extend_from_slice(body);
                    if s.alert.len() >= 2 {
                        let desc = s.alert[1];
                        let end = s.rec_end;
                        s.alert.clear();
                        self.on_alert(dir, ts, desc, end, out);
                    }
                }
                // Application data, heartbeats, CCS bodies and anything encrypted: skipped
                // by length, never buffered.
                CT_APPDATA | CT_HEARTBEAT | CT_CCS => {}
                _ => {}
            }
        }
    }

    /// Parse complete handshake messages buffered for `dir`.
    fn parse_handshake(&mut self, dir: Direction, out: &mut Vec<L7Exchange>) {
        let i = Self::idx(dir);
        loop {
            let s = &mut self.sides[i];
            if s.hs.len() < 4 {
                return;
            }
            let len =
                (usize::from(s.hs[1]) << 16) | (usize::from(s.hs[2]) << 8) | usize::from(s.hs[3]);
            if s.hs.len() < 4 + len {
                if 4 + len > MAX_HANDSHAKE {
                    self.stats.overflow_bytes += s.hs.len() as u64;
                    s.hs.clear();
                    s.hs_done = true;
                }
                return;
            }
            let msg: Vec<u8> = s.hs.drain(..4 + len).collect();
            let ts = s.hs_ts;
            let bytes = s.rec_end;
            match tls_parser::parse_tls_message_handshake(&msg) {
                Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))))
                    if dir == Direction::ClientToServer =>
                {
                    // After a HelloRetryRequest the client says hello again: keep the first.
                    if self.client.is_none() {
                        self.client = Some(Hello {
                            ts,
                            info: client_info(ch.version.0, ch.ext),
                            bytes,
                        });
                    }
                }
                Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh))))
                    if dir == Direction::ServerToClient =>
                {
                    let info = server_info(sh.version.0, sh.cipher.0, sh.ext);
                    self.on_server_hello(Hello { ts, info, bytes }, out);
                }
                Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHelloV13Draft18(sh))))
                    if dir == Direction::ServerToClient =>
                {
                    let info = server_info(sh.version.0, sh.cipher.0, sh.ext);
                    self.on_server_hello(Hello { ts, info, bytes }, out);
                }
                Ok(_) => {}
                Err(_) => self.stats.skipped_bytes += msg.len() as u64,
            }
            let s = &mut self.sides[i];
            s.hs_ts = s.first_ts.unwrap_or(ts).max(ts);
        }
    }

    fn on_server_hello(&mut self, hello: Hello, out: &mut Vec<L7Exchange>) {
        if self.server.is_some() {
            return;
        }
        self.server = Some(hello);
        // In TLS 1.3 the rest of the server's handshake is encrypted; in 1.2 we no longer care.
        self.sides[1].hs_done = true;
        self.sides[1].hs.clear();
        self.emit(out);
    }

    fn on_alert(&mut self, dir: Direction, ts: u64, desc: u8, end: u64, out: &mut Vec<L7Exchange>) {
        if dir == Direction::ServerToClient && self.alert.is_none() && self.server.is_none() {
            self.alert = Some((ts, alert_name(desc), end));
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut Vec<L7Exchange>) {
        if self.emitted {
            return;
        }
        let (c, s) = (self.client.as_ref(), self.server.as_ref());
        if c.is_none() && s.is_none() && self.alert.is_none() {
            return;
        }
        self.emitted = true;
        let mut info = c.map(|h| h.info.clone()).unwrap_or_default();
        if let Some(s) = s {
            info.version = s.info.version.clone();
            info.cipher = s.info.cipher.clone();
            info.alpn_selected = s.info.alpn_selected.clone();
        }
        let resp_ts = s.map(|h| h.ts).or(self.alert.as_ref().map(|a| a.0));
        let kind = match (c, resp_ts) {
            (Some(_), Some(_)) => ExchangeKind::RequestResponse,
            (Some(_), None) => ExchangeKind::RequestOnly,
            _ => ExchangeKind::ResponseOnly,
        };
        let req_ts = c.map(|h| h.ts).or(resp_ts).unwrap_or(0);
        let (status, error) = match &self.alert {
            Some((_, a, _)) if s.is_none() => (Some(a.clone()), true),
            _ if s.is_some() => (Some("OK".to_string()), false),
            _ => (None, false),
        };
        self.stats.records += 1;
        out.push(L7Exchange {
            kind,
            request_time: Some(Timestamp(req_ts)),
            response_time: resp_ts.map(Timestamp),
            latency_ns: match (c, resp_ts) {
                (Some(c), Some(r)) => Some(r.saturating_sub(c.ts)),
                _ => None,
            },
            request_bytes: c.map_or(0, |h| h.bytes),
            response_bytes: s
                .map(|h| h.bytes)
                .or(self.alert.as_ref().map(|a| a.2))
                .unwrap_or(0),
            status,
            error,
            detail: L7Detail::Tls(info),
        });
    }
}

/// Extensions as (type, body) pairs; walked by hand so that one malformed extension does
/// not hide the others.
fn extensions(ext: Option<&[u8]>) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut b = ext.unwrap_or(&[]);
    while b.len() >= 4 {
        let t = u16::from_be_bytes([b[0], b[1]]);
        let n = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let Some(body) = b.get(4..4 + n) else { break };
        out.push((t, body));
        b = &b[4 + n..];
    }
    out
}

/// Decode one extension (type and length header included) with `tls-parser`.
fn decode_ext(raw: &[u8]) -> Option<TlsExtension<'_>> {
    tls_parser::parse_tls_extension(raw).ok().map(|(_, e)| e)
}

fn with_header(t: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&t.to_be_bytes());
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn client_info(legacy: u16, ext: Option<&[u8]>) -> TlsHandshake {
    let mut h = TlsHandshake::default();
    for (t, body) in extensions(ext) {
        let raw = with_header(t, body);
        match decode_ext(&raw) {
            Some(TlsExtension::SNI(names)) => {
                if let Some((_, n)) = names.first() {
                    h.sni = Some(String::from_utf8_lossy(n).into_owned());
                }
            }
            Some(TlsExtension::ALPN(ids)) => {
                h.alpn_offered = ids
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            Some(TlsExtension::SupportedVersions(vs)) => {
                h.client_versions = vs.iter().filter_map(|v| version_name(v.0)).collect();
            }
            _ => {}
        }
    }
    if h.client_versions.is_empty() {
        h.client_versions = version_name(legacy).into_iter().collect();
    }
    h
}

fn server_info(legacy: u16, cipher: u16, ext: Option<&[u8]>) -> TlsHandshake {
    let mut h = TlsHandshake {
        cipher: Some(
            tls_parser::TlsCipherSuite::from_id(cipher)
                .map_or_else(|| format!("0x{cipher:04x}"), |c| c.name.to_string()),
        ),
        version: version_name(legacy),
        ..Default::default()
    };
    for (t, body) in extensions(ext) {
        match t {
            // supported_versions in a ServerHello is the single chosen version.
            43 if body.len() == 2 => {
                h.version = version_name(u16::from_be_bytes([body[0], body[1]]))
            }
            16 => {
                let raw = with_header(t, body);
                if let Some(TlsExtension::ALPN(ids)) = decode_ext(&raw) {
                    h.alpn_selected = ids.first().map(|p| String::from_utf8_lossy(p).into_owned());
                }
            }
            _ => {}
        }
    }
    h
}

impl ProtocolParser for TlsParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Tls
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        self.feed_side(dir, ts_ns, data, out);
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        let s = &mut self.sides[Self::idx(dir)];
        // Inside a record we can skip the lost bytes and keep the framing.
        if s.rec_left as u64 > len && s.hdr.is_empty() {
            s.rec_left -= len as usize;
            if s.rec_type == CT_HANDSHAKE {
                s.hs.clear();
                s.hs_done = true;
            }
        } else {
            s.lost = true;
        }
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        self.emit(out);
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with SNI "example.com", ALPN h2/http1.1, supported_versions 1.3/1.2.
    pub(crate) fn client_hello() -> Vec<u8> {
        let mut ext = Vec::new();
        let sni = b"example.com";
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&((sni.len() + 5) as u16).to_be_bytes());
        ext.extend_from_slice(&((sni.len() + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(sni);
        ext.extend_from_slice(&[0, 16, 0, 14, 0, 12, 2, b'h', b'2', 8]);
        ext.extend_from_slice(b"http/1.1");
        ext.extend_from_slice(&[0, 43, 0, 7, 6, 0x3a, 0x3a, 3, 4, 3, 3]);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    pub(crate) fn server_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[9; 32]);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0]);
        let ext = [0u8, 43, 0, 2, 3, 4];
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![2, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 3];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec.extend_from_slice(&[20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 3, 1, 2, 3]);
        rec
    }

    #[test]
    fn hello_pair() {
        let mut p = TlsParser::new();
        let mut out = Vec::new();
        p.feed(Direction::ClientToServer, 100, &client_hello(), &mut out);
        p.feed(Direction::ServerToClient, 250, &server_hello(), &mut out);
        p.finish(300, &mut out);
        assert_eq!(out.len(), 1);
        let L7Detail::Tls(t) = &out[0].detail else {
            panic!()
        };
        assert_eq!(t.sni.as_deref(), Some("example.com"));
        assert_eq!(t.alpn_offered, vec!["h2", "http/1.1"]);
        assert_eq!(t.client_versions, vec!["TLSv1.3", "TLSv1.2"]);
        assert_eq!(
            (t.version.as_deref(), t.cipher.as_deref()),
            (Some("TLSv1.3"), Some("TLS_AES_128_GCM_SHA256"))
        );
        assert_eq!(out[0].latency_ns, Some(150));
    }

    #[test]
    fn alert_instead_of_server_hello() {
        let mut p = TlsParser::new();
        let mut out = Vec::new();
        p.feed(Direction::ClientToServer, 1, &client_hello(), &mut out);
        p.feed(
            Direction::ServerToClient,
            2,
            &[21, 3, 3, 0, 2, 2, 40],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].status.as_deref(), out[0].error),
            (Some("handshake_failure"), true)
        );
    }

    #[test]
    fn detection_and_garbage() {
        let ch = client_hello();
        assert_eq!(
            detect(Direction::ClientToServer, &ch[..2]),
            Detection::NeedMore
        );
        assert_eq!(detect(Direction::ClientToServer, &ch), Detection::Match);
        assert_eq!(detect(Direction::ServerToClient, &ch), Detection::NoMatch);
        assert_eq!(
            detect(Direction::ClientToServer, b"GET /"),
            Detection::NoMatch
        );
        let mut p = TlsParser::new();
        let mut out = Vec::new();
        p.feed(
            Direction::ClientToServer,
            1,
            b"\x16\x03\x01\xff\xffjunk",
            &mut out,
        );
        p.finish(2, &mut out);
        assert!(out.is_empty());
        assert!(p.stats().skipped_bytes > 0);
    }
}
