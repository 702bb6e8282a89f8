//! A replay on several threads: the calling thread reads the capture and runs the packet
//! side ([`Front`]: link, IP, defragmentation, sweep times); each worker thread runs the flow
//! engine for the flows whose canonical 5-tuple hashes to it. Records are merged by the key
//! every engine gives them ([`super::records::Order`]), so the output is the one-thread
//! output, record for record, and so are the statistics (sums). One difference: the flow
//! table limit (`max_flows`) is split evenly between the workers, so when it is reached the
//! flows evicted are not the same.
//!
//! Packets go to the workers in batches over bounded channels: memory stays bounded, and a
//! send costs far less than the packet's processing. Sweeps are decided here, from every
//! packet's time, and sent to every worker in place, so a worker ends idle flows exactly when
//! one engine seeing all packets would.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use fathom_model::Record;

use super::engine::Replayer;
use super::front::{Datagram, Front};
use super::records::{merge, Key};
use super::{ReplayError, ReplayOptions, ReplayReport, ReplayStats};
use crate::capture::pcap::CaptureReader;

/// A batch is sent when it holds this many items or bytes.
const BATCH_ITEMS: usize = 1024;
const BATCH_BYTES: usize = 512 * 1024;
/// Batches queued per worker before the reader waits.
const QUEUE: usize = 4;

enum Item {
    /// Packet number `push` leads to a sweep of idle flows at `now`.
    Sweep { push: u64, now: u64 },
    /// Packet number `push` carries (or completes) a datagram whose transport bytes are
    /// `l4` in the batch's bytes.
    Datagram {
        push: u64,
        ts: u64,
        data_ts: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        l4: Range<usize>,
        l4_wire: u32,
        wire_bytes: u64,
        packets: u32,
        interface: u32,
    },
}

#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    bytes: Vec<u8>,
}

impl Batch {
    fn add(&mut self, push: u64, d: &Datagram<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(d.l4);
        self.items.push(Item::Datagram {
            push,
            ts: d.ts,
            data_ts: d.data_ts,
            src: d.src,
            dst: d.dst,
            proto: d.proto,
            l4: start..self.bytes.len(),
            l4_wire: d.l4_wire,
            wire_bytes: d.wire_bytes,
            packets: d.packets,
            interface: d.interface,
        });
    }

    fn full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.bytes.len() >= BATCH_BYTES
    }
}

/// The worker a datagram's flow belongs to. The ports are read as the flow engine reads them
/// (TCP and UDP: the first four bytes; other protocols have none), and each side's address
/// and port are folded with an operation that ignores their order (`^`), so every datagram
/// of a flow, both directions, lands on the same worker.
fn shard_of(d: &Datagram<'_>, workers: usize) -> usize {
    let ports = match (d.proto, d.l4) {
        (6 | 17, [a, b, c, e, ..]) => {
            u64::from(u16::from_be_bytes([*a, *b]) ^ u16::from_be_bytes([*c, *e]))
        }
        _ => 0,
    };
    let fold = |ip: IpAddr| -> u64 {
        match ip {
            IpAddr::V4(v) => u64::from(u32::from(v)),
            IpAddr::V6(v) => {
                let x = u128::from(v);
                (x as u64) ^ ((x >> 64) as u64)
            }
        }
    };
    let x = (fold(d.src) ^ fold(d.dst)) ^ (ports << 32) ^ u64::from(d.proto);
    // A multiplicative mix (Fibonacci hashing), so that the high bits depend on every bit.
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) % workers as u64) as usize
}

type Output = (ReplayStats, Vec<Key>, Vec<Record>);

fn work(rx: Receiver<Batch>, recycle: Sender<Batch>, opts: ReplayOptions, hint: usize) -> Output {
    let mut engine = Replayer::new(opts).expect_records(hint);
    for mut batch in rx {
        for item in &batch.items {
            match item {
                Item::Sweep { push, now } => engine.sweep_at(*push, *now),
                Item::Datagram {
                    push,
                    ts,
                    data_ts,
                    src,
                    dst,
                    proto,
                    l4,
                    l4_wire,
                    wire_bytes,
                    packets,
                    interface,
                } => {
                    let d = Datagram {
                        ts: *ts,
                        data_ts: *data_ts,
                        src: *src,
                        dst: *dst,
                        proto: *proto,
                        l4: &batch.bytes[l4.clone()],
                        l4_wire: *l4_wire,
                        wire_bytes: *wire_bytes,
                        packets: *packets,
                        interface: *interface,
                    };
                    engine.datagram_at(*push, &d);
                }
            }
        }
        batch.items.clear();
        batch.bytes.clear();
        // The reader may be gone (it stops sending at the end); the batch is then dropped.
        let _ = recycle.send(batch);
    }
    engine.finish_keyed()
}

/// Replay `reader` on `workers` (at least 2) flow threads; `hint`: records expected.
pub fn run(
    mut reader: CaptureReader<'_>,
    opts: &ReplayOptions,
    workers: usize,
    hint: usize,
) -> Result<ReplayReport, ReplayError> {
    let mut wopts = opts.clone();
    wopts.max_flows = (opts.max_flows / workers).max(1);
    std::thread::scope(|scope| {
        let (recycle_tx, recycle_rx) = mpsc::channel::<Batch>();
        let mut queues: Vec<SyncSender<Batch>> = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
            let (recycle, o) = (recycle_tx.clone(), wopts.clone());
            threads.push(scope.spawn(move || work(rx, recycle, o, hint / workers)));
            queues.push(tx);
        }
        drop(recycle_tx);
        let send = |queue: &SyncSender<Batch>, batch: &mut Batch| {
            let fresh = recycle_rx.try_recv().unwrap_or_default();
            // A worker that is gone has panicked: its join below says so.
            let _ = queue.send(std::mem::replace(batch, fresh));
        };

        let mut front = Front::new(opts.frag);
        let mut stats = ReplayStats::default();
        let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::default()).collect();
        let mut push = 0u64;
        let failed = loop {
            let pkt = match reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            let step = front.push(&pkt, &mut stats);
            push += 1;
            if let Some(now) = step.sweep {
                for (b, q) in batches.iter_mut().zip(&queues) {
                    b.items.push(Item::Sweep { push, now });
                    if b.full() {
                        send(q, b);
                    }
                }
            }
            if let Some(d) = step.datagram() {
                let i = shard_of(&d, workers);
                batches[i].add(push, &d);
                if batches[i].full() {
                    send(&queues[i], &mut batches[i]);
                }
            }
        };
        front.finish(&mut stats);
        for (b, q) in batches.iter_mut().zip(&queues) {
            if !b.items.is_empty() {
                send(q, b);
            }
        }
        drop(queues);
        let mut runs = Vec::with_capacity(workers);
        for t in threads {
            let (s, keys, records) = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            stats.absorb(&s);
            runs.push((keys, records));
        }
        let report = ReplayReport {
            records: merge(runs),
            stats,
        };
        match failed {
            Some(e) => Err(ReplayError::new(e, report)),
            None => Ok(report),
        }
    })
}
