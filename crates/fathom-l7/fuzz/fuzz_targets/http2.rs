//! HTTP/2 + gRPC parser (frames, HPACK, streams).
#![no_main]

use fathom_l7::http2::Http2Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut Http2Parser::new(), data);
});
