//! A bucket's repository objects are not trusted for their name or their time (issue 15,
//! acceptance 6): `volumes/config` rewritten (a 2 GiB chunk maximum, or a downgrade to version 1)
//! is refused as not authentic; an index file or prune plan copied under another name, or from
//! another repository, does not open, and is named; an old prune plan uploaded again waits its grace period anew, so it
//! deletes nothing a backup still running relies on.

use anyhow::{Context, Result};
use cairn_agent::volume::backup::Counters;
use cairn_agent::volume::prune::{self, Options};
use cairn_agent::volume::restore;
use cairn_proto::pb;
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use testbed::storage::{LocalDir, files_under};
use testbed::tree::{picture, random_bytes, write};

/// A directory of a few files, backed up into a new repository under `dir`: the repository's
/// URL, key file, and the snapshot.
async fn backed_up(dir: &Path) -> Result<(String, std::path::PathBuf, String)> {
    let (url, key, repo) = testbed::repository::create(dir).await?;
    let source = dir.join("source");
    for i in 0..4 {
        write(
            &source.join(format!("f{i}")),
            &random_bytes(300_000),
            0o644,
            std::time::SystemTime::now(),
        )?;
    }
    let snapshot = testbed::repository::back_up(&repo, &source).await?;
    Ok((url, key, snapshot))
}

fn error_text(r: Result<impl Sized>) -> String {
    r.err().map(|e| format!("{e:#}")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_repository_config_is_refused_as_not_authentic() -> Result<()> {
    let dir = LocalDir::new()?;
    let (url, key, _) = backed_up(dir.path()).await?;
    let config_file = dir.path().join("repo/volumes/config");
    let original = std::fs::read(&config_file)?;
    let config = pb::RepoConfig::decode(original.as_slice())?;
    assert_eq!(config.version, 2);

    for (what, forged) in [
        (
            "a chunk maximum of 2 GiB",
            pb::RepoConfig {
                chunk_max: 1 << 31,
                ..config.clone()
            },
        ),
        (
            "a downgrade to version 1",
            pb::RepoConfig {
                version: 1,
                ..config.clone()
            },
        ),
    ] {
        std::fs::write(&config_file, forged.encode_to_vec())?;
        let said = error_text(testbed::repository::open(&url, &key).await);
        assert!(
            said.contains("volumes/config is corrupt: not authentic"),
            "{what}: {said}"
        );
    }
    std::fs::write(&config_file, &original)?;
    testbed::repository::open(&url, &key).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn index_files_and_prune_plans_copied_under_another_name_or_repository_are_refused() -> Result<()> {
    let dir = LocalDir::new()?;
    let (url, key, _) = backed_up(dir.path()).await?;
    let repo = testbed::repository::open(&url, &key).await?;
    repo.write_prune_plan(&pb::PrunePlan {
        time_unix_ms: 1,
        packs: vec!["0".repeat(64)],
    })
    .await?;
    for folder in ["index", "prune"] {
        let files = files_under(&dir.path().join("repo/volumes").join(folder))?;
        let original = files.first().context("an object")?;
        let copy = original.with_file_name("0123456789abcdef0123456789abcdef");
        std::fs::copy(original, &copy)?;
        let said = if folder == "index" {
            error_text(repo.load_index().await.map_err(anyhow::Error::from))
        } else {
            error_text(repo.prune_plans().await.map_err(anyhow::Error::from))
        };
        assert!(
            said.contains(&format!(
                "volumes/{folder}/0123456789abcdef0123456789abcdef is corrupt"
            )) && said.contains("another name or repository"),
            "{folder}: {said}"
        );
        std::fs::remove_file(&copy)?;
    }
    // From another repository (another master key, another id): refused the same way.
    let other = dir.path().join("other");
    backed_up(&other).await?;
    let theirs = files_under(&other.join("repo/volumes/index"))?;
    let theirs = theirs.first().context("an index file")?;
    let planted = dir
        .path()
        .join("repo/volumes/index")
        .join(theirs.file_name().context("a name")?);
    std::fs::copy(theirs, &planted)?;
    let said = error_text(repo.load_index().await.map_err(anyhow::Error::from));
    assert!(
        said.contains(&format!(
            "{} is corrupt",
            planted.strip_prefix(dir.path().join("repo"))?.display()
        )),
        "{said}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_prune_plan_uploaded_again_deletes_nothing_a_running_backup_uses() -> Result<()> {
    let dir = LocalDir::new()?;
    let (url, key, snapshot) = backed_up(dir.path()).await?;
    let repo = Arc::new(testbed::repository::open(&url, &key).await?);
    // A backup still running: its packs are uploaded and indexed, its snapshot not yet written.
    let snapshot_file = dir.path().join("repo/volumes/snapshots").join(&snapshot);
    let written = std::fs::read(&snapshot_file)?;
    std::fs::remove_file(&snapshot_file)?;
    // An old plan listing those packs, uploaded again now: made in 1970, as far as it says.
    let packs: Vec<String> = files_under(&dir.path().join("repo/volumes/data"))?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(!packs.is_empty());
    repo.write_prune_plan(&pb::PrunePlan {
        time_unix_ms: 1,
        packs: packs.clone(),
    })
    .await?;

    let report = prune::run(
        &repo,
        &Options {
            keep_last: None,
            grace: Duration::from_secs(3600),
        },
    )
    .await?;
    assert_eq!(report.deleted, 0, "{report:?}");
    assert_eq!(
        files_under(&dir.path().join("repo/volumes/data"))?.len(),
        packs.len()
    );

    // The backup ends: its snapshot restores whole.
    std::fs::write(&snapshot_file, written)?;
    let target = dir.path().join("restored");
    restore::run(
        repo,
        &snapshot,
        &target,
        Arc::new(Counters::default()),
        restore::Options::default(),
    )
    .await?;
    assert_eq!(picture(&target)?, picture(&dir.path().join("source"))?);
    Ok(())
}
