//! `google.protobuf.Timestamp` with protojson's text form.
//!
//! Go's protojson (what `hubble observe -o json` uses) writes UTC with a `Z` and 0, 3, 6 or 9
//! fractional digits (`2023-11-14T22:13:20.005Z`); pbjson-types writes `+00:00`. This type
//! is the same message on the wire and reads any RFC 3339 offset.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, 0..=999_999_999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The time as a `SystemTime` (`None` when it is before the epoch or out of range).
    pub fn to_system_time(self) -> Option<SystemTime> {
        let seconds = u64::try_from(self.seconds).ok()?;
        let nanos = u32::try_from(self.nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
    }

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.seconds, u32::try_from(self.nanos).ok()?)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp {
                seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                nanos: since.subsec_nanos() as i32,
            },
            Err(_) => Timestamp::default(),
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC as protojson writes it; the raw fields when out of range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(time) => f.write_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "{}s+{}ns", self.seconds, self.nanos),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.to_datetime().is_none() {
            return Err(serde::ser::Error::custom(format!(
                "timestamp {}s {}ns is out of range",
                self.seconds, self.nanos
            )));
        }
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let time = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
        Ok(Timestamp {
            seconds: time.timestamp(),
            nanos: time.timestamp_subsec_nanos() as i32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_utc_with_z_and_trims_fractions_like_protojson() {
        let at = |seconds, nanos| Timestamp { seconds, nanos }.to_string();
        assert_eq!(at(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_700_000_000, 5_000_000), "2023-11-14T22:13:20.005Z");
        assert_eq!(at(1_700_000_000, 5_000), "2023-11-14T22:13:20.000005Z");
        assert_eq!(at(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn reads_any_offset_and_round_trips_system_time() {
        let parsed: Timestamp =
            serde_json::from_str("\"2023-11-14T23:13:20.5+01:00\"").expect("valid RFC 3339");
        assert_eq!(
            parsed,
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000
            }
        );
        let now = SystemTime::now();
        assert_eq!(Timestamp::from(now).to_system_time(), Some(now));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
