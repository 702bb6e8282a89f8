//! Inference and the session layer: a connection of unknown protocol (TCP or UDP, any server
//! port) fed arbitrary chunks in both directions with gaps; whatever protocol the first bytes
//! pick is then driven with the rest.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use fathom_l7::session::{Connection, SessionOptions, Transport};
use fathom_l7_fuzz::Step;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0: bit 0 UDP, bit 1 a tiny inference buffer (the overflow path); bytes 1-2: the
    // server port (only orders the candidates); the rest is a script.
    if data.len() < 3 {
        return;
    }
    let udp = data[0] & 1 != 0;
    let mut opts = SessionOptions::default();
    if data[0] & 2 != 0 {
        opts.max_inference_bytes = 64;
        opts.max_inference_datagrams = 2;
    }
    let port = u16::from_be_bytes([data[1], data[2]]);
    let transport = if udp { Transport::Udp } else { Transport::Tcp };
    let client = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
    let server = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), port));
    let mut conn = Connection::new(client, server, transport, &opts);
    let s = fathom_l7_fuzz::parse(&data[3..]);
    let mut out = Vec::new();
    for step in &s.steps {
        match *step {
            Step::Data { dir, ts, bytes } => {
                if udp || s.chunk == 0 {
                    conn.feed(dir, ts, bytes, &mut out);
                } else {
                    for piece in bytes.chunks(s.chunk) {
                        conn.feed(dir, ts, piece, &mut out);
                    }
                }
            }
            Step::Gap { dir, len } => conn.gap(dir, len),
        }
        out.clear();
    }
    conn.finish(s.end_ts, &mut out);
    let _ = (conn.protocol(), conn.stats());
});
