//! Where a replay's records wait until the end, when they come out sorted by time.
//!
//! A [`Record`] is large (hundreds of bytes) and a capture yields hundreds of thousands of
//! them. Profiles of `fathom replay` showed more time in page faults, page zeroing and
//! memmove than in parsing: growing a `Vec` copies everything at each doubling into freshly
//! zeroed pages, and a stable sort of the records themselves moves them again through a
//! scratch buffer as large as half the input. So:
//! - the vector is reserved up front from an estimate of the record count (the capture's
//!   size): capacity that is never written costs address space only, not memory;
//! - records usually arrive in time order, and then nothing is sorted;
//! - otherwise only (time, place produced) keys are sorted and the records are put in place
//!   by following the permutation's cycles: each is moved about once, into no new memory;
//! - a sharded replay's threads each sort their own records, which are then merged by key.

use fathom_model::Record;

/// At most this many records are reserved ahead (a guess, never a limit): a few hundred MB
/// of address space, most of it untouched when the guess is high.
const MAX_RESERVE: usize = 1 << 20;

/// Where a record was produced, which decides the order of records with equal times: while
/// handling packet `packet` (counting from 1; `u64::MAX` at the end of input), either by
/// that packet (`flow` = `u64::MAX`) or by ending the flow opened by packet `flow` (sweeps
/// and the end of input, which end flows in the order they were opened, and before the
/// packet's own records). This is the order in which a single engine produces records, and
/// a sharded replay's engines agree on it: its merged output is the single engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Order {
    packet: u64,
    flow: u64,
}

impl Order {
    pub fn packet(packet: u64) -> Order {
        Order {
            packet,
            flow: u64::MAX,
        }
    }

    pub fn flow(packet: u64, opened_at: u64) -> Order {
        Order {
            packet,
            flow: opened_at,
        }
    }
}

/// A record's place in the output: time, then where it was produced, then its rank there.
pub type Key = (u64, Order, u32);

#[derive(Default)]
pub struct RecordLog {
    records: Vec<Record>,
    keys: Vec<Key>,
    /// Every record so far came after the one before it.
    in_order: bool,
}

impl RecordLog {
    pub fn new() -> Self {
        RecordLog {
            in_order: true,
            ..Default::default()
        }
    }

    /// Expect about `n` records. Only a hint: if the address space cannot be had (strict
    /// overcommit), the vectors grow as usual.
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(MAX_RESERVE);
        let _ = self.records.try_reserve(n);
        let _ = self.keys.try_reserve(n);
    }

    /// `r`, produced at `by`; records produced at the same place must be pushed in order.
    pub fn push(&mut self, r: Record, by: Order) {
        let rank = match self.keys.last() {
            Some(&(_, o, rank)) if o == by => rank + 1,
            _ => 0,
        };
        let key = (r.time().0, by, rank);
        if let Some(last) = self.keys.last() {
            self.in_order &= key > *last;
        }
        self.keys.push(key);
        self.records.push(r);
    }

    /// All records, sorted by time; records with equal times come in the order they were
    /// produced (see [`Order`]).
    pub fn into_sorted(self) -> Vec<Record> {
        self.into_sorted_keyed().1
    }

    /// As [`RecordLog::into_sorted`], with each record's key, for merging.
    pub fn into_sorted_keyed(self) -> (Vec<Key>, Vec<Record>) {
        let (mut keys, mut v) = (self.keys, self.records);
        if self.in_order {
            return (keys, v);
        }
        let order = sort_in_place(&keys, &mut v);
        keys.clear();
        keys.extend(order.iter().map(|(k, _)| *k));
        (keys, v)
    }
}

/// Sort `v` by `keys` (one per record, unique) without moving records into new memory:
/// only (key, position) pairs are sorted, then the records are put in place by following the
/// permutation's cycles, each moved about once. Returns the sorted pairs.
fn sort_in_place(keys: &[Key], v: &mut [Record]) -> Vec<(Key, u32)> {
    let mut order: Vec<(Key, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32))
        .collect();
    // Keys are unique: an unstable sort is exact.
    order.sort_unstable();
    // Position p receives the record now at order[p].1. Each cycle of that permutation is
    // walked once with swaps: the record a position needs is swapped in, and the one it held
    // travels on until it reaches the cycle's start, where it belongs.
    let mut done = vec![false; v.len()];
    for start in 0..v.len() {
        let mut cur = start;
        while !done[cur] {
            done[cur] = true;
            let src = order[cur].1 as usize;
            if src == start {
                break;
            }
            v.swap(cur, src);
            cur = src;
        }
    }
    order
}

/// Sorted runs of records (from [`RecordLog::into_sorted_keyed`], one per shard) merged
/// into one by key: each record is moved once, in sequence (sorting them in place after
/// appending the runs to one another moves most of them three times, at random places).
pub fn merge(runs: Vec<(Vec<Key>, Vec<Record>)>) -> Vec<Record> {
    let total = runs.iter().map(|r| r.1.len()).sum();
    let mut out = Vec::with_capacity(total);
    let mut runs: Vec<_> = runs
        .into_iter()
        .map(|(k, r)| k.into_iter().zip(r).peekable())
        .collect();
    // Few runs (one per thread): a scan for the least head is cheaper than a heap.
    while let Some((_, i)) = runs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, run)| run.peek().map(|(k, _)| (*k, i)))
        .min()
    {
        if let Some((_, r)) = runs[i].next() {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Record};
    use fathom_model::{Endpoint, Timestamp};

    fn rec(time: u64, tag: u64) -> Record {
        let ep = Endpoint::new("10.0.0.1".parse().unwrap(), 1);
        Record::from(L7Record {
            time: Timestamp(time),
            source: ep.clone(),
            destination: ep,
            process: None,
            flow_id: None,
            tls_plaintext: false,
            exchange: L7Exchange {
                kind: ExchangeKind::RequestOnly,
                request_time: None,
                response_time: None,
                latency_ns: None,
                request_bytes: tag,
                response_bytes: 0,
                status: None,
                error: false,
                detail: L7Detail::Redis(Default::default()),
            },
        })
    }

    fn tags(v: &[Record]) -> Vec<(u64, u64)> {
        v.iter()
            .map(|r| match r {
                Record::L7(l) => (l.time.0, l.exchange.request_bytes),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn sorted_by_time_and_stable() {
        // Times cycle so that equal times are far apart, out of order.
        let n = 3 * 1024 + 17;
        let input: Vec<(u64, u64)> = (0..n).map(|i| ((i * 7919) % 13, i)).collect();
        let mut log = RecordLog::new();
        log.reserve(10);
        for (t, tag) in &input {
            log.push(rec(*t, *tag), Order::packet(*tag));
        }
        let mut want = input.clone();
        want.sort_by_key(|(t, _)| *t);
        assert_eq!(tags(&log.into_sorted()), want);
    }

    #[test]
    fn already_in_order_is_kept() {
        let mut log = RecordLog::new();
        for i in 0..1029 {
            log.push(rec(i / 3, i), Order::packet(i));
        }
        let want: Vec<(u64, u64)> = (0..1029).map(|i| (i / 3, i)).collect();
        assert_eq!(tags(&log.into_sorted()), want);
        assert!(RecordLog::new().into_sorted().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_order_comes_out_stably_sorted(times in proptest::collection::vec(0u64..20, 0..200)) {
            let mut log = RecordLog::new();
            for (i, t) in times.iter().enumerate() {
                log.push(rec(*t, i as u64), Order::packet(i as u64));
            }
            let mut want: Vec<(u64, u64)> =
                times.iter().enumerate().map(|(i, t)| (*t, i as u64)).collect();
            want.sort_by_key(|(t, _)| *t);
            proptest::prop_assert_eq!(tags(&log.into_sorted()), want);
        }
    }
}
