//! Redis RESP2/RESP3 parser.
#![no_main]

use fathom_l7::redis::RedisParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut RedisParser::new(), data);
});
