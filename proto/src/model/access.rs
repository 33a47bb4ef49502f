//! Who may do what on the user API. A user holds a bearer token; the hub knows its name, its
//! [`Role`] and the workspace it is limited to, and keeps only its secret's SHA-256.
//!
//! | role              | reads | backups, restores | locations, schedules, enrolment | workspaces, tokens |
//! |-------------------|-------|-------------------|---------------------------------|--------------------|
//! | `viewer`          | yes   |                   |                                 |                    |
//! | `operator`        | yes   | yes               |                                 |                    |
//! | `workspace-admin` | yes   | yes               | yes                             |                    |
//! | `admin`           | yes   | yes               | yes                             | yes                |
//!
//! Every role but `admin` is limited to one workspace (a `viewer` may see them all). Restoring
//! security-sensitive objects (`--include-sensitive`) takes `workspace-admin`.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{Timestamp, TokenName, WorkspaceName};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Read.
    Viewer,
    /// Read; back up, restore into its workspace's clusters.
    Operator,
    /// An operator's, and its workspace's locations, schedules, clusters' enrolment.
    WorkspaceAdmin,
    /// Everything: workspaces, tokens, every workspace.
    Admin,
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// Read anything.
    Read,
    /// Start backups and restores.
    Operate,
    /// Change locations, schedules, enrol and revoke clusters; restore sensitive objects.
    Configure,
    /// Make workspaces and tokens, move clusters between workspaces.
    Administer,
}

impl Permission {
    /// The least role that holds it.
    pub fn role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Operate => Role::Operator,
            Self::Configure => Role::WorkspaceAdmin,
            Self::Administer => Role::Admin,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Operate => "operate (back up, restore)",
            Self::Configure => "configure (locations, schedules, enrolment, sensitive restores)",
            Self::Administer => "administer (workspaces, tokens)",
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A user's bearer token, as the hub shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToken {
    /// Its name.
    pub name: TokenName,
    /// What it may do.
    pub role: Role,
    /// The workspace it is limited to; `None`: every one.
    pub workspace: Option<WorkspaceName>,
    /// When it was made.
    pub created: Timestamp,
    /// When it stops working; `None`: never.
    pub expires: Option<Timestamp>,
}

impl UserToken {
    /// Whether it may do what needs `permission` in `workspace` (`None`: across the hub).
    pub fn allows(&self, permission: Permission, workspace: Option<&WorkspaceName>) -> bool {
        self.role >= permission.role()
            && match (&self.workspace, workspace) {
                (None, _) => true,
                (Some(mine), Some(asked)) => mine == asked,
                (Some(_), None) => false,
            }
    }
}

/// One entry of the audit log: who did what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub time: Timestamp,
    /// Who: a token's name, or an agent.
    pub who: String,
    /// The call (`create_backup`, `join`, …).
    pub action: String,
    /// What it was about.
    pub target: String,
    /// `ok`, or why not.
    pub outcome: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, workspace: Option<&str>) -> UserToken {
        UserToken {
            name: "t".parse().expect("name"),
            role,
            workspace: workspace.map(|w| w.parse().expect("name")),
            created: Timestamp::now(),
            expires: None,
        }
    }

    #[test]
    fn roles_grant_their_permissions_in_their_workspace_only() {
        let (eu, us): (WorkspaceName, WorkspaceName) = ("eu".parse().expect("w"), "us".parse().expect("w"));
        let viewer = token(Role::Viewer, Some("eu"));
        assert!(viewer.allows(Permission::Read, Some(&eu)));
        assert!(!viewer.allows(Permission::Operate, Some(&eu)));
        let operator = token(Role::Operator, Some("eu"));
        assert!(operator.allows(Permission::Operate, Some(&eu)));
        assert!(!operator.allows(Permission::Operate, Some(&us)));
        assert!(!operator.allows(Permission::Configure, Some(&eu)));
        let admin_eu = token(Role::WorkspaceAdmin, Some("eu"));
        assert!(admin_eu.allows(Permission::Configure, Some(&eu)));
        assert!(!admin_eu.allows(Permission::Administer, None));
        assert!(
            !admin_eu.allows(Permission::Read, None),
            "hub-wide reads need a hub-wide token"
        );
        let admin = token(Role::Admin, None);
        assert!(admin.allows(Permission::Administer, None) && admin.allows(Permission::Operate, Some(&us)));
        assert!(token(Role::Viewer, None).allows(Permission::Read, Some(&us)));
    }
}
