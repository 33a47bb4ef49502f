//! Volume data moves between a cluster agent and the node agents of its cluster: the cluster
//! agent asks (one task per claim), the hub routes each task to the agent of the node named in
//! it and the node agent's progress and result back. The hub holds no state of its own here
//! beyond which tasks each node agent is running, so a node agent that goes away fails its tasks
//! at once instead of leaving the cluster agent waiting.

use cairn_proto::model::{Instruction, OperationId, Report, VolumeResult, VolumeTask, VolumeTaskId};
use tokio::sync::mpsc;

use super::Hub;
use super::agents::{NodeAgent, SessionId};

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
        let instruction = match report {
            Report::VolumeDone(id, result) => {
                self.inner.nodes.finished(node, &OperationId::Volume(id.clone()));
                Instruction::VolumeDone(id, result)
            }
            Report::VolumeProgress(p) => Instruction::VolumeProgress(p),
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

    /// Sends `task` to the agent of its node, or answers at once that there is none.
    pub(super) async fn route_volume(&self, task: VolumeTask) {
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
