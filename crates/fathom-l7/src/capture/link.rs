//! Link-layer headers: find where the IP packet starts in a captured frame.
//!
//! Done by hand because each of these headers is a few fixed bytes; what matters is knowing
//! the link types (the `LINKTYPE_*` registry) and being lax about oddities (NULL/loopback
//! headers are in the capturing host's byte order, PPP may or may not carry address/control).

/// LINKTYPE_* values handled here.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const PPP: u32 = 9;
    pub const RAW_BSD12: u32 = 12;
    pub const RAW_BSD14: u32 = 14;
    pub const PPP_HDLC: u32 = 50;
    pub const RAW: u32 = 101;
    pub const C_HDLC: u32 = 104;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const ETH_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The frame is shorter than its link header.
    Short,
    /// A valid frame that carries something other than IP (ARP, LLC, …): not an error, but
    /// nothing for this engine.
    NotIp,
    /// The capture's link type is not one this reader knows.
    UnsupportedLinkType(u32),
}

/// Where the IP packet starts in `frame`, for the given link type. The returned offset is used
/// both to decode and to rewrite frames when writing filtered captures.
pub fn strip_link(linktype: u32, frame: &[u8]) -> Result<usize, LinkError> {
    use linktype::*;
    match linktype {
        ETHERNET => ethernet(frame),
        RAW | RAW_BSD12 | RAW_BSD14 => ip_at(frame, 0),
        // These link types promise one IP version; anything else is malformed.
        IPV4 => version_at(frame, 0, 4),
        IPV6 => version_at(frame, 0, 6),
        NULL | LOOP => {
            // The 4-byte address family is host-order (NULL) or network-order (LOOP); the IP
            // version nibble that follows is the reliable signal.
            ip_at(frame, 4)
        }
        LINUX_SLL => {
            let proto = be16(frame, 14).ok_or(LinkError::Short)?;
            by_ethertype(frame, 16, proto)
        }
        LINUX_SLL2 => {
            let proto = be16(frame, 0).ok_or(LinkError::Short)?;
            by_ethertype(frame, 20, proto)
        }
        PPP | PPP_HDLC => ppp(frame, 0),
        C_HDLC => {
            let proto = be16(frame, 2).ok_or(LinkError::Short)?;
            by_ethertype(frame, 4, proto)
        }
        other => Err(LinkError::UnsupportedLinkType(other)),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip_at(frame: &[u8], at: usize) -> Result<usize, LinkError> {
    match frame.get(at).map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(at),
        Some(_) => Err(LinkError::NotIp),
        None => Err(LinkError::Short),
    }
}

fn version_at(frame: &[u8], at: usize, v: u8) -> Result<usize, LinkError> {
    match frame.get(at).map(|b| b >> 4) {
        Some(x) if x == v => Ok(at),
        // A wrong version under a single-version link type is a malformed frame.
        _ => Err(LinkError::Short),
    }
}

fn ethernet(frame: &[u8]) -> Result<usize, LinkError> {
    let mut at = 12;
    // Up to three stacked VLAN tags (QinQ and friends).
    for _ in 0..4 {
        let ty = be16(frame, at).ok_or(LinkError::Short)?;
        if ETH_VLAN.contains(&ty) {
            at += 4;
            continue;
        }
        if ty <= 1500 {
            // 802.3 length field: LLC/SNAP, not IP for our purposes.
            return Err(LinkError::NotIp);
        }
        return by_ethertype(frame, at + 2, ty);
    }
    Err(LinkError::NotIp)
}

fn by_ethertype(frame: &[u8], at: usize, ty: u16) -> Result<usize, LinkError> {
    match ty {
        ETH_IPV4 | ETH_IPV6 => {
            if frame.len() <= at {
                Err(LinkError::Short)
            } else {
                Ok(at)
            }
        }
        // PPPoE session: 6-byte header, then a PPP protocol field.
        ETH_PPPOE_SESSION => ppp(frame, at + 6),
        _ => Err(LinkError::NotIp),
    }
}

fn ppp(frame: &[u8], mut at: usize) -> Result<usize, LinkError> {
    if frame.get(at) == Some(&0xff) && frame.get(at + 1) == Some(&0x03) {
        at += 2;
    }
    // The protocol field may be compressed to one byte (odd low byte).
    let first = *frame.get(at).ok_or(LinkError::Short)?;
    let (proto, len) = if first & 1 == 1 {
        (u16::from(first), 1)
    } else {
        (be16(frame, at).ok_or(LinkError::Short)?, 2)
    };
    match proto {
        PPP_IPV4 | PPP_IPV6 => {
            if frame.len() <= at + len {
                Err(LinkError::Short)
            } else {
                Ok(at + len)
            }
        }
        _ => Err(LinkError::NotIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_with_vlan() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 0x45]);
        assert_eq!(strip_link(linktype::ETHERNET, &f), Ok(18));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0]);
        assert_eq!(strip_link(linktype::ETHERNET, &arp), Err(LinkError::NotIp));
        assert_eq!(
            strip_link(linktype::ETHERNET, &[0; 5]),
            Err(LinkError::Short)
        );
    }

    #[test]
    fn null_sll_ppp_raw() {
        assert_eq!(strip_link(linktype::NULL, &[2, 0, 0, 0, 0x45]), Ok(4));
        assert_eq!(strip_link(linktype::NULL, &[0, 0, 0, 30, 0x60]), Ok(4));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(strip_link(linktype::LINUX_SLL, &sll), Ok(16));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.push(0x45);
        assert_eq!(strip_link(linktype::LINUX_SLL2, &sll2), Ok(20));
        assert_eq!(strip_link(linktype::LOOP, &[0, 0, 0, 2, 0x45]), Ok(4));
        assert_eq!(strip_link(linktype::IPV4, &[0x60]), Err(LinkError::Short));
        assert_eq!(
            strip_link(linktype::PPP, &[0xff, 0x03, 0x00, 0x21, 0x45]),
            Ok(4)
        );
        assert_eq!(strip_link(linktype::PPP, &[0x21, 0x45]), Ok(1));
        assert_eq!(strip_link(linktype::RAW, &[0x45]), Ok(0));
        assert_eq!(strip_link(linktype::RAW, &[0x15]), Err(LinkError::NotIp));
        assert_eq!(
            strip_link(999, &[0x45]),
            Err(LinkError::UnsupportedLinkType(999))
        );
    }
}
