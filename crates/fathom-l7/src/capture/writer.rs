//! Writing packets as a classic pcap file (nanosecond magic, host-independent little endian).
//! Classic pcap rather than pcapng because every tool reads it and one link type per file is
//! all `--write-pcap` needs.

use std::io::{self, Write};

pub struct PcapWriter<W: Write> {
    out: W,
    linktype: u32,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header at once so that even an empty result is a valid capture.
    pub fn new(mut out: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            linktype,
            packets: 0,
        })
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn write_packet(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.packets += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pcap::CaptureReader;

    #[test]
    fn round_trips_through_the_reader() {
        let mut w = PcapWriter::new(Vec::new(), 101, 65535).unwrap();
        w.write_packet(1_500_000_000_123_456_789, 60, &[0x45, 0, 0, 20])
            .unwrap();
        let bytes = w.finish().unwrap();
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts_ns, p.orig_len, p.linktype, p.data),
            (1_500_000_000_123_456_789, 60, 101, &[0x45, 0, 0, 20][..])
        );
        assert!(r.next_packet().unwrap().is_none());
    }
}
