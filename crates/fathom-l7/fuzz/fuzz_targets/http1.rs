//! HTTP/1.x parser: arbitrary bytes in both directions, cut arbitrarily, with gaps.
#![no_main]

use fathom_l7::http1::Http1Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut Http1Parser::new(), data);
});
