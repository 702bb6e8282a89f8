//! The packet side of a replay, before any flow state: per-packet counters, link layer, IP
//! (checksum, defragmentation) and when idle flows are swept. What comes out is one IP
//! datagram's transport bytes at a time; [`super::engine::Replayer`] takes it from there.
//!
//! Split out so that a sharded replay runs it once, in the reading thread, and hands the
//! datagrams to the flow engines of its worker threads: IP fragments carry no ports, so they
//! are put back together before a datagram can be given to its flow's shard.

use std::net::IpAddr;

use super::ReplayStats;
use crate::capture::decode::{decode_ip, IpPacket};
use crate::capture::ipfrag::{Defragmenter, FragLimits, Reassembled};
use crate::capture::link::{strip_link, LinkError};
use crate::capture::pcap::CapturePacket;

/// How often (capture time) idle flows and stale fragments are swept.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// One IP datagram's transport layer, as the flow engine takes it.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// When the packet (the last fragment) was captured.
    pub ts: u64,
    /// When the datagram's bytes began arriving (its first fragment).
    pub data_ts: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Captured transport header and payload.
    pub l4: &'a [u8],
    /// Transport length according to the IP header.
    pub l4_wire: u32,
    /// IP bytes on the wire (all fragments').
    pub wire_bytes: u64,
    /// Packets the datagram came in.
    pub packets: u32,
    pub interface: u32,
}

/// The IP layer of a packet that made it through: itself, or a datagram it completed.
pub enum Ip<'a> {
    Packet(IpPacket<'a>),
    Reassembled(Reassembled),
}

/// What one packet leads to, in this order: a sweep of idle flows at `sweep` (capture time),
/// then `ip` for the flow engine.
pub struct Step<'a> {
    pub sweep: Option<u64>,
    pub ip: Option<Ip<'a>>,
    ts: u64,
    interface: u32,
}

impl<'a> Step<'a> {
    pub fn datagram(&self) -> Option<Datagram<'_>> {
        let (ts, interface) = (self.ts, self.interface);
        Some(match self.ip.as_ref()? {
            Ip::Packet(ip) => Datagram {
                ts,
                data_ts: ts,
                src: ip.src,
                dst: ip.dst,
                proto: ip.proto,
                l4: ip.payload,
                l4_wire: ip.payload_wire_len,
                wire_bytes: u64::from(ip.wire_len),
                packets: 1,
                interface,
            },
            Ip::Reassembled(d) => Datagram {
                ts,
                data_ts: d.first_ts,
                src: d.src,
                dst: d.dst,
                proto: d.proto,
                l4: &d.payload,
                l4_wire: d.payload.len() as u32,
                wire_bytes: d.wire_bytes,
                packets: d.fragments,
                interface,
            },
        })
    }
}

pub struct Front {
    defrag: Defragmenter,
    next_sweep: u64,
}

impl Front {
    pub fn new(frag: FragLimits) -> Self {
        Front {
            defrag: Defragmenter::new(frag),
            next_sweep: 0,
        }
    }

    /// One captured packet; its counters go to `st`.
    pub fn push<'a>(&mut self, pkt: &CapturePacket<'a>, st: &mut ReplayStats) -> Step<'a> {
        let ts = pkt.ts_ns;
        let mut step = Step {
            sweep: None,
            ip: None,
            ts,
            interface: pkt.interface,
        };
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
            self.defrag.expire(ts);
            step.sweep = Some(ts);
            self.next_sweep = ts.saturating_add(SWEEP_EVERY_NS);
        }
        let off = match strip_link(pkt.linktype, pkt.data) {
            Ok(o) => o,
            Err(LinkError::NotIp) => {
                st.non_ip_packets += 1;
                return step;
            }
            Err(LinkError::Short) => {
                st.decode_errors += 1;
                return step;
            }
            Err(LinkError::UnsupportedLinkType(_)) => {
                st.unsupported_linktype_packets += 1;
                return step;
            }
        };
        let data: &'a [u8] = pkt.data;
        let Ok(ip) = decode_ip(&data[off..]) else {
            st.decode_errors += 1;
            return step;
        };
        if ip.header_checksum_ok == Some(false) {
            st.bad_ip_checksums += 1;
        }
        step.ip = if ip.frag.is_some() {
            self.defrag
                .push_tagged(ts, &ip, pkt.number)
                .map(Ip::Reassembled)
        } else {
            Some(Ip::Packet(ip))
        };
        step
    }

    /// End of input: pending fragments are dropped; the fragment counters go to `st`.
    pub fn finish(&mut self, st: &mut ReplayStats) {
        self.defrag.finish();
        let d = self.defrag.stats();
        st.ip_fragments = d.fragments;
        st.reassembled_datagrams = d.reassembled;
        st.fragments_dropped = d.timed_out + d.evicted + d.oversized;
    }
}
