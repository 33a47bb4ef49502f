//! The agents connected now: one session per cluster (and one per node agent), each with a
//! bounded queue of instructions that the agent channel streams down to it.

use cairn_proto::model::{ClusterName, Instruction, OperationId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Instructions waiting for one agent. A full queue means the agent is not reading: what would
/// go beyond it fails at once with that reason (the hub never waits on an agent).
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
    /// Operations sent to this session that have not ended: whether the agent has taken each up
    /// (reported on it) yet.
    running: HashMap<OperationId, bool>,
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
            running: HashMap::new(),
        };
        let old = self.lock().insert(agent.clone(), session);
        (
            id,
            rx,
            old.map(|s| s.running.into_keys().collect()).unwrap_or_default(),
        )
    }

    /// Removes session `id` of `agent` (if still current); returns its running operations.
    pub fn detach(&self, agent: &K, id: SessionId) -> Option<Vec<OperationId>> {
        let mut sessions = self.lock();
        if sessions.get(agent).is_some_and(|s| s.id == id) {
            return sessions.remove(agent).map(|s| s.running.into_keys().collect());
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

    /// Every session: (agent, session).
    pub fn sessions(&self) -> Vec<(K, SessionId)> {
        self.lock().iter().map(|(k, s)| (k.clone(), s.id)).collect()
    }

    /// The instruction queue of `agent`, with `operation` counted as running on it;
    /// `None` if no agent is connected.
    pub fn sender(&self, agent: &K, operation: &OperationId) -> Option<mpsc::Sender<Instruction>> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(agent)?;
        session.running.insert(operation.clone(), false);
        Some(session.tx.clone())
    }

    /// Whether `operation` was sent to `agent`'s present session and has not ended.
    pub fn runs(&self, agent: &K, operation: &OperationId) -> bool {
        self.lock()
            .get(agent)
            .is_some_and(|s| s.running.contains_key(operation))
    }

    /// `agent` reported on `operation`: it has taken it up.
    pub fn took(&self, agent: &K, operation: &OperationId) {
        if let Some(taken) = self
            .lock()
            .get_mut(agent)
            .and_then(|s| s.running.get_mut(operation))
        {
            *taken = true;
        }
    }

    /// If `agent` has not taken up `operation` (sent to its present session), forgets it and says
    /// so: the caller fails it.
    pub fn drop_untaken(&self, agent: &K, operation: &OperationId) -> bool {
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(agent) else {
            return false;
        };
        if session.running.get(operation) == Some(&false) {
            session.running.remove(operation);
            return true;
        }
        false
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::model::{BackupName, LocationName, RestoreName};

    fn cluster(name: &str) -> ClusterName {
        name.parse().expect("valid name")
    }

    fn backup(name: &str) -> OperationId {
        OperationId::Backup(name.parse::<BackupName>().expect("valid name"))
    }

    fn cancel(operation: &OperationId) -> Instruction {
        Instruction::Cancel(operation.clone())
    }

    #[test]
    fn instructions_reach_only_the_agent_they_are_for_and_the_queue_is_bounded() {
        let agents = Agents::default();
        let (_, mut east, _) = agents.attach(&cluster("east"));
        let (_, mut west, _) = agents.attach(&cluster("west"));
        let op = backup("nightly");
        let tx = agents.sender(&cluster("east"), &op).expect("east is connected");
        tx.try_send(cancel(&op)).expect("room");
        assert!(matches!(east.try_recv(), Ok(Instruction::Cancel(o)) if o == op));
        assert!(west.try_recv().is_err(), "west got nothing");
        assert!(
            agents.sender(&cluster("north"), &op).is_none(),
            "no agent, no queue"
        );
        assert!(agents.queue(&cluster("north")).is_none());

        // An agent that does not read fills its queue: the hub never buffers without end.
        for _ in 0..INSTRUCTION_QUEUE {
            tx.try_send(cancel(&op)).expect("room up to the bound");
        }
        assert!(tx.try_send(cancel(&op)).is_err(), "full at {INSTRUCTION_QUEUE}");
    }

    #[test]
    fn a_session_hands_back_its_running_operations_when_it_goes_or_is_replaced() {
        let agents = Agents::default();
        let east = cluster("east");
        let (first, _rx, orphaned) = agents.attach(&east);
        assert!(orphaned.is_empty());
        let (b, r) = (
            backup("nightly"),
            OperationId::Restore("move".parse::<RestoreName>().expect("name")),
        );
        agents.sender(&east, &b);
        agents.sender(&east, &r);
        agents.finished(&east, &b);

        // The agent dials again: the old session's operations are handed back, once.
        let (second, _rx2, mut orphaned) = agents.attach(&east);
        orphaned.sort_by_key(ToString::to_string);
        assert_eq!(orphaned, vec![r.clone()]);
        assert!(
            agents.detach(&east, first).is_none(),
            "the old session is already gone"
        );

        let prune = OperationId::Prune("vault".parse::<LocationName>().expect("name"));
        agents.sender(&east, &prune);
        assert_eq!(agents.detach(&east, second), Some(vec![prune]));
        assert!(agents.last_heartbeat(&east).is_none(), "disconnected");
    }

    #[test]
    fn an_operation_not_taken_up_is_dropped_once_and_one_taken_up_is_kept() {
        let agents = Agents::default();
        let east = cluster("east");
        let (_, _rx, _) = agents.attach(&east);
        let (taken, untaken) = (backup("taken"), backup("untaken"));
        agents.sender(&east, &taken);
        agents.sender(&east, &untaken);
        agents.took(&east, &taken);
        assert!(!agents.drop_untaken(&east, &taken), "reported on: kept");
        assert!(agents.drop_untaken(&east, &untaken));
        assert!(
            !agents.runs(&east, &untaken),
            "forgotten: a late report is refused"
        );
        assert!(!agents.drop_untaken(&east, &untaken), "dropped once");
        assert!(agents.runs(&east, &taken));
    }

    #[test]
    fn silent_sessions_are_found_by_their_last_heartbeat() {
        let agents = Agents::default();
        let (east, west) = (cluster("east"), cluster("west"));
        let (east_session, _e, _) = agents.attach(&east);
        let (west_session, _w, _) = agents.attach(&west);
        let later = Timestamp::from(std::time::SystemTime::now() + std::time::Duration::from_secs(60));
        let mut silent = agents.silent_since(later);
        silent.sort_by_key(|(c, _)| c.to_string());
        assert_eq!(
            silent,
            vec![(east.clone(), east_session), (west.clone(), west_session)]
        );
        let earlier = Timestamp::from(std::time::SystemTime::now() - std::time::Duration::from_secs(60));
        assert!(agents.silent_since(earlier).is_empty());
        // A beat from a stale session id counts for nothing.
        agents.beat(&east, east_session + 100);
        assert!(agents.last_heartbeat(&east).is_some());
    }
}
