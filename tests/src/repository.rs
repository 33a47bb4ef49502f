//! A volume repository in a local directory, opened through the agent's own code, for tests that
//! forge, copy or replay what a bucket holds.

use anyhow::Result;
use cairn_agent::volume::Repository;
use cairn_proto::model::Location;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A new repository in `dir/repo`, its key in `dir/key`: URL, key file, the repository open.
pub async fn create(dir: &Path) -> Result<(String, PathBuf, Arc<Repository>)> {
    let url = format!("file://{}", dir.join("repo").display());
    std::fs::create_dir_all(dir.join("repo"))?;
    let key_file = dir.join("key");
    let kek = cairn_proto::seal::Key::create_file(&key_file)?;
    let repo = Repository::init(store(&url)?, &url, &kek).await?;
    Ok((url, key_file, Arc::new(repo)))
}

/// The repository at `url` opened again with key file `key_file`.
pub async fn open(url: &str, key_file: &Path) -> Result<Repository> {
    let kek = cairn_proto::seal::Key::read_file(key_file)?;
    Ok(Repository::open(store(url)?, url, &kek, "the test's key").await?)
}

fn store(url: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
    Ok(cairn_proto::format::open_location(&Location {
        name: "tests".parse()?,
        url: url.to_owned(),
        options: Default::default(),
    })?)
}

/// Backs `source` up into `repo` (host `h`); the new snapshot's id.
pub async fn back_up(repo: &Arc<Repository>, source: &Path) -> Result<String> {
    let origin = cairn_agent::volume::backup::Origin {
        host: "h".into(),
        ..Default::default()
    };
    let done = cairn_agent::volume::backup::run(repo.clone(), source, origin, Arc::default()).await?;
    Ok(done.snapshot)
}
