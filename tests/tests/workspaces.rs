//! Workspaces and backup locations end to end, as a user drives them with `cairn`: a backup and
//! its restore through every provider on its real server, each misconfiguration refused at
//! `location add` with its own reason, locations fenced to their workspace, credentials never in
//! clear in the hub's database or any log, and a storage server stopped in the middle of a backup.

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, path::Path as Key};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use testbed::cairn::{CliOutput, HubProcess};
use testbed::storage::{AZURE_ACCOUNT, AZURE_KEY, AzuriteServer, GcsServer, LocalDir, S3Server, files_under};
use testbed::{ControlPlane, snapshot, wait_until};

const SHOP: &str = include_str!("../fixtures/shop.yaml");

/// Writes `text` to `dir/name` and returns the path as a CLI argument.
fn file(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    path.to_str().map(str::to_owned).context("UTF-8 path")
}

/// Every key under `prefix` in `store`.
async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<String>> {
    let prefix = Key::from(prefix);
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
}

/// Fails unless the command failed with `needle` in its error.
fn refused(out: &CliOutput, needle: &str) -> Result<()> {
    if out.code == Some(0) || !out.stderr.contains(needle) {
        bail!("expected a failure saying {needle:?}, got {out:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_round_trips_and_no_secret_is_kept_or_logged_in_clear() -> Result<()> {
    let (cp, s3, tls, gcs, azure) = tokio::try_join!(
        ControlPlane::start("providers"),
        S3Server::start_with_auth("backups"),
        S3Server::start_tls(),
        GcsServer::start(),
        AzuriteServer::start(),
    )?;
    tokio::try_join!(
        tls.create_bucket("secure"),
        gcs.create_bucket("fleet"),
        azure.create_container("vault"),
    )?;
    let hub = HubProcess::start_with(&[("RUST_LOG", "debug")]).await?;
    let agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    let original = snapshot::namespace(&cp.client(), "shop").await?;

    let files = LocalDir::new()?;
    let dir = files.path();
    let secret = s3.credentials().secret_access_key.clone();
    let aws = file(
        dir,
        "aws.ini",
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            s3.credentials().access_key_id
        ),
    )?;
    let tls_aws = file(
        dir,
        "tls.ini",
        "[minio]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )?;
    let ca = file(dir, "ca.pem", tls.ca_pem().context("TLS server CA")?)?;
    let azure_env = file(
        dir,
        "azure.env",
        &format!("AZURE_STORAGE_ACCOUNT_KEY={AZURE_KEY}\n"),
    )?;
    let local = LocalDir::new()?;
    let local_path = local.path().join("backups");
    std::fs::create_dir_all(&local_path)?;
    let local_path = local_path.to_str().context("UTF-8 path")?;

    let providers: Vec<(&str, String, Arc<dyn ObjectStore>)> = vec![
        (
            "aws",
            format!(
                "--provider s3 --bucket backups --prefix team/a --endpoint {} --force-path-style \
                 --credentials-file {aws}",
                s3.endpoint()
            ),
            Arc::new(PrefixStore::new(s3.store("backups")?, "team/a")),
        ),
        (
            "minio-tls",
            format!(
                "--provider minio --bucket secure --endpoint {} --ca-cert {ca} \
                 --credentials-file {tls_aws} --profile minio",
                tls.endpoint()
            ),
            tls.store("secure")?,
        ),
        (
            "gcs",
            format!("--provider gcs --bucket fleet --endpoint {}", gcs.endpoint()),
            gcs.store("fleet")?,
        ),
        (
            "azure",
            format!(
                "--provider azure --account {AZURE_ACCOUNT} --bucket vault --endpoint {} \
                 --credentials-file {azure_env}",
                azure.endpoint()
            ),
            azure.store("vault")?,
        ),
        (
            "local",
            format!("--provider fs --path {local_path}"),
            Arc::new(LocalFileSystem::new_with_prefix(local_path)?),
        ),
    ];
    for (name, flags, store) in &providers {
        let out = hub
            .cli_line(&format!("location add {name} {flags}"))
            .await?
            .ok()?;
        assert!(
            out.stdout.contains(&format!("location {name} verified")),
            "{out:?}"
        );

        let backup = format!("shop-{name}");
        hub.cli_line(&format!(
            "backup create {backup} --cluster providers --location {name} --include-namespaces shop --wait"
        ))
        .await?
        .ok()
        .with_context(|| format!("backup through {name}"))?;
        let written = keys(store, &format!("backups/{backup}")).await?;
        assert!(
            written.contains(&format!("backups/{backup}/manifest.pb")),
            "{name}: the backup is not in the provider's bucket: {written:?}"
        );

        hub.cli_line(&format!(
            "restore create {backup} --from-backup {backup} --namespace-mapping shop:{backup} --wait"
        ))
        .await?
        .ok()
        .with_context(|| format!("restore through {name}"))?;
        let restored = snapshot::namespace(&cp.client(), &backup).await?;
        assert_eq!(original, restored, "{name}: the restored namespace differs");
    }

    let listed = hub.cli_line("location list").await?.ok()?.stdout;
    for (name, _, _) in &providers {
        let row = listed
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .with_context(|| format!("{name} not listed:\n{listed}"))?;
        assert!(row.contains("healthy"), "{row}");
    }

    // The secrets the hub holds: the IAM user's secret key and the Azure account key.
    let secrets = [secret.as_str(), AZURE_KEY];
    let described = hub.cli_line("location describe aws -o json").await?.ok()?.stdout;
    assert!(described.contains("\"has_credentials\": true"), "{described}");
    let (hub_log, agent_log) = (hub.full_log(), agent.full_log());
    assert!(
        hub_log.contains("DEBUG") && agent_log.contains("DEBUG"),
        "not logging at debug level"
    );
    for (what, text) in [
        ("hub log", &hub_log),
        ("agent log", &agent_log),
        ("describe", &described),
    ] {
        for s in secrets {
            assert!(!text.contains(s), "{what} holds a credential in clear");
        }
    }
    let database = files_under(&hub.data_dir().join("db"))?;
    assert!(!database.is_empty(), "no database files found");
    for path in database {
        let bytes = std::fs::read(&path)?;
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds a credential in clear",
                path.display()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn location_add_tells_each_misconfiguration_apart_and_saves_nothing() -> Result<()> {
    let (s3, tls) = tokio::try_join!(S3Server::start_with_auth("backups"), S3Server::start_tls())?;
    tls.create_bucket("secure").await?;
    let hub = HubProcess::start().await?;
    let files = LocalDir::new()?;
    let key = &s3.credentials().access_key_id;
    let ini = |name: &str, secret: &str| {
        let text = format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n");
        file(files.path(), name, &text)
    };
    let good = ini("good.ini", &s3.credentials().secret_access_key)?;
    let wrong = ini("wrong.ini", "not-the-secret")?;
    let add_s3 = |name: &str, bucket: &str, endpoint: &str, credentials: &str| {
        format!(
            "location add {name} --provider s3 --bucket {bucket} --endpoint {endpoint} --force-path-style \
             --credentials-file {credentials}"
        )
    };
    let endpoint = s3.endpoint();

    let out = hub
        .cli_line(&add_s3("wrong-secret", "backups", endpoint, &wrong))
        .await?;
    refused(
        &out,
        "location wrong-secret was not saved: writing a probe object failed: the credentials were refused",
    )?;
    assert!(
        out.stderr.contains("SignatureDoesNotMatch"),
        "the server's own reason: {out:?}"
    );
    let out = hub
        .cli_line(&add_s3("no-bucket", "missing", endpoint, &good))
        .await?;
    refused(&out, "the bucket or container does not exist")?;
    let out = hub
        .cli_line(&add_s3("unreachable", "backups", "http://127.0.0.1:9", &good))
        .await?;
    refused(&out, "the endpoint cannot be reached")?;
    let out = hub
        .cli_line(&format!(
            "location add untrusted --provider minio --bucket secure --endpoint {} --credentials-file {good}",
            tls.endpoint()
        ))
        .await?;
    refused(
        &out,
        "the endpoint's TLS certificate is not trusted (give its CA with --ca-cert)",
    )?;
    let out = hub
        .cli_line("location add plain --provider minio --bucket secure --endpoint 127.0.0.1:9000")
        .await?;
    refused(
        &out,
        "--endpoint \"127.0.0.1:9000\" is not an http:// or https:// URL",
    )?;

    let out = hub.cli_line("location list -o json").await?.ok()?;
    let listed: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let names: Vec<&str> = listed
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|l| l.pointer("/spec/name").and_then(|n| n.as_str()))
        .collect();
    assert_eq!(names, ["default"], "a refused location was saved");

    hub.cli_line(&add_s3("good", "backups", endpoint, &good))
        .await?
        .ok()?;
    hub.cli_line("location verify good").await?.ok()?;
    refused(
        &hub.cli_line("location verify no-such").await?,
        "unknown location no-such",
    )?;
    Ok(())
}

/// Size of the manifest planted in a location: larger than any the hub may read.
const PLANTED_MANIFEST: u64 = 200 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_manifest_is_refused_unread_and_named_at_location_add() -> Result<()> {
    let hub = HubProcess::start().await?;
    let files = LocalDir::new()?;
    let root = files.path().join("vault");
    // A backup folder as FORMAT.md lays it out, its manifest 200 MiB of zeros (a sparse file): what
    // anyone who can write into the bucket could leave there.
    let folder = root.join("backups").join("planted");
    std::fs::create_dir_all(&folder)?;
    std::fs::File::create(folder.join("manifest.pb"))?.set_len(PLANTED_MANIFEST)?;
    let before = testbed::proc_stats::peak_rss_mib(hub.pid());

    let path = root.to_str().context("UTF-8 path")?;
    let out = hub
        .cli_line(&format!("location add vault --provider fs --path {path}"))
        .await?
        .ok()?;
    assert!(
        out.stdout.contains("1 backups found in it could not be read")
            && out.stdout.contains(&format!(
                "planted: location vault: backups/planted/manifest.pb is {PLANTED_MANIFEST} bytes, \
                 more than the 67108864 bytes a manifest may be"
            )),
        "{out:?}"
    );
    let peak = testbed::proc_stats::peak_rss_mib(hub.pid());
    println!("hub peak RSS: {before} MiB before location add, {peak} MiB after");
    assert!(
        peak > 0 && peak < 128,
        "the hub's peak memory is {peak} MiB: it read the 200 MiB manifest"
    );
    assert!(
        listed_backups(&hub).await?.is_empty(),
        "the planted backup was recorded"
    );
    Ok(())
}

/// Names of the backups the hub records.
async fn listed_backups(hub: &HubProcess) -> Result<Vec<String>> {
    let list = hub.json("backup list").await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            b.pointer("/spec/name")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_workspaces_clusters_use_its_locations() -> Result<()> {
    let cp = ControlPlane::start("edge-1").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    let dir = LocalDir::new()?;
    let path = dir.path().join("edge");
    let path = path.to_str().context("UTF-8 path")?;
    let backup = |name: &str, location: &str| {
        format!("backup create {name} --cluster edge-1 --include-namespaces shop --wait {location}")
    };
    let fenced_from_edge = "cluster edge-1 is in workspace default; location edge-store belongs to \
                            workspace edge: only that workspace's clusters may use it";
    let fenced_from_default =
        "cluster edge-1 is in workspace edge; location default belongs to workspace default";

    hub.cli_line("workspace create edge").await?.ok()?;
    hub.cli_line(&format!(
        "location add edge-store --workspace edge --provider fs --path {path}"
    ))
    .await?
    .ok()?;

    // edge-1 is in workspace default: edge's location is not its to use.
    refused(
        &hub.cli_line(&backup("fenced", "--location edge-store")).await?,
        fenced_from_edge,
    )?;
    hub.cli_line(&backup("at-home", "")).await?.ok()?;

    let out = hub.cli_line("workspace add-cluster edge edge-1").await?.ok()?;
    assert_eq!(out.stdout.trim(), "cluster edge-1 is in workspace edge");
    let clusters = hub.cli_line("cluster list").await?.ok()?.stdout;
    assert!(
        clusters
            .lines()
            .any(|l| l.starts_with("edge-1") && l.contains(" edge ")),
        "{clusters}"
    );
    refused(
        &hub.cli_line("workspace add-cluster other edge-1").await?,
        "unknown workspace other",
    )?;

    // Now in edge: its default location is edge-store, and default's location is fenced off.
    hub.cli_line(&backup("in-edge", "")).await?.ok()?;
    let described = hub
        .cli_line("backup describe in-edge -o json")
        .await?
        .ok()?
        .stdout;
    let described: serde_json::Value = serde_json::from_str(&described)?;
    assert_eq!(
        described.pointer("/spec/location").and_then(|l| l.as_str()),
        Some("edge-store")
    );
    assert!(
        dir.path().join("edge/backups/in-edge/manifest.pb").exists(),
        "the backup is not in edge's directory"
    );
    refused(
        &hub.cli_line(&backup("fenced-2", "--location default")).await?,
        fenced_from_default,
    )?;
    let restore = "restore create back --from-backup at-home --namespace-mapping shop:shop-2 --wait";
    refused(&hub.cli_line(restore).await?, fenced_from_default)?;
    hub.cli_line("restore create edge-copy --from-backup in-edge --namespace-mapping shop:shop-edge --wait")
        .await?
        .ok()?;

    let described = hub.cli_line("workspace describe edge").await?.ok()?.stdout;
    assert!(described.contains("Clusters:           edge-1"), "{described}");
    assert!(
        described.contains("Default location:   edge-store"),
        "{described}"
    );

    hub.cli_line("workspace remove-cluster edge edge-1").await?.ok()?;
    refused(
        &hub.cli_line(&backup("fenced-3", "--location edge-store")).await?,
        fenced_from_edge,
    )?;
    refused(
        &hub.cli_line("location remove edge-store").await?,
        "location edge-store holds 1 backup(s) recorded here",
    )?;
    refused(
        &hub.cli_line("location remove default").await?,
        "the hub's built-in location",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_stopped_mid_backup_fails_it_and_leaves_nothing_that_passes_for_complete() -> Result<()> {
    let (cp, azure) = tokio::try_join!(ControlPlane::start("stops"), AzuriteServer::start())?;
    azure.create_container("vault").await?;
    let hub = HubProcess::start_with(&[("CAIRN_LOCATION_CHECK_INTERVAL", "1s")]).await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.fill_incompressible("bulk", 120).await?;
    let files = LocalDir::new()?;
    let env = file(
        files.path(),
        "azure.env",
        &format!("AZURE_STORAGE_ACCOUNT_KEY={AZURE_KEY}\n"),
    )?;
    hub.cli_line(&format!(
        "location add vault --provider azure --account {AZURE_ACCOUNT} --bucket vault --endpoint {} \
         --credentials-file {env} --default",
        azure.endpoint()
    ))
    .await?
    .ok()?;
    let store = azure.store("vault")?;

    // A name Azure cannot accept is refused before any request, with Azure's rule; what the
    // server answers for a container that does not exist reaches the user in one line, in
    // Azure's terms, not as its XML document.
    let add = |name: &str, container: &str| {
        format!(
            "location add {name} --provider azure --account {AZURE_ACCOUNT} --bucket {container} \
             --endpoint {} --credentials-file {env}",
            azure.endpoint()
        )
    };
    let out = hub.cli_line(&add("tiny", "c")).await?;
    refused(
        &out,
        "--bucket (the container) \"c\" cannot be used: Azure container names are 3 to 63 characters",
    )?;
    let out = hub.cli_line(&add("absent", "absent-container")).await?;
    refused(&out, "the bucket or container does not exist")?;
    assert!(
        out.stderr.contains("ContainerNotFound")
            && !out.stderr.contains("<?xml")
            && out.stderr.trim().lines().count() == 1,
        "one line in Azure's terms: {out:?}"
    );

    // Stop the server as soon as the backup's first object lands; the backup (48 MiB of
    // incompressible data in 8 MiB parts) is then still writing.
    let mut client = hub.client().await?;
    let mut interrupted = None;
    for attempt in 1..=3 {
        let name = format!("cut-{attempt}");
        hub.cli_line(&format!(
            "backup create {name} --cluster stops --include-namespaces bulk"
        ))
        .await?
        .ok()?;
        let prefix = format!("backups/{name}/");
        let written = wait_until("the backup's first object", Duration::from_secs(60), || async {
            let written = keys(&store, &prefix).await?;
            Ok((!written.is_empty()).then_some(written))
        })
        .await?;
        azure.stop();
        if written.iter().any(|k| k.ends_with("manifest.pb")) {
            azure.restart().await?;
            continue; // finished before the server could be stopped: try again
        }
        interrupted = Some(name);
        break;
    }
    let name = interrupted.context("every backup finished before the storage server stopped")?;

    let phase = wait_until(
        "the interrupted backup to end",
        Duration::from_secs(180),
        || async {
            let b = client.clone().backup(&name.parse()?).await?;
            Ok(b.status.phase.is_final().then_some(b))
        },
    )
    .await?;
    assert_eq!(phase.status.phase.to_string(), "Failed", "{phase:?}");
    let error = phase.status.error.clone().unwrap_or_default();
    assert!(
        error.contains("to location vault") && error.contains("backups/"),
        "the error names the write and the location: {error}"
    );

    // The hub's periodic check shows the location failing, then healthy once the server is back.
    let health = |state: &'static str| {
        let hub = &hub;
        async move {
            wait_until(
                &format!("location vault {state}"),
                Duration::from_secs(30),
                || async {
                    let listed = hub.cli_line("location list").await?.ok()?.stdout;
                    let row = listed
                        .lines()
                        .find(|l| l.starts_with("vault "))
                        .map(str::to_owned);
                    Ok(row.filter(|r| r.contains(state)))
                },
            )
            .await
        }
    };
    let failing = health("failing").await?;
    assert!(failing.contains("the endpoint cannot be reached"), "{failing}");
    azure.restart().await?;
    health("healthy").await?;
    let after = hub
        .cli_line("backup create after --cluster stops --include-namespaces bulk --wait")
        .await?
        .ok()?;
    assert!(after.stdout.contains("Completed"), "{after:?}");

    // What the interrupted backup left has no manifest, and nothing treats it as a backup.
    let left = keys(&store, &format!("backups/{name}/")).await?;
    assert!(!left.iter().any(|k| k.ends_with("manifest.pb")), "{left:?}");
    refused(
        &hub.cli_line(&format!("restore create from-cut --from-backup {name}"))
            .await?,
        &format!("backup {name} is Failed: only Completed or PartiallyFailed backups can be restored"),
    )?;
    let items = client.backup_items(&name.parse()?).await?;
    assert!(
        items.is_empty(),
        "an unfinished backup lists items: {}",
        items.len()
    );
    Ok(())
}
