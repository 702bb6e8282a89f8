//! DNS over TCP (length-prefixed messages in a byte stream).
#![no_main]

use fathom_l7::dns::{DnsParser, DnsTransport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut DnsParser::new(DnsTransport::Tcp), data);
});
