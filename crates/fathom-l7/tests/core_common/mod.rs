//! Helpers for the core (HTTP/1, DNS, TLS, capture, replay) integration tests: where the
//! corpus is, and Zeek log parsing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

/// The shared corpus, from `FATHOM_CORPUS`. Tests skip (with a message) when it is unset.
pub fn corpus() -> Option<PathBuf> {
    match std::env::var_os("FATHOM_CORPUS") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("FATHOM_CORPUS not set: skipping corpus test");
            None
        }
    }
}

/// One Zeek log: rows as column → value (`-` unset, `(empty)` empty).
pub struct ZeekLog {
    pub fields: Vec<String>,
    pub rows: Vec<HashMap<String, String>>,
}

pub fn read_zeek_log(path: &std::path::Path) -> Option<ZeekLog> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = Some(f.split('\t').map(str::to_string).collect());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        // `btest-diff-cut` baselines have a bare header line naming the columns.
        if fields.is_none() {
            fields = Some(line.split('\t').map(str::to_string).collect());
            continue;
        }
        let f = fields.as_ref()?;
        let row: HashMap<String, String> = f
            .iter()
            .cloned()
            .zip(line.split('\t').map(str::to_string))
            .collect();
        rows.push(row);
    }
    Some(ZeekLog {
        fields: fields.unwrap_or_default(),
        rows,
    })
}

/// Zeek INDEX.json entries: (trace path, baseline log path) for logs named `log`.
pub fn zeek_cases(corpus: &std::path::Path, log: &str) -> Vec<(PathBuf, PathBuf)> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(corpus.join("zeek/INDEX.json")).expect("zeek INDEX.json"),
    )
    .expect("json");
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for t in index["tests"].as_array().into_iter().flatten() {
        // Spicy tests feed traces to custom analyzers (e.g. DNS packets parsed as HTTP).
        if t["btest"]
            .as_str()
            .is_some_and(|b| b.contains("/btest/spicy/"))
        {
            continue;
        }
        let files = t["baseline_files"].as_array().cloned().unwrap_or_default();
        if !files.iter().any(|f| f.as_str() == Some(log)) {
            continue;
        }
        let trace = corpus
            .join("zeek")
            .join(t["trace"].as_str().unwrap_or_default());
        let base = corpus
            .join("zeek")
            .join(t["baseline_dir"].as_str().unwrap_or_default())
            .join(log);
        if seen.insert(base.clone()) {
            out.push((trace, base));
        }
    }
    out
}

/// Hand-built frames for replay tests (Ethernet II / IPv4 / TCP or UDP).
pub mod frames {
    use std::net::Ipv4Addr;

    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    fn sum(data: &[u8], start: u32) -> u16 {
        let mut s = start;
        for c in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// IPv4 header (checksum filled) for `payload_len` bytes of `proto`.
    pub fn ipv4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        payload_len: usize,
        id: u16,
        frag: u16,
    ) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        let c = sum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn ether(ip: Vec<u8>) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f
    }

    /// TCP segment in an Ethernet frame. `good_sum: false` leaves the checksum zero, as a
    /// capture on the sending host with checksum offload shows it.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
        good_sum: bool,
    ) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + payload.len());
        t.extend_from_slice(&src.1.to_be_bytes());
        t.extend_from_slice(&dst.1.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&ack.to_be_bytes());
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(payload);
        if good_sum {
            let mut pseudo = src.0.octets().to_vec();
            pseudo.extend_from_slice(&dst.0.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(t.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(&t);
            let c = sum(&pseudo, 0);
            t[16..18].copy_from_slice(&c.to_be_bytes());
        }
        let mut ip = ipv4(src.0, dst.0, 6, t.len(), 1, 0x4000);
        ip.extend_from_slice(&t);
        ether(ip)
    }

    /// A UDP datagram, split into IPv4 fragments of at most `frag` payload bytes (a multiple
    /// of 8) when `frag` is smaller than the datagram.
    pub fn udp_fragments(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
        frag: usize,
        id: u16,
    ) -> Vec<Vec<u8>> {
        let mut u = Vec::new();
        u.extend_from_slice(&src.1.to_be_bytes());
        u.extend_from_slice(&dst.1.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        let mut out = Vec::new();
        let mut off = 0;
        while off < u.len() {
            let n = frag.min(u.len() - off);
            let more = off + n < u.len();
            let field = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
            let mut ip = ipv4(src.0, dst.0, 17, n, id, field);
            ip.extend_from_slice(&u[off..off + n]);
            out.push(ether(ip));
            off += n;
        }
        out
    }

    /// A classic pcap (Ethernet) holding `frames`.
    pub fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut w =
            fathom_l7::capture::writer::PcapWriter::new(Vec::new(), 1, 65535).expect("writer");
        for (ts, f) in frames {
            w.write_packet(*ts, f.len() as u32, f).expect("write");
        }
        w.finish().expect("finish")
    }
}
