//! HPACK decoding on its own: header blocks from a connection seen from its start, with
//! "capture gaps" (the decoder loses the dynamic table and continues tolerantly) and table
//! size limits chosen by the input.
#![no_main]

use fathom_l7::http2::hpack::HeaderDecoder;
use fathom_l7_fuzz::Step;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = fathom_l7_fuzz::parse(data);
    // The configured cap on the peer's table size: 0..64 KiB from the chunk byte.
    let cap = s.chunk * 256;
    let mut d = HeaderDecoder::new(cap);
    for step in &s.steps {
        match *step {
            Step::Data { bytes, .. } => {
                let mut n = 0usize;
                let out = d.decode(bytes, |name, value| n += name.len() + value.len());
                // Fields are handed over, not collected: a block cannot make memory grow.
                let _ = (out, n);
            }
            Step::Gap { len, .. } => {
                if len % 2 == 0 {
                    d.lose_state();
                } else {
                    d.set_max_allowed(len as usize, cap);
                }
            }
        }
    }
    let _ = d.exact();
});
