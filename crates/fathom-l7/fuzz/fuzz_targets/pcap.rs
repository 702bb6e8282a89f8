//! The capture path end to end: pcap/pcapng reading, link/IP/TCP/UDP decoding, IP fragment
//! and TCP stream reassembly, flows, sessions and every parser, from arbitrary file bytes.
#![no_main]

use fathom_l7::replay::{replay_reader, ReplayOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the options: defaults, or small tables (eviction paths), or flows only.
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mut opts = ReplayOptions::default();
    match mode % 3 {
        1 => {
            opts.max_flows = 4;
            opts.session.max_connections = 4;
            opts.session.max_inference_bytes = 256;
            opts.tcp.max_ooo_bytes = 4096;
            opts.tcp.max_ooo_segments = 8;
            opts.frag.max_pending = 4;
        }
        2 => opts.l7 = false,
        _ => {}
    }
    // A corrupt file is an error with a partial report, never a panic.
    let report = match replay_reader(file, &opts) {
        Ok(r) => r,
        Err(e) => *e.report,
    };
    assert!(report.stats.l7_records as usize <= report.records.len());
});
