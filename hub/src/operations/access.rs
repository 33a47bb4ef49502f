//! Users: bearer tokens with a role, limited to a workspace, and the audit log of every change.
//!
//! A token reads `cairn_<name>_<secret>`. The hub keeps its name, role, workspace and expiry and
//! the SHA-256 of its secret, compared in constant time; the secret itself is shown once, when the
//! token is made. On its first start the hub makes token `admin` for its local user (see
//! [`Hub::bootstrap_admin`]).

use cairn_proto::convert::{self, Wire};
use cairn_proto::model::{AuditEntry, Permission, Role, Timestamp, TokenName, UserToken, WorkspaceName};
use cairn_proto::pb;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use super::{Hub, Refused, Result};

/// What every bearer token starts with.
const PREFIX: &str = "cairn_";
/// Audit entries kept; older ones are dropped as new ones come.
pub const AUDIT_KEPT: usize = 100_000;

/// The hub's record of a token: what it may do and its secret's hash.
pub struct StoredToken {
    /// The token.
    pub token: UserToken,
    /// Hex SHA-256 of its secret.
    pub sha256: String,
}

impl Wire for StoredToken {
    type Pb = pb::StoredToken;

    fn to_pb(&self) -> pb::StoredToken {
        pb::StoredToken {
            token: Some(self.token.to_pb()),
            sha256: self.sha256.clone(),
        }
    }

    fn from_pb(m: pb::StoredToken) -> convert::Result<Self> {
        Ok(Self {
            token: UserToken::from_pb(convert::required("StoredToken.token", m.token)?)?,
            sha256: m.sha256,
        })
    }
}

fn sha256(secret: &str) -> String {
    cairn_proto::join::fingerprint(secret.as_bytes())
}

fn unauthenticated(why: impl Into<String>) -> super::Error {
    Refused::Token(why.into()).into()
}

impl Hub {
    /// Makes token `name` with `role`, limited to `workspace`, working for `ttl` (`None`: until
    /// revoked); returns it and the bearer text, shown this once.
    #[tracing::instrument(name = "create_token", skip_all, fields(token = %name, role = %role))]
    pub async fn create_token(
        &self,
        name: TokenName,
        role: Role,
        workspace: Option<WorkspaceName>,
        ttl: Option<Duration>,
    ) -> Result<(UserToken, SecretString)> {
        match (role, &workspace) {
            (Role::Admin, Some(w)) => {
                return Err(Refused::Invalid(format!(
                    "an admin token is hub-wide: it cannot be limited to workspace {w}"
                ))
                .into());
            }
            (Role::Operator | Role::WorkspaceAdmin, None) => {
                return Err(Refused::Invalid(format!(
                    "a {role} token belongs to one workspace: pass --workspace"
                ))
                .into());
            }
            _ => {}
        }
        if let Some(w) = &workspace {
            self.workspace_record(w).await?;
        }
        if self.inner.inventory.token(&name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "token",
                name: name.to_string(),
            }
            .into());
        }
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Refused::Invalid("no randomness".into()))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Timestamp::now();
        let token = UserToken {
            name,
            role,
            workspace,
            created: now,
            expires: ttl.map(|ttl| Timestamp::from(std::time::SystemTime::now() + ttl)),
        };
        self.inner
            .inventory
            .put_token(&StoredToken {
                token: token.clone(),
                sha256: sha256(&secret),
            })
            .await?;
        let bearer = SecretString::from(format!("{PREFIX}{}_{secret}", token.name));
        tracing::info!("token created");
        Ok((token, bearer))
    }

    /// Every token (never a secret).
    pub async fn tokens(&self) -> Result<Vec<UserToken>> {
        Ok(self
            .inner
            .inventory
            .tokens()
            .await?
            .into_iter()
            .map(|s| s.token)
            .collect())
    }

    /// Revokes token `name`: it is refused from the next call on.
    pub async fn revoke_token(&self, name: &TokenName) -> Result<()> {
        if self.inner.inventory.token(name).await?.is_none() {
            return Err(Refused::NotFound {
                kind: "token",
                name: name.to_string(),
            }
            .into());
        }
        self.inner.inventory.delete_token(name).await?;
        tracing::info!(token = %name, "token revoked");
        Ok(())
    }

    /// The token `bearer` is, if it is one the hub made, not revoked and not expired.
    pub async fn authenticate(&self, bearer: &SecretString) -> Result<UserToken> {
        let text = bearer.expose_secret();
        let (name, secret) = text
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.rsplit_once('_'))
            .ok_or_else(|| unauthenticated("that is not a Cairn token (cairn_<name>_<secret>)"))?;
        let name: TokenName = name
            .parse()
            .map_err(|_| unauthenticated("that is not a Cairn token (cairn_<name>_<secret>)"))?;
        let Some(stored) = self.inner.inventory.token(&name).await? else {
            return Err(unauthenticated(format!("token {name} is unknown or revoked")));
        };
        let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
            sha256(secret).as_bytes(),
            stored.sha256.as_bytes(),
        )
        .is_ok();
        if !matches {
            return Err(unauthenticated(format!("token {name} is unknown or revoked")));
        }
        if let Some(expires) = stored.token.expires.filter(|e| *e < Timestamp::now()) {
            return Err(unauthenticated(format!("token {name} expired at {expires}")));
        }
        Ok(stored.token)
    }

    /// Whether `token` may do what needs `permission` in `workspace` (`None`: hub-wide); the
    /// refusal names its role and what it lacks.
    pub fn authorize(
        &self,
        token: &UserToken,
        permission: Permission,
        workspace: Option<&WorkspaceName>,
    ) -> Result<()> {
        if token.allows(permission, workspace) {
            return Ok(());
        }
        Err(Refused::Forbidden {
            token: token.name.clone(),
            role: token.role,
            scope: token.workspace.clone(),
            permission,
            workspace: workspace.cloned(),
        }
        .into())
    }

    /// On a hub with no token at all (its first start): token `admin`, hub-wide, for its local
    /// user; its bearer text, to be written where only that user reads it.
    pub async fn bootstrap_admin(&self) -> Result<Option<(TokenName, SecretString)>> {
        if !self.inner.inventory.tokens().await?.is_empty() {
            return Ok(None);
        }
        let name: TokenName = "admin".parse().map_err(|_| Refused::Invalid("admin".into()))?;
        let (_, bearer) = self.create_token(name.clone(), Role::Admin, None, None).await?;
        Ok(Some((name, bearer)))
    }

    /// A new hub-wide admin token for whoever runs the hub, when the administrator lost theirs
    /// (`cairn-hub --new-admin-token`): `admin-<unix seconds>`, audited as made by the hub's
    /// operator; its name and bearer text. Other tokens stay as they are.
    pub async fn new_admin_token(&self) -> Result<(TokenName, SecretString)> {
        let name = format!("admin-{}", Timestamp::now().unix_ms() / 1000);
        let name: TokenName = name.parse().map_err(|_| Refused::Invalid(name.clone()))?;
        let made = self.create_token(name.clone(), Role::Admin, None, None).await;
        let outcome = made.as_ref().map(|_| ()).map_err(ToString::to_string);
        self.audit(
            "hub operator (cairn-hub --new-admin-token)",
            "create_token",
            &format!("token/{name}"),
            outcome,
        )
        .await;
        let (_, bearer) = made?;
        Ok((name, bearer))
    }

    /// Records that `who` did `action` on `target`, ending with `outcome` (`Ok`, or why not).
    pub async fn audit(
        &self,
        who: &str,
        action: &str,
        target: &str,
        outcome: std::result::Result<(), String>,
    ) {
        let entry = AuditEntry {
            time: Timestamp::now(),
            who: who.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.err().unwrap_or_else(|| "ok".to_owned()),
        };
        tracing::info!(audit.who = %entry.who, audit.action = %entry.action, audit.target = %entry.target, audit.outcome = %entry.outcome, "audit");
        if let Err(e) = self.inner.inventory.put_audit(&entry, AUDIT_KEPT).await {
            tracing::error!(error = %e, "recording an audit entry");
        }
    }

    /// The last `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self.inner.inventory.audit(limit).await?)
    }
}
