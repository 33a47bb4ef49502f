//! Points in time as the hub records them: milliseconds since the Unix epoch, shown in RFC 3339.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Timestamp(i64);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// From milliseconds since the epoch; `0` (protobuf's unset) is `None`.
    pub fn from_unix_ms(ms: i64) -> Option<Self> {
        (ms != 0).then_some(Self(ms))
    }

    /// Milliseconds since the epoch.
    pub fn unix_ms(self) -> i64 {
        self.0
    }

    /// Time from `self` to `later` (zero if `later` is earlier).
    pub fn until(self, later: Self) -> Duration {
        Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }

    /// The time shown for it: RFC 3339 text ends with the year 9999, so a later time (which only
    /// a crafted record holds) shows as that year's last millisecond instead of failing to print.
    fn shown(self) -> SystemTime {
        const LATEST_SHOWN_MS: i64 = 253_402_300_799_999;
        Self(self.0.min(LATEST_SHOWN_MS)).into()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(t.0).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.shown()))
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        humantime::format_rfc3339_millis(t.shown()).to_string()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = humantime::TimestampError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(humantime::parse_rfc3339(&s)?.into())
    }
}

/// `Duration`s as humantime text (`"720h"`) in JSON and YAML output.
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        humantime::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    /// `Option<Duration>`: `None` is null.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_time_a_record_holds_prints_and_measures() {
        // Regression (fuzz): a manifest's time past the year 9999 (created_unix_ms
        // 253402300800000) panicked where it was printed, and one far apart overflowed `until`.
        for ms in [
            i64::MIN,
            -1,
            1,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
        ] {
            let t = Timestamp(ms);
            assert!(!t.to_string().is_empty());
            assert!(!String::from(t).is_empty());
        }
        assert_eq!(String::from(Timestamp(i64::MAX)), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp(i64::MIN).until(Timestamp(i64::MAX)),
            Duration::from_millis(i64::MAX.unsigned_abs())
        );
        assert_eq!(Timestamp(5).until(Timestamp(1)), Duration::ZERO);
    }
}
