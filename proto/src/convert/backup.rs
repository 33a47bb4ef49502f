//! Backups: spec, status, the record, and the bucket manifest.

use std::time::Duration;

use super::item::{phase_from_pb, phase_to_pb};
use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::format::FORMAT_VERSION;
use crate::model::{
    Backup, BackupOrigin, BackupQuery, BackupSpec, BackupStatus, ClusterResources, ItemResult, LabelSelector,
    Manifest, NamespaceFilter, ResourceSummary, StoredObject, Timestamp, VolumeResult,
};
use crate::pb;

pub(super) fn cluster_resources_to_pb(c: ClusterResources) -> i32 {
    (match c {
        ClusterResources::Auto => pb::ClusterResources::Auto,
        ClusterResources::Always => pb::ClusterResources::Always,
        ClusterResources::Never => pb::ClusterResources::Never,
    }) as i32
}

pub(super) fn cluster_resources_from_pb(field: &'static str, v: i32) -> Result<ClusterResources> {
    Ok(
        match pb::ClusterResources::try_from(v).map_err(|e| Error::field(field, e))? {
            pb::ClusterResources::Auto => ClusterResources::Auto,
            pb::ClusterResources::Always => ClusterResources::Always,
            pb::ClusterResources::Never => ClusterResources::Never,
        },
    )
}

pub(super) fn selector_from_pb(field: &'static str, text: String) -> Result<Option<LabelSelector>> {
    opt_string(text)
        .map(|s| LabelSelector::parse(&s))
        .transpose()
        .map_err(|e| Error::field(field, e))
}

/// A duration in whole seconds on the wire (a TTL, a wait), 0 meaning none.
pub(super) fn seconds_from_pb(seconds: u64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

impl Wire for BackupSpec {
    type Pb = pb::BackupSpec;

    fn to_pb(&self) -> pb::BackupSpec {
        let text = |n: Option<String>| n.unwrap_or_default();
        pb::BackupSpec {
            name: self.name.to_string(),
            cluster: self.cluster.to_string(),
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
            created_unix_ms: ms(self.origin.created),
            workspace: text(self.origin.workspace.as_ref().map(ToString::to_string)),
            schedule: text(self.origin.schedule.as_ref().map(ToString::to_string)),
            group: text(self.origin.group.as_ref().map(ToString::to_string)),
            volumes: self.volumes,
            offline: self.origin.offline,
        }
    }

    fn from_pb(m: pb::BackupSpec) -> Result<Self> {
        Ok(Self {
            name: name("BackupSpec.name", m.name)?,
            cluster: name("BackupSpec.cluster", m.cluster)?,
            location: opt_name("BackupSpec.location", m.location)?,
            namespaces: NamespaceFilter {
                include: m.include_namespaces,
                exclude: m.exclude_namespaces,
            },
            include_resources: m.include_resources,
            exclude_resources: m.exclude_resources,
            selector: selector_from_pb("BackupSpec.label_selector", m.label_selector)?,
            cluster_resources: cluster_resources_from_pb(
                "BackupSpec.cluster_resources",
                m.cluster_resources,
            )?,
            ttl: seconds_from_pb(m.ttl_seconds),
            volumes: m.volumes,
            origin: BackupOrigin {
                created: Timestamp::from_unix_ms(m.created_unix_ms),
                workspace: opt_name("BackupSpec.workspace", m.workspace)?,
                schedule: opt_name("BackupSpec.schedule", m.schedule)?,
                group: opt_name("BackupSpec.group", m.group)?,
                offline: m.offline,
            },
        })
    }
}

impl Wire for BackupStatus {
    type Pb = pb::BackupStatus;

    fn to_pb(&self) -> pb::BackupStatus {
        pb::BackupStatus {
            phase: phase_to_pb(self.phase),
            started_unix_ms: ms(self.started),
            finished_unix_ms: ms(self.finished),
            items: self.items,
            bytes: self.bytes,
            resources: self.resources.iter().map(Wire::to_pb).collect(),
            problems: self.problems.iter().map(Wire::to_pb).collect(),
            error: self.error.clone().unwrap_or_default(),
            agent_version: self.agent_version.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
            volumes: self.volumes.iter().map(Wire::to_pb).collect(),
            spooled: self.spooled,
        }
    }

    fn from_pb(m: pb::BackupStatus) -> Result<Self> {
        Ok(Self {
            phase: phase_from_pb("BackupStatus.phase", m.phase)?,
            started: Timestamp::from_unix_ms(m.started_unix_ms),
            finished: Timestamp::from_unix_ms(m.finished_unix_ms),
            items: m.items,
            bytes: m.bytes,
            resources: m
                .resources
                .into_iter()
                .map(ResourceSummary::from_pb)
                .collect::<Result<_>>()?,
            problems: m
                .problems
                .into_iter()
                .map(ItemResult::from_pb)
                .collect::<Result<_>>()?,
            error: opt_string(m.error),
            agent_version: m.agent_version,
            kubernetes_version: m.kubernetes_version,
            volumes: m
                .volumes
                .into_iter()
                .map(VolumeResult::from_pb)
                .collect::<Result<_>>()?,
            spooled: m.spooled,
        })
    }
}

impl Wire for Backup {
    type Pb = pb::Backup;

    fn to_pb(&self) -> pb::Backup {
        pb::Backup {
            spec: Some(self.spec.to_pb()),
            status: Some(self.status.to_pb()),
        }
    }

    fn from_pb(m: pb::Backup) -> Result<Self> {
        Ok(Self {
            spec: BackupSpec::from_pb(required("Backup.spec", m.spec)?)?,
            status: BackupStatus::from_pb(required("Backup.status", m.status)?)?,
        })
    }
}

impl Wire for Manifest {
    type Pb = pb::BackupManifest;

    fn to_pb(&self) -> pb::BackupManifest {
        pb::BackupManifest {
            format_version: FORMAT_VERSION,
            spec: Some(self.backup.spec.to_pb()),
            status: Some(self.backup.status.to_pb()),
            index: self.index.clone(),
            objects: self
                .objects
                .iter()
                .map(|o| pb::StoredObject {
                    key: o.key.clone(),
                    size: o.size,
                    sha256: o.sha256.to_vec(),
                })
                .collect(),
        }
    }

    fn from_pb(m: pb::BackupManifest) -> Result<Self> {
        if m.format_version == 0 || m.format_version > FORMAT_VERSION {
            return Err(Error::field(
                "BackupManifest.format_version",
                format!(
                    "version {} is not one this Cairn reads (1..={FORMAT_VERSION})",
                    m.format_version
                ),
            ));
        }
        let backup = Backup::from_pb(pb::Backup {
            spec: m.spec,
            status: m.status,
        })?;
        let objects = m
            .objects
            .into_iter()
            .map(|o| {
                let sha256 = <[u8; 32]>::try_from(o.sha256)
                    .map_err(|_| Error::field("StoredObject.sha256", "not 32 bytes"))?;
                Ok(StoredObject {
                    key: o.key,
                    size: o.size,
                    sha256,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            backup,
            index: m.index,
            objects,
        })
    }
}

impl Wire for BackupQuery {
    type Pb = pb::ListBackupsRequest;

    fn to_pb(&self) -> pb::ListBackupsRequest {
        let text = |n: Option<String>| n.unwrap_or_default();
        pb::ListBackupsRequest {
            cluster: text(self.cluster.as_ref().map(ToString::to_string)),
            workspace: text(self.workspace.as_ref().map(ToString::to_string)),
            namespace: text(self.namespace.clone()),
            phase: self.phase.map_or(0, phase_to_pb),
            since_unix_ms: ms(self.since),
            schedule: text(self.schedule.as_ref().map(ToString::to_string)),
            location: text(self.location.as_ref().map(ToString::to_string)),
        }
    }

    fn from_pb(m: pb::ListBackupsRequest) -> Result<Self> {
        // Every field narrows the query: unset (empty, 0, unspecified) means "any".
        let phase = match m.phase {
            0 => None,
            v => Some(phase_from_pb("ListBackupsRequest.phase", v)?),
        };
        Ok(Self {
            cluster: opt_name("ListBackupsRequest.cluster", m.cluster)?,
            workspace: opt_name("ListBackupsRequest.workspace", m.workspace)?,
            namespace: opt_string(m.namespace),
            phase,
            since: Timestamp::from_unix_ms(m.since_unix_ms),
            schedule: opt_name("ListBackupsRequest.schedule", m.schedule)?,
            location: opt_name("ListBackupsRequest.location", m.location)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    #[test]
    fn backup_query_round_trips_and_unset_means_any() {
        let query = BackupQuery {
            cluster: Some("east".parse().expect("name")),
            workspace: Some("fleet".parse().expect("name")),
            namespace: Some("shop".into()),
            phase: Some(Phase::PartiallyFailed),
            since: Timestamp::from_unix_ms(1_700_000_000_000),
            schedule: Some("nightly".parse().expect("name")),
            location: Some("s3-main".parse().expect("name")),
        };
        assert_eq!(BackupQuery::decode(&query.encode()).expect("decodes"), query);
        let any = BackupQuery::default();
        assert_eq!(any.to_pb(), pb::ListBackupsRequest::default());
        assert_eq!(BackupQuery::from_pb(any.to_pb()).expect("converts"), any);
    }

    #[test]
    fn backup_query_refuses_what_is_not_a_name_or_a_phase() {
        let bad_name = pb::ListBackupsRequest {
            cluster: "Not A Name".into(),
            ..Default::default()
        };
        assert!(matches!(
            BackupQuery::from_pb(bad_name),
            Err(Error::Field {
                field: "ListBackupsRequest.cluster",
                ..
            })
        ));
        let bad_phase = pb::ListBackupsRequest {
            phase: 99,
            ..Default::default()
        };
        assert!(matches!(
            BackupQuery::from_pb(bad_phase),
            Err(Error::Field {
                field: "ListBackupsRequest.phase",
                ..
            })
        ));
    }
}
