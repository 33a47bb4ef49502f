//! Schedules, their backup template, and workspace backups.

use std::time::Duration;

use super::backup::{cluster_resources_from_pb, cluster_resources_to_pb, seconds_from_pb, selector_from_pb};
use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::model::{
    Backup, BackupGroup, BackupTemplate, GroupMember, NamespaceFilter, Schedule, ScheduleSpec,
    ScheduleStatus, ScheduleTarget, Timestamp, WorkspaceBackup,
};
use crate::pb;

impl Wire for BackupTemplate {
    type Pb = pb::BackupTemplate;

    fn to_pb(&self) -> pb::BackupTemplate {
        pb::BackupTemplate {
            location: self
                .location
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            include_namespaces: self.namespaces.include.clone(),
            exclude_namespaces: self.namespaces.exclude.clone(),
            include_resources: self.include_resources.clone(),
            exclude_resources: self.exclude_resources.clone(),
            label_selector: self
                .selector
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            cluster_resources: cluster_resources_to_pb(self.cluster_resources),
            ttl_seconds: self.ttl.map_or(0, |d| d.as_secs()),
            volumes: self.volumes,
        }
    }

    fn from_pb(m: pb::BackupTemplate) -> Result<Self> {
        Ok(Self {
            location: opt_name("BackupTemplate.location", m.location)?,
            namespaces: NamespaceFilter {
                include: m.include_namespaces,
                exclude: m.exclude_namespaces,
            },
            include_resources: m.include_resources,
            exclude_resources: m.exclude_resources,
            selector: selector_from_pb("BackupTemplate.label_selector", m.label_selector)?,
            cluster_resources: cluster_resources_from_pb(
                "BackupTemplate.cluster_resources",
                m.cluster_resources,
            )?,
            ttl: seconds_from_pb(m.ttl_seconds),
            volumes: m.volumes,
        })
    }
}

/// A schedule's spec travels alone (to create one) as a [`pb::Schedule`] without status.
impl Wire for ScheduleSpec {
    type Pb = pb::Schedule;

    fn to_pb(&self) -> pb::Schedule {
        use pb::schedule::Target;
        pb::Schedule {
            name: self.name.to_string(),
            target: Some(match &self.target {
                ScheduleTarget::Cluster(c) => Target::Cluster(c.to_string()),
                ScheduleTarget::Workspace(w) => Target::Workspace(w.to_string()),
            }),
            cron: self.cron.clone(),
            timezone: self.timezone.clone().unwrap_or_default(),
            template: Some(self.template.to_pb()),
            keep_last: self.keep_last.unwrap_or(0),
            jitter_seconds: self.jitter.as_secs(),
            paused: self.paused,
            ..pb::Schedule::default()
        }
    }

    fn from_pb(m: pb::Schedule) -> Result<Self> {
        use pb::schedule::Target;
        let target = match required("Schedule.target", m.target)? {
            Target::Cluster(c) => ScheduleTarget::Cluster(name("Schedule.cluster", c)?),
            Target::Workspace(w) => ScheduleTarget::Workspace(name("Schedule.workspace", w)?),
        };
        if m.cron.is_empty() {
            return Err(Error::Missing {
                field: "Schedule.cron",
            });
        }
        Ok(Self {
            name: name("Schedule.name", m.name)?,
            target,
            cron: m.cron,
            timezone: opt_string(m.timezone),
            template: m
                .template
                .map(BackupTemplate::from_pb)
                .transpose()?
                .unwrap_or_default(),
            keep_last: (m.keep_last > 0).then_some(m.keep_last),
            jitter: Duration::from_secs(m.jitter_seconds),
            paused: m.paused,
        })
    }
}

impl Wire for Schedule {
    type Pb = pb::Schedule;

    fn to_pb(&self) -> pb::Schedule {
        let s = &self.status;
        pb::Schedule {
            created_unix_ms: ms(s.created),
            last_fire_unix_ms: ms(s.last_fire),
            runs: s.runs,
            catch_ups: s.catch_ups,
            last_catch_up_unix_ms: ms(s.last_catch_up),
            next_fire_unix_ms: ms(s.next_fire),
            last_error: s.last_error.clone().unwrap_or_default(),
            resumed_unix_ms: ms(s.resumed),
            ..self.spec.to_pb()
        }
    }

    fn from_pb(m: pb::Schedule) -> Result<Self> {
        let status = ScheduleStatus {
            created: Timestamp::from_unix_ms(m.created_unix_ms),
            last_fire: Timestamp::from_unix_ms(m.last_fire_unix_ms),
            runs: m.runs,
            catch_ups: m.catch_ups,
            last_catch_up: Timestamp::from_unix_ms(m.last_catch_up_unix_ms),
            next_fire: Timestamp::from_unix_ms(m.next_fire_unix_ms),
            last_error: opt_string(m.last_error.clone()),
            resumed: Timestamp::from_unix_ms(m.resumed_unix_ms),
        };
        Ok(Self {
            spec: ScheduleSpec::from_pb(m)?,
            status,
        })
    }
}

impl Wire for BackupGroup {
    type Pb = pb::BackupGroup;

    fn to_pb(&self) -> pb::BackupGroup {
        pb::BackupGroup {
            name: self.name.to_string(),
            workspace: self.workspace.to_string(),
            created_unix_ms: ms(self.created),
            members: self
                .members
                .iter()
                .map(|m| pb::GroupMember {
                    cluster: m.cluster.to_string(),
                    backup: m.backup.as_ref().map(ToString::to_string).unwrap_or_default(),
                    skipped: m.skipped.clone().unwrap_or_default(),
                })
                .collect(),
            schedule: self
                .schedule
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }

    fn from_pb(m: pb::BackupGroup) -> Result<Self> {
        Ok(Self {
            name: name("BackupGroup.name", m.name)?,
            workspace: name("BackupGroup.workspace", m.workspace)?,
            created: Timestamp::from_unix_ms(m.created_unix_ms),
            members: m
                .members
                .into_iter()
                .map(|g| {
                    Ok(GroupMember {
                        cluster: name("GroupMember.cluster", g.cluster)?,
                        backup: opt_name("GroupMember.backup", g.backup)?,
                        skipped: opt_string(g.skipped),
                    })
                })
                .collect::<Result<_>>()?,
            schedule: opt_name("BackupGroup.schedule", m.schedule)?,
        })
    }
}

impl Wire for WorkspaceBackup {
    type Pb = pb::WorkspaceBackup;

    fn to_pb(&self) -> pb::WorkspaceBackup {
        pb::WorkspaceBackup {
            group: Some(self.group.to_pb()),
            backups: self.backups.iter().map(Wire::to_pb).collect(),
        }
    }

    fn from_pb(m: pb::WorkspaceBackup) -> Result<Self> {
        Ok(Self {
            group: BackupGroup::from_pb(required("WorkspaceBackup.group", m.group)?)?,
            backups: m
                .backups
                .into_iter()
                .map(Backup::from_pb)
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BackupOrigin, BackupStatus, Phase};

    fn n<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().expect("name")
    }

    fn workspace_backup() -> WorkspaceBackup {
        let spec = BackupTemplate::default().spec(
            n("nightly-east"),
            n("east"),
            BackupOrigin {
                group: Some(n("nightly")),
                ..BackupOrigin::default()
            },
        );
        WorkspaceBackup {
            group: BackupGroup {
                name: n("nightly"),
                workspace: n("fleet"),
                created: Timestamp::from_unix_ms(1_700_000_000_000),
                members: vec![
                    GroupMember {
                        cluster: n("east"),
                        backup: Some(n("nightly-east")),
                        skipped: None,
                    },
                    GroupMember {
                        cluster: n("west"),
                        backup: None,
                        skipped: Some("agent not connected".into()),
                    },
                ],
                schedule: None,
            },
            backups: vec![Backup {
                spec,
                status: BackupStatus {
                    phase: Phase::Completed,
                    ..BackupStatus::default()
                },
            }],
        }
    }

    #[test]
    fn workspace_backup_round_trips() {
        let w = workspace_backup();
        assert_eq!(WorkspaceBackup::decode(&w.encode()).expect("decodes"), w);
        assert_eq!(w.phase(), Phase::PartiallyFailed);
    }

    #[test]
    fn workspace_backup_without_its_group_is_refused() {
        let mut m = workspace_backup().to_pb();
        m.group = None;
        assert!(matches!(
            WorkspaceBackup::from_pb(m),
            Err(Error::Missing {
                field: "WorkspaceBackup.group"
            })
        ));
    }

    #[test]
    fn a_schedule_round_trips_and_its_spec_travels_without_status() {
        let schedule = Schedule {
            spec: ScheduleSpec {
                timezone: Some("Europe/Berlin".into()),
                keep_last: Some(7),
                jitter: Duration::from_secs(600),
                ..ScheduleSpec::new(
                    n("nightly"),
                    ScheduleTarget::Workspace(n("fleet")),
                    "0 2 * * *".into(),
                )
            },
            status: ScheduleStatus {
                created: Timestamp::from_unix_ms(1_700_000_000_000),
                runs: 3,
                last_error: Some("cluster east is not connected".into()),
                ..ScheduleStatus::default()
            },
        };
        assert_eq!(Schedule::decode(&schedule.encode()).expect("decodes"), schedule);
        let sent = schedule.spec.to_pb();
        assert_eq!((sent.runs, sent.created_unix_ms), (0, 0), "no status on create");
        assert_eq!(ScheduleSpec::from_pb(sent).expect("converts"), schedule.spec);
        let without_cron = pb::Schedule {
            cron: String::new(),
            ..schedule.spec.to_pb()
        };
        assert_eq!(
            ScheduleSpec::from_pb(without_cron)
                .expect_err("refused")
                .to_string(),
            "Schedule.cron is missing"
        );
    }
}
