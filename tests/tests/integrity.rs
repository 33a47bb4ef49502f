//! Whole backups or nothing (issue 15, acceptance 7): a backup whose location lost one object
//! part and had another replaced by a part of a different backup is refused by a restore before
//! it changes anything in the cluster, naming both; with `--partial` the rest is restored and the
//! items of the two parts are reported as failed. A manifest swollen to 200 MiB fails a restore
//! by name, unread (acceptance 5).

use anyhow::Result;
use cairn_proto::model::{Outcome, Phase};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use kube::api::Api;
use testbed::ControlPlane;
use testbed::cairn::HubProcess;

const SHOP: &str = include_str!("../fixtures/shop.yaml");

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_backup_changes_nothing_unless_partial_and_then_names_what_it_lost() -> Result<()> {
    let cp = ControlPlane::start("whole").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    for name in ["whole", "other"] {
        hub.cli_line(&format!(
            "backup create {name} --cluster whole --include-namespaces shop --wait"
        ))
        .await?
        .ok()?;
    }
    // The bucket is not ours: one part of `whole` goes, another is replaced by `other`'s.
    let folder = |backup: &str| hub.data_dir().join("backups/backups").join(backup);
    let configmaps = "resources/core/v1/configmaps/000000.jsonl.zst";
    let secrets = "resources/core/v1/secrets/000000.jsonl.zst";
    std::fs::remove_file(folder("whole").join(configmaps))?;
    std::fs::copy(folder("other").join(secrets), folder("whole").join(secrets))?;

    // Refused whole, naming both, before anything is created.
    let refused = hub
        .cli_line("restore create refused --from-backup whole --namespace-mapping shop:shop-copy --wait")
        .await?;
    assert_ne!(refused.code, Some(0), "{refused:?}");
    let restore = hub.client().await?.restore(&"refused".parse()?).await?;
    assert_eq!(restore.status.phase, Phase::Failed, "{restore:?}");
    let error = restore.status.error.clone().unwrap_or_default();
    for said in [
        "backup whole is damaged, nothing was restored",
        "backups/whole/resources/core/v1/configmaps/000000.jsonl.zst is missing",
        "backups/whole/resources/core/v1/secrets/000000.jsonl.zst is altered or replaced",
        "--partial",
    ] {
        assert!(error.contains(said), "{said:?} not in: {error}");
    }
    let namespaces: Api<Namespace> = Api::all(cp.client());
    assert!(
        namespaces.get_opt("shop-copy").await?.is_none(),
        "a refused restore created the namespace"
    );

    // With --partial: what is intact comes back, the two parts' items are named as lost.
    let partial = hub
        .cli_line(
            "restore create partly --from-backup whole --namespace-mapping shop:shop-part --partial --wait",
        )
        .await?;
    assert_ne!(
        partial.code,
        Some(0),
        "a partial restore is not Completed: {partial:?}"
    );
    let restore = hub.client().await?.restore(&"partly".parse()?).await?;
    assert_eq!(restore.status.phase, Phase::PartiallyFailed, "{restore:?}");
    let lost = |kind: &str, name: &str| {
        restore
            .status
            .problems
            .iter()
            .find(|p| p.item.kind == kind && p.item.name == name)
            .map(|p| (p.outcome, p.item.namespace.clone(), p.message.clone()))
    };
    assert_eq!(
        lost("ConfigMap", "settings"),
        Some((
            Outcome::Failed,
            "shop-part".to_owned(),
            format!("not restored: its object part backups/whole/{configmaps} is missing")
        )),
        "{:?}",
        restore.status.problems
    );
    assert_eq!(
        lost("Secret", "keys").map(|(o, _, m)| (o, m.contains(secrets))),
        Some((Outcome::Failed, true)),
        "{:?}",
        restore.status.problems
    );
    let ns = "shop-part";
    assert!(
        Api::<ServiceAccount>::namespaced(cp.client(), ns)
            .get_opt("shop")
            .await?
            .is_some()
    );
    assert!(
        Api::<Service>::namespaced(cp.client(), ns)
            .get_opt("shop")
            .await?
            .is_some()
    );
    assert!(
        Api::<ConfigMap>::namespaced(cp.client(), ns)
            .get_opt("settings")
            .await?
            .is_none()
    );
    assert!(
        Api::<Secret>::namespaced(cp.client(), ns)
            .get_opt("keys")
            .await?
            .is_none()
    );
    let said = restore.status.error.unwrap_or_default();
    assert!(said.contains(configmaps) && said.contains(secrets), "{said}");
    Ok(())
}

/// A manifest replaced in the bucket by 200 MiB (issue 15, acceptance 5): the restore fails
/// naming it, its size and the limit, and the agent never holds it (peak memory measured).
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_manifest_fails_a_restore_by_name_unread() -> Result<()> {
    const PLANTED: u64 = 200 << 20;
    let cp = ControlPlane::start("bloat").await?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    hub.cli_line("backup create big --cluster bloat --include-namespaces shop --wait")
        .await?
        .ok()?;
    let manifest = hub.data_dir().join("backups/backups/big/manifest.pb");
    std::fs::File::create(&manifest)?.set_len(PLANTED)?;
    let before = testbed::proc_stats::peak_rss_mib(agent.pid());

    let out = hub
        .cli_line("restore create bloated --from-backup big --namespace-mapping shop:shop-big --wait")
        .await?;
    assert_ne!(out.code, Some(0), "{out:?}");
    let restore = hub.client().await?.restore(&"bloated".parse()?).await?;
    assert_eq!(restore.status.phase, Phase::Failed, "{restore:?}");
    let error = restore.status.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "backups/big/manifest.pb is {PLANTED} bytes, more than the 67108864 bytes a manifest may be"
        )),
        "{error}"
    );
    let peak = testbed::proc_stats::peak_rss_mib(agent.pid());
    println!("agent peak RSS: {before} MiB before the restore, {peak} MiB after");
    assert!(
        peak > 0 && peak < 128,
        "the agent's peak memory is {peak} MiB: it read the 200 MiB manifest"
    );
    Ok(())
}
