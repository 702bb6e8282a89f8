//! `--since`/`--until` values: a duration back from now ("2h", "90s", "1h30m") or an RFC 3339
//! timestamp ("2026-11-26T02:00:00Z").

use fathom_model::Timestamp;

pub fn parse_time_arg(s: &str) -> Result<Timestamp, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        let now = Timestamp::now().as_nanos();
        return Ok(Timestamp(now.saturating_sub(d.as_nanos() as u64)));
    }
    Timestamp::parse_rfc3339(s)
        .map_err(|_| format!("{s:?} is neither a duration (e.g. 2h, 15m) nor an RFC 3339 time (e.g. 2026-11-26T02:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_timestamps() {
        let now = Timestamp::now().as_nanos();
        let t = parse_time_arg("2h").unwrap().as_nanos();
        assert!((now - t).abs_diff(7_200_000_000_000) < 1_000_000_000);
        assert_eq!(
            parse_time_arg("2026-11-26T02:00:00Z").unwrap().to_rfc3339(),
            "2026-11-26T02:00:00Z"
        );
        assert!(parse_time_arg("yesterday")
            .unwrap_err()
            .contains("neither a duration"));
    }
}
