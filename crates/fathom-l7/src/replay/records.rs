//! Where a replay's records wait until the end, when they come out sorted by time.
//!
//! A [`Record`] is large (hundreds of bytes) and a capture yields hundreds of thousands of
//! them. Growing one `Vec` means copying everything at each doubling into freshly zeroed
//! pages, and a stable sort of the records themselves moves them again through a scratch
//! buffer as large as the input: profiles of `fathom replay` showed more time in page zeroing
//! and memmove than in parsing. So records go into fixed-size chunks that never move, only
//! their (time, arrival) keys are sorted, and each record is moved once into the result.

use fathom_model::Record;

/// Records per chunk: large enough that chunk bookkeeping is noise, small enough that the
/// last chunk's unused capacity is.
const CHUNK: usize = 1024;

#[derive(Default)]
pub struct RecordLog {
    chunks: Vec<Vec<Option<Record>>>,
    len: usize,
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

    pub fn push(&mut self, r: Record) {
        let t = r.time().0;
        self.in_order &= t >= self.last_time;
        self.last_time = t;
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(Some(r)),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(Some(r));
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// All records, sorted by time; records with equal times keep their arrival order.
    pub fn into_sorted(self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.len);
        let mut chunks = self.chunks;
        if self.in_order {
            out.extend(chunks.into_iter().flatten().flatten());
            return out;
        }
        // (time, chunk, index): the position breaks ties, so this unstable sort is stable.
        let mut keys: Vec<(u64, u32, u32)> = Vec::with_capacity(self.len);
        for (c, chunk) in chunks.iter().enumerate() {
            for (i, r) in chunk.iter().enumerate() {
                if let Some(r) = r {
                    keys.push((r.time().0, c as u32, i as u32));
                }
            }
        }
        keys.sort_unstable();
        for (_, c, i) in keys {
            if let Some(r) = chunks
                .get_mut(c as usize)
                .and_then(|chunk| chunk.get_mut(i as usize))
                .and_then(Option::take)
            {
                out.push(r);
            }
        }
        out
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
    fn sorted_by_time_stable_across_chunks() {
        // Times cycle so that equal times sit in different chunks, out of order.
        let n = 3 * CHUNK as u64 + 17;
        let input: Vec<(u64, u64)> = (0..n).map(|i| ((i * 7919) % 13, i)).collect();
        let mut log = RecordLog::new();
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
        for i in 0..(CHUNK as u64 + 5) {
            log.push(rec(i / 3, i));
        }
        let want: Vec<(u64, u64)> = (0..(CHUNK as u64 + 5)).map(|i| (i / 3, i)).collect();
        assert_eq!(tags(&log.into_sorted()), want);
        assert!(RecordLog::new().into_sorted().is_empty());
    }
}
