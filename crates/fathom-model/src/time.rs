//! Wall-clock timestamps with nanosecond precision, serialized as RFC 3339 (UTC) so that
//! JSON output sorts and reads the same way Hubble's does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_nanos(ns: u64) -> Self {
        Timestamp(ns)
    }

    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as u64)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let t =
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("bad timestamp {s:?}: {e}"))?;
        let ns = t.unix_timestamp_nanos();
        if ns < 0 {
            return Err(format!("timestamp {s:?} is before 1970"));
        }
        Ok(Timestamp(ns as u64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let t = Timestamp(1_764_172_800_123_456_789);
        let s = t.to_rfc3339();
        assert_eq!(s, "2025-11-26T16:00:00.123456789Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
    }
}
