//! Workspaces: which clusters share which locations. Every cluster is in exactly one workspace;
//! those never placed elsewhere are in `default`, which every hub has.

use cairn_proto::model::{ClusterName, DEFAULT_WORKSPACE, Timestamp, Workspace, WorkspaceName};

use super::{Hub, Refused, Result};

/// The `default` workspace's name.
pub fn default_workspace() -> WorkspaceName {
    DEFAULT_WORKSPACE
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid name"))
}

impl Hub {
    /// Creates workspace `default` with the built-in location as its default, if missing.
    pub(super) async fn ensure_default_workspace(&self) -> Result<()> {
        let name = default_workspace();
        if self.inner.inventory.workspace(&name).await?.is_none() {
            self.inner
                .inventory
                .put_workspace(&Workspace {
                    name,
                    default_location: Some(crate::location::builtin_name()),
                    created: Some(Timestamp::now()),
                    clusters: Vec::new(),
                })
                .await?;
        }
        Ok(())
    }

    /// Creates an empty workspace.
    #[tracing::instrument(name = "create_workspace", skip_all, fields(workspace = %name))]
    pub async fn create_workspace(&self, name: WorkspaceName) -> Result<Workspace> {
        if self.inner.inventory.workspace(&name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "workspace",
                name: name.to_string(),
            }
            .into());
        }
        let workspace = Workspace {
            name,
            default_location: None,
            created: Some(Timestamp::now()),
            clusters: Vec::new(),
        };
        self.inner.inventory.put_workspace(&workspace).await?;
        tracing::info!("workspace created");
        Ok(workspace)
    }

    /// The workspace called `name`, with its clusters.
    pub async fn workspace(&self, name: &WorkspaceName) -> Result<Workspace> {
        let mut workspace = self.workspace_record(name).await?;
        workspace.clusters = self.clusters_in(name).await?;
        Ok(workspace)
    }

    pub(super) async fn workspace_record(&self, name: &WorkspaceName) -> Result<Workspace> {
        self.inner
            .inventory
            .workspace(name)
            .await?
            .ok_or_else(|| Refused::UnknownWorkspace(name.clone()).into())
    }

    /// Every workspace with its clusters.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let mut all = self.inner.inventory.workspaces().await?;
        for w in &mut all {
            w.clusters = self.clusters_in(&w.name).await?;
        }
        Ok(all)
    }

    /// The clusters of workspace `name`: those placed there, or for `default` every registered
    /// cluster placed nowhere else.
    pub(super) async fn clusters_in(&self, name: &WorkspaceName) -> Result<Vec<ClusterName>> {
        let members = self.inner.inventory.members().await?;
        if *name != default_workspace() {
            return Ok(members
                .into_iter()
                .filter(|(_, w)| w == name)
                .map(|(c, _)| c)
                .collect());
        }
        let elsewhere: std::collections::HashSet<_> = members.into_iter().map(|(c, _)| c).collect();
        Ok(self
            .inner
            .inventory
            .clusters()
            .await?
            .into_iter()
            .map(|c| c.name)
            .filter(|c| !elsewhere.contains(c))
            .collect())
    }

    /// The workspace `cluster` is in.
    pub async fn workspace_of(&self, cluster: &ClusterName) -> Result<WorkspaceName> {
        Ok(self
            .inner
            .inventory
            .member(cluster)
            .await?
            .unwrap_or_else(default_workspace))
    }

    /// Moves `cluster` from `default` into `workspace`. The cluster need not have registered
    /// yet: a fleet can be laid out before its agents connect.
    #[tracing::instrument(name = "add_cluster", skip_all, fields(workspace = %workspace, cluster = %cluster))]
    pub async fn add_cluster(&self, workspace: &WorkspaceName, cluster: &ClusterName) -> Result<Workspace> {
        self.workspace_record(workspace).await?;
        let current = self.workspace_of(cluster).await?;
        if current != *workspace {
            if *workspace == default_workspace() {
                return Err(Refused::Membership(format!(
                    "every cluster placed nowhere else is in workspace {workspace}: \
                     remove cluster {cluster} from workspace {current} instead"
                ))
                .into());
            }
            if current != default_workspace() {
                return Err(Refused::Membership(format!(
                    "cluster {cluster} is in workspace {current}: remove it there first"
                ))
                .into());
            }
            self.inner.inventory.set_member(cluster, Some(workspace)).await?;
            tracing::info!("cluster added to workspace");
            self.orders_changed();
        }
        self.workspace(workspace).await
    }

    /// Moves `cluster` from `workspace` back to `default`.
    #[tracing::instrument(name = "remove_cluster", skip_all, fields(workspace = %workspace, cluster = %cluster))]
    pub async fn remove_cluster(
        &self,
        workspace: &WorkspaceName,
        cluster: &ClusterName,
    ) -> Result<Workspace> {
        self.workspace_record(workspace).await?;
        if self.workspace_of(cluster).await? != *workspace || *workspace == default_workspace() {
            return Err(Refused::Membership(format!(
                "cluster {cluster} is not placed in workspace {workspace}"
            ))
            .into());
        }
        self.inner.inventory.set_member(cluster, None).await?;
        tracing::info!("cluster moved back to workspace default");
        self.orders_changed();
        self.workspace(workspace).await
    }
}
