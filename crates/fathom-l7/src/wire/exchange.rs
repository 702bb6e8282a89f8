//! Turning the two halves of an exchange into an [`L7Exchange`], so that every parser fills
//! kind, times, latency and sizes the same way.

use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange};
use fathom_model::Timestamp;

/// One side of an exchange: when its first byte was seen and how many wire bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Half {
    pub ts: u64,
    pub bytes: u64,
}

impl Half {
    pub(crate) fn new(ts: u64, bytes: u64) -> Self {
        Half { ts, bytes }
    }
}

/// Builds an exchange. The kind follows from which halves exist unless `message` is set
/// (one-way messages: pushes, notifications, fire-and-forget commands). For one-sided
/// exchanges `request_time` holds the time of the half that was seen, as the model documents.
pub(crate) fn build(
    req: Option<Half>,
    resp: Option<Half>,
    message: bool,
    status: Option<String>,
    error: bool,
    detail: L7Detail,
) -> L7Exchange {
    let kind = match (message, req, resp) {
        (true, _, _) => ExchangeKind::Message,
        (false, Some(_), Some(_)) => ExchangeKind::RequestResponse,
        (false, None, Some(_)) => ExchangeKind::ResponseOnly,
        (false, _, None) => ExchangeKind::RequestOnly,
    };
    let request_time = req.or(resp).map(|h| Timestamp::from_nanos(h.ts));
    let response_time = resp.map(|h| Timestamp::from_nanos(h.ts));
    let latency_ns = match (req, resp) {
        (Some(q), Some(r)) => Some(r.ts.saturating_sub(q.ts)),
        _ => None,
    };
    L7Exchange {
        kind,
        request_time,
        response_time,
        latency_ns,
        request_bytes: req.map_or(0, |h| h.bytes),
        response_bytes: resp.map_or(0, |h| h.bytes),
        status,
        error,
        detail,
    }
}

/// Text from protocol bytes: lossy UTF-8, cut to `max` bytes (on a character boundary) so a
/// hostile peer cannot make records arbitrarily large.
pub(crate) fn lossy(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut s = s.into_owned();
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
