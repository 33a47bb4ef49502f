//! Volume data: results, tasks for node agents, their progress.

use super::{Result, Wire, ms, name, opt_string, required};
use crate::model::{
    KeyVersion, Location, RepositoryKey, Timestamp, VolumeProgress, VolumeResult, VolumeTask,
};
use crate::pb;

impl Wire for KeyVersion {
    type Pb = pb::KeyringVersion;

    fn to_pb(&self) -> pb::KeyringVersion {
        pb::KeyringVersion {
            version: self.version,
            resource_key: self.resource.to_vec(),
            repository_key: self.repository.to_vec(),
            created_unix_ms: self.created.unix_ms(),
        }
    }

    fn from_pb(m: pb::KeyringVersion) -> Result<Self> {
        let key = |field, bytes: Vec<u8>| {
            <[u8; 32]>::try_from(bytes).map_err(|_| super::Error::field(field, "not 32 bytes"))
        };
        Ok(Self {
            version: m.version,
            resource: key("KeyringVersion.resource_key", m.resource_key)?,
            repository: key("KeyringVersion.repository_key", m.repository_key)?,
            created: Timestamp::from_unix_ms(m.created_unix_ms)
                .ok_or_else(|| super::Error::field("KeyringVersion.created_unix_ms", "out of range"))?,
        })
    }
}

impl Wire for VolumeResult {
    type Pb = pb::VolumeResult;

    fn to_pb(&self) -> pb::VolumeResult {
        pb::VolumeResult {
            namespace: self.namespace.clone(),
            claim: self.claim.clone(),
            volume: self.volume.clone(),
            node: self.node.clone(),
            pod: self.pod.clone(),
            snapshot: self.snapshot.clone(),
            files: self.files,
            bytes: self.bytes,
            bytes_read: self.bytes_read,
            bytes_added: self.bytes_added,
            error: self.error.clone().unwrap_or_default(),
            started_unix_ms: ms(self.started),
            finished_unix_ms: ms(self.finished),
        }
    }

    fn from_pb(m: pb::VolumeResult) -> Result<Self> {
        Ok(Self {
            namespace: m.namespace,
            claim: m.claim,
            volume: m.volume,
            node: m.node,
            pod: m.pod,
            snapshot: m.snapshot,
            files: m.files,
            bytes: m.bytes,
            bytes_read: m.bytes_read,
            bytes_added: m.bytes_added,
            error: opt_string(m.error),
            started: Timestamp::from_unix_ms(m.started_unix_ms),
            finished: Timestamp::from_unix_ms(m.finished_unix_ms),
        })
    }
}

impl Wire for VolumeTask {
    type Pb = pb::VolumeTask;

    fn to_pb(&self) -> pb::VolumeTask {
        pb::VolumeTask {
            id: self.id.to_string(),
            cluster: self.cluster.to_string(),
            node: self.node.clone(),
            location: Some(self.location.to_pb()),
            repository_key: self.key.0.clone(),
            pod_uid: self.pod_uid.clone(),
            volume: self.volume.clone(),
            source: self.source.clone(),
            tag: self.tag.clone(),
            snapshot: self.snapshot.clone().unwrap_or_default(),
            keep_setid: self.keep_setid,
        }
    }

    fn from_pb(m: pb::VolumeTask) -> Result<Self> {
        Ok(Self {
            id: name("VolumeTask.id", m.id)?,
            cluster: name("VolumeTask.cluster", m.cluster)?,
            node: m.node,
            location: Location::from_pb(required("VolumeTask.location", m.location)?)?,
            key: RepositoryKey(m.repository_key),
            pod_uid: m.pod_uid,
            volume: m.volume,
            source: m.source,
            tag: m.tag,
            snapshot: opt_string(m.snapshot),
            keep_setid: m.keep_setid,
        })
    }
}

impl Wire for VolumeProgress {
    type Pb = pb::VolumeProgress;

    fn to_pb(&self) -> pb::VolumeProgress {
        pb::VolumeProgress {
            id: self.id.to_string(),
            files: self.files,
            bytes: self.bytes,
        }
    }

    fn from_pb(m: pb::VolumeProgress) -> Result<Self> {
        Ok(Self {
            id: name("VolumeProgress.id", m.id)?,
            files: m.files,
            bytes: m.bytes,
        })
    }
}
