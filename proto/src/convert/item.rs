//! Items, outcomes, resource summaries, progress, phases.

use super::{Error, Result, Wire};
use crate::format::INDEX_PART_ENTRIES;
use crate::model::{IndexEntry, ItemRef, ItemResult, Live, Outcome, Phase, Progress, ResourceSummary};
use crate::pb;

impl Wire for ItemRef {
    type Pb = pb::ItemRef;

    fn to_pb(&self) -> pb::ItemRef {
        pb::ItemRef {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    fn from_pb(m: pb::ItemRef) -> Result<Self> {
        if m.kind.is_empty() || m.name.is_empty() {
            return Err(Error::Missing {
                field: "ItemRef.kind/name",
            });
        }
        Ok(Self {
            group: m.group,
            version: m.version,
            kind: m.kind,
            resource: m.resource,
            namespace: m.namespace,
            name: m.name,
        })
    }
}

/// A phase as its wire enum value.
pub fn phase_to_pb(p: Phase) -> i32 {
    (match p {
        Phase::Pending => pb::Phase::Pending,
        Phase::InProgress => pb::Phase::InProgress,
        Phase::Completed => pb::Phase::Completed,
        Phase::PartiallyFailed => pb::Phase::PartiallyFailed,
        Phase::Failed => pb::Phase::Failed,
    }) as i32
}

/// A phase from its wire enum value (`field` names it in the error).
pub fn phase_from_pb(field: &'static str, v: i32) -> Result<Phase> {
    Ok(
        match pb::Phase::try_from(v).map_err(|e| Error::field(field, e))? {
            pb::Phase::Unspecified => return Err(Error::Missing { field }),
            pb::Phase::Pending => Phase::Pending,
            pb::Phase::InProgress => Phase::InProgress,
            pb::Phase::Completed => Phase::Completed,
            pb::Phase::PartiallyFailed => Phase::PartiallyFailed,
            pb::Phase::Failed => Phase::Failed,
        },
    )
}

impl Wire for ItemResult {
    type Pb = pb::ItemResult;

    fn to_pb(&self) -> pb::ItemResult {
        let outcome = match self.outcome {
            Outcome::BackedUp => pb::Outcome::BackedUp,
            Outcome::Created => pb::Outcome::Created,
            Outcome::Updated => pb::Outcome::Updated,
            Outcome::SkippedExists => pb::Outcome::SkippedExists,
            Outcome::LeftToController => pb::Outcome::LeftToController,
            Outcome::Failed => pb::Outcome::Failed,
            Outcome::WouldCreate => pb::Outcome::WouldCreate,
            Outcome::SkippedSensitive => pb::Outcome::SkippedSensitive,
        };
        pb::ItemResult {
            item: Some(self.item.to_pb()),
            outcome: outcome as i32,
            message: self.message.clone(),
        }
    }

    fn from_pb(m: pb::ItemResult) -> Result<Self> {
        let outcome =
            match pb::Outcome::try_from(m.outcome).map_err(|e| Error::field("ItemResult.outcome", e))? {
                pb::Outcome::Unspecified => {
                    return Err(Error::Missing {
                        field: "ItemResult.outcome",
                    });
                }
                pb::Outcome::BackedUp => Outcome::BackedUp,
                pb::Outcome::Created => Outcome::Created,
                pb::Outcome::Updated => Outcome::Updated,
                pb::Outcome::SkippedExists => Outcome::SkippedExists,
                pb::Outcome::LeftToController => Outcome::LeftToController,
                pb::Outcome::Failed => Outcome::Failed,
                pb::Outcome::WouldCreate => Outcome::WouldCreate,
                pb::Outcome::SkippedSensitive => Outcome::SkippedSensitive,
            };
        let item = ItemRef::from_pb(super::required("ItemResult.item", m.item)?)?;
        Ok(Self {
            item,
            outcome,
            message: m.message,
        })
    }
}

impl Wire for ResourceSummary {
    type Pb = pb::ResourceSummary;

    fn to_pb(&self) -> pb::ResourceSummary {
        pb::ResourceSummary {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            resource: self.resource.clone(),
            namespaced: self.namespaced,
            count: self.count,
            parts: self.parts.clone(),
            depends_on: self.depends_on.iter().map(ToString::to_string).collect(),
        }
    }

    fn from_pb(m: pb::ResourceSummary) -> Result<Self> {
        if m.resource.is_empty() || m.version.is_empty() {
            return Err(Error::Missing {
                field: "ResourceSummary.resource/version",
            });
        }
        // Stored as `group/Kind` text (`/Kind` for core), as manifests have always held them.
        let depends_on = m
            .depends_on
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|e| Error::field("ResourceSummary.depends_on", e))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            group: m.group,
            version: m.version,
            kind: m.kind,
            resource: m.resource,
            namespaced: m.namespaced,
            count: m.count,
            parts: m.parts,
            depends_on,
        })
    }
}

impl Wire for IndexEntry {
    type Pb = pb::IndexEntry;

    fn to_pb(&self) -> pb::IndexEntry {
        pb::IndexEntry {
            item: Some(self.item.to_pb()),
            part: self.part.clone(),
        }
    }

    fn from_pb(m: pb::IndexEntry) -> Result<Self> {
        Ok(Self {
            item: ItemRef::from_pb(super::required("IndexEntry.item", m.item)?)?,
            part: m.part,
        })
    }
}

/// An index part: many entries, at most [`INDEX_PART_ENTRIES`] (checked before they are decoded).
impl Wire for Vec<IndexEntry> {
    type Pb = pb::ItemIndex;

    fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode_list(bytes, "ItemIndex.entries", INDEX_PART_ENTRIES, "entries")
    }

    fn to_pb(&self) -> pb::ItemIndex {
        pb::ItemIndex {
            entries: self.iter().map(Wire::to_pb).collect(),
        }
    }

    fn from_pb(m: pb::ItemIndex) -> Result<Self> {
        m.entries.into_iter().map(IndexEntry::from_pb).collect()
    }
}

impl Wire for Progress {
    type Pb = pb::Progress;

    fn to_pb(&self) -> pb::Progress {
        pb::Progress {
            operation: self.operation.to_string(),
            items_done: self.items_done,
            items_total: self.items_total,
            bytes_done: self.bytes_done,
            current: self.current.clone(),
            files_done: self.files_done,
        }
    }

    fn from_pb(m: pb::Progress) -> Result<Self> {
        Ok(Self {
            operation: super::name("Progress.operation", m.operation)?,
            items_done: m.items_done,
            items_total: m.items_total,
            bytes_done: m.bytes_done,
            current: m.current,
            files_done: m.files_done,
        })
    }
}

impl Wire for Live {
    type Pb = pb::WatchEvent;

    fn to_pb(&self) -> pb::WatchEvent {
        pb::WatchEvent {
            progress: Some(self.progress.to_pb()),
            phase: phase_to_pb(self.phase),
        }
    }

    fn from_pb(m: pb::WatchEvent) -> Result<Self> {
        Ok(Self {
            progress: Progress::from_pb(super::required("WatchEvent.progress", m.progress)?)?,
            phase: phase_from_pb("WatchEvent.phase", m.phase)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GroupKind;

    fn summary(depends_on: Vec<GroupKind>) -> ResourceSummary {
        ResourceSummary {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            resource: "deployments".into(),
            namespaced: true,
            count: 1,
            parts: vec!["resources/apps/v1/deployments/0000".into()],
            depends_on,
        }
    }

    #[test]
    fn depends_on_travels_as_group_kind_text() {
        let s = summary(vec![
            GroupKind::NAMESPACE,
            GroupKind::new("example.com", "Widget"),
        ]);
        let wire = s.to_pb();
        assert_eq!(wire.depends_on, ["/Namespace", "example.com/Widget"]);
        assert_eq!(ResourceSummary::from_pb(wire).expect("valid"), s);
    }

    #[test]
    fn a_malformed_dependency_is_refused() {
        let mut wire = summary(vec![]).to_pb();
        wire.depends_on = vec!["Namespace".into()];
        assert!(matches!(
            ResourceSummary::from_pb(wire),
            Err(Error::Field {
                field: "ResourceSummary.depends_on",
                ..
            })
        ));
    }
}
