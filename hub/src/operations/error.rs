//! What a hub call ends with when it does not carry out the request: [`Refused`] when the user
//! asked for something unknown, existing, invalid, not allowed or not possible now; [`Failure`]
//! when the hub could not do it (an agent that is not there, its records, a location). Each says
//! which [`Denial`] the user API answers with.

use cairn_proto::format;
use cairn_proto::model::{
    BackupName, ClusterName, Denial, LocationName, OperationId, Permission, Phase, Refusal, RestoreName,
    Role, ScheduleName, Timestamp, TokenName, WorkspaceName,
};

use crate::inventory;
use crate::location;

/// A request the hub refuses or could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something the hub refuses.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The hub could not carry it out.
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl Error {
    /// How the user API answers it.
    pub fn denial(&self) -> Denial {
        match self {
            Self::Refused(r) => Denial::Refused(r.refusal()),
            Self::Failed(f) => f.denial(),
        }
    }
}

/// A request the hub refuses: asking again unchanged gets the same answer.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No agent has ever registered this cluster.
    #[error("unknown cluster {0}: no agent has registered it (see `cairn cluster list`)")]
    UnknownCluster(ClusterName),
    /// A backup, restore, schedule or workspace of that name exists.
    #[error("{kind} {name} already exists")]
    Exists {
        /// backup, restore, schedule or workspace.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// No such backup.
    #[error("unknown backup {0}")]
    UnknownBackup(BackupName),
    /// No such restore.
    #[error("unknown restore {0}")]
    UnknownRestore(RestoreName),
    /// No such schedule.
    #[error("unknown schedule {0} (see `cairn schedule list`)")]
    UnknownSchedule(ScheduleName),
    /// A cron expression or time zone that cannot be used.
    #[error(transparent)]
    Timetable(#[from] cairn_proto::schedule::Invalid),
    /// No such workspace.
    #[error("unknown workspace {0} (see `cairn workspace list`)")]
    UnknownWorkspace(WorkspaceName),
    /// A cluster cannot move that way.
    #[error("{0}")]
    Membership(String),
    /// The request names a location of another workspace.
    #[error(
        "cluster {cluster} is in workspace {workspace}; location {location} belongs to workspace \
         {location_workspace}: only that workspace's clusters may use it"
    )]
    OutsideWorkspace {
        /// The cluster.
        cluster: ClusterName,
        /// Its workspace.
        workspace: WorkspaceName,
        /// The location.
        location: LocationName,
        /// The location's workspace.
        location_workspace: WorkspaceName,
    },
    /// The request names no location and the workspace has no default.
    #[error(
        "workspace {0} has no default location: add one (`cairn location add … --default`) or pass --location"
    )]
    NoDefaultLocation(WorkspaceName),
    /// Backups recorded in the inventory live in the location.
    #[error(
        "location {location} holds {backups} backup(s) recorded here: delete them, or pass --force to forget them (the store keeps them)"
    )]
    LocationInUse {
        /// The location.
        location: LocationName,
        /// How many.
        backups: usize,
    },
    /// The backup is still being written.
    #[error("backup {0} is still running; delete it once it has ended")]
    Running(BackupName),
    /// The backup cannot be restored (still running, or failed).
    #[error("backup {backup} is {phase}: only Completed or PartiallyFailed backups can be restored")]
    NotRestorable {
        /// The backup.
        backup: BackupName,
        /// Its phase.
        phase: Phase,
    },
    /// The backup is in its cluster's spool, not in its location yet.
    #[error(
        "backup {backup} is in the spool of cluster {cluster}'s site, not in location {location} yet: it is shipped there when the site's link is back; until then it can be restored on the site only (cairn-agent restore --from-spool {backup})"
    )]
    Spooled {
        /// The backup.
        backup: BackupName,
        /// Its cluster.
        cluster: ClusterName,
        /// The location it is for.
        location: String,
    },
    /// A location request refused (see [`location::Error::refusal`]).
    #[error(transparent)]
    Location(location::Error),
    /// An agent that may not enrol, renew or connect: the reason says why.
    #[error("{0}")]
    Enrolment(String),
    /// A value the hub does not accept, saying why.
    #[error("{0}")]
    Invalid(String),
    /// Not allowed, saying why.
    #[error("{0}")]
    Denied(String),
    /// No object of that kind and name.
    #[error("unknown {kind} {name}")]
    NotFound {
        /// token, …
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A bearer token missing, unknown, revoked or expired.
    #[error("{0}")]
    Token(String),
    /// A token whose role or workspace does not allow the call.
    #[error(
        "token {token} ({role}{}) may not {permission}{}: that needs {}",
        scope.as_ref().map(|w| format!(" of workspace {w}")).unwrap_or_default(),
        workspace.as_ref().map(|w| format!(" in workspace {w}")).unwrap_or_else(|| " across the hub".into()),
        needed(*permission, workspace.as_ref())
    )]
    Forbidden {
        /// The token.
        token: TokenName,
        /// Its role.
        role: Role,
        /// Its workspace.
        scope: Option<WorkspaceName>,
        /// What the call needs.
        permission: Permission,
        /// Where.
        workspace: Option<WorkspaceName>,
    },
    /// An agent reported on an operation the hub did not ask of it.
    #[error("the agent of cluster {cluster} reported on {operation}, which the hub did not ask of it")]
    NotSent {
        /// The sender's cluster.
        cluster: ClusterName,
        /// What it reported on.
        operation: OperationId,
    },
    /// A node agent its cluster's agent did not vouch for.
    #[error("the agent of cluster {cluster} does not vouch for a node agent on {node}: {why}")]
    NotVouched {
        /// The cluster.
        cluster: ClusterName,
        /// The node it claimed.
        node: String,
        /// The cluster agent's reason.
        why: String,
    },
}

impl Refused {
    /// Why, as the user API says it.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::UnknownCluster(_)
            | Self::UnknownBackup(_)
            | Self::UnknownRestore(_)
            | Self::UnknownSchedule(_)
            | Self::UnknownWorkspace(_) => Refusal::NotFound,
            Self::Exists { .. } => Refusal::Exists,
            Self::Timetable(_) => Refusal::Invalid,
            Self::OutsideWorkspace { .. } => Refusal::Denied,
            Self::Membership(_)
            | Self::NoDefaultLocation(_)
            | Self::LocationInUse { .. }
            | Self::Running(_)
            | Self::NotRestorable { .. }
            | Self::Spooled { .. } => Refusal::Precondition,
            Self::Location(e) => e.refusal().unwrap_or(Refusal::Precondition),
            Self::Enrolment(_) | Self::NotVouched { .. } | Self::Token(_) => Refusal::Unauthenticated,
            Self::Invalid(_) => Refusal::Invalid,
            Self::NotFound { .. } => Refusal::NotFound,
            Self::Forbidden { .. } | Self::Denied(_) => Refusal::Denied,
            Self::NotSent { .. } => Refusal::Denied,
        }
    }
}

/// The least role that may do what needs `permission` in `workspace`.
fn needed(permission: Permission, workspace: Option<&WorkspaceName>) -> String {
    match (permission, workspace) {
        (Permission::Administer, _) | (_, None) => format!("role {}", Role::Admin),
        (p, Some(w)) => format!("role {} (or above) in workspace {w}", p.role()),
    }
}

/// A request the hub could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The cluster's agent is not connected.
    #[error("cluster {cluster} is not connected{}", last_seen.map(|t| format!(" (last heartbeat {t})")).unwrap_or_default())]
    NotConnected {
        /// The cluster.
        cluster: ClusterName,
        /// When it was last heard from.
        last_seen: Option<Timestamp>,
    },
    /// No agent of the workspace is connected to do the location's maintenance.
    #[error("no agent of workspace {workspace} is connected to prune location {location}")]
    NoAgent {
        /// The workspace.
        workspace: WorkspaceName,
        /// The location.
        location: LocationName,
    },
    /// Too much of something is under way; worth trying again shortly.
    #[error("{0}")]
    Busy(String),
    /// The hub's own records failed.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// A location request failed (sealing, the hub's records).
    #[error(transparent)]
    Location(location::Error),
    /// The location could not be opened.
    #[error(transparent)]
    Open(#[from] format::location::Error),
    /// Reading, listing or deleting in the location failed, or what was read does not open or
    /// decode.
    #[error(transparent)]
    Store(#[from] format::sealed_store::Error),
}

impl Failure {
    /// How the user API answers it: an agent that is not there now is worth trying again later.
    pub fn denial(&self) -> Denial {
        match self {
            Self::NotConnected { .. } | Self::NoAgent { .. } | Self::Busy(_) => Denial::Unavailable,
            _ => Denial::Failed,
        }
    }
}

impl From<location::Error> for Error {
    fn from(e: location::Error) -> Self {
        match e.refusal() {
            Some(_) => Self::Refused(Refused::Location(e)),
            None => Self::Failed(Failure::Location(e)),
        }
    }
}

impl From<inventory::Error> for Error {
    fn from(e: inventory::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl From<format::location::Error> for Error {
    fn from(e: format::location::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl From<format::sealed_store::Error> for Error {
    fn from(e: format::sealed_store::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl From<cairn_proto::schedule::Invalid> for Error {
    fn from(e: cairn_proto::schedule::Invalid) -> Self {
        Self::Refused(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failures_answer_apart() {
        let cluster: ClusterName = "edge-1".parse().expect("name");
        let refused = Error::from(Refused::UnknownCluster(cluster.clone()));
        assert_eq!(refused.denial(), Denial::Refused(Refusal::NotFound));
        let away = Error::from(Failure::NotConnected {
            cluster,
            last_seen: None,
        });
        assert_eq!(away.denial(), Denial::Unavailable);
        assert_eq!(away.to_string(), "cluster edge-1 is not connected");
        let unknown = Error::from(location::Error::Unknown("offsite".parse().expect("name")));
        assert_eq!(unknown.denial(), Denial::Refused(Refusal::NotFound));
        let builtin = Error::from(location::Error::Builtin);
        assert_eq!(builtin.denial(), Denial::Refused(Refusal::Precondition));
        let key = Error::from(location::Error::Key(crate::keyring::Error::Key(
            cairn_proto::seal::Error::Random,
        )));
        assert_eq!(key.denial(), Denial::Failed);
    }
}
