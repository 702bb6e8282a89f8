//! Names and version facts from the `kafka-protocol` crate (generated from Kafka's own message
//! definitions): API names, which versions exist, which are "flexible" (compact encodings and
//! tagged fields), and error code names.
//!
//! The crate's message *decoders* are not used: they pre-allocate arrays at whatever length
//! the bytes claim (a 7-byte MetadataRequest claiming 2^31 topics makes the process abort on a
//! 150 GB allocation), and they need whole frames, while a Produce request can be megabytes.
//! The walkers in [`body`](super::body) read only what a record needs, within the bytes kept.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

pub(crate) fn api(key: i16) -> Option<ApiKey> {
    ApiKey::try_from(key).ok()
}

pub(crate) fn api_name(key: i16) -> Option<String> {
    api(key).map(|k| format!("{k:?}"))
}

/// Whether `version` of `key` is one a client could send (the crate's range, with room for a
/// few versions newer than it knows).
pub(crate) fn plausible_version(key: i16, version: i16) -> bool {
    api(key).is_some_and(|k| {
        let r = k.valid_versions();
        version >= 0 && version <= r.max.saturating_add(3)
    })
}

/// Flexible request versions use header v2 (tagged fields) and compact body encodings.
pub(crate) fn flexible_request(key: i16, version: i16) -> bool {
    api(key).is_some_and(|k| k.request_header_version(version) >= 2)
}

/// Flexible response versions carry tagged fields in the header (except ApiVersions, whose
/// response header stays v0 so that any client can read it).
pub(crate) fn response_header_tagged(key: i16, version: i16) -> bool {
    api(key).is_some_and(|k| k.response_header_version(version) >= 1)
}

/// Body of a flexible response (compact encodings), which for ApiVersions differs from its
/// header version.
pub(crate) fn flexible_response(key: i16, version: i16) -> bool {
    flexible_request(key, version)
}

/// Kafka's error name for a code ("UNKNOWN_TOPIC_OR_PARTITION"), `None` for 0.
pub(crate) fn error_name(code: i16) -> Option<String> {
    let e = ResponseError::try_from_code(code)?;
    if let ResponseError::Unknown(c) = e {
        return Some(format!("UNKNOWN_ERROR_{c}"));
    }
    // The crate names variants in CamelCase; Kafka's documentation uses UPPER_SNAKE.
    let camel = format!("{e:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(api_name(0).as_deref(), Some("Produce"));
        assert_eq!(api_name(3).as_deref(), Some("Metadata"));
        assert_eq!(api_name(-5), None);
        assert_eq!(error_name(3).as_deref(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
        assert_eq!(error_name(6).as_deref(), Some("NOT_LEADER_OR_FOLLOWER"));
        assert_eq!(error_name(0), None);
        assert!(flexible_request(0, 9) && !flexible_request(0, 8));
        assert!(!response_header_tagged(18, 3));
        assert!(flexible_response(18, 3));
    }
}
