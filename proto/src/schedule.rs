//! When schedules fire: cron expressions (five fields, or `@hourly`, `@daily`, `@weekly`,
//! `@monthly`) read in an IANA time zone, parsed by `croner`; and how a workspace schedule spreads
//! its clusters' starts over a jitter window so a fleet does not hit the bucket in one second.
//! Hub and agent read timetables here alike, and name a slot's backups by one rule
//! ([`slot_backup`], [`member_backup`]), so both agree on who ran which slot.

use crate::model::{BackupName, ClusterName, ScheduleName, ScheduleSpec, Timestamp};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cron expression or time zone that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// The expression does not parse.
    #[error(
        "invalid cron expression {cron:?}: {reason} (five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly)"
    )]
    Cron {
        /// The expression.
        cron: String,
        /// Why.
        reason: String,
    },
    /// No such IANA time zone.
    #[error("unknown time zone {0:?} (an IANA name such as Europe/Berlin)")]
    TimeZone(String),
}

/// A schedule's firing times.
#[derive(Debug, Clone)]
pub struct Timetable {
    cron: croner::Cron,
    zone: Tz,
    /// What it was parsed from: the expression and the zone's name.
    source: (String, Option<String>),
}

/// `t` to the whole second: slots are whole minutes, and croner keeps the fraction it is given.
fn utc(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(t.unix_ms().div_euclid(1000), 0)
        .single()
        .unwrap_or_default()
}

fn stamp<Z: TimeZone>(t: &DateTime<Z>) -> Option<Timestamp> {
    Timestamp::from_unix_ms(t.timestamp() * 1000)
}

impl Timetable {
    /// Parses `cron` (no seconds field) read in `timezone` (UTC if `None`).
    pub fn parse(cron: &str, timezone: Option<&str>) -> Result<Self, Invalid> {
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name.parse().map_err(|_| Invalid::TimeZone(name.to_owned()))?,
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let source = (cron.to_owned(), timezone.map(str::to_owned));
        let cron = parser.parse(cron).map_err(|e| Invalid::Cron {
            cron: cron.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { cron, zone, source })
    }

    /// Whether it was parsed from `spec`'s expression and zone.
    fn is_of(&self, spec: &ScheduleSpec) -> bool {
        self.source.0 == spec.cron && self.source.1 == spec.timezone
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let local = utc(t).with_timezone(&self.zone);
        stamp(&self.cron.find_next_occurrence(&local, false).ok()?)
    }

    /// The latest slot in `(after, upto]`: the one run owed for that interval, however many slots
    /// it holds (a hub down for a day owes one catch-up run, not 24).
    pub fn latest_between(&self, after: Timestamp, upto: Timestamp) -> Option<Timestamp> {
        let local = utc(upto).with_timezone(&self.zone);
        let latest = stamp(&self.cron.find_previous_occurrence(&local, true).ok()?)?;
        (latest > after).then_some(latest)
    }
}

/// Every schedule's timetable, parsed once: when the schedule is created, or the first time the
/// hub reads it after start-up.
#[derive(Debug, Default)]
pub struct Timetables(Mutex<HashMap<ScheduleName, Arc<Timetable>>>);

impl Timetables {
    /// `spec`'s timetable.
    pub fn of(&self, spec: &ScheduleSpec) -> Result<Arc<Timetable>, Invalid> {
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = known.get(&spec.name).filter(|t| t.is_of(spec)) {
            return Ok(t.clone());
        }
        let parsed = Arc::new(Timetable::parse(&spec.cron, spec.timezone.as_deref())?);
        known.insert(spec.name.clone(), parsed.clone());
        Ok(parsed)
    }

    /// Forgets schedule `name`'s timetable (it was deleted).
    pub fn forget(&self, name: &ScheduleName) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }
}

/// How long after a workspace schedule's slot `cluster` starts: a stable spread over `window`
/// (FNV-1a of schedule and cluster), the same at every slot so each cluster keeps its rhythm.
pub fn jitter(schedule: &ScheduleName, cluster: &ClusterName, window: Duration) -> Duration {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if window_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(fnv1a(&format!("{schedule}/{cluster}")) % window_ms)
}

/// The backup a schedule makes for `slot` (a schedule of one cluster, or a workspace backup):
/// `<schedule>-<slot as YYYYMMDDhhmmss, UTC>`.
pub fn slot_backup(schedule: &ScheduleName, slot: Timestamp) -> BackupName {
    derived_name(schedule.as_str(), &slot_suffix(slot))
}

/// The backup of `cluster` in workspace backup `group`: `<group>-<cluster>`.
pub fn member_backup(group: &BackupName, cluster: &ClusterName) -> BackupName {
    derived_name(group.as_str(), cluster.as_str())
}

/// The backup `spec` makes of `cluster` for `slot`: [`slot_backup`] for a schedule of one
/// cluster, [`member_backup`] of it for a workspace schedule. Hub and agent name a slot's backup
/// by this alone, so that whoever runs it, it is run once.
pub fn backup_for(spec: &ScheduleSpec, slot: Timestamp, cluster: &ClusterName) -> BackupName {
    let backup = slot_backup(&spec.name, slot);
    match &spec.target {
        crate::model::ScheduleTarget::Cluster(_) => backup,
        crate::model::ScheduleTarget::Workspace(_) => member_backup(&backup, cluster),
    }
}

/// `name-<suffix>`, shortened (with a hash of the whole) to fit a name's 63 characters.
fn derived_name(base: &str, suffix: &str) -> BackupName {
    let full = format!("{base}-{suffix}");
    if let Ok(name) = BackupName::new(full.clone()) {
        return name;
    }
    let hash = fnv1a(&full);
    let head: String = full.chars().take(46).collect();
    let name = format!("{}-{:016x}", head.trim_end_matches(['-', '.']), hash);
    BackupName::new(name).unwrap_or_else(|_| unreachable!("lowercase, digits and '-', 63 long"))
}

/// A slot as a name suffix: `YYYYMMDDhhmmss` (UTC).
fn slot_suffix(slot: Timestamp) -> String {
    humantime::format_rfc3339_seconds(slot.into())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// FNV-1a of `text`: a small, stable hash for spreading and shortening names (not for security).
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        humantime::parse_rfc3339(text).expect("time").into()
    }

    #[test]
    fn slots_follow_the_expression_in_its_time_zone() {
        let t = Timetable::parse("0 2 * * *", Some("Europe/Berlin")).expect("valid");
        // 02:00 in Berlin is 01:00 UTC in winter.
        assert_eq!(
            t.next_after(at("2026-11-25T12:00:00Z")),
            Some(at("2026-11-26T01:00:00Z"))
        );
        let hourly = Timetable::parse("@hourly", None).expect("valid");
        assert_eq!(
            hourly.next_after(at("2026-11-25T12:00:00Z")),
            Some(at("2026-11-25T13:00:00Z"))
        );
    }

    #[test]
    fn a_long_gap_owes_one_run_at_its_latest_slot() {
        let t = Timetable::parse("0 * * * *", None).expect("valid");
        let owed = t.latest_between(at("2026-11-25T01:00:00Z"), at("2026-11-25T05:30:00Z"));
        assert_eq!(owed, Some(at("2026-11-25T05:00:00Z")));
        assert_eq!(
            t.latest_between(at("2026-11-25T05:00:00Z"), at("2026-11-25T05:30:00Z")),
            None
        );
        assert_eq!(
            t.latest_between(at("2026-11-25T05:00:00Z"), at("2026-11-25T06:00:00Z")),
            Some(at("2026-11-25T06:00:00Z"))
        );
        // Whatever the fraction of a second it is asked at, a slot is the same instant.
        let late = at("2026-11-25T05:30:00.123Z");
        assert_eq!(
            t.latest_between(at("2026-11-25T04:00:00Z"), late),
            Some(at("2026-11-25T05:00:00Z"))
        );
        assert_eq!(t.latest_between(at("2026-11-25T05:00:00Z"), late), None);
        assert_eq!(t.next_after(late), Some(at("2026-11-25T06:00:00Z")));
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        let err = Timetable::parse("0 2 * *", None)
            .expect_err("four fields")
            .to_string();
        assert!(err.starts_with("invalid cron expression \"0 2 * *\""), "{err}");
        assert!(Timetable::parse("* * * * * *", None).is_err(), "no seconds field");
        assert!(Timetable::parse("61 * * * *", None).is_err());
        let err = Timetable::parse("@daily", Some("Mars/Olympus"))
            .expect_err("zone")
            .to_string();
        assert_eq!(
            err,
            "unknown time zone \"Mars/Olympus\" (an IANA name such as Europe/Berlin)"
        );
    }

    #[test]
    fn jitter_spreads_clusters_within_the_window() {
        let s: ScheduleName = "nightly".parse().expect("name");
        let window = Duration::from_secs(600);
        let offsets: Vec<Duration> = (0..50)
            .map(|i| jitter(&s, &format!("c{i}").parse().expect("name"), window))
            .collect();
        assert!(offsets.iter().all(|d| *d < window));
        assert!(
            offsets.iter().any(|d| *d > Duration::from_secs(300)),
            "{offsets:?}"
        );
        assert_eq!(
            jitter(&s, &"c1".parse().expect("name"), Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn a_timetable_is_parsed_once_and_again_only_when_its_text_changes() {
        let timetables = Timetables::default();
        let mut spec = ScheduleSpec::new(
            "nightly".parse().expect("name"),
            crate::model::ScheduleTarget::Cluster("east".parse().expect("name")),
            "0 2 * * *".into(),
        );
        let first = timetables.of(&spec).expect("valid");
        assert!(Arc::ptr_eq(&first, &timetables.of(&spec).expect("valid")));
        spec.timezone = Some("Europe/Berlin".into());
        let zoned = timetables.of(&spec).expect("valid");
        assert!(!Arc::ptr_eq(&first, &zoned));
        assert_eq!(
            zoned.next_after(at("2026-11-25T12:00:00Z")),
            Some(at("2026-11-26T01:00:00Z"))
        );
        timetables.forget(&spec.name);
        assert!(!Arc::ptr_eq(&zoned, &timetables.of(&spec).expect("valid")));
        spec.cron = "0 2 * *".into();
        assert!(timetables.of(&spec).is_err());
    }
}
