//! The agent channel: [`Instruction`] is a `HubMessage`, [`Report`] an `AgentMessage`. A message
//! without its kind, or a kind without a field it needs, is an error on both sides.

use std::time::Duration;

use super::{Result, Wire, name, opt_string, required};
use crate::model::{
    AgentState, Backup, BackupSpec, BackupStatus, Instruction, Location, Order, Progress, Prune,
    Registration, Report, RepositoryKey, ResourceKey, ResourceKeys, RestoreSpec, RestoreStatus, ScheduleSpec,
    VolumeProgress, VolumeResult, VolumeTask, Vouch,
};
use crate::pb::{self, agent_message::Kind as Up, hub_message::Kind as Down};

impl Wire for Instruction {
    type Pb = pb::HubMessage;

    fn to_pb(&self) -> pb::HubMessage {
        let kind = match self {
            Self::Backup {
                spec,
                location,
                key,
                resources,
            } => Down::RunBackup(pb::RunBackup {
                spec: Some(spec.to_pb()),
                location: Some(location.to_pb()),
                repository_key: key.0.clone(),
                resource_keys: versioned_keys(resources),
            }),
            Self::Restore {
                spec,
                location,
                key,
                resources,
            } => Down::RunRestore(pb::RunRestore {
                spec: Some(spec.to_pb()),
                location: Some(location.to_pb()),
                repository_key: key.0.clone(),
                resource_keys: versioned_keys(resources),
            }),
            Self::Prune { location, key, grace } => Down::RunPrune(pb::RunPrune {
                location: Some(location.to_pb()),
                repository_key: key.0.clone(),
                grace_seconds: grace.as_secs(),
            }),
            Self::Volume(task) => Down::VolumeTask(task.to_pb()),
            Self::VolumeDone(id, result) => Down::VolumeDone(pb::VolumeDone {
                id: id.to_string(),
                result: Some(result.to_pb()),
            }),
            Self::VolumeProgress(p) => Down::VolumeProgress(p.to_pb()),
            Self::Cancel(operation) => Down::Cancel(pb::Cancel {
                operation: operation.to_string(),
            }),
            Self::Vouch(v) => Down::Vouch(pb::Vouch {
                id: v.id,
                node: v.node.clone(),
                token: secrecy::ExposeSecret::expose_secret(&v.token).to_owned(),
            }),
            Self::Orders(orders) => Down::Orders(orders_to_pb(orders)),
            Self::Adopted { backup, spooled } => Down::Adopted(pb::Adopted {
                backup: backup.to_string(),
                spooled: *spooled,
            }),
        };
        pb::HubMessage { kind: Some(kind) }
    }

    fn from_pb(m: pb::HubMessage) -> Result<Self> {
        Ok(match required("HubMessage.kind", m.kind)? {
            Down::RunBackup(run) => Self::Backup {
                spec: BackupSpec::from_pb(required("RunBackup.spec", run.spec)?)?,
                location: Location::from_pb(required("RunBackup.location", run.location)?)?,
                key: RepositoryKey(run.repository_key),
                resources: resource_keys(run.resource_keys),
            },
            Down::RunRestore(run) => Self::Restore {
                spec: RestoreSpec::from_pb(required("RunRestore.spec", run.spec)?)?,
                location: Location::from_pb(required("RunRestore.location", run.location)?)?,
                key: RepositoryKey(run.repository_key),
                resources: resource_keys(run.resource_keys),
            },
            Down::RunPrune(run) => Self::Prune {
                location: Location::from_pb(required("RunPrune.location", run.location)?)?,
                key: RepositoryKey(run.repository_key),
                grace: Duration::from_secs(run.grace_seconds),
            },
            Down::VolumeTask(task) => Self::Volume(VolumeTask::from_pb(task)?),
            Down::VolumeDone(done) => Self::VolumeDone(
                name("VolumeDone.id", done.id)?,
                VolumeResult::from_pb(required("VolumeDone.result", done.result)?)?,
            ),
            Down::VolumeProgress(p) => Self::VolumeProgress(VolumeProgress::from_pb(p)?),
            Down::Cancel(cancel) => Self::Cancel(name("Cancel.operation", cancel.operation)?),
            Down::Vouch(v) => Self::Vouch(Vouch {
                id: v.id,
                node: v.node,
                token: v.token.into(),
            }),
            Down::Orders(orders) => Self::Orders(orders_from_pb(orders)?),
            Down::Adopted(a) => Self::Adopted {
                backup: name("Adopted.backup", a.backup)?,
                spooled: a.spooled,
            },
        })
    }
}

impl Wire for Report {
    type Pb = pb::AgentMessage;

    fn to_pb(&self) -> pb::AgentMessage {
        let kind = match self {
            Self::Register(r) => Up::Register(pb::Register {
                cluster: r.cluster.to_string(),
                agent_version: r.agent_version.clone(),
                kubernetes_version: r.kubernetes_version.clone(),
                node: r.node.clone().unwrap_or_default(),
            }),
            Self::Heartbeat => Up::Heartbeat(pb::Heartbeat {}),
            Self::Progress(p) => Up::Progress(p.to_pb()),
            Self::BackupDone(name, status) => Up::BackupDone(pb::BackupDone {
                backup: name.to_string(),
                status: Some(status.to_pb()),
            }),
            Self::RestoreDone(name, status) => Up::RestoreDone(pb::RestoreDone {
                restore: name.to_string(),
                status: Some(status.to_pb()),
            }),
            Self::VolumeTask(task) => Up::VolumeTask(task.to_pb()),
            Self::VolumeProgress(p) => Up::VolumeProgress(p.to_pb()),
            Self::VolumeDone(id, result) => Up::VolumeDone(pb::VolumeDone {
                id: id.to_string(),
                result: Some(result.to_pb()),
            }),
            Self::PruneDone(location, prune) => Up::PruneDone(pb::PruneDone {
                location: location.to_string(),
                prune: Some(prune.to_pb()),
            }),
            Self::Vouched(id, verdict) => Up::Vouched(pb::Vouched {
                id: *id,
                refusal: verdict.clone().err().unwrap_or_default(),
            }),
            Self::OfflineBackup(b) => Up::OfflineBackup(offline_to_pb(b)),
        };
        pb::AgentMessage { kind: Some(kind) }
    }

    fn from_pb(m: pb::AgentMessage) -> Result<Self> {
        Ok(match required("AgentMessage.kind", m.kind)? {
            Up::Register(r) => Self::Register(Registration {
                cluster: name("Register.cluster", r.cluster)?,
                agent_version: r.agent_version,
                kubernetes_version: r.kubernetes_version,
                node: opt_string(r.node),
            }),
            Up::Heartbeat(pb::Heartbeat {}) => Self::Heartbeat,
            Up::Progress(p) => Self::Progress(Progress::from_pb(p)?),
            Up::BackupDone(done) => Self::BackupDone(
                name("BackupDone.backup", done.backup)?,
                BackupStatus::from_pb(required("BackupDone.status", done.status)?)?,
            ),
            Up::RestoreDone(done) => Self::RestoreDone(
                name("RestoreDone.restore", done.restore)?,
                RestoreStatus::from_pb(required("RestoreDone.status", done.status)?)?,
            ),
            Up::VolumeTask(task) => Self::VolumeTask(VolumeTask::from_pb(task)?),
            Up::VolumeProgress(p) => Self::VolumeProgress(VolumeProgress::from_pb(p)?),
            Up::VolumeDone(done) => Self::VolumeDone(
                name("VolumeDone.id", done.id)?,
                VolumeResult::from_pb(required("VolumeDone.result", done.result)?)?,
            ),
            Up::PruneDone(done) => Self::PruneDone(
                name("PruneDone.location", done.location)?,
                Prune::from_pb(required("PruneDone.prune", done.prune)?)?,
            ),
            Up::Vouched(v) => Self::Vouched(
                v.id,
                if v.refusal.is_empty() {
                    Ok(())
                } else {
                    Err(v.refusal)
                },
            ),
            Up::OfflineBackup(b) => Self::OfflineBackup(offline_from_pb(b)?),
        })
    }
}

impl Wire for AgentState {
    type Pb = pb::AgentState;

    fn to_pb(&self) -> pb::AgentState {
        pb::AgentState {
            orders: Some(orders_to_pb(&self.orders)),
            started: self.started.iter().map(ToString::to_string).collect(),
            unreported: self.unreported.iter().map(offline_to_pb).collect(),
            looked_unix_ms: super::ms(self.looked),
        }
    }

    fn from_pb(m: pb::AgentState) -> Result<Self> {
        Ok(Self {
            orders: orders_from_pb(required("AgentState.orders", m.orders)?)?,
            started: m
                .started
                .into_iter()
                .map(|n| name("AgentState.started", n))
                .collect::<Result<_>>()?,
            unreported: m
                .unreported
                .into_iter()
                .map(offline_from_pb)
                .collect::<Result<_>>()?,
            looked: crate::model::Timestamp::from_unix_ms(m.looked_unix_ms),
        })
    }
}

fn orders_to_pb(orders: &[Order]) -> pb::StandingOrders {
    pb::StandingOrders {
        orders: orders
            .iter()
            .map(|o| pb::Order {
                schedule: Some(o.schedule.to_pb()),
                location: Some(o.location.to_pb()),
                repository_key: o.key.0.clone(),
                resource_keys: versioned_keys(&o.resources),
                since_unix_ms: super::ms(o.since),
            })
            .collect(),
    }
}

fn orders_from_pb(orders: pb::StandingOrders) -> Result<Vec<Order>> {
    orders
        .orders
        .into_iter()
        .map(|o| {
            Ok(Order {
                schedule: ScheduleSpec::from_pb(required("Order.schedule", o.schedule)?)?,
                location: Location::from_pb(required("Order.location", o.location)?)?,
                key: RepositoryKey(o.repository_key),
                resources: resource_keys(o.resource_keys),
                since: crate::model::Timestamp::from_unix_ms(o.since_unix_ms),
            })
        })
        .collect()
}

fn offline_to_pb(b: &Backup) -> pb::OfflineBackup {
    pb::OfflineBackup {
        spec: Some(b.spec.to_pb()),
        status: Some(b.status.to_pb()),
    }
}

fn offline_from_pb(b: pb::OfflineBackup) -> Result<Backup> {
    Ok(Backup {
        spec: BackupSpec::from_pb(required("OfflineBackup.spec", b.spec)?)?,
        status: BackupStatus::from_pb(required("OfflineBackup.status", b.status)?)?,
    })
}

fn versioned_keys(keys: &ResourceKeys) -> Vec<pb::VersionedKey> {
    keys.all()
        .iter()
        .map(|k| pb::VersionedKey {
            version: k.version,
            key: k.bytes.clone(),
        })
        .collect()
}

fn resource_keys(keys: Vec<pb::VersionedKey>) -> ResourceKeys {
    ResourceKeys::new(
        keys.into_iter()
            .map(|k| ResourceKey {
                version: k.version,
                bytes: k.key,
            })
            .collect(),
    )
}

/// Whether `e` says that `field` is missing (tests).
#[cfg(test)]
fn is_missing(e: &super::Error, field: &str) -> bool {
    matches!(e, super::Error::Missing { field: f } if *f == field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        BackupName, ClusterName, LocationName, OperationId, RestoreName, Timestamp, VolumeTaskId,
    };

    fn location() -> Location {
        Location {
            name: LocationName::new("default").expect("valid"),
            url: "file:///backups".into(),
            options: [("token".to_owned(), "s3cr3t".to_owned())].into(),
        }
    }

    fn backup() -> BackupName {
        BackupName::new("nightly").expect("valid")
    }

    fn task_id() -> VolumeTaskId {
        VolumeTaskId::new(backup(), "shop", "data")
    }

    fn task() -> VolumeTask {
        VolumeTask {
            id: task_id(),
            cluster: ClusterName::new("east").expect("valid"),
            node: "node-1".into(),
            location: location(),
            key: RepositoryKey(vec![7; 32]),
            pod_uid: "uid".into(),
            volume: "pv-1".into(),
            source: "east/shop/data".into(),
            tag: "nightly".into(),
            snapshot: None,
            keep_setid: false,
        }
    }

    fn progress() -> VolumeProgress {
        VolumeProgress {
            id: task_id(),
            files: 3,
            bytes: 4096,
        }
    }

    /// Every message survives the wire; `Debug` compares what has no `PartialEq`.
    #[test]
    fn instructions_and_reports_round_trip() {
        let spec = BackupSpec::from_pb(pb::BackupSpec {
            name: "nightly".into(),
            cluster: "east".into(),
            ..Default::default()
        })
        .expect("valid");
        let instructions = [
            Instruction::Backup {
                spec,
                location: location(),
                key: RepositoryKey(vec![1; 32]),
                resources: ResourceKeys::new(vec![
                    ResourceKey {
                        version: 2,
                        bytes: vec![4; 32],
                    },
                    ResourceKey {
                        version: 1,
                        bytes: vec![3; 32],
                    },
                ]),
            },
            Instruction::Prune {
                location: location(),
                key: RepositoryKey(vec![2; 32]),
                grace: Duration::from_secs(3600),
            },
            Instruction::Volume(task()),
            Instruction::VolumeDone(task_id(), VolumeResult::default()),
            Instruction::VolumeProgress(progress()),
            Instruction::Cancel(OperationId::Restore(RestoreName::new("r").expect("valid"))),
        ];
        for i in instructions {
            let back = Instruction::decode(&i.encode()).expect("valid");
            assert_eq!(format!("{back:?}"), format!("{i:?}"));
        }
        let reports = [
            Report::Register(Registration {
                cluster: ClusterName::new("east").expect("valid"),
                agent_version: "0.1.0".into(),
                kubernetes_version: "v1.20.2".into(),
                node: Some("node-1".into()),
            }),
            Report::Heartbeat,
            Report::Progress(Progress::new(backup().into())),
            Report::BackupDone(backup(), BackupStatus::default()),
            Report::RestoreDone(RestoreName::new("r").expect("valid"), RestoreStatus::default()),
            Report::VolumeTask(task()),
            Report::VolumeProgress(progress()),
            Report::VolumeDone(task_id(), VolumeResult::default()),
            Report::PruneDone(
                LocationName::new("default").expect("valid"),
                Prune {
                    finished: Timestamp::from_unix_ms(1_000).expect("valid"),
                    cluster: "east".into(),
                    summary: "nothing to do".into(),
                    error: None,
                },
            ),
        ];
        for r in reports {
            let back = Report::decode(&r.encode()).expect("valid");
            assert_eq!(format!("{back:?}"), format!("{r:?}"));
        }
    }

    #[test]
    fn a_message_without_its_kind_is_refused() {
        let e = Instruction::from_pb(pb::HubMessage { kind: None }).expect_err("refused");
        assert!(is_missing(&e, "HubMessage.kind"), "{e}");
        let e = Report::from_pb(pb::AgentMessage { kind: None }).expect_err("refused");
        assert!(is_missing(&e, "AgentMessage.kind"), "{e}");
    }

    #[test]
    fn instructions_missing_a_required_field_are_refused() {
        let down = |kind| pb::HubMessage { kind: Some(kind) };
        let cases = [
            (down(Down::RunBackup(pb::RunBackup::default())), "RunBackup.spec"),
            (
                down(Down::RunRestore(pb::RunRestore::default())),
                "RunRestore.spec",
            ),
            (down(Down::RunPrune(pb::RunPrune::default())), "RunPrune.location"),
            (
                down(Down::VolumeTask(pb::VolumeTask {
                    location: None,
                    ..task().to_pb()
                })),
                "VolumeTask.location",
            ),
            (
                down(Down::VolumeDone(pb::VolumeDone {
                    id: task_id().to_string(),
                    result: None,
                })),
                "VolumeDone.result",
            ),
        ];
        for (message, field) in cases {
            let e = Instruction::from_pb(message).expect_err("refused");
            assert!(is_missing(&e, field), "{field}: {e}");
        }
        let mut run = Instruction::Backup {
            spec: BackupSpec::from_pb(pb::BackupSpec {
                name: "b".into(),
                cluster: "c".into(),
                ..Default::default()
            })
            .expect("valid"),
            location: location(),
            key: RepositoryKey::default(),
            resources: ResourceKeys::default(),
        }
        .to_pb();
        if let Some(Down::RunBackup(r)) = &mut run.kind {
            r.location = None;
        }
        assert!(is_missing(
            &Instruction::from_pb(run).expect_err("refused"),
            "RunBackup.location"
        ));
    }

    #[test]
    fn reports_missing_a_required_field_are_refused() {
        let up = |kind| pb::AgentMessage { kind: Some(kind) };
        let cases = [
            (
                up(Up::BackupDone(pb::BackupDone {
                    backup: "nightly".into(),
                    status: None,
                })),
                "BackupDone.status",
            ),
            (
                up(Up::RestoreDone(pb::RestoreDone {
                    restore: "r".into(),
                    status: None,
                })),
                "RestoreDone.status",
            ),
            (
                up(Up::VolumeDone(pb::VolumeDone {
                    id: task_id().to_string(),
                    result: None,
                })),
                "VolumeDone.result",
            ),
            (
                up(Up::PruneDone(pb::PruneDone {
                    location: "default".into(),
                    prune: None,
                })),
                "PruneDone.prune",
            ),
        ];
        for (message, field) in cases {
            let e = Report::from_pb(message).expect_err("refused");
            assert!(is_missing(&e, field), "{field}: {e}");
        }
    }

    #[test]
    fn ids_that_do_not_parse_are_refused() {
        let e = Report::from_pb(pb::AgentMessage {
            kind: Some(Up::VolumeDone(pb::VolumeDone {
                id: "backup/nightly".into(),
                result: Some(VolumeResult::default().to_pb()),
            })),
        })
        .expect_err("refused");
        assert!(e.to_string().starts_with("invalid VolumeDone.id"), "{e}");
        let e = Report::from_pb(pb::AgentMessage {
            kind: Some(Up::Progress(pb::Progress {
                operation: "nightly".into(),
                ..Default::default()
            })),
        })
        .expect_err("refused");
        assert!(e.to_string().starts_with("invalid Progress.operation"), "{e}");
        let e = Report::from_pb(pb::AgentMessage {
            kind: Some(Up::Register(pb::Register {
                cluster: String::new(),
                ..Default::default()
            })),
        })
        .expect_err("refused");
        assert!(e.to_string().starts_with("invalid Register.cluster"), "{e}");
    }
}
