//! Volume data moves between a cluster agent and the node agents of its cluster: the cluster
//! agent asks (one task per claim), the hub routes each task to the agent of the node named in
//! it and the node agent's progress and result back. A task goes only to a node of the asking
//! agent's own cluster, only for a backup or restore that agent runs, and always with the
//! location and key the hub chooses for that operation, whatever the task said; a node agent's
//! answers count only for tasks the hub gave it. The hub holds no state of its own here
//! beyond which tasks each node agent is running, so a node agent that goes away fails its tasks
//! at once instead of leaving the cluster agent waiting.

use cairn_proto::model::{
    ClusterName, Instruction, OperationId, Report, VolumeResult, VolumeTask, VolumeTaskId,
};
use tokio::sync::mpsc;

use super::agents::{NodeAgent, SessionId};
use super::{Hub, Refused, Result, locations, not_sent};

impl Hub {
    /// Registers the agent of `node`; returns its session and the queue of tasks for it.
    #[tracing::instrument(name = "register_node", skip_all, fields(node = %node))]
    pub async fn register_node(&self, node: &NodeAgent) -> (SessionId, mpsc::Receiver<Instruction>) {
        let (id, rx, orphaned) = self.inner.nodes.attach(node);
        for task in orphaned {
            let OperationId::Volume(task) = task else { continue };
            self.answer(
                node,
                &task,
                "the node agent reconnected; the task it was running was lost",
            )
            .await;
        }
        tracing::info!("node agent registered");
        (id, rx)
    }

    /// Handles a report from `node`'s agent. A result counts only for a
    /// task the hub gave it, or (the hub restarted since) one of a backup or restore still
    /// running on its cluster; the snapshot a backup's task made is recorded as that backup's.
    pub async fn node_report(&self, node: &NodeAgent, report: Report) {
        let instruction = match report {
            Report::VolumeDone(id, result) if self.given(node, &id).await => {
                self.inner.nodes.finished(node, &OperationId::Volume(id.clone()));
                if let (OperationId::Backup(backup), false) = (&*id.operation, result.snapshot.is_empty())
                    && let Err(e) = self.inner.inventory.put_snapshot(backup, &result.snapshot).await
                {
                    tracing::error!(%node, task = %id, error = %e, "recording a backup's snapshot");
                }
                Instruction::VolumeDone(id, result)
            }
            Report::VolumeProgress(p) if self.given(node, &p.id).await => Instruction::VolumeProgress(p),
            Report::VolumeDone(id, _) => {
                tracing::warn!(%node, task = %id, "node agent's result refused: the hub did not give it that task");
                return;
            }
            Report::Heartbeat | Report::Register(_) | Report::VolumeProgress(_) => return,
            _ => {
                tracing::warn!(%node, "report ignored: node agents send only volume progress and results");
                return;
            }
        };
        let Some(tx) = self.inner.agents.queue(&node.cluster) else {
            return;
        };
        if let Instruction::VolumeProgress(_) = instruction {
            // Superseded by the next one: dropped rather than waited for.
            let _ = tx.try_send(instruction);
        } else if let Err(why) = self.deliver(&tx, instruction).await {
            tracing::warn!(%node, cluster = %node.cluster, why, "a node agent's result not passed on to its cluster agent");
        }
    }

    /// A sign of life from session `session` of `node`'s agent.
    pub fn heard_from_node(&self, node: &NodeAgent, session: SessionId) {
        self.inner.nodes.beat(node, session);
    }

    /// Session `session` of `node`'s agent has ended: its tasks fail.
    pub async fn disconnect_node(&self, node: &NodeAgent, session: SessionId, why: &str) {
        let Some(running) = self.inner.nodes.detach(node, session) else {
            return;
        };
        tracing::warn!(%node, why, running = running.len(), "node agent disconnected");
        for task in running {
            let OperationId::Volume(task) = task else { continue };
            self.answer(
                node,
                &task,
                &format!("the agent of node {} disconnected ({why})", node.node),
            )
            .await;
        }
    }

    /// Sends `task`, asked by the agent of `cluster`, to the agent of its node with the location
    /// and key of its operation, or answers at once that there is none.
    pub(super) async fn route_volume(&self, cluster: &ClusterName, mut task: VolumeTask) -> Result<()> {
        let operation = (*task.id.operation).clone();
        if task.cluster != *cluster {
            return Err(Refused::Denied(format!(
                "the agent of cluster {cluster} asked for volume task {} on node {} of cluster {}: \
                 a task goes only to a node of the asking agent's own cluster",
                task.id, task.node, task.cluster
            ))
            .into());
        }
        if !self.inner.agents.runs(cluster, &operation) {
            return Err(not_sent(cluster, &operation));
        }
        // A backup's task makes a snapshot; a restore's reads one of the backup restored.
        let backup = match (&operation, &task.snapshot) {
            (OperationId::Backup(name), None) => self.backup(name).await?,
            (OperationId::Restore(name), Some(snapshot)) => {
                let restore = self.inner.inventory.restore(name).await?;
                let Some(restore) = restore else {
                    return Err(not_sent(cluster, &operation));
                };
                let backup = self.backup(&restore.spec.backup).await?;
                if !backup.status.volumes.iter().any(|v| v.snapshot == *snapshot) {
                    return Err(Refused::Denied(format!(
                        "the agent of cluster {cluster} asked to restore snapshot {snapshot}, which is not one of backup {}'s",
                        backup.spec.name
                    ))
                    .into());
                }
                backup
            }
            _ => return Err(not_sent(cluster, &operation)),
        };
        let target = self
            .target(cluster, Some(&locations::location_of(&backup)))
            .await?;
        task.location = target.location;
        task.key = target.key;
        self.send_volume(task).await;
        Ok(())
    }

    /// Sends `task` to the agent of its node, or answers at once that there is none.
    async fn send_volume(&self, task: VolumeTask) {
        let node = NodeAgent {
            cluster: task.cluster.clone(),
            node: task.node.clone(),
        };
        let id = task.id.clone();
        let operation = OperationId::Volume(id.clone());
        let why = match self.inner.nodes.sender(&node, &operation) {
            Some(tx) => match tx.try_send(Instruction::Volume(task)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => format!(
                    "the agent of node {} has {} tasks it has not read: it is connected but not reading",
                    node.node,
                    super::agents::INSTRUCTION_QUEUE
                ),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    format!("the agent of node {} disconnected", node.node)
                }
            },
            None => format!(
                "no node agent is connected on node {} of cluster {} (run `cairn-agent node` there: deploy/node-agent.yaml)",
                node.node, node.cluster
            ),
        };
        self.inner.nodes.finished(&node, &operation);
        self.answer(&node, &id, &why).await;
    }

    /// Whether task `id` is one `node`'s agent may answer: given to it by this hub, or part of a
    /// backup or restore of its cluster that has not ended (given by this hub before a restart).
    async fn given(&self, node: &NodeAgent, id: &VolumeTaskId) -> bool {
        if self.inner.nodes.runs(node, &OperationId::Volume(id.clone())) {
            return true;
        }
        let (cluster, phase) = match &*id.operation {
            OperationId::Backup(name) => match self.inner.inventory.backup(name).await {
                Ok(Some(b)) => (Some(b.spec.cluster), b.status.phase),
                _ => return false,
            },
            OperationId::Restore(name) => match self.inner.inventory.restore(name).await {
                Ok(Some(r)) => (r.spec.target_cluster, r.status.phase),
                _ => return false,
            },
            OperationId::Prune(_) | OperationId::Volume(_) => return false,
        };
        cluster.as_ref() == Some(&node.cluster) && !phase.is_final()
    }

    /// Tells the cluster agent that task `id` on `node` failed with `why`, in the background:
    /// the caller may be that agent's own report worker, which must not wait on its queue.
    async fn answer(&self, node: &NodeAgent, id: &VolumeTaskId, why: &str) {
        let result = VolumeResult {
            node: node.node.clone(),
            error: Some(why.to_owned()),
            ..VolumeResult::default()
        };
        let Some(tx) = self.inner.agents.queue(&node.cluster) else {
            return;
        };
        let (hub, node, id) = (self.clone(), node.clone(), id.clone());
        self.spawn(async move {
            if let Err(not) = hub.deliver(&tx, Instruction::VolumeDone(id.clone(), result)).await {
                tracing::warn!(%node, task = %id, why = not, "a volume task's failure not passed on to the cluster agent");
            }
        });
    }
}
