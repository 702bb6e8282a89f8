//! DNS wire format (RFC 1035 and successors) decoded tolerantly: a message cut short or with
//! one malformed record still yields its header, question and every record before the damage.
//! That is the reason for a hand-written decoder instead of `simple-dns`/`hickory-proto`:
//! both decode a message all-or-nothing and do not expose per-record decoding, so a truncated
//! response (common in captures: snap length, UDP truncation) would give nothing at all.
//!
//! Record data is rendered in presentation format (RFC 1035 §5.1 and each type's RFC), with
//! the RFC 3597 `\# len hex` form for types not rendered here.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Presentation form of the record data.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub id: u16,
    /// Response (QR bit).
    pub response: bool,
    pub opcode: u8,
    pub authoritative: bool,
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    /// Response code including the EDNS extended bits.
    pub rcode: u16,
    pub counts: [u16; 4],
    pub question: Option<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    /// Every section decoded to its announced count, nothing left over.
    pub complete: bool,
    /// Bytes after the last announced record.
    pub trailing: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortHeader;

/// Longest name in presentation form worth keeping (wire names are ≤ 255 bytes).
const MAX_NAME_WIRE: usize = 255;
/// Compression pointers followed per name: pointers must go strictly backwards, so this
/// only bounds work on hostile input.
const MAX_POINTERS: usize = 64;

struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.msg.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.msg.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.msg.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.msg.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }
    fn name(&mut self) -> Option<String> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Some(name)
    }
}

/// Decode a (possibly compressed) name at `pos`. Returns the name without the trailing dot
/// ("." for the root) and the position after the name's in-place bytes.
pub fn read_name(msg: &[u8], pos: usize) -> Option<(String, usize)> {
    let mut out = String::with_capacity(32);
    let after = walk_name(msg, pos, |label| {
        if !out.is_empty() {
            out.push('.');
        }
        push_label(&mut out, label);
    })?;
    if out.is_empty() {
        out.push('.');
    }
    Some((out, after))
}

/// Where the name at `pos` ends, under exactly [`read_name`]'s rules, without building it.
fn skip_name(msg: &[u8], pos: usize) -> Option<usize> {
    walk_name(msg, pos, |_| {})
}

/// Walk the labels of the name at `pos`, handing each to `on_label` in order; returns the
/// position after the name's in-place bytes. Fails on truncation, a name over 255 wire bytes,
/// too many pointers, a forward pointer or a reserved label type.
fn walk_name(msg: &[u8], mut pos: usize, mut on_label: impl FnMut(&[u8])) -> Option<usize> {
    let mut end: Option<usize> = None;
    let mut wire_len = 0usize;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Some(end.unwrap_or(pos + 1));
                }
                let label = msg.get(pos + 1..pos + 1 + len as usize)?;
                wire_len += label.len() + 1;
                if wire_len > MAX_NAME_WIRE {
                    return None;
                }
                on_label(label);
                pos += 1 + len as usize;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                pointers += 1;
                // Backward-only pointers cannot loop.
                if target >= pos || pointers > MAX_POINTERS {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            // 0x40 (extended label types) and 0x80 are not in use.
            _ => return None,
        }
    }
}

/// Whether [`parse`] would decode `msg` completely (every section to its announced count,
/// nothing left over) with a question or as a response: the inference test, answered without
/// rendering names or record data (record data never makes a record fail, see [`render`]).
pub fn decodes_whole(msg: &[u8]) -> bool {
    if msg.len() < 12 {
        return false;
    }
    let response = msg[2] & 0x80 != 0;
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]]));
    let mut pos = 12;
    for _ in 0..count(0) {
        match skip_name(msg, pos) {
            Some(p) if p + 4 <= msg.len() => pos = p + 4,
            _ => return false,
        }
    }
    for section in 1..4 {
        for _ in 0..count(section) {
            let Some(p) = skip_name(msg, pos) else {
                return false;
            };
            if p + 10 > msg.len() {
                return false;
            }
            let rdlen = usize::from(u16::from_be_bytes([msg[p + 8], msg[p + 9]]));
            pos = p + 10 + rdlen;
            if pos > msg.len() {
                return false;
            }
        }
    }
    pos == msg.len() && (count(0) > 0 || response)
}

fn push_label(out: &mut String, label: &[u8]) {
    // Nearly every label is plain printable ASCII: copy it whole.
    if label
        .iter()
        .all(|&b| matches!(b, 0x21..=0x7e) && b != b'.' && b != b'\\')
    {
        if let Ok(s) = std::str::from_utf8(label) {
            out.push_str(s);
            return;
        }
    }
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x21..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// Decode a message. Fails only when even the 12-byte header is missing.
pub fn parse(msg: &[u8]) -> Result<Message, ShortHeader> {
    let mut c = Cursor { msg, pos: 0 };
    let (Some(id), Some(flags)) = (c.u16(), c.u16()) else {
        return Err(ShortHeader);
    };
    let mut counts = [0u16; 4];
    for n in &mut counts {
        *n = c.u16().ok_or(ShortHeader)?;
    }
    let mut m = Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        recursion_desired: flags & 0x0100 != 0,
        recursion_available: flags & 0x0080 != 0,
        rcode: flags & 0xf,
        counts,
        ..Default::default()
    };
    for i in 0..counts[0] {
        let Some(q) = read_question(&mut c) else {
            return Ok(m);
        };
        if i == 0 {
            m.question = Some(q);
        }
    }
    for (section, &count) in counts.iter().enumerate().skip(1) {
        for _ in 0..count {
            let Some((rec, opt_ttl)) = read_record(&mut c) else {
                return Ok(m);
            };
            match section {
                1 => m.answers.push(rec),
                2 => m.authority.push(rec),
                _ => {
                    if let Some(ttl) = opt_ttl {
                        // EDNS: the OPT TTL carries the upper 8 bits of the rcode.
                        m.rcode |= ((ttl >> 24) as u16) << 4;
                    }
                }
            }
        }
    }
    m.complete = true;
    m.trailing = msg.len() - c.pos;
    Ok(m)
}

fn read_question(c: &mut Cursor<'_>) -> Option<Question> {
    let name = c.name()?;
    Some(Question {
        name,
        qtype: c.u16()?,
        qclass: c.u16()?,
    })
}

/// A record, plus the TTL field when it is an OPT pseudo-record.
fn read_record(c: &mut Cursor<'_>) -> Option<(Record, Option<u32>)> {
    let name = c.name()?;
    let rtype = c.u16()?;
    let class = c.u16()?;
    let ttl = c.u32()?;
    let rdlen = usize::from(c.u16()?);
    let start = c.pos;
    c.bytes(rdlen)?;
    let data = render(c.msg, start, rdlen, rtype);
    let opt = (rtype == 41).then_some(ttl);
    Some((
        Record {
            name,
            rtype,
            class,
            ttl,
            data,
        },
        opt,
    ))
}

/// Presentation form of one record's data. Names in it must end inside it: RDATA is
/// `len` bytes, and an empty one (RFC 2136 prerequisites and deletions: class NONE or ANY,
/// RDLENGTH 0) must not be read from the record that follows.
fn render(msg: &[u8], start: usize, len: usize, rtype: u16) -> String {
    let rd = &msg[start..start + len];
    let end = start + len;
    let rendered = match rtype {
        1 if len == 4 => Some(Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).to_string()),
        28 if len == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(rd);
            Some(Ipv6Addr::from(a).to_string())
        }
        // NS, CNAME, PTR, DNAME, and the obsolete MB/MG/MR/MD/MF.
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => read_name(msg, start)
            .filter(|(_, next)| *next <= end)
            .map(|(n, _)| n),
        15 => rd_mx(msg, start, end),
        6 => rd_soa(msg, start, end),
        16 | 99 => rd_txt(rd),
        33 => rd_srv(msg, start, end),
        64 | 65 => rd_svcb(msg, start, len),
        46 => rd_rrsig(msg, start, len),
        48 => (len >= 4)
            .then(|| format!("{} {} {}", u16::from_be_bytes([rd[0], rd[1]]), rd[2], rd[3])),
        43 => (len >= 4).then(|| {
            format!(
                "{} {} {} {}",
                u16::from_be_bytes([rd[0], rd[1]]),
                rd[2],
                rd[3],
                hex(&rd[4..])
            )
        }),
        44 => (len >= 2).then(|| format!("{} {} {}", rd[0], rd[1], hex(&rd[2..]))),
        257 => rd_caa(rd),
        13 => rd_txt(rd),
        _ => None,
    };
    rendered.unwrap_or_else(|| match len {
        // RFC 3597 §5: empty RDATA is `\# 0`, nothing after.
        0 => "\\# 0".to_string(),
        _ => format!("\\# {len} {}", hex(rd)),
    })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn rd_mx(msg: &[u8], start: usize, end: usize) -> Option<String> {
    if start + 2 > end {
        return None;
    }
    let pref = u16::from_be_bytes([*msg.get(start)?, *msg.get(start + 1)?]);
    let (n, next) = read_name(msg, start + 2)?;
    if next > end {
        return None;
    }
    Some(format!("{pref} {n}"))
}

fn rd_srv(msg: &[u8], start: usize, end: usize) -> Option<String> {
    let mut c = Cursor { msg, pos: start };
    let (p, w, port) = (c.u16()?, c.u16()?, c.u16()?);
    let t = c.name()?;
    if c.pos > end {
        return None;
    }
    Some(format!("{p} {w} {port} {t}"))
}

fn rd_soa(msg: &[u8], start: usize, end: usize) -> Option<String> {
    let mut c = Cursor { msg, pos: start };
    let mname = c.name()?;
    let rname = c.name()?;
    let v = [c.u32()?, c.u32()?, c.u32()?, c.u32()?, c.u32()?];
    if c.pos > end {
        return None;
    }
    Some(format!(
        "{mname} {rname} {} {} {} {} {}",
        v[0], v[1], v[2], v[3], v[4]
    ))
}

/// Character-strings, each quoted (TXT, SPF, HINFO).
fn rd_txt(rd: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < rd.len() {
        let n = usize::from(rd[i]);
        let s = rd.get(i + 1..i + 1 + n)?;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for &b in s {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x20..=0x7e => out.push(b as char),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('"');
        i += 1 + n;
    }
    Some(out)
}

fn rd_caa(rd: &[u8]) -> Option<String> {
    let flags = *rd.first()?;
    let tl = usize::from(*rd.get(1)?);
    let tag = rd.get(2..2 + tl)?;
    let val = rd.get(2 + tl..)?;
    Some(format!(
        "{flags} {} \"{}\"",
        String::from_utf8_lossy(tag),
        String::from_utf8_lossy(val)
    ))
}

fn rd_rrsig(msg: &[u8], start: usize, len: usize) -> Option<String> {
    let mut c = Cursor { msg, pos: start };
    let covered = c.u16()?;
    let (alg, labels) = (c.u8()?, c.u8()?);
    let (ottl, exp, inc) = (c.u32()?, c.u32()?, c.u32()?);
    let tag = c.u16()?;
    // The signer name is never compressed (RFC 4034 §3.1.7); read_name copes either way.
    let signer = c.name()?;
    let sig_len = (start + len).checked_sub(c.pos)?;
    Some(format!(
        "{} {alg} {labels} {ottl} {exp} {inc} {tag} {signer} [{sig_len} bytes]",
        type_name(covered)
    ))
}

/// SVCB/HTTPS (RFC 9460): priority, target, then `key=value` parameters.
fn rd_svcb(msg: &[u8], start: usize, len: usize) -> Option<String> {
    let mut c = Cursor { msg, pos: start };
    let prio = c.u16()?;
    let target = c.name()?;
    let end = start + len;
    if c.pos > end {
        return None;
    }
    let mut out = format!("{prio} {target}");
    while c.pos + 4 <= end {
        let key = c.u16()?;
        let vlen = usize::from(c.u16()?);
        let v = c.bytes(vlen)?;
        out.push(' ');
        match key {
            0 => {
                let keys: Vec<String> = v
                    .chunks_exact(2)
                    .map(|k| svc_key(u16::from_be_bytes([k[0], k[1]])).into_owned())
                    .collect();
                let _ = write!(out, "mandatory={}", keys.join(","));
            }
            1 => {
                let mut ids = Vec::new();
                let mut i = 0;
                while i < v.len() {
                    let n = usize::from(v[i]);
                    ids.push(String::from_utf8_lossy(v.get(i + 1..i + 1 + n)?).into_owned());
                    i += 1 + n;
                }
                let _ = write!(out, "alpn={}", ids.join(","));
            }
            2 => out.push_str("no-default-alpn"),
            3 if vlen == 2 => {
                let _ = write!(out, "port={}", u16::from_be_bytes([v[0], v[1]]));
            }
            4 => {
                let ips: Vec<String> = v
                    .chunks_exact(4)
                    .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string())
                    .collect();
                let _ = write!(out, "ipv4hint={}", ips.join(","));
            }
            6 => {
                let ips: Vec<String> = v
                    .chunks_exact(16)
                    .map(|a| {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(a);
                        Ipv6Addr::from(b).to_string()
                    })
                    .collect();
                let _ = write!(out, "ipv6hint={}", ips.join(","));
            }
            _ => {
                let _ = write!(out, "{}={}", svc_key(key), hex(v));
            }
        }
    }
    Some(out)
}

fn svc_key(k: u16) -> Cow<'static, str> {
    match k {
        0 => "mandatory".into(),
        1 => "alpn".into(),
        2 => "no-default-alpn".into(),
        3 => "port".into(),
        4 => "ipv4hint".into(),
        5 => "ech".into(),
        6 => "ipv6hint".into(),
        n => format!("key{n}").into(),
    }
}

/// Mnemonic of an RR type (IANA registry), `TYPEn` otherwise (RFC 3597).
pub fn type_name(t: u16) -> Cow<'static, str> {
    let s = match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        32769 => "DLV",
        n => return format!("TYPE{n}").into(),
    };
    s.into()
}

pub fn class_name(c: u16) -> Cow<'static, str> {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        254 => "NONE".into(),
        255 => "ANY".into(),
        n => format!("CLASS{n}").into(),
    }
}

/// Response code mnemonic (RFC 6895 registry), `RCODEn` otherwise.
pub fn rcode_name(r: u16) -> Cow<'static, str> {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        n => return format!("RCODE{n}").into(),
    };
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// www.example.com A response with a compressed answer name, a CNAME and an OPT record.
    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        m.extend_from_slice(b"\x03web\xc0\x10");
        m.extend_from_slice(&[0xc0, 0x2d, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 93, 184, 216, 34]);
        m.extend_from_slice(&[0, 0, 41, 4, 0, 1, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn decodes_compression_cname_and_edns() {
        let m = parse(&response()).unwrap();
        assert!(m.complete && m.response && m.recursion_available);
        assert_eq!(m.question.as_ref().unwrap().name, "www.example.com");
        assert_eq!(m.answers[0].data, "web.example.com");
        assert_eq!(
            (
                m.answers[1].name.as_str(),
                m.answers[1].data.as_str(),
                m.answers[1].ttl
            ),
            ("web.example.com", "93.184.216.34", 256)
        );
        assert_eq!(m.rcode, 16, "extended rcode from OPT ttl");
    }

    #[test]
    fn truncated_message_keeps_what_was_decoded() {
        let full = response();
        for cut in 12..full.len() {
            let m = parse(&full[..cut]).unwrap();
            assert!(!m.complete || cut == full.len());
            assert_eq!(m.id, 0x1234);
        }
        let m = parse(&full[..full.len() - 15]).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert!(parse(&full[..11]).is_err());
    }

    #[test]
    fn pointer_loops_are_rejected() {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let d = parse(&m).unwrap();
        assert!(d.question.is_none() && !d.complete);
    }

    /// `decodes_whole` is `parse`'s verdict, without the rendering.
    #[test]
    fn decodes_whole_agrees_with_parse() {
        use proptest::prelude::*;
        let verdict = |m: &[u8]| {
            parse(m).is_ok_and(|m| {
                m.complete && m.trailing == 0 && (m.question.is_some() || m.response)
            })
        };
        // A response with a compressed answer, then every prefix and single-byte corruption.
        let mut base = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        base.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        base.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
        base.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decodes_whole(&base) && verdict(&base));
        for n in 0..=base.len() {
            assert_eq!(decodes_whole(&base[..n]), verdict(&base[..n]), "prefix {n}");
        }
        for i in 0..base.len() {
            for v in [0u8, 1, 0x3f, 0x40, 0x80, 0xc0, 0xff] {
                let mut m = base.clone();
                m[i] = v;
                assert_eq!(decodes_whole(&m), verdict(&m), "byte {i} = {v:#x}");
            }
        }
        proptest!(ProptestConfig::with_cases(2000), |(m in proptest::collection::vec(any::<u8>(), 0..80))| {
            prop_assert_eq!(decodes_whole(&m), verdict(&m));
        });
    }

    #[test]
    fn renders_common_types() {
        let msg = [0u8, 10, 3, b'm', b'x', b'1', 0];
        assert_eq!(render(&msg, 0, msg.len(), 15), "10 mx1");
        assert_eq!(
            render(b"\x05hello\x03a\"b", 0, 10, 16),
            "\"hello\" \"a\\\"b\""
        );
        assert_eq!(render(&[1, 2], 0, 2, 9999), "\\# 2 0102");
        // Empty RDATA (RFC 2136 "RRset does not exist"): nothing is read past it.
        let msg = [3, b'w', b'w', b'w', 0];
        assert_eq!(render(&msg, 0, 0, 5), "\\# 0");
        // A name running past RDATA's end is not the record's.
        assert_eq!(render(&msg, 0, 3, 5), "\\# 3 037777");
        assert_eq!(render(&msg, 0, 5, 5), "www");
        let mx = [0u8, 10, 3, b'm', b'x', b'1', 0];
        assert_eq!(render(&mx, 0, 6, 15), "\\# 6 000a036d7831");
        let svcb = [0u8, 1, 0, 0, 1, 0, 6, 2, b'h', b'2', 2, b'h', b'3'];
        assert_eq!(render(&svcb, 0, svcb.len(), 65), "1 . alpn=h2,h3");
    }
}
