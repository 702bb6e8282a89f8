//! HPACK Huffman decoding (RFC 7541 §5.2, Appendix B) for the tolerant decoder.
//!
//! The code is canonical: within one code length, codes are consecutive and ordered by symbol
//! value. So the code lengths alone define it, and decoding needs, per length, the first code
//! and where its symbols start — a few hundred bytes of tables instead of a tree or hash map.

use std::sync::OnceLock;

/// Code length of each symbol 0..=255 and of EOS (256), from RFC 7541 Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;

struct Tables {
    /// First code of each length (index = length).
    first: [u32; 31],
    count: [u32; 31],
    /// Index into `symbols` of the first symbol of each length.
    offset: [usize; 31],
    /// Symbols ordered by (length, value).
    symbols: Vec<u16>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut count = [0u32; 31];
        for &l in &CODE_LENGTHS {
            count[l as usize] += 1;
        }
        let mut first = [0u32; 31];
        let mut offset = [0usize; 31];
        let (mut code, mut at) = (0u32, 0usize);
        for len in 1..31 {
            first[len] = code;
            offset[len] = at;
            code = (code + count[len]) << 1;
            at += count[len] as usize;
        }
        let mut symbols: Vec<u16> = (0..=EOS).collect();
        symbols.sort_by_key(|&s| (CODE_LENGTHS[s as usize], s));
        Tables {
            first,
            count,
            offset,
            symbols,
        }
    })
}

/// Decodes a Huffman-coded string; `None` if it contains EOS, bad padding or a code that
/// does not exist.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let t = tables();
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | ((byte >> shift) & 1) as u32;
            len += 1;
            if len > 30 {
                return None;
            }
            let rel = code.wrapping_sub(t.first[len]);
            if code >= t.first[len] && rel < t.count[len] {
                let sym = t.symbols[t.offset[len] + rel as usize];
                if sym == EOS {
                    return None;
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: at most 7 bits, all ones (the most significant bits of EOS).
    (len <= 7 && code == (1u32 << len) - 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_examples() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
                .collect::<Vec<u8>>()
        };
        assert_eq!(
            decode(&hex("f1e3c2e5f23a6ba0ab90f4ff")).as_deref(),
            Some(&b"www.example.com"[..])
        );
        assert_eq!(
            decode(&hex("a8eb10649cbf")).as_deref(),
            Some(&b"no-cache"[..])
        );
        assert_eq!(
            decode(&hex("25a849e95ba97d7f")).as_deref(),
            Some(&b"custom-key"[..])
        );
        assert_eq!(decode(&hex("6402")).as_deref(), Some(&b"302"[..]));
        // EOS inside, and padding that is not all ones.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode(&[0x00]), None);
    }

    #[test]
    fn agrees_with_loona_on_random_input() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 12) as usize;
            let bytes: Vec<u8> = (0..n).map(|i| (seed >> (i * 5)) as u8).collect();
            let theirs = loona_hpack::huffman::HuffmanDecoder::new()
                .decode(&bytes)
                .ok();
            assert_eq!(decode(&bytes), theirs, "{bytes:02x?}");
        }
    }
}
