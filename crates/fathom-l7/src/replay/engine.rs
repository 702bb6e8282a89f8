//! The packet-at-a-time engine behind `replay_file`: link → IP (defragmented) → TCP/UDP →
//! flow table → stream reassembly → L7 connections. Usable on its own for any packet source.

use std::collections::HashMap;
use std::net::IpAddr;

use fathom_model::l7::{L7Protocol, L7Record};
use fathom_model::{Flow, FlowEndReason, Record, TcpFlags};

use super::flows::{dst_is_server, FlowKey, FlowState};
use super::front::{Datagram, Front, Ip};
use super::records::{Key, Order, RecordLog};
use super::{ReplayOptions, ReplayReport, ReplayStats};
use crate::capture::decode::{decode_transport, TransportHeader};
use crate::capture::pcap::CapturePacket;
use crate::capture::tcp::{Chunk, HalfStream};
use crate::parser::Direction;
use crate::session::{Connection, Transport};

/// What the engine knows about a flow once it is over, for callers that select packets by
/// flow (`write_filtered_pcap`).
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub flow: Flow,
    pub protocol: Option<L7Protocol>,
}

pub struct Replayer {
    opts: ReplayOptions,
    front: Front,
    /// Boxed: a flow's state is large (both half-streams' bookkeeping, the L7 connection),
    /// and growing the table moves every entry.
    flows: HashMap<FlowKey, Box<FlowState>, ahash::RandomState>,
    next_serial: u32,
    records: RecordLog,
    l7_scratch: Vec<L7Record>,
    stats: ReplayStats,
    /// When tracking: flow serial of each packet, by packet number - 1 (u32::MAX: none).
    packet_flows: Option<Vec<u32>>,
    summaries: Option<Vec<Option<FlowSummary>>>,
    /// Packets pushed so far, counting the current one: where records are in the order of
    /// output (see [`Order`]), and when a flow was opened.
    pushes: u64,
}

impl Replayer {
    pub fn new(opts: ReplayOptions) -> Self {
        Replayer {
            front: Front::new(opts.frag),
            opts,
            flows: HashMap::default(),
            next_serial: 0,
            records: RecordLog::new(),
            l7_scratch: Vec::new(),
            stats: ReplayStats::default(),
            packet_flows: None,
            summaries: None,
            pushes: 0,
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
        if let Some(pf) = &mut self.packet_flows {
            let idx = pkt.number.saturating_sub(1) as usize;
            if pf.len() <= idx {
                pf.resize(idx + 1, u32::MAX);
            }
        }
        let step = self.front.push(pkt, &mut self.stats);
        self.pushes += 1;
        if let Some(now) = step.sweep {
            self.sweep(now);
        }
        if let Some(d) = step.datagram() {
            let one = [pkt.number];
            let tags = match &step.ip {
                Some(Ip::Reassembled(r)) => &r.tags[..],
                _ => &one[..],
            };
            self.transport(&d, tags);
        }
    }

    /// For a sharded replay, whose [`Front`] runs elsewhere: the packet numbered `push`
    /// (counting from 1, across all shards) leads to a sweep at `now`.
    pub(super) fn sweep_at(&mut self, push: u64, now: u64) {
        self.pushes = push;
        self.sweep(now);
    }

    /// For a sharded replay: the packet numbered `push` carries (or completes) `d`.
    pub(super) fn datagram_at(&mut self, push: u64, d: &Datagram<'_>) {
        self.pushes = push;
        self.transport(d, &[]);
    }

    /// `tags`: the numbers of the packets `d` came in, for [`Replayer::track_packets`].
    fn transport(&mut self, d: &Datagram<'_>, tags: &[u64]) {
        let (ts, data_ts) = (d.ts, d.data_ts);
        let (src, dst, proto) = (d.src, d.dst, d.proto);
        let (packets, wire_bytes) = (d.packets, d.wire_bytes);
        let Ok(t) = decode_transport(src, dst, proto, d.l4, d.l4_wire) else {
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
                    self.finalize(f, FlowEndReason::Fin, false);
                }
            }
        }
        if !self.flows.contains_key(&key) {
            self.open_flow(key, ts, src, sp, dst, dp, proto, &t.header, d.interface);
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
        self.drain_l7(Order::packet(self.pushes));
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
                    self.finalize(f, FlowEndReason::Evicted, false);
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
        let mut f = FlowState::new(
            serial, proto, client, server, ts, tcp_limits, conn, interface,
        );
        f.opened_at = self.pushes;
        self.flows.insert(key, Box::new(f));
    }

    /// `by`: where the records go in the output order (see [`Order`]).
    fn drain_l7(&mut self, by: Order) {
        let only = &self.opts.protocols;
        for r in self.l7_scratch.drain(..) {
            let p = r.exchange.detail.protocol();
            let entry = self.stats.protocols.entry(p).or_default();
            entry.records += 1;
            self.stats.l7_records += 1;
            if super::protocol_selected(only, p) {
                self.records.push(Record::from(r), by);
            }
        }
    }

    /// Expire idle flows and stale fragments.
    fn sweep(&mut self, now: u64) {
        let o = &self.opts;
        let mut expired: Vec<(u64, FlowKey, FlowEndReason)> = self
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
                    Some((f.opened_at, *k, FlowEndReason::Fin))
                } else if idle > timeout {
                    Some((f.opened_at, *k, FlowEndReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        // In the order the flows were opened, not the table's (random) one: the output and
        // the shards of a sharded replay must agree.
        expired.sort_unstable_by_key(|e| e.0);
        for (_, k, reason) in expired {
            if let Some(f) = self.flows.remove(&k) {
                self.finalize(f, reason, true);
            }
        }
    }

    /// `own_place`: the flow's records go in the output order by the flow (a sweep, the end
    /// of input), not by the packet being handled.
    fn finalize(&mut self, mut f: Box<FlowState>, reason: FlowEndReason, own_place: bool) {
        let by = if own_place {
            Order::flow(self.pushes, f.opened_at)
        } else {
            Order::packet(self.pushes)
        };
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
                self.stats.tcp.absorb(&half.stats());
            }
        }
        self.drain_l7(by);
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
            self.records.push(Record::from(flow), by);
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

    /// For a sharded replay: the statistics, and the records sorted by key for merging.
    pub(super) fn finish_keyed(mut self) -> (ReplayStats, Vec<Key>, Vec<Record>) {
        self.finish_in_place();
        let (keys, records) = std::mem::take(&mut self.records).into_sorted_keyed();
        (std::mem::take(&mut self.stats), keys, records)
    }

    fn finish_in_place(&mut self) {
        let mut all: Vec<Box<FlowState>> = self.flows.drain().map(|(_, f)| f).collect();
        all.sort_by_key(|f| f.opened_at);
        // After every packet.
        self.pushes = u64::MAX;
        for f in all {
            self.finalize(f, FlowEndReason::Shutdown, true);
        }
        self.front.finish(&mut self.stats);
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
