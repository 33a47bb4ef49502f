//! How each provider's configuration becomes an `object_store` URL and options: the one place that
//! knows which flag is which option key and how each provider's URL is spelled. The hub resolves a
//! location this way to check it and to hand it to an agent with an instruction; the agent only
//! opens what it is given; the CLI shows where a location writes with [`place`].

use secrecy::ExposeSecret;
use std::collections::BTreeMap;

use super::location::CA_PEM;
use crate::model::{Credentials, Location, LocationSpec, Provider};

/// Region S3-compatible stores are addressed with unless told otherwise.
pub const DEFAULT_COMPATIBLE_REGION: &str = "us-east-1";

/// A configuration the provider cannot use.
#[derive(Debug, thiserror::Error)]
#[error("location {location} ({provider}): {reason}")]
pub struct Invalid {
    location: String,
    provider: Provider,
    reason: String,
}

/// The URL scheme of `provider`'s buckets (`fs` has none: a directory is shown as its path).
fn scheme(provider: Provider) -> &'static str {
    match provider {
        Provider::S3 | Provider::Minio => "s3://",
        Provider::Gcs => "gs://",
        Provider::Azure => "az://",
        Provider::Fs => "",
    }
}

/// `prefix` as a URL path suffix: `/a/b` for `a/b/`.
fn prefix_path(prefix: &str) -> String {
    format!("/{}", prefix.trim_matches('/'))
}

/// Where `spec`'s objects go, for people: `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://account/container/prefix` (the account too, as `object_store`'s URL leaves it to an
/// option), or the directory `/dir/prefix`. Unlike [`resolve`] it checks nothing: it shows what
/// was stored.
pub fn place(spec: &LocationSpec) -> String {
    let prefix = spec.prefix.as_deref().map(prefix_path).unwrap_or_default();
    let bucket = spec.bucket.as_deref().unwrap_or("");
    let scheme = scheme(spec.provider);
    match spec.provider {
        Provider::S3 | Provider::Minio | Provider::Gcs => format!("{scheme}{bucket}{prefix}"),
        Provider::Azure => format!(
            "{scheme}{}/{bucket}{prefix}",
            spec.account.as_deref().unwrap_or("")
        ),
        Provider::Fs => format!("{}{prefix}", spec.path.as_deref().unwrap_or("")),
    }
}

/// The `object_store` URL and options that reach `spec`'s store with `credentials`.
pub fn resolve(spec: &LocationSpec, credentials: &Credentials) -> Result<Location, Invalid> {
    let invalid = |reason: String| Invalid {
        location: spec.name.to_string(),
        provider: spec.provider,
        reason,
    };
    let need = |field: &Option<String>, flag: &str| {
        field
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("{flag} is required")))
    };
    let mut options = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        options.insert(k.to_owned(), v.to_owned());
    };
    if let Some(endpoint) = &spec.endpoint {
        // http:// only when the user wrote it so; TLS is never turned off.
        match url::Url::parse(endpoint).map(|u| u.scheme().to_owned()) {
            Ok(s) if s == "https" => {}
            Ok(s) if s == "http" => set("allow_http", "true"),
            _ => {
                return Err(invalid(format!(
                    "--endpoint {endpoint:?} is not an http:// or https:// URL"
                )));
            }
        }
    }
    if let Some(ca) = &spec.ca_cert_pem {
        set(CA_PEM, ca);
    }
    let prefix = match spec.prefix.as_deref().map(|p| p.trim_matches('/')) {
        Some(p) if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") => {
            return Err(invalid(format!("--prefix {p:?} is not a plain folder path")));
        }
        Some(p) => prefix_path(p),
        None => String::new(),
    };
    let wrong_credentials = || {
        invalid(format!(
            "these credentials are not for {}: {}",
            spec.provider,
            credentials_kind(credentials)
        ))
    };
    let named = |flag: &str, value: String, rule: fn(&str) -> Option<&'static str>| match rule(&value) {
        None => Ok(value),
        Some(rule) => Err(invalid(format!("{flag} {value:?} cannot be used: {rule}"))),
    };
    let url = match spec.provider {
        Provider::S3 | Provider::Minio => {
            let bucket = named("--bucket", need(&spec.bucket, "--bucket")?, s3_bucket)?;
            let compatible = spec.provider == Provider::Minio;
            if compatible && spec.endpoint.is_none() {
                return Err(invalid("--endpoint is required".into()));
            }
            let region = match (&spec.region, compatible || spec.endpoint.is_some()) {
                (Some(r), _) => r.clone(),
                (None, true) => DEFAULT_COMPATIBLE_REGION.to_owned(),
                (None, false) => return Err(invalid("--region is required".into())),
            };
            set("aws_region", &region);
            if let Some(endpoint) = &spec.endpoint {
                set("aws_endpoint", endpoint);
            }
            let virtual_hosted = !(compatible || spec.force_path_style);
            set("aws_virtual_hosted_style_request", &virtual_hosted.to_string());
            match credentials {
                Credentials::Ambient => {}
                Credentials::Aws {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => {
                    set("aws_access_key_id", access_key_id);
                    set("aws_secret_access_key", secret_access_key.expose_secret());
                    if let Some(token) = session_token {
                        set("aws_session_token", token.expose_secret());
                    }
                }
                _ => return Err(wrong_credentials()),
            }
            format!("{}{bucket}{prefix}", scheme(spec.provider))
        }
        Provider::Gcs => {
            let bucket = named("--bucket", need(&spec.bucket, "--bucket")?, gcs_bucket)?;
            let key = match credentials {
                Credentials::Ambient => None,
                Credentials::GcsServiceAccount(key) => Some(key.expose_secret().to_owned()),
                _ => return Err(wrong_credentials()),
            };
            if let Some(key) = gcs_key(key, spec.endpoint.as_deref()).map_err(invalid)? {
                set("google_service_account_key", &key);
            }
            format!("{}{bucket}{prefix}", scheme(spec.provider))
        }
        Provider::Azure => {
            let container = need(&spec.bucket, "--bucket (the container)")?;
            let container = named("--bucket (the container)", container, azure_container)?;
            let account = named("--account", need(&spec.account, "--account")?, azure_account)?;
            set("azure_storage_account_name", &account);
            if let Some(endpoint) = &spec.endpoint {
                set("azure_storage_endpoint", endpoint);
            }
            match credentials {
                Credentials::Ambient => {}
                Credentials::AzureAccountKey(key) => set("azure_storage_account_key", key.expose_secret()),
                Credentials::AzureSasToken(token) => set("azure_storage_sas_key", token.expose_secret()),
                Credentials::AzureServicePrincipal {
                    tenant_id,
                    client_id,
                    client_secret,
                } => {
                    set("azure_storage_tenant_id", tenant_id);
                    set("azure_storage_client_id", client_id);
                    set("azure_storage_client_secret", client_secret.expose_secret());
                }
                _ => return Err(wrong_credentials()),
            }
            format!("{}{container}{prefix}", scheme(spec.provider))
        }
        Provider::Fs => {
            let path = need(&spec.path, "--path")?;
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "--path {path:?} must be absolute: hub and agents read it alike"
                )));
            }
            if !credentials.is_ambient() {
                return Err(wrong_credentials());
            }
            let dir = url::Url::from_directory_path(&path)
                .map_err(|()| invalid(format!("--path {path:?} is not a directory path")))?;
            format!("{}{prefix}", dir.as_str().trim_end_matches('/'))
        }
    };
    Ok(Location {
        name: spec.name.clone(),
        url,
        options,
    })
}

/// The service-account key `object_store` needs: the user's, with `endpoint` as its base URL; for
/// an endpoint and no key, one that turns OAuth off (emulators). `None`: ambient credentials.
fn gcs_key(key: Option<String>, endpoint: Option<&str>) -> Result<Option<String>, String> {
    let Some(endpoint) = endpoint else { return Ok(key) };
    let mut json: serde_json::Value = match key {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| format!("the service-account key is not JSON: {e}"))?
        }
        None => serde_json::json!({
            "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""
        }),
    };
    let object = json
        .as_object_mut()
        .ok_or("the service-account key is not a JSON object")?;
    object.insert("gcs_base_url".into(), endpoint.trim_end_matches('/').into());
    Ok(Some(json.to_string()))
}

/// The rule an S3 (or S3-compatible) bucket name breaks, if any.
fn s3_bucket(name: &str) -> Option<&'static str> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && alnum_ends(name)
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    (!ok).then_some(
        "S3 bucket names are 3 to 63 characters of lowercase letters, digits, '.' and '-', start and \
         end with a letter or digit, have no '..' and are not IP addresses",
    )
}

/// The rule a GCS bucket name breaks, if any.
fn gcs_bucket(name: &str) -> Option<&'static str> {
    let long_enough = if name.contains('.') {
        name.len() <= 222 && name.split('.').all(|part| (1..=63).contains(&part.len()))
    } else {
        name.len() <= 63
    };
    let ok = name.len() >= 3
        && long_enough
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && alnum_ends(name)
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("goog")
        && !name.contains("google");
    (!ok).then_some(
        "GCS bucket names are 3 to 63 characters (222 with dots, 63 between them) of lowercase \
         letters, digits, '-', '_' and '.', start and end with a letter or digit, are not IP \
         addresses, and neither start with \"goog\" nor contain \"google\"",
    )
}

/// The rule an Azure container name breaks, if any (`$root`, `$logs` and `$web` are Azure's own).
fn azure_container(name: &str) -> Option<&'static str> {
    let ok = matches!(name, "$root" | "$logs" | "$web")
        || ((3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && alnum_ends(name)
            && !name.contains("--"));
    (!ok).then_some(
        "Azure container names are 3 to 63 characters of lowercase letters, digits and '-', start \
         and end with a letter or digit, and have no '--'",
    )
}

/// The rule an Azure storage account name breaks, if any.
fn azure_account(name: &str) -> Option<&'static str> {
    let ok =
        (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (!ok).then_some("Azure storage account names are 3 to 24 lowercase letters and digits")
}

/// Whether `name` starts and ends with a lowercase letter or digit.
fn alnum_ends(name: &str) -> bool {
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    alnum(name.as_bytes().first()) && alnum(name.as_bytes().last())
}

fn credentials_kind(c: &Credentials) -> &'static str {
    match c {
        Credentials::Ambient => "none",
        Credentials::Aws { .. } => "an AWS access key",
        Credentials::GcsServiceAccount(_) => "a GCS service-account key",
        Credentials::AzureAccountKey(_) => "an Azure account key",
        Credentials::AzureSasToken(_) => "an Azure SAS token",
        Credentials::AzureServicePrincipal { .. } => "an Azure service principal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn spec(provider: Provider) -> LocationSpec {
        LocationSpec {
            name: "loc".parse().expect("name"),
            workspace: "default".parse().expect("name"),
            provider,
            bucket: Some("bkt".into()),
            prefix: Some("team/a/".into()),
            region: None,
            endpoint: None,
            force_path_style: false,
            ca_cert_pem: None,
            account: None,
            path: None,
        }
    }

    #[test]
    fn place_shows_each_provider_as_it_is_spelled() {
        assert_eq!(place(&spec(Provider::S3)), "s3://bkt/team/a");
        assert_eq!(place(&spec(Provider::Gcs)), "gs://bkt/team/a");
        let mut azure = spec(Provider::Azure);
        azure.account = Some("acct".into());
        assert_eq!(place(&azure), "az://acct/bkt/team/a");
        let mut fs = spec(Provider::Fs);
        (fs.path, fs.prefix) = (Some("/srv/backups".into()), None);
        assert_eq!(place(&fs), "/srv/backups");
    }

    #[test]
    fn s3_compatible_stores_get_path_style_and_http_only_when_written() {
        let mut minio = spec(Provider::Minio);
        minio.endpoint = Some("http://10.0.0.5:9000".into());
        let keys = Credentials::Aws {
            access_key_id: "id".into(),
            secret_access_key: SecretString::from("s3cr3t"),
            session_token: None,
        };
        let loc = resolve(&minio, &keys).expect("valid");
        assert_eq!(loc.url, "s3://bkt/team/a");
        assert_eq!(loc.options["allow_http"], "true");
        assert_eq!(loc.options["aws_region"], "us-east-1");
        assert_eq!(loc.options["aws_virtual_hosted_style_request"], "false");
        assert_eq!(loc.options["aws_secret_access_key"], "s3cr3t");

        minio.endpoint = Some("https://minio.example".into());
        assert!(
            !resolve(&minio, &keys)
                .expect("valid")
                .options
                .contains_key("allow_http")
        );

        let err = resolve(&spec(Provider::S3), &keys).expect_err("AWS needs a region");
        assert_eq!(err.to_string(), "location loc (s3): --region is required");
        let err = resolve(&spec(Provider::Gcs), &keys).expect_err("wrong kind");
        assert_eq!(
            err.to_string(),
            "location loc (gcs): these credentials are not for gcs: an AWS access key"
        );
    }

    #[test]
    fn gcs_endpoint_goes_into_the_key_and_fs_paths_must_be_absolute() {
        let mut gcs = spec(Provider::Gcs);
        gcs.endpoint = Some("http://127.0.0.1:4443/".into());
        let loc = resolve(&gcs, &Credentials::Ambient).expect("valid");
        let key: serde_json::Value =
            serde_json::from_str(&loc.options["google_service_account_key"]).expect("json");
        assert_eq!(key["gcs_base_url"], "http://127.0.0.1:4443");
        assert_eq!(key["disable_oauth"], true);

        let mut fs = spec(Provider::Fs);
        fs.path = Some("/var/backups".into());
        fs.prefix = None;
        assert_eq!(
            resolve(&fs, &Credentials::Ambient).expect("valid").url,
            "file:///var/backups"
        );
        fs.path = Some("backups".into());
        assert!(resolve(&fs, &Credentials::Ambient).is_err());
    }

    /// Names a provider would refuse are refused before any request, with the provider's rule.
    #[test]
    fn names_a_provider_cannot_accept_are_refused_with_its_rule() {
        let refused = |provider: Provider, bucket: &str, account: Option<&str>| {
            let mut s = spec(provider);
            s.bucket = Some(bucket.into());
            s.account = account.map(Into::into);
            s.region = Some("eu-west-1".into());
            resolve(&s, &Credentials::Ambient).err().map(|e| e.to_string())
        };
        let e = refused(Provider::Azure, "c", Some("devstoreaccount1")).expect("too short");
        assert_eq!(
            e,
            "location loc (azure): --bucket (the container) \"c\" cannot be used: Azure container \
             names are 3 to 63 characters of lowercase letters, digits and '-', start and end with a \
             letter or digit, and have no '--'"
        );
        for bad in ["a--b", "Vault", "-vault", "vault-", &"v".repeat(64)] {
            assert!(
                refused(Provider::Azure, bad, Some("devstoreaccount1")).is_some(),
                "{bad}"
            );
        }
        assert!(refused(Provider::Azure, "vault-1", Some("devstoreaccount1")).is_none());
        assert!(refused(Provider::Azure, "$web", Some("devstoreaccount1")).is_none());
        let e = refused(Provider::Azure, "vault", Some("Dev-Account")).expect("bad account");
        assert!(
            e.contains("--account \"Dev-Account\" cannot be used: Azure storage account names"),
            "{e}"
        );

        for bad in [
            "ab",
            "Backups",
            "my_bucket",
            "a..b",
            "192.168.1.1",
            "-ab",
            "ab-",
            &"b".repeat(64),
        ] {
            let e = refused(Provider::S3, bad, None).expect(bad);
            assert!(e.contains("S3 bucket names are 3 to 63 characters"), "{bad}: {e}");
        }
        assert!(refused(Provider::S3, "acme-backups.eu", None).is_none());

        for bad in ["ab", "goog-data", "my-google-bucket", "Data", "a.b..c"] {
            assert!(refused(Provider::Gcs, bad, None).is_some(), "{bad}");
        }
        assert!(refused(Provider::Gcs, "team_backups-1", None).is_none());
        assert!(
            refused(
                Provider::Gcs,
                &format!("{}.{}", "a".repeat(63), "b".repeat(63)),
                None
            )
            .is_none()
        );
    }
}
