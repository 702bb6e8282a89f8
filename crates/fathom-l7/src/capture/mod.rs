//! Everything between a capture file and per-connection byte streams:
//!
//! - [`pcap`]: streaming pcap/pcapng reader with byte offsets for every error.
//! - [`link`]: link-layer headers (Ethernet, raw IP, NULL/loopback, Linux SLL/SLL2, PPP) → IP.
//! - [`decode`]: IPv4/IPv6 and TCP/UDP/ICMP headers (via `etherparse`), checksum accounting.
//! - [`ipfrag`]: bounded IPv4/IPv6 fragment reassembly.
//! - [`tcp`]: bounded per-direction TCP stream reassembly (order, overlaps, gaps, FIN/RST).
//! - [`writer`]: writing packets back out as a pcap file.

pub mod decode;
pub mod ipfrag;
pub mod link;
pub mod pcap;
pub mod tcp;
pub mod writer;

pub use decode::{decode_ip, decode_transport, IpPacket, Transport, TransportHeader};
pub use link::{strip_link, LinkError};
pub use pcap::{CaptureError, CaptureErrorKind, CapturePacket, CaptureReader};
