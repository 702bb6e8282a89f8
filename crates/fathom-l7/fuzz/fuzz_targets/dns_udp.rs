//! DNS over UDP: each step is one datagram; also the wire decoder on its own.
#![no_main]

use fathom_l7::dns::{wire, DnsParser, DnsTransport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse(data);
    fathom_l7_fuzz::drive_datagrams(&mut DnsParser::new(DnsTransport::Udp), data);
});
