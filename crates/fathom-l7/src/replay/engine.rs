//! The packet-at-a-time engine behind `replay_file`: link → IP (defragmented) → TCP/UDP →
//! flow table → stream reassembly → L7 connections. Usable on its own for any packet source.

use std::collections::HashMap;
use std::net::IpAddr;

use fathom_model::l7::{L7Protocol, L7Record};
use fathom_model::{Flow, FlowEndReason, Record, TcpFlags};

use super::flows::{dst_is_server, FlowKey, FlowState};
use super::records::RecordLog;
use super::{ReplayOptions, ReplayReport, ReplayStats};
use crate::capture::decode::{decode_ip, decode_transport, TransportHeader};
use crate::capture::ipfrag::Defragmenter;
use crate::capture::link::{strip_link, LinkError};
use crate::capture::pcap::CapturePacket;
use crate::capture::tcp::{Chunk, HalfStream};
use crate::parser::Direction;
use crate::session::{Connection, Transport};

/// How often (capture time) idle flows and stale fragments are swept.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// What the engine knows about a flow once it is over, for callers that select packets by
/// flow (`write_filtered_pcap`).
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub flow: Flow,
    pub protocol: Option<L7Protocol>,
}

pub struct Replayer {
    opts: ReplayOptions,
    defrag: Defragmenter,
    /// Boxed: a flow's state is large (both half-streams' bookkeeping, the L7 connection),
    /// and growing the table moves every entry.
    flows: HashMap<FlowKey, Box<FlowState>, ahash::RandomState>,
    next_serial: u32,
    records: RecordLog,
    l7_scratch: Vec<L7Record>,
    stats: ReplayStats,
    next_sweep: u64,
    /// When tracking: flow serial of each packet, by packet number - 1 (u32::MAX: none).
    packet_flows: Option<Vec<u32>>,
    summaries: Option<Vec<Option<FlowSummary>>>,
    current_packet: u64,
}

impl Replayer {
    pub fn new(opts: ReplayOptions) -> Self {
        Replayer {
            defrag: Defragmenter::new(opts.frag),
            opts,
            flows: HashMap::default(),
            next_serial: 0,
            records: RecordLog::new(),
            l7_scratch: Vec::new(),
            stats: ReplayStats::default(),
            next_sweep: 0,
            packet_flows: None,
            summaries: None,
            current_packet: 0,
        }
    }

    /// Expect about `n` records: a capacity hint, never a limit.
    pub fn expect_records(mut self, n: usize) -> Self {
        self.records.reserve(n);
        self
    }

    /// Remember which flow every packet belonged to (costs 4 bytes per packet).
    pub fn track_packets(mut self) -> Self {
        self.packet_flows = Some(Vec::new());
        self.summaries = Some(Vec::new());
        self
    }

    pub fn stats(&self) -> &ReplayStats {
        &self.stats
    }

    /// One captured packet.
    pub fn push(&mut self, pkt: &CapturePacket<'_>) {
        self.current_packet = pkt.number;
        if let Some(pf) = &mut self.packet_flows {
            let idx = pkt.number.saturating_sub(1) as usize;
            if pf.len() <= idx {
                pf.resize(idx + 1, u32::MAX);
            }
        }
        let ts = pkt.ts_ns;
        let st = &mut self.stats;
        st.packets += 1;
        st.captured_bytes += pkt.data.len() as u64;
        if (pkt.data.len() as u64) < u64::from(pkt.orig_len) {
            st.truncated_packets += 1;
        }
        if st.first_ts.is_none() {
            st.first_ts = Some(ts);
        }
        st.last_ts = st.last_ts.max(ts);
        if ts >= self.next_sweep {
            self.sweep(ts);
            self.next_sweep = ts.saturating_add(SWEEP_EVERY_NS);
        }
        let off = match strip_link(pkt.linktype, pkt.data) {
            Ok(o) => o,
            Err(LinkError::NotIp) => {
                self.stats.non_ip_packets += 1;
                return;
            }
            Err(LinkError::Short) => {
                self.stats.decode_errors += 1;
                return;
            }
            Err(LinkError::UnsupportedLinkType(_)) => {
                self.stats.unsupported_linktype_packets += 1;
                return;
            }
        };
        let Ok(ip) = decode_ip(&pkt.data[off..]) else {
            self.stats.decode_errors += 1;
            return;
        };
        if ip.header_checksum_ok == Some(false) {
            self.stats.bad_ip_checksums += 1;
        }
        if ip.frag.is_some() {
            if let Some(d) = self.defrag.push_tagged(ts, &ip, pkt.number) {
                let wire = d.payload.len() as u32;
                let tags = d.tags.clone();
                // The datagram's bytes began arriving with its first fragment.
                let times = (ts, d.first_ts);
                self.transport(
                    times,
                    d.src,
                    d.dst,
                    d.proto,
                    &d.payload,
                    wire,
                    d.wire_bytes,
                    d.fragments,
                    pkt.interface,
                    &tags,
                );
            }
            return;
        }
        let tags = [pkt.number];
        self.transport(
            (ts, ts),
            ip.src,
            ip.dst,
            ip.proto,
            ip.payload,
            ip.payload_wire_len,
            u64::from(ip.wire_len),
            1,
            pkt.interface,
            &tags,
        );
    }

    #[allow(clippy::too_many_arguments)]
    /// `times`: when the packet was captured, and when its data began arriving (earlier for a
    /// reassembled datagram: its first fragment).
    fn transport(
        &mut self,
        times: (u64, u64),
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        l4: &[u8],
        l4_wire: u32,
        wire_bytes: u64,
        packets: u32,
        interface: u32,
        tags: &[u64],
    ) {
        let (ts, data_ts) = times;
        let Ok(t) = decode_transport(src, dst, proto, l4, l4_wire) else {
            self.stats.decode_errors += 1;
            return;
        };
        if t.checksum_ok == Some(false) {
            self.stats.bad_l4_checksums += 1;
        }
        let (sp, dp) = t.header.ports();
        let key = FlowKey::new(proto, (src, sp), (dst, dp));
        let tcp = match t.header {
            TransportHeader::Tcp(h) => Some(h),
            _ => None,
        };
        // A new SYN on a closed flow's tuple is a new connection (port reuse).
        if let (Some(h), Some(f)) = (tcp, self.flows.get(&key)) {
            let syn_only = h.flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN;
            if syn_only && f.closed() {
                if let Some(f) = self.flows.remove(&key) {
                    self.finalize(f, FlowEndReason::Fin);
                }
            }
        }
        if !self.flows.contains_key(&key) {
            self.open_flow(key, ts, src, sp, dst, dp, proto, &t.header, interface);
        }
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        if let Some(pf) = &mut self.packet_flows {
            for tag in tags {
                let idx = tag.saturating_sub(1) as usize;
                if let Some(slot) = pf.get_mut(idx) {
                    *slot = f.serial;
                }
            }
        }
        let dir = if (src, sp) == f.client && (dst, dp) == f.server {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        f.last_seen = f.last_seen.max(ts);
        let tr = &mut f.traffic;
        match dir {
            Direction::ClientToServer => {
                tr.packets_out += u64::from(packets);
                tr.bytes_out += wire_bytes;
                tr.payload_bytes_out += u64::from(t.payload_wire_len);
            }
            Direction::ServerToClient => {
                tr.packets_in += u64::from(packets);
                tr.bytes_in += wire_bytes;
                tr.payload_bytes_in += u64::from(t.payload_wire_len);
            }
        }
        let out = &mut self.l7_scratch;
        match t.header {
            TransportHeader::Tcp(h) => {
                match dir {
                    Direction::ClientToServer => f.flags_out |= h.flags,
                    Direction::ServerToClient => f.flags_in |= h.flags,
                }
                let syn = h.flags & TcpFlags::SYN != 0;
                let ack = h.flags & TcpFlags::ACK != 0;
                if syn && !ack && f.syn_ts.is_none() {
                    f.syn_ts = Some(ts);
                }
                if syn && ack && f.synack_ts.is_none() {
                    f.synack_ts = Some(ts);
                }
                let di = dir_index(dir);
                if h.flags & TcpFlags::FIN != 0 {
                    f.fin[di] = true;
                }
                if h.flags & TcpFlags::RST != 0 {
                    f.rst = true;
                }
                if let Some(halves) = f.tcp.as_mut() {
                    let (this, other) = split(halves, di);
                    let conn = &mut f.conn;
                    this.segment(
                        ts,
                        h.seq,
                        h.flags,
                        t.payload,
                        t.payload_wire_len,
                        &mut |c| deliver(conn, dir, c, out),
                    );
                    if ack {
                        other.peer_ack(h.ack, &mut |c| deliver(conn, dir.reverse(), c, out));
                    }
                    let done = f.rst || (halves[0].fin_done() && halves[1].fin_done());
                    if done && !f.l7_done {
                        finish_streams(f, ts, out);
                    }
                }
            }
            TransportHeader::Udp { .. } => {
                if let Some(c) = f.conn.as_mut() {
                    if !t.payload.is_empty() {
                        c.feed(dir, data_ts, t.payload, out);
                    }
                    if t.payload_wire_len as usize > t.payload.len() {
                        c.gap(dir, u64::from(t.payload_wire_len) - t.payload.len() as u64);
                    }
                }
            }
            TransportHeader::Icmp { icmp_type, code } => {
                if f.icmp.is_none() {
                    f.icmp = Some((icmp_type, code));
                }
            }
            TransportHeader::Other => {}
        }
        self.drain_l7();
    }

    #[allow(clippy::too_many_arguments)]
    fn open_flow(
        &mut self,
        key: FlowKey,
        ts: u64,
        src: IpAddr,
        sp: u16,
        dst: IpAddr,
        dp: u16,
        proto: u8,
        header: &TransportHeader,
        interface: u32,
    ) {
        if self.flows.len() >= self.opts.max_flows.max(1) {
            // Evict the least recently active sixteenth at once: one scan per many new flows
            // instead of one per new flow (a SYN flood must not make this quadratic).
            let mut by_age: Vec<(u64, FlowKey)> =
                self.flows.iter().map(|(k, f)| (f.last_seen, *k)).collect();
            let n = (by_age.len() / 16).max(1);
            by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
            for (_, k) in by_age.into_iter().take(n) {
                if let Some(f) = self.flows.remove(&k) {
                    self.stats.flows_evicted += 1;
                    self.finalize(f, FlowEndReason::Evicted);
                }
            }
        }
        let src_is_client = match header {
            TransportHeader::Tcp(h) => {
                let syn = h.flags & TcpFlags::SYN != 0;
                let ack = h.flags & TcpFlags::ACK != 0;
                match (syn, ack) {
                    (true, false) => true,
                    (true, true) => false,
                    _ => dst_is_server(sp, dp),
                }
            }
            TransportHeader::Udp { .. } => dst_is_server(sp, dp),
            // Echo replies (ICMP 0, ICMPv6 129) answer the other side.
            TransportHeader::Icmp { icmp_type, .. } => {
                !matches!((proto, icmp_type), (1, 0) | (58, 129))
            }
            TransportHeader::Other => true,
        };
        let (client, server) = if src_is_client {
            ((src, sp), (dst, dp))
        } else {
            ((dst, dp), (src, sp))
        };
        let l4 = match header {
            TransportHeader::Tcp(_) => Some(Transport::Tcp),
            TransportHeader::Udp { .. } => Some(Transport::Udp),
            _ => None,
        };
        let conn = l4.filter(|_| self.opts.l7).map(|tr| {
            Connection::new(
                std::net::SocketAddr::new(client.0, client.1),
                std::net::SocketAddr::new(server.0, server.1),
                tr,
                &self.opts.session,
            )
        });
        let tcp_limits = matches!(header, TransportHeader::Tcp(_)).then_some(self.opts.tcp);
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let f = FlowState::new(
            serial, proto, client, server, ts, tcp_limits, conn, interface,
        );
        self.flows.insert(key, Box::new(f));
    }

    fn drain_l7(&mut self) {
        let only = &self.opts.protocols;
        for r in self.l7_scratch.drain(..) {
            let p = r.exchange.detail.protocol();
            let entry = self.stats.protocols.entry(p).or_default();
            entry.records += 1;
            self.stats.l7_records += 1;
            if super::protocol_selected(only, p) {
                self.records.push(Record::L7(r));
            }
        }
    }

    /// Expire idle flows and stale fragments.
    fn sweep(&mut self, now: u64) {
        self.defrag.expire(now);
        let o = &self.opts;
        let expired: Vec<(FlowKey, FlowEndReason)> = self
            .flows
            .iter()
            .filter_map(|(k, f)| {
                let idle = now.saturating_sub(f.last_seen);
                let timeout = if f.proto == 6 {
                    o.tcp_idle_timeout_ns
                } else {
                    o.udp_idle_timeout_ns
                };
                if f.closed() && idle > o.closed_linger_ns {
                    Some((*k, FlowEndReason::Fin))
                } else if idle > timeout {
                    Some((*k, FlowEndReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        for (k, reason) in expired {
            if let Some(f) = self.flows.remove(&k) {
                self.finalize(f, reason);
            }
        }
    }

    fn finalize(&mut self, mut f: Box<FlowState>, reason: FlowEndReason) {
        let out = &mut self.l7_scratch;
        if !f.l7_done {
            let end = f.last_seen;
            finish_streams(&mut f, end, out);
        }
        if let Some(c) = &f.conn {
            let cs = c.stats();
            match cs.protocol {
                Some(p) => {
                    let e = self.stats.protocols.entry(p).or_default();
                    e.connections += 1;
                    e.skipped_bytes += cs.parser.skipped_bytes;
                    e.gap_bytes += cs.parser.gap_bytes;
                    e.overflow_bytes += cs.parser.overflow_bytes;
                }
                None => {
                    self.stats.unidentified_connections += 1;
                    self.stats.unidentified_bytes += cs.unknown_bytes;
                }
            }
        }
        if let Some(h) = &f.tcp {
            for half in h.iter() {
                let s = half.stats();
                let t = &mut self.stats.tcp;
                t.segments += s.segments;
                t.delivered_bytes += s.delivered_bytes;
                t.retransmitted_bytes += s.retransmitted_bytes;
                t.out_of_order_segments += s.out_of_order_segments;
                t.gaps += s.gaps;
                t.gap_bytes += s.gap_bytes;
                t.overflow_gaps += s.overflow_gaps;
            }
        }
        self.drain_l7();
        let flow = f.to_flow(reason, &self.opts.node);
        self.stats.flows += 1;
        if let Some(s) = &mut self.summaries {
            let i = f.serial as usize;
            if s.len() <= i {
                s.resize(i + 1, None);
            }
            s[i] = Some(FlowSummary {
                flow: flow.clone(),
                protocol: f.conn.as_ref().and_then(|c| c.protocol()),
            });
        }
        if self.opts.flows {
            self.records.push(Record::Flow(flow));
        }
    }

    /// End of input: every flow ends, every stream is flushed. Records come out sorted by time.
    pub fn finish(mut self) -> ReplayReport {
        self.finish_in_place();
        let records = std::mem::take(&mut self.records).into_sorted();
        ReplayReport {
            records,
            stats: std::mem::take(&mut self.stats),
        }
    }

    fn finish_in_place(&mut self) {
        let mut all: Vec<Box<FlowState>> = self.flows.drain().map(|(_, f)| f).collect();
        all.sort_by_key(|f| f.serial);
        for f in all {
            self.finalize(f, FlowEndReason::Shutdown);
        }
        self.defrag.finish();
        let d = self.defrag.stats();
        self.stats.ip_fragments = d.fragments;
        self.stats.reassembled_datagrams = d.reassembled;
        self.stats.fragments_dropped = d.timed_out + d.evicted + d.oversized;
    }

    /// As [`Replayer::finish`], also returning each packet's flow and each flow's summary
    /// (only after [`Replayer::track_packets`]).
    pub fn finish_tracked(mut self) -> (ReplayReport, Vec<u32>, Vec<Option<FlowSummary>>) {
        self.finish_in_place();
        let pf = self.packet_flows.take().unwrap_or_default();
        let sums = self.summaries.take().unwrap_or_default();
        let records = std::mem::take(&mut self.records).into_sorted();
        (
            ReplayReport {
                records,
                stats: std::mem::take(&mut self.stats),
            },
            pf,
            sums,
        )
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

fn split(h: &mut [HalfStream; 2], this: usize) -> (&mut HalfStream, &mut HalfStream) {
    let [a, b] = h;
    if this == 0 {
        (a, b)
    } else {
        (b, a)
    }
}

fn deliver(conn: &mut Option<Connection>, dir: Direction, c: Chunk<'_>, out: &mut Vec<L7Record>) {
    let Some(conn) = conn.as_mut() else { return };
    match c {
        Chunk::Data { ts_ns, bytes } => conn.feed(dir, ts_ns, bytes, out),
        Chunk::Gap { len } => conn.gap(dir, len),
    }
}

/// Flush both half-streams (holes become gaps) and end the L7 connection.
fn finish_streams(f: &mut FlowState, ts: u64, out: &mut Vec<L7Record>) {
    let conn = &mut f.conn;
    if let Some(h) = f.tcp.as_mut() {
        for (i, half) in h.iter_mut().enumerate() {
            let dir = if i == 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            half.flush(&mut |c| deliver(conn, dir, c, out));
        }
    }
    if let Some(c) = conn.as_mut() {
        c.finish(ts, out);
    }
    f.l7_done = true;
}
