//! Replaying a capture file: flows and L7 records out, as `fathom replay FILE` prints them,
//! and writing the packets of selected flows back out (`--write-pcap OUT --filter …`).
//!
//! A truncated or corrupt file is not fatal to what came before it: the error names the byte
//! offset of the bad record and carries every record produced up to there (flows and streams
//! are ended as if the capture stopped at that point).

pub mod engine;
pub mod flows;
mod front;
mod records;
mod shards;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;

use fathom_model::l7::L7Protocol;
use fathom_model::{Flow, FlowFilter, Record};

use crate::capture::ipfrag::FragLimits;
use crate::capture::link::{linktype, strip_link};
use crate::capture::pcap::{CaptureError, CaptureErrorKind, CaptureReader};
use crate::capture::tcp::{TcpLimits, TcpStreamStats};
use crate::capture::writer::PcapWriter;
use crate::session::SessionOptions;
pub use engine::{FlowSummary, Replayer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Only these L7 protocols are recognised and reported (empty: all).
    pub protocols: Vec<L7Protocol>,
    /// Emit flow records.
    pub flows: bool,
    /// Run protocol inference and parsers.
    pub l7: bool,
    pub session: SessionOptions,
    pub tcp: TcpLimits,
    pub frag: FragLimits,
    /// Flows tracked at once; the least recently active is ended (Evicted) beyond this.
    pub max_flows: usize,
    pub tcp_idle_timeout_ns: u64,
    pub udp_idle_timeout_ns: u64,
    /// How long a closed TCP flow is kept for trailing packets (capture time).
    pub closed_linger_ns: u64,
    /// `node` field of flow records.
    pub node: String,
    /// Threads running the flow engines of `replay_file` and `replay_reader` (0: one per
    /// available core). The records and statistics are the same whatever the count, except
    /// which flows are evicted at `max_flows` (split between the threads). One per core by
    /// default: on a quiet 2-vCPU machine the mixed bench capture replays in 0.40 s sharded
    /// against 0.72 s on one thread (`replay_vs_tshark` prints both for the machine at hand);
    /// sharding costs some CPU in all (the packet side is one thread, records are merged), so
    /// `1` is the choice on a busy machine.
    pub threads: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            protocols: Vec::new(),
            flows: true,
            l7: true,
            session: SessionOptions::default(),
            tcp: TcpLimits::default(),
            frag: FragLimits::default(),
            max_flows: 262_144,
            tcp_idle_timeout_ns: 300_000_000_000,
            udp_idle_timeout_ns: 60_000_000_000,
            closed_linger_ns: 5_000_000_000,
            node: "replay".into(),
            threads: 0,
        }
    }
}

impl ReplayOptions {
    /// The flow-engine threads a replay runs: `threads`, or one per available core.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Restrict inference and output to `protocols` (empty: all).
    pub fn with_protocols(mut self, protocols: Vec<L7Protocol>) -> Self {
        // gRPC is found by the HTTP/2 parser: asking for it means inferring HTTP/2.
        let mut infer = protocols.clone();
        if infer.contains(&L7Protocol::Grpc) && !infer.contains(&L7Protocol::Http2) {
            infer.push(L7Protocol::Http2);
        }
        self.session.protocols = (!infer.is_empty()).then_some(infer);
        self.protocols = protocols;
        self
    }
}

/// Whether a record of protocol `p` is wanted when the user asked for `only` (empty: all).
/// HTTP/2 includes gRPC, which rides on it; gRPC alone does not include plain HTTP/2.
pub fn protocol_selected(only: &[L7Protocol], p: L7Protocol) -> bool {
    only.is_empty()
        || only.contains(&p)
        || (p == L7Protocol::Grpc && only.contains(&L7Protocol::Http2))
}

/// Per L7 protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtocolStats {
    pub connections: u64,
    pub records: u64,
    /// Bytes the parsers could not make sense of (resynchronised past).
    pub skipped_bytes: u64,
    /// Bytes missing from the capture inside these connections.
    pub gap_bytes: u64,
    /// Bytes dropped at per-connection buffer limits.
    pub overflow_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    pub captured_bytes: u64,
    /// Packets cut by the snap length.
    pub truncated_packets: u64,
    pub non_ip_packets: u64,
    pub unsupported_linktype_packets: u64,
    /// Packets whose headers could not be decoded (short, malformed).
    pub decode_errors: u64,
    /// Counted, never dropped: offloaded checksums are normal in captures.
    pub bad_ip_checksums: u64,
    pub bad_l4_checksums: u64,
    pub ip_fragments: u64,
    pub reassembled_datagrams: u64,
    /// Fragments of datagrams never completed (timeout, eviction, oversize).
    pub fragments_dropped: u64,
    pub tcp: TcpStreamStats,
    pub flows: u64,
    pub flows_evicted: u64,
    pub l7_records: u64,
    pub protocols: BTreeMap<L7Protocol, ProtocolStats>,
    /// TCP/UDP connections no protocol was recognised for, and their bytes.
    pub unidentified_connections: u64,
    pub unidentified_bytes: u64,
    pub first_ts: Option<u64>,
    pub last_ts: u64,
}

impl ProtocolStats {
    fn absorb(&mut self, o: &ProtocolStats) {
        self.connections += o.connections;
        self.records += o.records;
        self.skipped_bytes += o.skipped_bytes;
        self.gap_bytes += o.gap_bytes;
        self.overflow_bytes += o.overflow_bytes;
    }
}

impl ReplayStats {
    /// Add the counts of `o`, which saw other packets or flows of the same capture (a shard).
    pub fn absorb(&mut self, o: &ReplayStats) {
        self.packets += o.packets;
        self.captured_bytes += o.captured_bytes;
        self.truncated_packets += o.truncated_packets;
        self.non_ip_packets += o.non_ip_packets;
        self.unsupported_linktype_packets += o.unsupported_linktype_packets;
        self.decode_errors += o.decode_errors;
        self.bad_ip_checksums += o.bad_ip_checksums;
        self.bad_l4_checksums += o.bad_l4_checksums;
        self.ip_fragments += o.ip_fragments;
        self.reassembled_datagrams += o.reassembled_datagrams;
        self.fragments_dropped += o.fragments_dropped;
        self.tcp.absorb(&o.tcp);
        self.flows += o.flows;
        self.flows_evicted += o.flows_evicted;
        self.l7_records += o.l7_records;
        for (p, s) in &o.protocols {
            self.protocols.entry(*p).or_default().absorb(s);
        }
        self.unidentified_connections += o.unidentified_connections;
        self.unidentified_bytes += o.unidentified_bytes;
        self.first_ts = self.first_ts.or(o.first_ts);
        self.last_ts = self.last_ts.max(o.last_ts);
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Flows and L7 records, sorted by time (a flow's time is its last packet).
    pub records: Vec<Record>,
    pub stats: ReplayStats,
}

impl ReplayReport {
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.records.iter().filter_map(|r| match r {
            Record::Flow(f) => Some(&**f),
            _ => None,
        })
    }

    pub fn l7(&self) -> impl Iterator<Item = &fathom_model::l7::L7Record> {
        self.records.iter().filter_map(|r| match r {
            Record::L7(l) => Some(&**l),
            _ => None,
        })
    }
}

/// Replay failed part-way (or could not start). `report` holds everything produced before
/// the failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} (at byte offset {offset})")]
pub struct ReplayError {
    pub kind: CaptureErrorKind,
    pub offset: u64,
    pub message: String,
    pub report: Box<ReplayReport>,
}

impl ReplayError {
    fn new(e: CaptureError, report: ReplayReport) -> Self {
        ReplayError {
            kind: e.kind,
            offset: e.offset,
            message: e.message,
            report: Box::new(report),
        }
    }
}

/// Replay a pcap or pcapng file.
pub fn replay_file(path: &Path, opts: &ReplayOptions) -> Result<ReplayReport, ReplayError> {
    let reader =
        CaptureReader::open(path).map_err(|e| ReplayError::new(e, ReplayReport::default()))?;
    // A hint for reserving, never a limit, and high rather than low: capacity never written
    // costs address space only, while growing copies every record (hundreds of bytes each).
    // Short exchanges come close to a record per packet: DNS over UDP, two packets a lookup
    // and a flow per socket, makes one per 125 bytes of capture.
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let hint = usize::try_from(size / 96).unwrap_or(usize::MAX);
    run(reader, opts, hint)
}

/// Replay capture bytes from any reader.
pub fn replay_reader<R: Read + Send>(
    r: R,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let reader = CaptureReader::new(r).map_err(|e| ReplayError::new(e, ReplayReport::default()))?;
    run(reader, opts, 0)
}

fn run(
    mut reader: CaptureReader<'_>,
    opts: &ReplayOptions,
    hint: usize,
) -> Result<ReplayReport, ReplayError> {
    let threads = opts.thread_count();
    if threads > 1 {
        return shards::run(reader, opts, threads, hint);
    }
    let mut engine = Replayer::new(opts.clone()).expect_records(hint);
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => engine.push(&p),
            Ok(None) => return Ok(engine.finish()),
            Err(e) => return Err(ReplayError::new(e, engine.finish())),
        }
    }
}

/// Which packets `write_filtered_pcap` keeps: those of flows matching `flow` (endpoints,
/// ports, L4 protocol; pod/label/process selectors match nothing in a capture) whose L7
/// protocol is one of `protocols` (empty: any, including none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapFilter {
    pub flow: FlowFilter,
    pub protocols: Vec<L7Protocol>,
}

impl PcapFilter {
    fn matches(&self, s: &FlowSummary) -> bool {
        // A connection's protocol is its parser's: gRPC connections are HTTP/2 ones.
        self.flow.matches_flow(&s.flow)
            && (self.protocols.is_empty()
                || s.protocol.is_some_and(|p| {
                    protocol_selected(&self.protocols, p)
                        || (p == L7Protocol::Http2 && self.protocols.contains(&L7Protocol::Grpc))
                }))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub packets_read: u64,
    pub packets_written: u64,
    pub flows_matched: u64,
    /// Link type of the written file.
    pub linktype: u32,
}

/// Write the packets of the flows selected by `filter` from `input` to `output` (classic
/// pcap, nanosecond timestamps). Two passes: the first decides which flows match (an L7
/// protocol is only known after some packets), the second copies their packets, fragments
/// included. Packets keep their link layer when all selected ones share a link type, and are
/// written as raw IP otherwise.
pub fn write_filtered_pcap(
    input: &Path,
    output: &Path,
    filter: &PcapFilter,
    opts: &ReplayOptions,
) -> Result<WriteSummary, ReplayError> {
    let mut o = opts.clone();
    o.flows = true;
    o.l7 = o.l7 || !filter.protocols.is_empty();
    let mut reader =
        CaptureReader::open(input).map_err(|e| ReplayError::new(e, ReplayReport::default()))?;
    let mut engine = Replayer::new(o).track_packets();
    let mut first_error = None;
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => engine.push(&p),
            Ok(None) => break,
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    let (report, packet_flows, summaries) = engine.finish_tracked();
    let selected: Vec<bool> = summaries
        .iter()
        .map(|s| s.as_ref().is_some_and(|s| filter.matches(s)))
        .collect();
    let keep = |number: u64| -> bool {
        let serial = packet_flows
            .get(number.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(u32::MAX);
        selected.get(serial as usize).copied().unwrap_or(false)
    };

    // Pass 2: one link type for the output, raw IP if the selected packets disagree.
    let io_err = |e: std::io::Error, at: u64, report: &ReplayReport| {
        ReplayError::new(
            CaptureError {
                kind: CaptureErrorKind::Io,
                offset: at,
                message: format!("writing {}: {e}", output.display()),
            },
            report.clone(),
        )
    };
    let mut reader = CaptureReader::open(input).map_err(|e| ReplayError::new(e, report.clone()))?;
    let mut linktypes = HashSet::new();
    while let Ok(Some(p)) = reader.next_packet() {
        if keep(p.number) {
            linktypes.insert(p.linktype);
        }
    }
    let out_lt = match linktypes.len() {
        0 | 1 => linktypes.iter().next().copied().unwrap_or(linktype::RAW),
        _ => linktype::RAW,
    };
    let convert = linktypes.len() > 1;
    let file = File::create(output).map_err(|e| io_err(e, 0, &report))?;
    let mut w = PcapWriter::new(BufWriter::new(file), out_lt, 262_144)
        .map_err(|e| io_err(e, 0, &report))?;
    let mut summary = WriteSummary {
        flows_matched: selected.iter().filter(|s| **s).count() as u64,
        linktype: out_lt,
        ..Default::default()
    };
    let mut reader = CaptureReader::open(input).map_err(|e| ReplayError::new(e, report.clone()))?;
    while let Ok(Some(p)) = reader.next_packet() {
        summary.packets_read += 1;
        if !keep(p.number) {
            continue;
        }
        let (data, orig) = if convert {
            match strip_link(p.linktype, p.data) {
                Ok(off) => (&p.data[off..], p.orig_len.saturating_sub(off as u32)),
                Err(_) => continue,
            }
        } else {
            (p.data, p.orig_len)
        };
        w.write_packet(p.ts_ns, orig, data)
            .map_err(|e| io_err(e, p.offset, &report))?;
        summary.packets_written += 1;
    }
    w.finish().map_err(|e| io_err(e, 0, &report))?;
    match first_error {
        Some(e) => Err(ReplayError::new(e, report)),
        None => Ok(summary),
    }
}

#[cfg(test)]
mod protocol_selection_tests {
    use super::*;

    #[test]
    fn http2_includes_grpc_and_grpc_infers_http2() {
        use L7Protocol::*;
        assert!(protocol_selected(&[], Redis));
        assert!(protocol_selected(&[Http2], Grpc));
        assert!(!protocol_selected(&[Grpc], Http2));
        assert!(!protocol_selected(&[Dns], Grpc));
        let o = ReplayOptions::default().with_protocols(vec![Grpc]);
        assert_eq!(o.session.protocols.as_deref(), Some(&[Grpc, Http2][..]));
    }
}
