//! Users: every call carries a bearer token, each role does what it may and no more, in its
//! workspace only, every refusal says which role lacks which permission, and every change, done
//! or refused, is in the audit log. Tokens are shown once and kept only hashed.

use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use testbed::ControlPlane;
use testbed::cairn::{HubProcess, run_cli};

fn refused(out: &testbed::cairn::CliOutput, says: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("refused: ") && out.stderr.contains(says),
        "expected a refusal saying {says:?}: {out:?}"
    );
}

/// A viewer cannot back up, an operator cannot add a location, restore into a cluster of another
/// workspace or restore sensitive objects, and a call without a token or with a revoked one gets
/// nothing; each refusal names the token's role and what it lacks; every change is in
/// `cairn audit list`; secrets are kept nowhere in clear but the administrator's own file.
#[tokio::test(flavor = "multi_thread")]
async fn each_role_does_what_it_may_and_every_change_is_audited() -> Result<()> {
    let cp = ControlPlane::start("ops").await?;
    // Debug logs: secrets must stay out of them too.
    let hub = HubProcess::start_with(&[("RUST_LOG", "debug,h2=info,hyper=info,rustls=info")]).await?;
    let admin_conf = hub.data_dir().join("admin.conf");
    assert_eq!(
        std::fs::metadata(&admin_conf)?.permissions().mode() & 0o777,
        0o600
    );
    let join = hub.join_token("ops", &[]).await?;
    let join_secret =
        secrecy::ExposeSecret::expose_secret(&cairn_proto::join::JoinToken::parse(&join)?.secret).to_owned();
    let agent = hub.agent_with(&cp, None, &["--join", &join]).await?;
    cp.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n")
        .await?;
    hub.cli_line("workspace create eu").await?.ok()?;
    hub.join_token("other", &["--workspace", "eu"]).await?;

    let viewer = hub.cli_line("token create watcher --role viewer").await?.ok()?;
    let viewer = viewer.stdout.trim().to_owned();
    let operator = hub
        .cli_line("token create op --role operator --workspace default --expires 30d")
        .await?
        .ok()?;
    let operator = operator.stdout.trim().to_owned();
    assert!(viewer.starts_with("cairn_watcher_") && operator.starts_with("cairn_op_"));

    // Viewer: reads, changes nothing.
    hub.cli_as(&viewer, &["backup", "list"]).await?.ok()?;
    let out = hub
        .cli_as(&viewer, &["backup", "create", "b0", "--cluster", "ops"])
        .await?;
    refused(
        &out,
        "token watcher (viewer) may not operate (back up, restore) in workspace default: \
         that needs role operator (or above) in workspace default",
    );
    refused(
        &hub.cli_as(&viewer, &["audit", "list"]).await?,
        "that needs role admin",
    );

    // Operator: backs up and restores in its workspace, configures nothing.
    let out = hub
        .cli_as(
            &operator,
            &[
                "location",
                "add",
                "mine",
                "--workspace",
                "default",
                "--provider",
                "fs",
                "--path",
                "/tmp/mine",
            ],
        )
        .await?;
    refused(
        &out,
        "token op (operator of workspace default) may not configure (locations, schedules, enrolment, \
         sensitive restores) in workspace default: that needs role workspace-admin (or above) in workspace default",
    );
    hub.cli_as(
        &operator,
        &[
            "backup",
            "create",
            "b1",
            "--cluster",
            "ops",
            "--include-namespaces",
            "app",
            "--wait",
        ],
    )
    .await?
    .ok()?;
    let out = hub
        .cli_as(
            &operator,
            &[
                "restore",
                "create",
                "r1",
                "--from-backup",
                "b1",
                "--target-cluster",
                "other",
            ],
        )
        .await?;
    refused(
        &out,
        "token op (operator of workspace default) may not operate (back up, restore) in workspace eu",
    );
    let out = hub
        .cli_as(
            &operator,
            &[
                "restore",
                "create",
                "r2",
                "--from-backup",
                "b1",
                "--include-sensitive",
            ],
        )
        .await?;
    refused(
        &out,
        "that needs role workspace-admin (or above) in workspace default",
    );
    // Nor setuid programs into the restored volumes.
    let out = hub
        .cli_as(
            &operator,
            &["restore", "create", "r3", "--from-backup", "b1", "--keep-setid"],
        )
        .await?;
    refused(
        &out,
        "that needs role workspace-admin (or above) in workspace default",
    );

    // A viewer of workspace eu sees eu only: not default's backup, not default's cluster.
    let eu_viewer = hub
        .cli_line("token create eu-watcher --role viewer --workspace eu")
        .await?
        .ok()?;
    let eu_viewer = eu_viewer.stdout.trim().to_owned();
    let listed = hub
        .cli_as(&eu_viewer, &["backup", "list", "-o", "json"])
        .await?
        .ok()?;
    assert_eq!(listed.stdout.trim(), "[]", "{listed:?}");
    let clusters = hub
        .cli_as(&eu_viewer, &["cluster", "list", "-o", "json"])
        .await?
        .ok()?;
    assert!(
        clusters.stdout.contains("other") && !clusters.stdout.contains("\"ops\""),
        "{clusters:?}"
    );
    refused(
        &hub.cli_as(&eu_viewer, &["backup", "describe", "b1"]).await?,
        "token eu-watcher (viewer of workspace eu) may not read in workspace default",
    );

    // cairn login keeps hub, CA and token in a file only its owner reads; a token that does not
    // work is not saved.
    let home = tempfile::tempdir()?;
    let config = home.path().join("cairn/config");
    let config_arg = config.display().to_string();
    let out = run_cli(
        hub.url(),
        Some(&hub.ca_file()),
        &["login", "--token", "cairn_nobody_00", "--config", &config_arg],
    )
    .await?;
    refused(&out, "token nobody is unknown or revoked");
    assert!(!config.exists(), "a refused login was saved");
    run_cli(
        hub.url(),
        Some(&hub.ca_file()),
        &["login", "--token", &viewer, "--config", &config_arg],
    )
    .await?
    .ok()?;
    assert_eq!(std::fs::metadata(&config)?.permissions().mode() & 0o777, 0o600);
    run_cli(hub.url(), None, &["--config", &config_arg, "backup", "list"])
        .await?
        .ok()?;

    // No token; a revoked one.
    let out = run_cli(hub.url(), Some(&hub.ca_file()), &["backup", "list"]).await?;
    refused(&out, "no token: log in");
    hub.cli_line("token revoke op").await?.ok()?;
    refused(
        &hub.cli_as(&operator, &["backup", "list"]).await?,
        "token op is unknown or revoked",
    );
    let forged = format!("cairn_watcher_{}", "0".repeat(64));
    refused(
        &hub.cli_as(&forged, &["backup", "list"]).await?,
        "token watcher is unknown or revoked",
    );

    // Who did what.
    let audit = hub.json("audit list --limit 50").await?;
    let entries = audit.as_array().context("a list")?;
    let has = |who: &str, action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["who"] == who
                && e["action"] == action
                && e["outcome"].as_str().is_some_and(|o| o.contains(outcome))
        })
    };
    assert!(has("admin", "create_token", "ok"), "{audit:#}");
    assert!(has("op", "create_backup", "ok"), "{audit:#}");
    assert!(has("watcher", "create_backup", "may not operate"), "{audit:#}");
    assert!(has("op", "add_location", "may not configure"), "{audit:#}");
    assert!(has("op", "create_restore", "workspace eu"), "{audit:#}");
    assert!(has("admin", "revoke_token", "ok"), "{audit:#}");
    assert!(has("agent of cluster ops", "join", "ok"), "{audit:#}");

    // No secret in any log.
    let admin = hub.admin_token()?;
    let secrets = [&admin, &viewer, &operator, &eu_viewer, &join_secret];
    for (who, log) in [("hub", hub.full_log()), ("agent", agent.full_log())] {
        for secret in secrets {
            let part = secret.rsplit('_').next().unwrap_or(secret);
            assert!(!log.contains(part), "a secret in the {who}'s debug log");
        }
    }

    // Listed without secrets; kept only hashed.
    let tokens = hub.cli_line("token list -o json").await?.ok()?.stdout;
    assert!(
        tokens.contains("watcher") && !tokens.contains(&viewer),
        "{tokens}"
    );
    let secret = viewer.rsplit('_').next().context("secret")?;
    hub.stop();
    for file in testbed::storage::files_under(&hub.data_dir().join("db"))? {
        let bytes = std::fs::read(&file)?;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "token secret in clear in {}",
            file.display()
        );
    }
    Ok(())
}

/// An administrator who lost `admin.conf` gets a new admin token from whoever may start the hub
/// on its data directory (`cairn-hub --new-admin-token`): audited, other tokens untouched, and
/// only when asked.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_admin_token_is_replaced_by_restarting_the_hub_with_new_admin_token() -> Result<()> {
    let mut hub = HubProcess::start().await?;
    let first = hub.admin_token()?;
    let admin_conf = hub.data_dir().join("admin.conf");
    hub.stop();
    std::fs::remove_file(&admin_conf)?;

    hub.start_again(&[("CAIRN_NEW_ADMIN_TOKEN", "true")]).await?;
    let second = hub.admin_token()?;
    assert_ne!(first, second);
    assert_eq!(
        std::fs::metadata(&admin_conf)?.permissions().mode() & 0o777,
        0o600
    );
    let tokens = hub.cli_as(&second, &["token", "list"]).await?.ok()?.stdout;
    let new_name = second
        .rsplit_once('_')
        .map(|(n, _)| n.trim_start_matches("cairn_"))
        .context("name")?;
    assert!(
        new_name.starts_with("admin-") && tokens.contains(new_name) && tokens.contains("admin "),
        "{tokens}"
    );
    hub.cli_as(&first, &["token", "list"]).await?.ok()?;
    let audit = hub.cli_as(&second, &["audit", "list"]).await?.ok()?.stdout;
    let line = audit
        .lines()
        .find(|l| l.contains("--new-admin-token"))
        .with_context(|| format!("not audited:\n{audit}"))?;
    assert!(line.contains("create_token") && line.contains(new_name), "{line}");

    // Started again without it, the hub makes nothing.
    hub.stop();
    hub.start_again(&[("CAIRN_NEW_ADMIN_TOKEN", "false")]).await?;
    assert_eq!(hub.admin_token()?, second);
    let tokens = hub.cli(&["token", "list"]).await?.ok()?.stdout;
    assert_eq!(tokens.matches("admin-").count(), 1, "{tokens}");
    Ok(())
}
