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
use super::{Hub, Result, locations, not_sent};

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

    /// Handles a report from session `session` of `node`'s agent.
    pub async fn node_report(&self, node: &NodeAgent, session: SessionId, report: Report) {
        self.inner.nodes.beat(node, session);
        let given = |id: &VolumeTaskId| {
            let given = self.inner.nodes.runs(node, &OperationId::Volume(id.clone()));
            if !given {
                tracing::warn!(%node, task = %id, "node agent's report refused: the hub did not give it that task");
            }
            given
        };
        let instruction = match report {
            Report::VolumeDone(id, result) if given(&id) => {
                self.inner.nodes.finished(node, &OperationId::Volume(id.clone()));
                Instruction::VolumeDone(id, result)
            }
            Report::VolumeProgress(p) if given(&p.id) => Instruction::VolumeProgress(p),
            Report::VolumeDone(..) | Report::VolumeProgress(_) => return,
            Report::Heartbeat | Report::Register(_) => return,
            _ => {
                tracing::warn!(%node, "report ignored: node agents send only volume progress and results");
                return;
            }
        };
        if let Some(tx) = self.inner.agents.queue(&node.cluster) {
            let _ = tx.send(instruction).await;
        }
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
        if task.cluster != *cluster || !self.inner.agents.runs(cluster, &operation) {
            return Err(not_sent(cluster, &operation));
        }
        let backup = match &operation {
            OperationId::Backup(name) => self.backup(name).await?,
            OperationId::Restore(name) => {
                let restore = self.inner.inventory.restore(name).await?;
                let Some(restore) = restore else {
                    return Err(not_sent(cluster, &operation));
                };
                self.backup(&restore.spec.backup).await?
            }
            OperationId::Prune(_) | OperationId::Volume(_) => return Err(not_sent(cluster, &operation)),
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
        match self.inner.nodes.sender(&node, &operation) {
            Some(tx) if tx.send(Instruction::Volume(task)).await.is_ok() => {}
            _ => {
                self.inner.nodes.finished(&node, &operation);
                let why = format!(
                    "no node agent is connected on node {} of cluster {} (run `cairn-agent node` there: deploy/node-agent.yaml)",
                    node.node, node.cluster
                );
                self.answer(&node, &id, &why).await;
            }
        }
    }

    /// Tells the cluster agent that task `id` on `node` failed with `why`.
    async fn answer(&self, node: &NodeAgent, id: &VolumeTaskId, why: &str) {
        let result = VolumeResult {
            node: node.node.clone(),
            error: Some(why.to_owned()),
            ..VolumeResult::default()
        };
        if let Some(tx) = self.inner.agents.queue(&node.cluster) {
            let _ = tx.send(Instruction::VolumeDone(id.clone(), result)).await;
        }
    }
}
