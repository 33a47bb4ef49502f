//! Restores: spec, status, the record.

use super::item::{phase_from_pb, phase_to_pb};
use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::model::{
    ExistingPolicy, ItemResult, NamespaceFilter, Restore, RestoreSpec, RestoreStatus, Timestamp,
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
            dry_run: self.dry_run,
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
            dry_run: m.dry_run,
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
            items: self.items.iter().map(Wire::to_pb).collect(),
            error: self.error.clone().unwrap_or_default(),
        }
    }

    fn from_pb(m: pb::RestoreStatus) -> Result<Self> {
        Ok(Self {
            phase: phase_from_pb("RestoreStatus.phase", m.phase)?,
            started: Timestamp::from_unix_ms(m.started_unix_ms),
            finished: Timestamp::from_unix_ms(m.finished_unix_ms),
            items: m
                .items
                .into_iter()
                .map(ItemResult::from_pb)
                .collect::<Result<_>>()?,
            error: opt_string(m.error),
        })
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
