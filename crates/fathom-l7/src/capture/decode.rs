//! IP and transport headers. `etherparse` does the header decoding (lax mode, so that packets
//! cut short by the snap length still give their headers); this module reduces the result to
//! the few fields the flow table and the stream reassembler need, and checks checksums only to
//! count bad ones: captures taken on the sending host carry offloaded (unfilled) checksums, so a
//! bad checksum must never make us drop a packet.

use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice, TcpHeaderSlice, UdpHeaderSlice};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment header identification.
    pub id: u32,
    /// Offset of this fragment's payload in the original datagram, in bytes.
    pub offset: u32,
    pub more: bool,
}

/// One IP packet, headers decoded, payload borrowed.
#[derive(Debug, Clone)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Protocol of the payload (after IPv6 extension headers).
    pub proto: u8,
    /// Size of the whole packet on the wire according to its header (not the captured size).
    pub wire_len: u32,
    pub frag: Option<Fragment>,
    /// Payload bytes that were captured (at most `payload_wire_len`).
    pub payload: &'a [u8],
    /// Payload size according to the IP header.
    pub payload_wire_len: u32,
    /// IPv4 header checksum verdict (`None` for IPv6, which has none).
    pub header_checksum_ok: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a parseable IPv4/IPv6 header.
    BadIp,
    /// The transport header is cut short or malformed.
    BadTransport,
}

/// The Fragment header of an IPv6 packet, if it has one that fragments (non-zero offset or
/// more fragments; an "atomic" fragment header is not fragmentation), found by walking the
/// extension headers etherparse accepted (`ext`), starting from the fixed header's next
/// header value.
///
/// Not etherparse's own iterator: in 0.21, when lax parsing stops at a truncated extension
/// header, the iterator still goes on to that header and reads it with an unchecked slice
/// (undefined behaviour; a panic with debug assertions). Found by the `pcap` fuzz target.
fn ipv6_fragment(mut next: u8, mut ext: &[u8]) -> Option<Fragment> {
    loop {
        let len = match next {
            // Hop-by-hop, routing, destination options: 8-octet units after the first 8.
            0 | 43 | 60 => (usize::from(*ext.get(1)?) + 1) * 8,
            44 => {
                let h = ext.get(..8)?;
                let off_flags = u16::from_be_bytes([h[2], h[3]]);
                let offset = u32::from(off_flags >> 3) * 8;
                let more = off_flags & 1 != 0;
                return (offset != 0 || more).then(|| Fragment {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset,
                    more,
                });
            }
            // Authentication header: 4-octet units after the first 8.
            51 => (usize::from(*ext.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *ext.first()?;
        ext = ext.get(len..)?;
    }
}

pub fn decode_ip(data: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    let (ip, _ext_err) = LaxIpSlice::from_slice(data).map_err(|_| DecodeError::BadIp)?;
    match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let payload = v4.payload();
            let hdr_len = h.slice().len() as u32;
            let total = u32::from(h.total_len());
            let frag = h.is_fragmenting_payload().then(|| Fragment {
                id: u32::from(h.identification()),
                offset: u32::from(h.fragments_offset().value()) * 8,
                more: h.more_fragments(),
            });
            Ok(IpPacket {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                proto: payload.ip_number.0,
                wire_len: total.max(hdr_len),
                frag,
                payload: payload.payload,
                payload_wire_len: total
                    .saturating_sub(hdr_len)
                    .max(payload.payload.len() as u32),
                header_checksum_ok: Some(ones_complement(0, h.slice()) == 0xffff),
            })
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let payload = v6.payload();
            let frag = ipv6_fragment(h.next_header().0, v6.extensions().slice());
            let declared = u32::from(h.payload_length());
            let ext_len = v6.extensions().slice().len() as u32;
            Ok(IpPacket {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                proto: payload.ip_number.0,
                wire_len: 40 + declared,
                frag,
                payload: payload.payload,
                payload_wire_len: declared
                    .saturating_sub(ext_len)
                    .max(payload.payload.len() as u32),
                header_checksum_ok: None,
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The flag byte (FIN=0x01 … CWR=0x80), as `fathom_model::TcpFlags` expects.
    pub flags: u8,
    pub window: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportHeader {
    Tcp(TcpHeader),
    Udp { src_port: u16, dst_port: u16 },
    Icmp { icmp_type: u8, code: u8 },
    Other,
}

impl TransportHeader {
    pub fn ports(&self) -> (u16, u16) {
        match self {
            TransportHeader::Tcp(t) => (t.src_port, t.dst_port),
            TransportHeader::Udp { src_port, dst_port } => (*src_port, *dst_port),
            _ => (0, 0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Transport<'a> {
    pub header: TransportHeader,
    /// Application payload that was captured.
    pub payload: &'a [u8],
    /// Application payload size on the wire; more than `payload.len()` when the capture was cut.
    pub payload_wire_len: u32,
    /// TCP/UDP checksum verdict, when the whole segment was captured and a checksum is present.
    pub checksum_ok: Option<bool>,
}

/// Decode the transport header of a complete (or reassembled) IP payload. `wire_len` is the
/// payload size on the wire, `l4` what was captured of it.
pub fn decode_transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &'a [u8],
    wire_len: u32,
) -> Result<Transport<'a>, DecodeError> {
    let complete = l4.len() as u32 >= wire_len;
    match IpNumber(proto) {
        IpNumber::TCP => {
            let h = TcpHeaderSlice::from_slice(l4).map_err(|_| DecodeError::BadTransport)?;
            let hl = h.slice().len();
            let flags = l4.get(13).copied().unwrap_or(0);
            let payload = l4.get(hl..).unwrap_or(&[]);
            let checksum_ok = complete.then(|| l4_checksum_ok(src, dst, proto, l4));
            Ok(Transport {
                header: TransportHeader::Tcp(TcpHeader {
                    src_port: h.source_port(),
                    dst_port: h.destination_port(),
                    seq: h.sequence_number(),
                    ack: h.acknowledgment_number(),
                    flags,
                    window: h.window_size(),
                }),
                payload,
                payload_wire_len: wire_len.saturating_sub(hl as u32).max(payload.len() as u32),
                checksum_ok,
            })
        }
        IpNumber::UDP => {
            let h = UdpHeaderSlice::from_slice(l4).map_err(|_| DecodeError::BadTransport)?;
            // The UDP length field bounds the payload (Ethernet padding follows otherwise).
            let udp_len = usize::from(h.length()).max(8);
            let end = udp_len.min(l4.len());
            let payload = l4.get(8..end).unwrap_or(&[]);
            let wire_payload = (udp_len as u32 - 8).min(wire_len.saturating_sub(8));
            let has_sum = h.checksum() != 0 || matches!(src, IpAddr::V6(_));
            let checksum_ok = (complete && has_sum && udp_len <= l4.len())
                .then(|| l4_checksum_ok(src, dst, proto, &l4[..udp_len]));
            Ok(Transport {
                header: TransportHeader::Udp {
                    src_port: h.source_port(),
                    dst_port: h.destination_port(),
                },
                payload,
                payload_wire_len: wire_payload.max(payload.len() as u32),
                checksum_ok,
            })
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            let (t, c) = match l4 {
                [t, c, ..] => (*t, *c),
                _ => return Err(DecodeError::BadTransport),
            };
            Ok(Transport {
                header: TransportHeader::Icmp {
                    icmp_type: t,
                    code: c,
                },
                payload: l4.get(4..).unwrap_or(&[]),
                payload_wire_len: wire_len.saturating_sub(4),
                checksum_ok: None,
            })
        }
        _ => Ok(Transport {
            header: TransportHeader::Other,
            payload: l4,
            payload_wire_len: wire_len,
            checksum_ok: None,
        }),
    }
}

/// One's-complement sum (RFC 1071) folded to 16 bits, continuing from `start`.
/// The 16-bit ones' complement sum of `data` (big-endian words, an odd byte padded) plus
/// `start`, as in RFC 1071. Summed four bytes at a time into 64 bits, then folded: the
/// carries out of each 16-bit half come back in at the fold (2^16 = 1 modulo 2^16 - 1), so
/// the result is the 16-bit word sum's, at a fraction of the additions.
fn ones_complement(start: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(start);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    match *words.remainder() {
        [a, b, c] => sum += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => sum += u64::from(u16::from_be_bytes([a, b])),
        [a] => sum += u64::from(a) << 8,
        _ => {}
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn l4_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
    // The pseudo-header, on the stack: this runs for every packet.
    let mut pseudo = [0u8; 40];
    let pseudo: &[u8] = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo[0..4].copy_from_slice(&s.octets());
            pseudo[4..8].copy_from_slice(&d.octets());
            pseudo[9] = proto;
            pseudo[10..12].copy_from_slice(&(segment.len() as u16).to_be_bytes());
            &pseudo[..12]
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo[0..16].copy_from_slice(&s.octets());
            pseudo[16..32].copy_from_slice(&d.octets());
            pseudo[32..36].copy_from_slice(&(segment.len() as u32).to_be_bytes());
            pseudo[39] = proto;
            &pseudo[..40]
        }
        _ => return false,
    };
    let partial = ones_complement(0, pseudo);
    ones_complement(u32::from(partial), segment) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next_header, 64]);
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv6_truncated_extension_chain_is_not_read_past_its_end() {
        // A hop-by-hop header announcing another hop-by-hop header that is not there (fuzz
        // finding: etherparse's extension iterator read past the validated slice).
        let p = ipv6(0, &[0, 0, 1, 4, 0, 0, 0, 0]);
        let ip = decode_ip(&p).expect("header decodes");
        assert_eq!(ip.frag, None);
        // Cut inside the second extension header too.
        let p = ipv6(0, &[0, 0, 1, 4, 0, 0, 0, 0, 17, 3]);
        assert_eq!(decode_ip(&p).map(|ip| ip.frag).ok().flatten(), None);
    }

    #[test]
    fn ipv6_fragment_header_after_hop_by_hop() {
        // Hop-by-hop → Fragment (offset 185 × 8, more fragments, id 0x01020304) → UDP.
        let mut ext = vec![44, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 0, 0x05, 0xc9, 1, 2, 3, 4]);
        ext.extend_from_slice(&[0; 8]);
        let p = ipv6(0, &ext);
        let ip = decode_ip(&p).expect("decodes");
        assert_eq!(
            ip.frag,
            Some(Fragment {
                id: 0x0102_0304,
                offset: 185 * 8,
                more: true
            })
        );
        // An atomic fragment (offset 0, no more fragments) is not fragmentation.
        let mut ext = vec![17, 0, 0, 0, 1, 2, 3, 4];
        ext.extend_from_slice(&[0; 8]);
        assert_eq!(decode_ip(&ipv6(44, &ext)).expect("decodes").frag, None);
    }

    // IPv4 + TCP SYN from tcpdump's tcp-handshake capture (valid checksums).
    fn syn() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let sum = !ones_complement(0, &p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut tcp = vec![
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 20];
        pseudo.extend_from_slice(&tcp);
        let sum = !ones_complement(0, &pseudo);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&tcp);
        p
    }

    #[test]
    fn decodes_tcp_and_verifies_checksums() {
        let p = syn();
        let ip = decode_ip(&p).unwrap();
        assert_eq!(ip.header_checksum_ok, Some(true));
        assert_eq!((ip.proto, ip.wire_len, ip.frag), (6, 40, None));
        let t =
            decode_transport(ip.src, ip.dst, ip.proto, ip.payload, ip.payload_wire_len).unwrap();
        assert_eq!(t.checksum_ok, Some(true));
        match t.header {
            TransportHeader::Tcp(h) => assert_eq!(
                (h.src_port, h.dst_port, h.seq, h.flags),
                (12345, 80, 1, 0x02)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_checksum_still_decodes() {
        let mut p = syn();
        p[36] ^= 0xff;
        let ip = decode_ip(&p).unwrap();
        let t =
            decode_transport(ip.src, ip.dst, ip.proto, ip.payload, ip.payload_wire_len).unwrap();
        assert_eq!(t.checksum_ok, Some(false));
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        assert_eq!(decode_ip(&[0x45, 0, 0]).unwrap_err(), DecodeError::BadIp);
        let p = syn();
        let ip = decode_ip(&p[..30]).unwrap();
        assert!(
            decode_transport(ip.src, ip.dst, ip.proto, ip.payload, ip.payload_wire_len).is_err()
        );
    }

    /// The word-at-a-time sum equals RFC 1071's 16-bit one on any data and start.
    fn ones_complement_16(start: u32, data: &[u8]) -> u16 {
        let mut sum = u64::from(start);
        for c in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    proptest::proptest! {
        #[test]
        fn ones_complement_is_the_16_bit_sum(
            start in 0u32..0x1_0000,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..1600),
        ) {
            proptest::prop_assert_eq!(ones_complement(start, &data), ones_complement_16(start, &data));
        }
    }
}
