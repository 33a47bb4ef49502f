//! Hub disaster recovery as README's procedure runs it (issue 14): the hub's data directory is
//! lost and only its master key, kept in a file apart from it, survives. A new hub started with
//! that key re-adds the location into a workspace of another name and lists and restores every
//! backup in it; a hub with another key gets nothing from it, changes nothing in it, and says that
//! the master key is what it lacks.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testbed::cairn::{HubProcess, catalog};
use testbed::storage::{LocalDir, files_under};
use testbed::{ControlPlane, snapshot, wait_until};

const SHOP: &str = include_str!("../fixtures/shop.yaml");

/// How long a backup may take to end, and a namespace to be finalised.
const SETTLE: Duration = Duration::from_secs(60);

/// A new master key in `dir/name` (mode 0600, as a mounted Secret gives it) and the path as the
/// hub's `CAIRN_SECRET_KEY_FILE` takes it.
fn master_key(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    cairn_proto::seal::Key::create_file(&path)?;
    path.to_str().map(str::to_owned).context("UTF-8 path")
}

/// Every file of a local location, with its bytes.
fn contents(location: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    files_under(location)?
        .into_iter()
        .map(|path| Ok((path.clone(), std::fs::read(&path)?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_rebuilt_from_its_master_key_reads_every_backup_in_a_renamed_workspace() -> Result<()> {
    let cp = ControlPlane::start("site").await?;
    // The secret store: outside every hub's data directory (deploy/hub.yaml's Secret cairn-hub-key).
    let secrets = LocalDir::new()?;
    let key = master_key(secrets.path(), "master.key")?;
    let bucket = LocalDir::new()?;
    let vault = bucket.path().to_str().context("UTF-8 path")?;
    let add =
        |workspace: &str| format!("location add vault --workspace {workspace} --provider fs --path {vault}");

    // Hub A: workspace prod, its cluster backed up twice (all of it, and one namespace), with a
    // key rotation in between.
    let old = HubProcess::start_with(&[("CAIRN_SECRET_KEY_FILE", &key)]).await?;
    old.cli_line("workspace create prod").await?.ok()?;
    let token = old.join_token(cp.name(), &["--workspace", "prod"]).await?;
    let old_agent = old.agent_with(&cp, None, &["--join", &token]).await?;
    cp.apply(SHOP).await?;
    let original = snapshot::namespace(&cp.client(), "shop").await?;
    for object in ["/ConfigMap settings", "/Secret keys"] {
        assert!(
            original.contains_key(object),
            "{object} missing: {:?}",
            original.keys()
        );
    }
    old.cli_line(&add("prod")).await?.ok()?;
    old.cli_line("backup create everything --cluster site --wait")
        .await?
        .ok()?;
    // The workspace's key rotated between the two: the bucket's keyring must carry both versions.
    old.cli_line("workspace rotate-key prod").await?.ok()?;
    old.cli_line("backup create shop --cluster site --include-namespaces shop --wait")
        .await?
        .ok()?;
    for name in ["everything", "shop"] {
        let (backup, config_maps) = old.ended_backup(name, SETTLE, "configmaps").await?;
        assert_eq!(
            backup.status.phase,
            cairn_proto::model::Phase::Completed,
            "{backup:?}"
        );
        assert!(config_maps >= Some(1), "{name} holds no ConfigMap: {backup:?}");
    }
    let before = old.json("backup list --workspace prod").await?;
    assert_eq!(catalog(&before).len(), 2, "{before}");

    // Disaster: hub A and its whole data directory are gone; the key file and the bucket remain.
    drop(old_agent);
    old.stop();
    std::fs::remove_dir_all(old.data_dir())?;
    drop(old);
    let stored = contents(bucket.path())?;
    let keyring = bucket.path().join("keyring");
    assert!(
        stored.keys().any(|file| file.starts_with(&keyring)),
        "no keyring in the location: {:?}",
        stored.keys()
    );

    // Hub C, with another master key, reads nothing, says the master key is what it lacks, and
    // leaves the location as it found it (no keyring of its own over the old one).
    let other = master_key(secrets.path(), "other.key")?;
    let stranger = HubProcess::start_with(&[("CAIRN_SECRET_KEY_FILE", &other)]).await?;
    stranger.cli_line("workspace create recovered").await?.ok()?;
    let refused = stranger.cli_line(&add("recovered")).await?;
    let said = format!("{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.code != Some(0) && said.contains("master key") && said.contains("vault"),
        "{refused:?}"
    );
    let locations = stranger.json("location list").await?.to_string();
    assert!(!locations.contains("\"vault\""), "{locations}");
    let none = stranger.json("backup list").await?;
    assert_eq!(catalog(&none), Vec::<Value>::new(), "{refused:?}");
    assert!(
        contents(bucket.path())? == stored,
        "a hub with another master key changed the location"
    );
    drop(stranger);

    // Hub B, on a new data directory with the old key file: the location re-added into a
    // workspace of another name brings every backup back.
    let new = HubProcess::start_with(&[("CAIRN_SECRET_KEY_FILE", &key)]).await?;
    let none = new.json("backup list").await?;
    assert_eq!(catalog(&none), Vec::<Value>::new(), "a new hub knows no backup");
    new.cli_line("workspace create recovered").await?.ok()?;
    let token = new.join_token(cp.name(), &["--workspace", "recovered"]).await?;
    let _agent = new.agent_with(&cp, None, &["--join", &token]).await?;
    let added = new.cli_line(&add("recovered")).await?.ok()?;
    assert!(
        added.stdout.contains("2 backups found in it and added")
            && !added.stdout.contains("could not be read"),
        "{}",
        added.stdout
    );
    let after = new.json("backup list --workspace recovered").await?;
    assert_eq!(catalog(&before), catalog(&after), "the rebuilt catalog differs");
    for backup in after.as_array().into_iter().flatten() {
        assert_eq!(
            backup.pointer("/spec/workspace"),
            Some(&Value::from("recovered")),
            "{backup}"
        );
    }

    // Each backup restores: `shop` in place of the deleted namespace, `everything` beside it.
    let namespaces: Api<Namespace> = Api::all(cp.client());
    namespaces.delete("shop", &DeleteParams::default()).await?;
    wait_until("namespace shop to be deleted", SETTLE, || async {
        Ok(namespaces.get_opt("shop").await?.is_none().then_some(()))
    })
    .await?;
    new.cli_line("restore create back --from-backup shop --target-cluster site --wait")
        .await?
        .ok()?;
    let restored = snapshot::namespace(&cp.client(), "shop").await?;
    assert_eq!(original, restored, "the restored namespace differs");
    new.cli_line(
        "restore create beside --from-backup everything --target-cluster site \
         --include-namespaces shop --namespace-mapping shop:shop-copy --wait",
    )
    .await?
    .ok()?;
    let copy = snapshot::namespace(&cp.client(), "shop-copy").await?;
    assert_eq!(
        original, copy,
        "the namespace restored from the whole-cluster backup differs"
    );
    Ok(())
}
