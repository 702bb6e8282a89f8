//! gRPC over HTTP/2: counting length-prefixed messages in DATA payloads, the method path, and
//! the status trailers (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>).

/// Counts `[compressed flag][u32 length][message]` frames in a byte stream that arrives in
/// arbitrary pieces (DATA frame payloads).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageCounter {
    /// Bytes of the current 5-byte prefix seen so far.
    prefix_seen: u8,
    prefix: [u8; 5],
    /// Message bytes still to come.
    left: u64,
    pub messages: u32,
    pub message_bytes: u64,
}

impl MessageCounter {
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = (data.len() as u64).min(self.left);
                self.left -= n;
                data = &data[n as usize..];
                continue;
            }
            self.prefix[self.prefix_seen as usize] = data[0];
            self.prefix_seen += 1;
            data = &data[1..];
            if self.prefix_seen == 5 {
                self.prefix_seen = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                // A message counts when its prefix is complete; its body may still be coming.
                self.messages = self.messages.saturating_add(1);
                self.message_bytes += len as u64;
                self.left = len as u64;
            }
        }
    }
}

/// `/package.Service/Method` → (service, method).
pub(crate) fn split_path(path: &str) -> (Option<String>, Option<String>) {
    let p = path.strip_prefix('/').unwrap_or(path);
    match p.rsplit_once('/') {
        Some((s, m)) if !s.is_empty() && !m.is_empty() => {
            (Some(s.to_string()), Some(m.to_string()))
        }
        _ => (None, None),
    }
}

/// grpc-message is percent-encoded (RFC 3986 style, UTF-8); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Canonical status code names.
pub(crate) fn status_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_across_pieces() {
        let mut stream = vec![0, 0, 0, 0, 3, b'a', b'b', b'c', 1, 0, 0, 0, 0];
        stream.extend_from_slice(&[0, 0, 0, 1, 0]);
        stream.extend(std::iter::repeat_n(7u8, 256));
        for cut in 1..stream.len() {
            let mut c = MessageCounter::default();
            for piece in stream.chunks(cut) {
                c.feed(piece);
            }
            assert_eq!((c.messages, c.message_bytes), (3, 259));
        }
    }

    #[test]
    fn paths_and_messages() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            (Some("helloworld.Greeter".into()), Some("SayHello".into()))
        );
        assert_eq!(split_path("/"), (None, None));
        assert_eq!(
            percent_decode(b"no%20such%20user%e2%9c%93"),
            "no such user\u{2713}"
        );
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%4"), "%4");
    }
}
