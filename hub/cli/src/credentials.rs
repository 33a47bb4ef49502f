//! Credentials files as each provider's own tools write them, read on the user's machine and
//! sent to the hub once (which seals them): the AWS shared-credentials INI file, a GCS
//! service-account JSON key, an Azure env-style file.

use anyhow::{Context, Result, bail};
use cairn_proto::model::{Credentials, Provider};
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::Path;

/// The credentials in `file` for `provider`; `profile` picks an AWS file's section.
pub fn read(provider: Provider, file: &Path, profile: &str) -> Result<Credentials> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading credentials file {}", file.display()))?;
    let parsed = match provider {
        Provider::S3 | Provider::Minio => aws(&text, profile),
        Provider::Gcs => gcs(&text),
        Provider::Azure => azure(&text),
        Provider::Fs => bail!("a local directory takes no credentials"),
    };
    parsed.with_context(|| format!("credentials file {}", file.display()))
}

/// `[profile]` of an AWS shared-credentials file.
fn aws(text: &str, profile: &str) -> Result<Credentials> {
    let sections: HashMap<String, HashMap<String, String>> = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Ini))
        .build()
        .and_then(config::Config::try_deserialize)
        .context("not an AWS credentials file (INI)")?;
    // `config` folds keys to lower case.
    let Some(section) = sections.get(&profile.to_lowercase()) else {
        let mut names: Vec<_> = sections.keys().map(String::as_str).collect();
        names.sort_unstable();
        bail!("no profile [{profile}] (it has: {})", names.join(", "));
    };
    if section.contains_key("role_arn") {
        bail!(
            "profile [{profile}] assumes a role (role_arn): Cairn does not assume roles yet; \
             give the role's access keys, or leave out --credentials-file to use the agents' \
             own credentials (web identity, instance profile)"
        );
    }
    let field = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
    let (Some(access_key_id), Some(secret)) = (field("aws_access_key_id"), field("aws_secret_access_key"))
    else {
        bail!("profile [{profile}] needs aws_access_key_id and aws_secret_access_key");
    };
    Ok(Credentials::Aws {
        access_key_id,
        secret_access_key: SecretString::from(secret),
        session_token: field("aws_session_token").map(SecretString::from),
    })
}

/// A service-account key (the JSON file `gcloud iam service-accounts keys create` writes).
fn gcs(text: &str) -> Result<Credentials> {
    let json: serde_json::Value = serde_json::from_str(text).context("not a service-account key (JSON)")?;
    if !json.is_object() {
        bail!("not a service-account key (a JSON object)");
    }
    Ok(Credentials::GcsServiceAccount(SecretString::from(
        text.to_owned(),
    )))
}

/// `AZURE_STORAGE_ACCOUNT_KEY=…`, or `AZURE_STORAGE_SAS_TOKEN=…`, or a service principal's
/// `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET`.
fn azure(text: &str) -> Result<Credentials> {
    let vars: HashMap<String, String> = dotenvy::from_read_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .context("not an env-style file (KEY=value lines)")?;
    let var = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
    if let Some(key) = var("AZURE_STORAGE_ACCOUNT_KEY") {
        return Ok(Credentials::AzureAccountKey(SecretString::from(key)));
    }
    if let Some(token) = var("AZURE_STORAGE_SAS_TOKEN") {
        return Ok(Credentials::AzureSasToken(SecretString::from(token)));
    }
    match (
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
        var("AZURE_CLIENT_SECRET"),
    ) {
        (Some(tenant_id), Some(client_id), Some(secret)) => Ok(Credentials::AzureServicePrincipal {
            tenant_id,
            client_id,
            client_secret: SecretString::from(secret),
        }),
        _ => bail!(
            "needs AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN, or AZURE_TENANT_ID, \
             AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn aws_profiles_are_picked_and_roles_refused_with_the_reason() {
        let file = "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s1\n\n\
                    [backup]\naws_access_key_id=AKIA2\naws_secret_access_key=s2\naws_session_token=t2\n\
                    [role]\nrole_arn = arn:aws:iam::1:role/x\nexternal_id = e\n";
        let Credentials::Aws {
            access_key_id,
            secret_access_key,
            session_token,
        } = aws(file, "backup").expect("parsed")
        else {
            panic!("aws keys")
        };
        assert_eq!(access_key_id, "AKIA2");
        assert_eq!(secret_access_key.expose_secret(), "s2");
        assert_eq!(session_token.expect("token").expose_secret(), "t2");
        let err = aws(file, "prod").expect_err("no such profile").to_string();
        assert_eq!(err, "no profile [prod] (it has: backup, default, role)");
        let err = aws(file, "role").expect_err("roles").to_string();
        assert!(err.contains("does not assume roles yet"), "{err}");
    }

    #[test]
    fn azure_files_give_a_key_a_token_or_a_principal() {
        let key = azure("AZURE_STORAGE_ACCOUNT_KEY=\"abc==\"\n").expect("key");
        assert!(matches!(key, Credentials::AzureAccountKey(k) if k.expose_secret() == "abc=="));
        let sp = azure("AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\nAZURE_CLIENT_SECRET=s\n").expect("sp");
        assert!(matches!(sp, Credentials::AzureServicePrincipal { .. }));
        assert!(azure("AZURE_CLIENT_ID=c\n").is_err());
        assert!(gcs("{\"type\": \"service_account\"}").is_ok());
        assert!(gcs("[1]").is_err());
    }
}
