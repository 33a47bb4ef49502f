//! Restores: spec, status, the record.

use super::item::{phase_from_pb, phase_to_pb};
use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::format::RESTORE_PART_ITEMS;
use crate::model::{
    ExistingPolicy, ItemResult, NamespaceFilter, OutcomeCounts, Restore, RestoreSpec, RestoreStatus,
    Timestamp, VolumeResult,
};
use crate::pb;

impl Wire for RestoreSpec {
    type Pb = pb::RestoreSpec;

    fn to_pb(&self) -> pb::RestoreSpec {
        let existing_policy = match self.existing_policy {
            ExistingPolicy::Skip => pb::ExistingPolicy::Skip,
            ExistingPolicy::Update => pb::ExistingPolicy::Update,
        };
        pb::RestoreSpec {
            name: self.name.to_string(),
            backup: self.backup.to_string(),
            target_cluster: self
                .target_cluster
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            include_namespaces: self.namespaces.include.clone(),
            exclude_namespaces: self.namespaces.exclude.clone(),
            namespace_mapping: self.namespace_mapping.clone().into_iter().collect(),
            existing_policy: existing_policy as i32,
            preserve_node_ports: self.preserve_node_ports,
            include_sensitive: self.include_sensitive,
            partial: self.partial,
            keep_setid: self.keep_setid,
            dry_run: self.dry_run,
            volume_wait_seconds: self.volume_wait.map_or(0, |d| d.as_secs().max(1)),
        }
    }

    fn from_pb(m: pb::RestoreSpec) -> Result<Self> {
        let existing_policy = match pb::ExistingPolicy::try_from(m.existing_policy)
            .map_err(|e| Error::field("RestoreSpec.existing_policy", e))?
        {
            pb::ExistingPolicy::Skip => ExistingPolicy::Skip,
            pb::ExistingPolicy::Update => ExistingPolicy::Update,
        };
        Ok(Self {
            name: name("RestoreSpec.name", m.name)?,
            backup: name("RestoreSpec.backup", m.backup)?,
            target_cluster: opt_name("RestoreSpec.target_cluster", m.target_cluster)?,
            namespaces: NamespaceFilter {
                include: m.include_namespaces,
                exclude: m.exclude_namespaces,
            },
            namespace_mapping: m.namespace_mapping.into_iter().collect(),
            existing_policy,
            preserve_node_ports: m.preserve_node_ports,
            include_sensitive: m.include_sensitive,
            partial: m.partial,
            keep_setid: m.keep_setid,
            dry_run: m.dry_run,
            volume_wait: super::backup::seconds_from_pb(m.volume_wait_seconds),
        })
    }
}

impl Wire for OutcomeCounts {
    type Pb = pb::OutcomeCounts;

    fn to_pb(&self) -> pb::OutcomeCounts {
        pb::OutcomeCounts {
            created: self.created,
            updated: self.updated,
            skipped_exists: self.skipped_exists,
            left_to_controller: self.left_to_controller,
            failed: self.failed,
            would_create: self.would_create,
            skipped_sensitive: self.skipped_sensitive,
        }
    }

    fn from_pb(m: pb::OutcomeCounts) -> Result<Self> {
        Ok(Self {
            created: m.created,
            updated: m.updated,
            skipped_exists: m.skipped_exists,
            left_to_controller: m.left_to_controller,
            failed: m.failed,
            would_create: m.would_create,
            skipped_sensitive: m.skipped_sensitive,
        })
    }
}

impl Wire for RestoreStatus {
    type Pb = pb::RestoreStatus;

    fn to_pb(&self) -> pb::RestoreStatus {
        pb::RestoreStatus {
            phase: phase_to_pb(self.phase),
            started_unix_ms: ms(self.started),
            finished_unix_ms: ms(self.finished),
            counts: Some(self.counts.to_pb()),
            problems: self.problems.iter().map(Wire::to_pb).collect(),
            item_parts: self.item_parts.clone(),
            error: self.error.clone().unwrap_or_default(),
            volumes: self.volumes.iter().map(Wire::to_pb).collect(),
        }
    }

    fn from_pb(m: pb::RestoreStatus) -> Result<Self> {
        Ok(Self {
            phase: phase_from_pb("RestoreStatus.phase", m.phase)?,
            started: Timestamp::from_unix_ms(m.started_unix_ms),
            finished: Timestamp::from_unix_ms(m.finished_unix_ms),
            counts: OutcomeCounts::from_pb(m.counts.unwrap_or_default())?,
            problems: m
                .problems
                .into_iter()
                .map(ItemResult::from_pb)
                .collect::<Result<_>>()?,
            item_parts: m.item_parts,
            error: opt_string(m.error),
            volumes: m
                .volumes
                .into_iter()
                .map(VolumeResult::from_pb)
                .collect::<Result<_>>()?,
        })
    }
}

/// A part of a restore's item results: at most [`RESTORE_PART_ITEMS`] (checked before they are
/// decoded).
impl Wire for Vec<ItemResult> {
    type Pb = pb::RestoreItems;

    fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode_list(bytes, "RestoreItems.items", RESTORE_PART_ITEMS, "results")
    }

    fn to_pb(&self) -> pb::RestoreItems {
        pb::RestoreItems {
            items: self.iter().map(Wire::to_pb).collect(),
        }
    }

    fn from_pb(m: pb::RestoreItems) -> Result<Self> {
        m.items.into_iter().map(ItemResult::from_pb).collect()
    }
}

impl Wire for Restore {
    type Pb = pb::Restore;

    fn to_pb(&self) -> pb::Restore {
        pb::Restore {
            spec: Some(self.spec.to_pb()),
            status: Some(self.status.to_pb()),
        }
    }

    fn from_pb(m: pb::Restore) -> Result<Self> {
        Ok(Self {
            spec: RestoreSpec::from_pb(required("Restore.spec", m.spec)?)?,
            status: RestoreStatus::from_pb(required("Restore.status", m.status)?)?,
        })
    }
}
