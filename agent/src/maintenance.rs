//! Maintenance the hub asks of a cluster agent: pruning the volume repository of a location of
//! its workspace (see [`crate::volume::prune`]), reported back as one report.

use cairn_proto::model::{ClusterName, Location, Prune, Report, RepositoryKey, Timestamp};
use cairn_proto::seal::Key;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::volume::{self, Repository};

/// Prunes the repository in `location` (none there: nothing to do) and reports the outcome.
#[tracing::instrument(name = "prune", skip_all, fields(location = %location.name))]
pub async fn prune(
    location: Location,
    key: RepositoryKey,
    grace: Duration,
    cluster: ClusterName,
    events: mpsc::Sender<Report>,
) {
    let outcome = run(&location, &key, grace).await;
    let (summary, error) = match outcome {
        Ok(summary) => (summary, None),
        Err(e) => (String::new(), Some(cairn_proto::error_chain(&e))),
    };
    tracing::info!(%summary, error = error.as_deref().unwrap_or(""), "prune ended");
    let prune = Prune {
        finished: Timestamp::now(),
        cluster: cluster.to_string(),
        summary,
        error,
    };
    let _ = events.send(Report::PruneDone(location.name, prune)).await;
}

async fn run(location: &Location, key: &RepositoryKey, grace: Duration) -> Result<String, volume::Error> {
    let store = cairn_proto::format::open_location(location)?;
    let kek = Key::from_raw(&key.0, "the workspace's repository key")?;
    let label = format!("location {}", location.name);
    let repo = match Repository::open(store, &label, &kek, "the workspace's repository key").await {
        Ok(repo) => Arc::new(repo),
        Err(volume::Error::NotInitialised(_)) => return Ok("no volume data".into()),
        Err(e) => return Err(e),
    };
    let options = volume::prune::Options {
        keep_last: None,
        grace,
    };
    let r = volume::prune::run(&repo, &options).await?;
    Ok(format!(
        "{} snapshots; deleted {} packs ({}); {} packs planned for deletion",
        r.kept,
        r.deleted,
        indicatif::HumanBytes(r.deleted_bytes),
        r.planned
    ))
}
