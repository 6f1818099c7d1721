//! `--since` / `--until` values: RFC 3339 times, or Go-style durations before now (`5m`,
//! `1h30m`, `2.5s`, `100ms`), as Hubble accepts them.

use std::time::{Duration, SystemTime};

use cilium_hubble::Timestamp;

/// A time the CLI cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is neither an RFC 3339 time (2024-05-04T13:23:40Z) nor a duration (5m, 1h30m)")]
pub struct TimeError {
    pub value: String,
}

/// The time `value` names, relative durations counting back from `now`.
pub fn parse(value: &str, now: SystemTime) -> Result<Timestamp, TimeError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(Timestamp {
            seconds: time.timestamp(),
            nanos: time.timestamp_subsec_nanos() as i32,
        });
    }
    let ago = duration(value).ok_or_else(|| TimeError {
        value: value.to_string(),
    })?;
    Ok(Timestamp::from(
        now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
    ))
}

/// A Go duration: one or more `<number><unit>` with units h, m, s, ms, us/µs, ns.
fn duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn durations_count_back_from_now() {
        let at = |v: &str| parse(v, now()).unwrap_or_else(|e| panic!("{e}")).seconds;
        assert_eq!(at("5m"), 1_700_000_000 - 300);
        assert_eq!(at("1h30m"), 1_700_000_000 - 5400);
        assert_eq!(at("10s"), 1_700_000_000 - 10);
        let half = parse("1.5s", now()).expect("valid");
        assert_eq!((half.seconds, half.nanos), (1_700_000_000 - 2, 500_000_000));
    }

    #[test]
    fn rfc3339_times_are_absolute() {
        let t = parse("2024-05-04T13:23:40.5Z", now()).expect("valid");
        assert_eq!((t.seconds, t.nanos), (1_714_829_020, 500_000_000));
        let offset = parse("2024-05-04T15:23:40+02:00", now()).expect("valid");
        assert_eq!(offset.seconds, 1_714_829_020);
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in ["", "yesterday", "5", "5x", "m5"] {
            let err = parse(bad, now()).expect_err(bad);
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }
}
