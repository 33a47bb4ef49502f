//! How each provider's configuration becomes an `object_store` URL and options: the one place that
//! knows which setting is which option key, how each provider's URL is spelled and what names it
//! accepts. The hub resolves a location this way to check it and to hand it to an agent with an
//! instruction; the agent only opens what it is given; the CLI checks what it is about to send
//! with [`resolve`] (naming its own flags through [`Invalid::naming`]) and shows where a location
//! writes with [`place`].

use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::fmt;

use super::location::CA_PEM;
use crate::model::{Credentials, Endpoint, Location, LocationSpec, Provider, Store};

/// Region S3-compatible stores are addressed with unless told otherwise.
pub const DEFAULT_COMPATIBLE_REGION: &str = "us-east-1";

/// A setting of a location, as a problem names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The bucket (S3, S3-compatible, GCS).
    Bucket,
    /// The container (Azure).
    Container,
    /// The storage account (Azure).
    Account,
    /// The region (S3).
    Region,
    /// The endpoint URL.
    Endpoint,
    /// The folder inside the store.
    Prefix,
    /// The directory (fs).
    Path,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bucket => "bucket",
            Self::Container => "container",
            Self::Account => "account",
            Self::Region => "region",
            Self::Endpoint => "endpoint",
            Self::Prefix => "prefix",
            Self::Path => "path",
        })
    }
}

/// What is wrong with a location's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A setting the provider needs here is not given.
    Missing(Field),
    /// A value the provider cannot use, and why (`cannot be used: <its rule>`, …).
    Value {
        /// The setting.
        field: Field,
        /// Its value.
        value: String,
        /// Why, completing "<field> <value> …".
        why: String,
    },
    /// Credentials of another kind than the provider takes.
    Credentials(&'static str),
    /// A GCS service-account key that cannot be used, and why.
    Key(String),
}

/// A configuration the provider cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.naming(|field| field.to_string()))]
pub struct Invalid {
    location: String,
    provider: Provider,
    problem: Problem,
}

impl Invalid {
    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The message, each setting called what `name` calls it (the CLI: its flag).
    pub fn naming(&self, name: impl Fn(Field) -> String) -> String {
        let Self {
            location,
            provider,
            problem,
        } = self;
        let what = match problem {
            Problem::Missing(field) => format!("{} is required", name(*field)),
            Problem::Value { field, value, why } => format!("{} {value:?} {why}", name(*field)),
            Problem::Credentials(given) => format!("these credentials are not for {provider}: {given}"),
            Problem::Key(why) => why.clone(),
        };
        format!("location {location} ({provider}): {what}")
    }
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
    let scheme = scheme(spec.store.provider());
    match &spec.store {
        Store::S3 { bucket, .. } | Store::Minio { bucket, .. } | Store::Gcs { bucket, .. } => {
            format!("{scheme}{bucket}{prefix}")
        }
        Store::Azure {
            account, container, ..
        } => format!("{scheme}{account}/{container}{prefix}"),
        Store::Fs { path } => format!("{path}{prefix}"),
    }
}

/// The `object_store` URL and options that reach `spec`'s store with `credentials`.
pub fn resolve(spec: &LocationSpec, credentials: &Credentials) -> Result<Location, Invalid> {
    let provider = spec.store.provider();
    let mut options = Options::default();
    let mut settings = || -> Result<String, Problem> {
        if let Some(endpoint) = spec.store.endpoint() {
            options.endpoint(endpoint)?;
        }
        let prefix = match spec.prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(p) if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") => {
                return Err(unusable(Field::Prefix, p, "is not a plain folder path"));
            }
            Some(p) => prefix_path(p),
            None => String::new(),
        };
        let root = match &spec.store {
            Store::S3 {
                bucket,
                region,
                endpoint,
                force_path_style,
            } => options.aws(
                bucket,
                region.as_deref(),
                endpoint.as_ref(),
                *force_path_style,
                credentials,
            )?,
            Store::Minio {
                bucket,
                region,
                endpoint,
            } => options.aws(bucket, region.as_deref(), Some(endpoint), true, credentials)?,
            Store::Gcs { bucket, endpoint } => options.gcs(bucket, endpoint.as_ref(), credentials)?,
            Store::Azure {
                account,
                container,
                endpoint,
            } => options.azure(account, container, endpoint.as_ref(), credentials)?,
            Store::Fs { path } => return fs_url(path, &prefix, credentials),
        };
        Ok(format!("{}{root}{prefix}", scheme(provider)))
    };
    let url = settings().map_err(|problem| Invalid {
        location: spec.name.to_string(),
        provider,
        problem,
    })?;
    Ok(Location {
        name: spec.name.clone(),
        url,
        options: options.0,
    })
}

/// `field`'s `value` the provider cannot use, `why`.
fn unusable(field: Field, value: &str, why: impl Into<String>) -> Problem {
    Problem::Value {
        field,
        value: value.to_owned(),
        why: why.into(),
    }
}

/// `value` of `field` if it keeps the provider's naming `rule`.
fn named(field: Field, value: &str, rule: fn(&str) -> Option<&'static str>) -> Result<String, Problem> {
    match rule(value) {
        None => Ok(value.to_owned()),
        Some(rule) => Err(unusable(field, value, format!("cannot be used: {rule}"))),
    }
}

/// Credentials the provider does not take.
fn wrong(credentials: &Credentials) -> Problem {
    Problem::Credentials(credentials_kind(credentials))
}

/// `object_store` options, filled per provider.
#[derive(Default)]
struct Options(BTreeMap<String, String>);

impl Options {
    fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_owned(), value.to_owned());
    }

    /// An endpoint's scheme and CA: http:// only when the user wrote it so; TLS is never turned
    /// off.
    fn endpoint(&mut self, Endpoint { url, ca_cert_pem }: &Endpoint) -> Result<(), Problem> {
        match url::Url::parse(url).map(|u| u.scheme().to_owned()) {
            Ok(s) if s == "https" => {}
            Ok(s) if s == "http" => self.set("allow_http", "true"),
            _ => {
                return Err(unusable(
                    Field::Endpoint,
                    url,
                    "is not an http:// or https:// URL",
                ));
            }
        }
        if let Some(ca) = ca_cert_pem {
            self.set(CA_PEM, ca);
        }
        Ok(())
    }

    /// S3 and S3-compatible stores; returns the bucket.
    fn aws(
        &mut self,
        bucket: &str,
        region: Option<&str>,
        endpoint: Option<&Endpoint>,
        path_style: bool,
        credentials: &Credentials,
    ) -> Result<String, Problem> {
        let bucket = named(Field::Bucket, bucket, s3_bucket)?;
        let region = match (region, endpoint) {
            (Some(r), _) => r,
            (None, Some(_)) => DEFAULT_COMPATIBLE_REGION,
            (None, None) => return Err(Problem::Missing(Field::Region)),
        };
        self.set("aws_region", region);
        if let Some(endpoint) = endpoint {
            self.set("aws_endpoint", &endpoint.url);
        }
        self.set("aws_virtual_hosted_style_request", &(!path_style).to_string());
        match credentials {
            Credentials::Ambient => {}
            Credentials::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                self.set("aws_access_key_id", access_key_id);
                self.set("aws_secret_access_key", secret_access_key.expose_secret());
                if let Some(token) = session_token {
                    self.set("aws_session_token", token.expose_secret());
                }
            }
            _ => return Err(wrong(credentials)),
        }
        Ok(bucket)
    }

    /// Google Cloud Storage; returns the bucket.
    fn gcs(
        &mut self,
        bucket: &str,
        endpoint: Option<&Endpoint>,
        credentials: &Credentials,
    ) -> Result<String, Problem> {
        let bucket = named(Field::Bucket, bucket, gcs_bucket)?;
        let key = match credentials {
            Credentials::Ambient => None,
            Credentials::GcsServiceAccount(key) => Some(key.expose_secret().to_owned()),
            _ => return Err(wrong(credentials)),
        };
        if let Some(key) = gcs_key(key, endpoint.map(|e| e.url.as_str())).map_err(Problem::Key)? {
            self.set("google_service_account_key", &key);
        }
        Ok(bucket)
    }

    /// Azure Blob Storage; returns the container.
    fn azure(
        &mut self,
        account: &str,
        container: &str,
        endpoint: Option<&Endpoint>,
        credentials: &Credentials,
    ) -> Result<String, Problem> {
        let container = named(Field::Container, container, azure_container)?;
        let account = named(Field::Account, account, azure_account)?;
        self.set("azure_storage_account_name", &account);
        if let Some(endpoint) = endpoint {
            self.set("azure_storage_endpoint", &endpoint.url);
        }
        match credentials {
            Credentials::Ambient => {}
            Credentials::AzureAccountKey(key) => self.set("azure_storage_account_key", key.expose_secret()),
            Credentials::AzureSasToken(token) => self.set("azure_storage_sas_key", token.expose_secret()),
            Credentials::AzureServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
            } => {
                self.set("azure_storage_tenant_id", tenant_id);
                self.set("azure_storage_client_id", client_id);
                self.set("azure_storage_client_secret", client_secret.expose_secret());
            }
            _ => return Err(wrong(credentials)),
        }
        Ok(container)
    }
}

/// A directory's `file://` URL, `prefix` under it.
fn fs_url(path: &str, prefix: &str, credentials: &Credentials) -> Result<String, Problem> {
    if !path.starts_with('/') {
        return Err(unusable(
            Field::Path,
            path,
            "must be absolute: hub and agents read it alike",
        ));
    }
    if !credentials.is_ambient() {
        return Err(wrong(credentials));
    }
    let dir = super::location::directory_url(std::path::Path::new(path))
        .ok_or_else(|| unusable(Field::Path, path, "is not a directory path"))?;
    Ok(format!("{dir}{prefix}"))
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

    fn spec(store: Store) -> LocationSpec {
        LocationSpec {
            name: "loc".parse().expect("name"),
            workspace: "default".parse().expect("name"),
            store,
            prefix: Some("team/a/".into()),
        }
    }

    fn s3(bucket: &str, region: Option<&str>) -> Store {
        Store::S3 {
            bucket: bucket.into(),
            region: region.map(Into::into),
            endpoint: None,
            force_path_style: false,
        }
    }

    fn gcs(bucket: &str) -> Store {
        Store::Gcs {
            bucket: bucket.into(),
            endpoint: None,
        }
    }

    fn azure(account: &str, container: &str) -> Store {
        Store::Azure {
            account: account.into(),
            container: container.into(),
            endpoint: None,
        }
    }

    fn minio(endpoint: &str) -> Store {
        Store::Minio {
            bucket: "bkt".into(),
            endpoint: Endpoint::new(endpoint),
            region: None,
        }
    }

    #[test]
    fn place_shows_each_provider_as_it_is_spelled() {
        assert_eq!(place(&spec(s3("bkt", None))), "s3://bkt/team/a");
        assert_eq!(place(&spec(gcs("bkt"))), "gs://bkt/team/a");
        assert_eq!(place(&spec(azure("acct", "bkt"))), "az://acct/bkt/team/a");
        let mut fs = spec(Store::Fs {
            path: "/srv/backups".into(),
        });
        fs.prefix = None;
        assert_eq!(place(&fs), "/srv/backups");
    }

    #[test]
    fn s3_compatible_stores_get_path_style_and_http_only_when_written() {
        let keys = Credentials::Aws {
            access_key_id: "id".into(),
            secret_access_key: SecretString::from("s3cr3t"),
            session_token: None,
        };
        let loc = resolve(&spec(minio("http://10.0.0.5:9000")), &keys).expect("valid");
        assert_eq!(loc.url, "s3://bkt/team/a");
        assert_eq!(loc.options["allow_http"], "true");
        assert_eq!(loc.options["aws_region"], "us-east-1");
        assert_eq!(loc.options["aws_virtual_hosted_style_request"], "false");
        assert_eq!(loc.options["aws_secret_access_key"], "s3cr3t");

        let tls = resolve(&spec(minio("https://minio.example")), &keys).expect("valid");
        assert!(!tls.options.contains_key("allow_http"));
        let err = resolve(&spec(minio("minio.example:9000")), &keys).expect_err("not a URL");
        assert_eq!(
            err.to_string(),
            "location loc (minio): endpoint \"minio.example:9000\" is not an http:// or https:// URL"
        );

        let err = resolve(&spec(s3("bkt", None)), &keys).expect_err("AWS needs a region");
        assert_eq!(err.problem(), &Problem::Missing(Field::Region));
        assert_eq!(err.to_string(), "location loc (s3): region is required");
        assert_eq!(
            err.naming(|f| format!("--{f}")),
            "location loc (s3): --region is required"
        );
        let err = resolve(&spec(gcs("bkt")), &keys).expect_err("wrong kind");
        assert_eq!(
            err.to_string(),
            "location loc (gcs): these credentials are not for gcs: an AWS access key"
        );
    }

    #[test]
    fn gcs_endpoint_goes_into_the_key_and_fs_paths_must_be_absolute() {
        let emulated = spec(Store::Gcs {
            bucket: "bkt".into(),
            endpoint: Some(Endpoint::new("http://127.0.0.1:4443/")),
        });
        let loc = resolve(&emulated, &Credentials::Ambient).expect("valid");
        let key: serde_json::Value =
            serde_json::from_str(&loc.options["google_service_account_key"]).expect("json");
        assert_eq!(key["gcs_base_url"], "http://127.0.0.1:4443");
        assert_eq!(key["disable_oauth"], true);

        let fs = |path: &str| LocationSpec {
            prefix: None,
            ..spec(Store::Fs { path: path.into() })
        };
        assert_eq!(
            resolve(&fs("/var/backups"), &Credentials::Ambient)
                .expect("valid")
                .url,
            "file:///var/backups"
        );
        let err = resolve(&fs("backups"), &Credentials::Ambient).expect_err("relative");
        assert_eq!(
            err.to_string(),
            "location loc (fs): path \"backups\" must be absolute: hub and agents read it alike"
        );
    }

    /// Names a provider would refuse are refused before any request, with the provider's rule.
    #[test]
    fn names_a_provider_cannot_accept_are_refused_with_its_rule() {
        let refused = |store: Store| resolve(&spec(store), &Credentials::Ambient).err();
        let e = refused(azure("devstoreaccount1", "c")).expect("too short");
        assert_eq!(
            e.to_string(),
            "location loc (azure): container \"c\" cannot be used: Azure container names are 3 to \
             63 characters of lowercase letters, digits and '-', start and end with a letter or \
             digit, and have no '--'"
        );
        assert!(matches!(
            e.problem(),
            Problem::Value {
                field: Field::Container,
                ..
            }
        ));
        for bad in ["a--b", "Vault", "-vault", "vault-", &"v".repeat(64)] {
            assert!(refused(azure("devstoreaccount1", bad)).is_some(), "{bad}");
        }
        assert!(refused(azure("devstoreaccount1", "vault-1")).is_none());
        assert!(refused(azure("devstoreaccount1", "$web")).is_none());
        let e = refused(azure("Dev-Account", "vault")).expect("bad account");
        assert!(
            e.to_string()
                .contains("account \"Dev-Account\" cannot be used: Azure storage account names"),
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
            let e = refused(s3(bad, Some("eu-west-1"))).expect(bad).to_string();
            assert!(e.contains("S3 bucket names are 3 to 63 characters"), "{bad}: {e}");
        }
        assert!(refused(s3("acme-backups.eu", Some("eu-west-1"))).is_none());

        for bad in ["ab", "goog-data", "my-google-bucket", "Data", "a.b..c"] {
            assert!(refused(gcs(bad)).is_some(), "{bad}");
        }
        assert!(refused(gcs("team_backups-1")).is_none());
        assert!(refused(gcs(&format!("{}.{}", "a".repeat(63), "b".repeat(63)))).is_none());
    }
}
