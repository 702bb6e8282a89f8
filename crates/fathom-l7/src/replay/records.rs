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
//! - otherwise only (time, position) keys are sorted and the records are put in place by
//!   following the permutation's cycles: each is moved about once, into no new memory.

use fathom_model::Record;

/// At most this many records are reserved ahead (a guess, never a limit): a few hundred MB
/// of address space, most of it untouched when the guess is high.
const MAX_RESERVE: usize = 1 << 20;

#[derive(Default)]
pub struct RecordLog {
    records: Vec<Record>,
    /// Every record so far came no earlier than the one before it.
    in_order: bool,
    last_time: u64,
}

impl RecordLog {
    pub fn new() -> Self {
        RecordLog {
            in_order: true,
            ..Default::default()
        }
    }

    /// Expect about `n` records. Only a hint: if the address space cannot be had (strict
    /// overcommit), the vector grows as usual.
    pub fn reserve(&mut self, n: usize) {
        let _ = self.records.try_reserve(n.min(MAX_RESERVE));
    }

    pub fn push(&mut self, r: Record) {
        let t = r.time().0;
        self.in_order &= t >= self.last_time;
        self.last_time = t;
        self.records.push(r);
    }

    /// All records, sorted by time; records with equal times keep their arrival order.
    pub fn into_sorted(self) -> Vec<Record> {
        let mut v = self.records;
        if self.in_order {
            return v;
        }
        // Position breaks ties between equal times, so this unstable sort is stable.
        let mut keys: Vec<(u64, u32)> = v
            .iter()
            .enumerate()
            .map(|(i, r)| (r.time().0, i as u32))
            .collect();
        keys.sort_unstable();
        // Position p receives the record now at keys[p].1. Each cycle of that permutation is
        // walked once with swaps: the record a position needs is swapped in, and the one it
        // held travels on until it reaches the cycle's start, where it belongs.
        let mut done = vec![false; v.len()];
        for start in 0..v.len() {
            let mut cur = start;
            while !done[cur] {
                done[cur] = true;
                let src = keys[cur].1 as usize;
                if src == start {
                    break;
                }
                v.swap(cur, src);
                cur = src;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Record};
    use fathom_model::{Endpoint, Timestamp};

    fn rec(time: u64, tag: u64) -> Record {
        let ep = Endpoint::new("10.0.0.1".parse().unwrap(), 1);
        Record::L7(L7Record {
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
            log.push(rec(*t, *tag));
        }
        let mut want = input.clone();
        want.sort_by_key(|(t, _)| *t);
        assert_eq!(tags(&log.into_sorted()), want);
    }

    #[test]
    fn already_in_order_is_kept() {
        let mut log = RecordLog::new();
        for i in 0..1029 {
            log.push(rec(i / 3, i));
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
                log.push(rec(*t, i as u64));
            }
            let mut want: Vec<(u64, u64)> =
                times.iter().enumerate().map(|(i, t)| (*t, i as u64)).collect();
            want.sort_by_key(|(t, _)| *t);
            proptest::prop_assert_eq!(tags(&log.into_sorted()), want);
        }
    }
}
