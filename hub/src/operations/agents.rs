//! The agents connected now: one session per cluster (and one per node agent), each with a
//! bounded queue of instructions that the agent channel streams down to it.

use cairn_proto::model::{ClusterName, Instruction, OperationId, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Instructions waiting for one agent; a full queue makes the sender wait (backpressure).
pub const INSTRUCTION_QUEUE: usize = 16;

/// A node agent: the node it moves volume data on, in its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAgent {
    /// The cluster.
    pub cluster: ClusterName,
    /// The node.
    pub node: String,
}

impl std::fmt::Display for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.node)
    }
}

/// Identifies one connection of an agent; a reconnect gets a new one.
pub type SessionId = u64;

struct Session {
    id: SessionId,
    tx: mpsc::Sender<Instruction>,
    last_heartbeat: Timestamp,
    running: HashSet<OperationId>,
}

/// The connected agents, by cluster (`K` = [`ClusterName`]) or by node ([`NodeAgent`]).
pub struct Agents<K> {
    sessions: Mutex<HashMap<K, Session>>,
    next_id: AtomicU64,
}

impl<K> Default for Agents<K> {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash> Agents<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `agent`, replacing any older one (whose operations are returned:
    /// the old link is gone).
    pub fn attach(&self, agent: &K) -> (SessionId, mpsc::Receiver<Instruction>, Vec<OperationId>) {
        let (tx, rx) = mpsc::channel(INSTRUCTION_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Session {
            id,
            tx,
            last_heartbeat: Timestamp::now(),
            running: HashSet::new(),
        };
        let old = self.lock().insert(agent.clone(), session);
        (
            id,
            rx,
            old.map(|s| s.running.into_iter().collect()).unwrap_or_default(),
        )
    }

    /// Removes session `id` of `agent` (if still current); returns its running operations.
    pub fn detach(&self, agent: &K, id: SessionId) -> Option<Vec<OperationId>> {
        let mut sessions = self.lock();
        if sessions.get(agent).is_some_and(|s| s.id == id) {
            return sessions.remove(agent).map(|s| s.running.into_iter().collect());
        }
        None
    }

    /// Notes a sign of life from session `id`.
    pub fn beat(&self, agent: &K, id: SessionId) {
        if let Some(s) = self.lock().get_mut(agent).filter(|s| s.id == id) {
            s.last_heartbeat = Timestamp::now();
        }
    }

    /// When `agent` was last heard from, if it is connected.
    pub fn last_heartbeat(&self, agent: &K) -> Option<Timestamp> {
        self.lock().get(agent).map(|s| s.last_heartbeat)
    }

    /// Sessions silent since before `deadline`: (agent, session).
    pub fn silent_since(&self, deadline: Timestamp) -> Vec<(K, SessionId)> {
        self.lock()
            .iter()
            .filter(|(_, s)| s.last_heartbeat < deadline)
            .map(|(c, s)| (c.clone(), s.id))
            .collect()
    }

    /// The instruction queue of `agent`, with `operation` counted as running on it;
    /// `None` if no agent is connected.
    pub fn sender(&self, agent: &K, operation: &OperationId) -> Option<mpsc::Sender<Instruction>> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(agent)?;
        session.running.insert(operation.clone());
        Some(session.tx.clone())
    }

    /// The instruction queue of `agent`, if connected.
    pub fn queue(&self, agent: &K) -> Option<mpsc::Sender<Instruction>> {
        self.lock().get(agent).map(|s| s.tx.clone())
    }

    /// Operation `operation` of `agent` has ended.
    pub fn finished(&self, agent: &K, operation: &OperationId) {
        if let Some(s) = self.lock().get_mut(agent) {
            s.running.remove(operation);
        }
    }
}
