//! Schedules: backups made on a cron timetable, of one cluster or of every cluster of a
//! workspace, and the template every such backup follows.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{
    BackupName, BackupOrigin, BackupSpec, ClusterName, ClusterResources, LabelSelector, LocationName,
    NamespaceFilter, ScheduleName, Timestamp, WorkspaceName,
};

/// What every backup of a schedule or workspace backup takes: a [`BackupSpec`] without its name
/// and cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTemplate {
    /// The location; `None`: the workspace's default.
    pub location: Option<LocationName>,
    /// Namespaces covered.
    pub namespaces: NamespaceFilter,
    /// Resources taken.
    pub include_resources: Vec<String>,
    /// Resources never taken.
    pub exclude_resources: Vec<String>,
    /// Only objects with matching labels.
    pub selector: Option<LabelSelector>,
    /// Cluster-scoped objects taken.
    pub cluster_resources: ClusterResources,
    /// How long each backup is kept.
    pub ttl: Option<Duration>,
    /// Also the data of selected PersistentVolumeClaims.
    #[serde(default)]
    pub volumes: bool,
}

impl BackupTemplate {
    /// The backup `name` of `cluster` this template describes.
    pub fn spec(&self, name: BackupName, cluster: ClusterName, origin: BackupOrigin) -> BackupSpec {
        BackupSpec {
            name,
            cluster,
            location: self.location.clone(),
            namespaces: self.namespaces.clone(),
            include_resources: self.include_resources.clone(),
            exclude_resources: self.exclude_resources.clone(),
            selector: self.selector.clone(),
            cluster_resources: self.cluster_resources,
            ttl: self.ttl,
            volumes: self.volumes,
            origin,
        }
    }
}

/// What a schedule backs up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleTarget {
    /// One cluster.
    Cluster(ClusterName),
    /// Every cluster of a workspace, one backup each.
    Workspace(WorkspaceName),
}

/// A schedule as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Its name.
    pub name: ScheduleName,
    /// What it backs up.
    pub target: ScheduleTarget,
    /// Cron expression: five fields, or `@hourly`, `@daily`, `@weekly`, `@monthly`.
    pub cron: String,
    /// IANA time zone the expression is read in; `None`: UTC.
    pub timezone: Option<String>,
    /// What each backup takes.
    pub template: BackupTemplate,
    /// Backups kept per cluster (the newest); `None`: no count limit.
    pub keep_last: Option<u32>,
    /// Workspace schedules: clusters' starts are spread over this window.
    #[serde(with = "super::time::duration_text")]
    pub jitter: Duration,
    /// Whether it is paused.
    pub paused: bool,
}

impl ScheduleSpec {
    /// Whether it backs up `cluster`, a member of `workspace`.
    pub fn targets(&self, cluster: &ClusterName, workspace: Option<&WorkspaceName>) -> bool {
        match &self.target {
            ScheduleTarget::Cluster(c) => c == cluster,
            ScheduleTarget::Workspace(w) => workspace == Some(w),
        }
    }

    /// A schedule of `target` at `cron` (UTC), taking everything, keeping every backup.
    pub fn new(name: ScheduleName, target: ScheduleTarget, cron: String) -> Self {
        Self {
            name,
            target,
            cron,
            timezone: None,
            template: BackupTemplate::default(),
            keep_last: None,
            jitter: Duration::ZERO,
            paused: false,
        }
    }
}

/// What the hub records of a schedule's runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// When it was created.
    pub created: Option<Timestamp>,
    /// The slot of its last run.
    pub last_fire: Option<Timestamp>,
    /// Runs so far (scheduled, caught up and run-now).
    pub runs: u64,
    /// Runs made on start-up for slots missed while the hub was down (one per start-up).
    pub catch_ups: u64,
    /// When the last catch-up run was made.
    pub last_catch_up: Option<Timestamp>,
    /// Its next slot (filled by the hub when it answers).
    pub next_fire: Option<Timestamp>,
    /// Why its last run could not start, if it could not.
    pub last_error: Option<String>,
    /// When it was last resumed: slots before are not owed.
    pub resumed: Option<Timestamp>,
}

/// A backup timetable: what the user asked, and what the hub records of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// As asked.
    pub spec: ScheduleSpec,
    /// As run.
    pub status: ScheduleStatus,
}

impl Schedule {
    /// The time after which slots are owed: its last run, creation or resumption.
    pub fn owed_after(&self) -> Option<Timestamp> {
        let s = &self.status;
        [s.last_fire, s.created, s.resumed].into_iter().flatten().max()
    }
}
