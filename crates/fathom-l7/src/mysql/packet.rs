//! MySQL packet framing: `length (3 bytes LE), sequence id, payload`. A payload of 2^24-1 bytes
//! continues in the next packet, so one logical message can span many packets (16 MB each);
//! only its first `max` bytes are kept, the rest passes through unbuffered.

use crate::wire::StreamBuf;

/// Payload length that means "continued in the next packet".
pub(crate) const MAX_PACKET: u32 = 0xff_ffff;

/// One logical message.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Sequence id of its first packet.
    pub seq: u8,
    pub ts: u64,
    /// Logical payload length (all packets).
    pub len: u64,
    /// Wire bytes, headers included.
    pub wire: u64,
    /// The first bytes of the payload (up to the configured maximum).
    pub data: Vec<u8>,
}

impl Message {
    pub(crate) fn first(&self) -> Option<u8> {
        self.data.first().copied()
    }
}

/// Reassembles logical messages from one direction's bytes.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub buf: StreamBuf,
    partial: Option<Message>,
    /// After a gap: the front bytes may be inside a packet. Only a header that starts a
    /// client command (sequence id 0, known command byte) is trusted; other bytes are skipped
    /// one at a time.
    pub resync: bool,
    /// Bytes skipped while resynchronising, not yet collected by the parser.
    pub skipped: u64,
}

pub(crate) enum Next {
    Message(Message),
    Wait,
}

impl Reader {
    /// Forgets partial state (gap).
    pub(crate) fn reset(&mut self) -> u64 {
        self.partial = None;
        self.buf.clear() as u64
    }

    /// Peeks at the next packet header: (payload length, sequence id).
    pub(crate) fn peek_header(&self) -> Option<(u32, u8)> {
        let d = self.buf.data();
        (d.len() >= 4).then(|| (u32::from_le_bytes([d[0], d[1], d[2], 0]), d[3]))
    }

    pub(crate) fn next(&mut self, max: usize) -> Next {
        loop {
            let Some((len, seq)) = self.peek_header() else {
                return Next::Wait;
            };
            if self.resync && self.partial.is_none() {
                // Commands start with sequence id 0; judge the rest on the length and the
                // first payload bytes (a few, so a bogus length cannot make us wait long).
                let need = 4 + (len as usize).min(9);
                let head = if seq == 0 {
                    self.buf.data().get(4..need)
                } else {
                    Some(&[][..])
                };
                let Some(head) = head else { return Next::Wait };
                if seq != 0 || !super::command::plausible(head, len) {
                    self.buf.consume(1);
                    self.skipped += 1;
                    continue;
                }
                self.resync = false;
            }
            let kept = self.partial.as_ref().map_or(0, |m| m.data.len());
            let want = (len as usize).min(max.saturating_sub(kept));
            if self.buf.len() < 4 + want {
                return Next::Wait;
            }
            let ts = self.buf.ts();
            let m = self.partial.get_or_insert_with(|| Message {
                seq,
                ts,
                len: 0,
                wire: 0,
                data: Vec::new(),
            });
            m.data.extend_from_slice(&self.buf.data()[4..4 + want]);
            m.len += len as u64;
            m.wire += 4 + len as u64;
            self.buf.skip_message(4 + len as u64);
            if len < MAX_PACKET {
                if let Some(m) = self.partial.take() {
                    return Next::Message(m);
                }
            }
            if self.buf.pending_skip() > 0 {
                // The continuation is still arriving; its header comes after the skip.
                return Next::Wait;
            }
        }
    }
}

/// Length-encoded integer.
pub(crate) fn lenenc(c: &mut crate::wire::Cursor<'_>) -> Option<u64> {
    match c.u8()? {
        n @ 0..=0xfa => Some(n as u64),
        0xfc => c.le_u16().map(u64::from),
        0xfd => c.le_u24().map(u64::from),
        0xfe => c.le_u64(),
        _ => None,
    }
}

/// Length-encoded string.
pub(crate) fn lenenc_bytes<'a>(c: &mut crate::wire::Cursor<'a>) -> Option<&'a [u8]> {
    let n = lenenc(c)?;
    c.take(usize::try_from(n).ok()?)
}
