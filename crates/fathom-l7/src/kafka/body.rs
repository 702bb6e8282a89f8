//! Bounded readers for the parts of Kafka messages a record needs: the request header, topic
//! names of Produce/Fetch/Metadata requests, and the first error code of common responses.
//!
//! Field layouts follow Kafka's message definitions (clients/src/main/resources/common/message,
//! as generated into the `kafka-protocol` crate) for every version: fields appear, move or
//! switch to compact encodings at the versions noted inline. Every read is bounds-checked;
//! running out of (kept) bytes just ends the walk with what was found so far.

use crate::wire::{lossy, Cursor};

/// Topics kept per record.
pub(crate) const MAX_TOPICS: usize = 16;
/// Elements walked per array (a hostile count cannot make the walk long).
const MAX_WALK: u32 = 10_000;

/// A cursor that knows whether the message uses compact (flexible) encodings.
pub(crate) struct R<'a> {
    pub c: Cursor<'a>,
    flex: bool,
}

impl<'a> R<'a> {
    pub(crate) fn new(data: &'a [u8], flex: bool) -> Self {
        R {
            c: Cursor::new(data),
            flex,
        }
    }

    fn i8(&mut self) -> Option<i8> {
        self.c.u8().map(|b| b as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        self.c.be_i16()
    }
    fn i32(&mut self) -> Option<i32> {
        self.c.be_i32()
    }
    fn i64(&mut self) -> Option<i64> {
        self.c.be_i64()
    }

    /// Nullable string (STRING / COMPACT_STRING).
    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let len = if self.flex {
            match self.c.uvarint()? {
                0 => return Some(None),
                n => n as usize - 1,
            }
        } else {
            match self.c.be_i16()? {
                -1 => return Some(None),
                n if n < 0 => return None,
                n => n as usize,
            }
        };
        self.c.take(len).map(Some)
    }

    /// Array length (ARRAY / COMPACT_ARRAY); `None` inside for a null array.
    fn array(&mut self) -> Option<Option<u32>> {
        if self.flex {
            match self.c.uvarint()? {
                0 => Some(None),
                n => Some(Some(n - 1)),
            }
        } else {
            match self.c.be_i32()? {
                -1 => Some(None),
                n if n < 0 => None,
                n => Some(Some(n as u32)),
            }
        }
    }

    /// BYTES / COMPACT_BYTES (records): skipped.
    fn skip_bytes(&mut self) -> Option<()> {
        let len = if self.flex {
            match self.c.uvarint()? {
                0 => return Some(()),
                n => n as usize - 1,
            }
        } else {
            match self.c.be_i32()? {
                -1 => return Some(()),
                n if n < 0 => return None,
                n => n as usize,
            }
        };
        self.c.skip(len)
    }

    fn uuid(&mut self) -> Option<[u8; 16]> {
        let b = self.c.take(16)?;
        let mut u = [0; 16];
        u.copy_from_slice(b);
        Some(u)
    }

    /// Tagged fields at the end of a flexible structure.
    fn tagged(&mut self) -> Option<()> {
        if !self.flex {
            return Some(());
        }
        let n = self.c.uvarint()?;
        for _ in 0..n.min(MAX_WALK) {
            self.c.uvarint()?;
            let size = self.c.uvarint()? as usize;
            self.c.skip(size)?;
        }
        Some(())
    }

    /// Skips an array of fixed-size elements.
    fn skip_fixed_array(&mut self, elem: usize) -> Option<()> {
        let n = self.array()?.unwrap_or(0) as usize;
        self.c.skip(n.checked_mul(elem)?)
    }
}

/// Request header (v1/v2): api key, version, correlation id, client id. The client id is a
/// classic nullable string even in header v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// Bytes of the header (where the body starts).
    pub len: usize,
}

pub(crate) fn request_header(data: &[u8]) -> Option<RequestHeader> {
    let mut c = Cursor::new(data);
    let api_key = c.be_i16()?;
    let api_version = c.be_i16()?;
    let correlation_id = c.be_i32()?;
    let client_id = match c.be_i16()? {
        -1 => None,
        n if n < 0 => return None,
        n => Some(lossy(c.take(n as usize)?, 256)),
    };
    let mut r = R {
        c,
        flex: super::names::flexible_request(api_key, api_version),
    };
    r.tagged()?;
    Some(RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
        len: r.c.pos(),
    })
}

/// A topic named or identified in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    Name(String),
    Id([u8; 16]),
}

fn topic_ref(r: &mut R<'_>, by_id: bool) -> Option<Topic> {
    if by_id {
        r.uuid().map(Topic::Id)
    } else {
        Some(Topic::Name(lossy(r.string()?.unwrap_or_default(), 256)))
    }
}

/// Kafka nests per-partition data inside per-topic arrays. Walk both levels, bounded, reading
/// each level's tagged-field trailer here; the caller reads the fields of one partition.
fn each_topic_partition(
    r: &mut R<'_>,
    topic_by_id: bool,
    mut on_topic: impl FnMut(Topic),
    mut on_partition: impl FnMut(&mut R<'_>) -> Option<()>,
) -> Option<()> {
    let n = r.array()?.unwrap_or(0);
    for _ in 0..n.min(MAX_WALK) {
        on_topic(topic_ref(r, topic_by_id)?);
        let parts = r.array()?.unwrap_or(0);
        for _ in 0..parts.min(MAX_WALK) {
            on_partition(r)?;
            r.tagged()?;
        }
        r.tagged()?;
    }
    Some(())
}

fn push(topics: &mut Vec<Topic>, t: Topic) {
    if topics.len() < MAX_TOPICS && !topics.contains(&t) {
        topics.push(t);
    }
}

/// What a request says that the record reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    pub topics: Vec<Topic>,
    /// Produce with acks=0: the broker sends no response.
    pub no_response: bool,
}

pub(crate) fn request_body(key: i16, v: i16, flex: bool, data: &[u8]) -> RequestInfo {
    let mut info = RequestInfo::default();
    let mut r = R::new(data, flex);
    let _ = match key {
        0 => produce_request(&mut r, v, &mut info),
        1 => fetch_request(&mut r, v, &mut info),
        3 => metadata_request(&mut r, v, &mut info),
        _ => None,
    };
    info
}

fn produce_request(r: &mut R<'_>, v: i16, info: &mut RequestInfo) -> Option<()> {
    if v >= 3 {
        r.string()?; // transactional_id
    }
    let acks = r.i16()?;
    info.no_response = acks == 0;
    r.i32()?; // timeout_ms
    each_topic_partition(
        r,
        v >= 13,
        |t| push(&mut info.topics, t),
        |r| {
            r.i32()?; // index
            r.skip_bytes()?; // records
            Some(())
        },
    )
}

fn fetch_request(r: &mut R<'_>, v: i16, info: &mut RequestInfo) -> Option<()> {
    if v <= 14 {
        r.i32()?; // replica_id (later a tagged field)
    }
    r.i32()?; // max_wait_ms
    r.i32()?; // min_bytes
    if v >= 3 {
        r.i32()?; // max_bytes
    }
    if v >= 4 {
        r.i8()?; // isolation_level
    }
    if v >= 7 {
        r.i32()?; // session_id
        r.i32()?; // session_epoch
    }
    each_topic_partition(
        r,
        v >= 13,
        |t| push(&mut info.topics, t),
        |r| {
            r.i32()?; // partition
            if v >= 9 {
                r.i32()?; // current_leader_epoch
            }
            r.i64()?; // fetch_offset
            if v >= 12 {
                r.i32()?; // last_fetched_epoch
            }
            if v >= 5 {
                r.i64()?; // log_start_offset
            }
            r.i32()?; // partition_max_bytes
            Some(())
        },
    )
}

fn metadata_request(r: &mut R<'_>, v: i16, info: &mut RequestInfo) -> Option<()> {
    let Some(n) = r.array()? else { return Some(()) }; // null: all topics
    for _ in 0..n.min(MAX_WALK) {
        let id = if v >= 10 { Some(r.uuid()?) } else { None };
        match (r.string()?, id) {
            (Some(name), _) => push(&mut info.topics, Topic::Name(lossy(name, 256))),
            (None, Some(id)) => push(&mut info.topics, Topic::Id(id)),
            _ => {}
        }
        r.tagged()?;
    }
    Some(())
}

/// What a response says that the record reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ResponseInfo {
    /// First non-zero error code met, or 0 when the walk found only successes.
    pub error_code: Option<i16>,
    /// Metadata responses: topic names and their ids.
    pub topics: Vec<String>,
    pub topic_ids: Vec<([u8; 16], String)>,
}

/// Records the first non-zero error; returns `None` (stop walking) once one is found.
fn error(info: &mut ResponseInfo, code: i16) -> Option<()> {
    if code != 0 {
        info.error_code = Some(code);
        return None;
    }
    info.error_code.get_or_insert(0);
    Some(())
}

pub(crate) fn response_body(key: i16, v: i16, flex: bool, data: &[u8]) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let mut r = R::new(data, flex);
    let throttle_first = |min: i16| v >= min;
    let _ = match key {
        0 => produce_response(&mut r, v, &mut info),
        1 => fetch_response(&mut r, v, &mut info),
        2 => list_offsets_response(&mut r, v, &mut info),
        3 => metadata_response(&mut r, v, &mut info),
        8 => offset_commit_response(&mut r, v, &mut info),
        // Responses whose first field (after throttle_time_ms from some version on) is the
        // error code: FindCoordinator (before v4 batched it), JoinGroup, Heartbeat, LeaveGroup,
        // SyncGroup, ListGroups, SaslHandshake, ApiVersions, InitProducerId,
        // AddOffsetsToTxn, EndTxn, SaslAuthenticate.
        10 if v < 4 => top_error(&mut r, throttle_first(1), &mut info),
        11 => top_error(&mut r, throttle_first(2), &mut info),
        12..=14 | 16 => top_error(&mut r, throttle_first(1), &mut info),
        17 | 18 | 36 => top_error(&mut r, false, &mut info),
        22 | 25 | 26 => top_error(&mut r, true, &mut info),
        15 => {
            // DescribeGroups: the first group's error.
            (|| {
                if v >= 1 {
                    r.i32()?;
                }
                r.array()?;
                error(&mut info, r.i16()?)
            })()
        }
        19 | 20 => {
            // CreateTopics / DeleteTopics: per topic name (and id), then the error.
            (|| {
                if v >= if key == 19 { 2 } else { 1 } {
                    r.i32()?;
                }
                r.array()?;
                r.string()?;
                if (key == 19 && v >= 7) || (key == 20 && v >= 6) {
                    r.uuid()?;
                }
                error(&mut info, r.i16()?)
            })()
        }
        _ => None,
    };
    info
}

fn top_error(r: &mut R<'_>, throttle: bool, info: &mut ResponseInfo) -> Option<()> {
    if throttle {
        r.i32()?;
    }
    error(info, r.i16()?)
}

fn produce_response(r: &mut R<'_>, v: i16, info: &mut ResponseInfo) -> Option<()> {
    each_topic_partition(
        r,
        v >= 13,
        |_| {},
        |r| {
            r.i32()?; // index
            error(info, r.i16()?)?;
            r.i64()?; // base_offset
            if v >= 2 {
                r.i64()?; // log_append_time_ms
            }
            if v >= 5 {
                r.i64()?; // log_start_offset
            }
            if v >= 8 {
                let errs = r.array()?.unwrap_or(0);
                for _ in 0..errs.min(MAX_WALK) {
                    r.i32()?;
                    r.string()?;
                    r.tagged()?;
                }
                r.string()?; // error_message
            }
            Some(())
        },
    )
}

fn fetch_response(r: &mut R<'_>, v: i16, info: &mut ResponseInfo) -> Option<()> {
    if v >= 1 {
        r.i32()?; // throttle_time_ms
    }
    if v >= 7 {
        error(info, r.i16()?)?;
        r.i32()?; // session_id
    }
    each_topic_partition(
        r,
        v >= 13,
        |_| {},
        |r| {
            r.i32()?; // partition_index
            error(info, r.i16()?)?;
            r.i64()?; // high_watermark
            if v >= 4 {
                r.i64()?; // last_stable_offset
            }
            if v >= 5 {
                r.i64()?; // log_start_offset
            }
            if v >= 4 {
                let aborted = r.array()?.unwrap_or(0);
                for _ in 0..aborted.min(MAX_WALK) {
                    r.i64()?;
                    r.i64()?;
                    r.tagged()?;
                }
            }
            if v >= 11 {
                r.i32()?; // preferred_read_replica
            }
            r.skip_bytes()?; // records
            Some(())
        },
    )
}

fn list_offsets_response(r: &mut R<'_>, v: i16, info: &mut ResponseInfo) -> Option<()> {
    if v >= 2 {
        r.i32()?;
    }
    each_topic_partition(
        r,
        false,
        |_| {},
        |r| {
            r.i32()?;
            error(info, r.i16()?)?;
            if v == 0 {
                r.skip_fixed_array(8)?; // old_style_offsets
            } else {
                r.i64()?; // timestamp
                r.i64()?; // offset
                if v >= 4 {
                    r.i32()?; // leader_epoch
                }
            }
            Some(())
        },
    )
}

fn offset_commit_response(r: &mut R<'_>, v: i16, info: &mut ResponseInfo) -> Option<()> {
    if v >= 3 {
        r.i32()?;
    }
    each_topic_partition(
        r,
        false,
        |_| {},
        |r| {
            r.i32()?;
            error(info, r.i16()?)?;
            Some(())
        },
    )
}

fn metadata_response(r: &mut R<'_>, v: i16, info: &mut ResponseInfo) -> Option<()> {
    if v >= 3 {
        r.i32()?; // throttle_time_ms
    }
    let brokers = r.array()?.unwrap_or(0);
    for _ in 0..brokers.min(MAX_WALK) {
        r.i32()?; // node_id
        r.string()?; // host
        r.i32()?; // port
        if v >= 1 {
            r.string()?; // rack
        }
        r.tagged()?;
    }
    if v >= 2 {
        r.string()?; // cluster_id
    }
    if v >= 1 {
        r.i32()?; // controller_id
    }
    let topics = r.array()?.unwrap_or(0);
    let mut first_error = None;
    for _ in 0..topics.min(MAX_WALK) {
        let code = r.i16()?;
        if code != 0 && first_error.is_none() {
            first_error = Some(code);
        }
        let name = r.string()?.map(|n| lossy(n, 256));
        let id = if v >= 10 { Some(r.uuid()?) } else { None };
        if let Some(name) = &name {
            if info.topics.len() < MAX_TOPICS {
                info.topics.push(name.clone());
            }
            if let Some(id) = id.filter(|id| id.iter().any(|&b| b != 0)) {
                info.topic_ids.push((id, name.clone()));
            }
        }
        if v >= 1 {
            r.i8()?; // is_internal
        }
        let parts = r.array()?.unwrap_or(0);
        for _ in 0..parts.min(MAX_WALK) {
            let code = r.i16()?;
            if code != 0 && first_error.is_none() {
                first_error = Some(code);
            }
            r.i32()?; // partition_index
            r.i32()?; // leader_id
            if v >= 7 {
                r.i32()?; // leader_epoch
            }
            r.skip_fixed_array(4)?; // replica_nodes
            r.skip_fixed_array(4)?; // isr_nodes
            if v >= 5 {
                r.skip_fixed_array(4)?; // offline_replicas
            }
            r.tagged()?;
        }
        if v >= 8 {
            r.i32()?; // topic_authorized_operations
        }
        r.tagged()?;
        info.error_code = Some(first_error.unwrap_or(0));
    }
    if topics == 0 {
        info.error_code = Some(0);
    }
    Some(())
}
