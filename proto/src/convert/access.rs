//! Users' tokens and the audit log on the wire.

use super::{Error, Result, Wire, ms, name, opt_name};
use crate::model::{AuditEntry, Role, Timestamp, UserToken};
use crate::pb;

impl Wire for UserToken {
    type Pb = pb::UserToken;

    fn to_pb(&self) -> pb::UserToken {
        pb::UserToken {
            name: self.name.to_string(),
            role: self.role.keyword().to_owned(),
            workspace: self
                .workspace
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            created_unix_ms: self.created.unix_ms(),
            expires_unix_ms: ms(self.expires),
        }
    }

    fn from_pb(m: pb::UserToken) -> Result<Self> {
        Ok(Self {
            name: name("UserToken.name", m.name)?,
            role: m
                .role
                .parse::<Role>()
                .map_err(|e| Error::field("UserToken.role", e))?,
            workspace: opt_name("UserToken.workspace", m.workspace)?,
            created: Timestamp::from_unix_ms(m.created_unix_ms).ok_or(Error::Missing {
                field: "UserToken.created_unix_ms",
            })?,
            expires: Timestamp::from_unix_ms(m.expires_unix_ms),
        })
    }
}

impl Wire for AuditEntry {
    type Pb = pb::AuditEntry;

    fn to_pb(&self) -> pb::AuditEntry {
        pb::AuditEntry {
            time_unix_ms: self.time.unix_ms(),
            who: self.who.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
        }
    }

    fn from_pb(m: pb::AuditEntry) -> Result<Self> {
        Ok(Self {
            time: Timestamp::from_unix_ms(m.time_unix_ms).ok_or(Error::Missing {
                field: "AuditEntry.time_unix_ms",
            })?,
            who: m.who,
            action: m.action,
            target: m.target,
            outcome: m.outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_audit_entries_round_trip() {
        let token = UserToken {
            name: "ci".parse().expect("name"),
            role: Role::WorkspaceAdmin,
            workspace: Some("eu".parse().expect("name")),
            created: Timestamp::from_unix_ms(1_700_000_000_000).expect("time"),
            expires: None,
        };
        assert_eq!(UserToken::decode(&token.encode()).expect("decodes"), token);
        let entry = AuditEntry {
            time: Timestamp::from_unix_ms(1_700_000_000_001).expect("time"),
            who: "ci".into(),
            action: "create_backup".into(),
            target: "backup/nightly".into(),
            outcome: "ok".into(),
        };
        assert_eq!(AuditEntry::decode(&entry.encode()).expect("decodes"), entry);
    }
}
