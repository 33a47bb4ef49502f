//! Workspaces and locations to and from the wire. Credentials cross only on their way into the
//! hub (and, sealed, into its store); nothing converts them back out to a client.

use secrecy::{ExposeSecret, SecretString};

use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::model::{
    Credentials, Endpoint, Health, LocationInfo, LocationSpec, Provider, Prune, SealedKeyVersion, Store,
    StoredLocation, Timestamp, Workspace,
};
use crate::pb;

fn provider_to_pb(p: Provider) -> i32 {
    (match p {
        Provider::S3 => pb::Provider::S3,
        Provider::Minio => pb::Provider::Minio,
        Provider::Gcs => pb::Provider::Gcs,
        Provider::Azure => pb::Provider::Azure,
        Provider::Fs => pb::Provider::Fs,
    }) as i32
}

fn provider_from_pb(v: i32) -> Result<Provider> {
    const FIELD: &str = "LocationSpec.provider";
    Ok(
        match pb::Provider::try_from(v).map_err(|e| Error::field(FIELD, e))? {
            pb::Provider::Unspecified => return Err(Error::Missing { field: FIELD }),
            pb::Provider::S3 => Provider::S3,
            pb::Provider::Minio => Provider::Minio,
            pb::Provider::Gcs => Provider::Gcs,
            pb::Provider::Azure => Provider::Azure,
            pb::Provider::Fs => Provider::Fs,
        },
    )
}

impl Wire for LocationSpec {
    type Pb = pb::LocationSpec;

    fn to_pb(&self) -> pb::LocationSpec {
        let mut m = pb::LocationSpec {
            name: self.name.to_string(),
            workspace: self.workspace.to_string(),
            provider: provider_to_pb(self.store.provider()),
            prefix: self.prefix.clone().unwrap_or_default(),
            ..Default::default()
        };
        if let Some(endpoint) = self.store.endpoint() {
            m.endpoint.clone_from(&endpoint.url);
            m.ca_cert_pem = endpoint.ca_cert_pem.clone().unwrap_or_default();
        }
        match &self.store {
            Store::S3 {
                bucket,
                region,
                force_path_style,
                ..
            } => {
                m.bucket.clone_from(bucket);
                m.region = region.clone().unwrap_or_default();
                m.force_path_style = *force_path_style;
            }
            Store::Minio { bucket, region, .. } => {
                m.bucket.clone_from(bucket);
                m.region = region.clone().unwrap_or_default();
            }
            Store::Gcs { bucket, .. } => m.bucket.clone_from(bucket),
            Store::Azure {
                account, container, ..
            } => {
                m.account.clone_from(account);
                m.bucket.clone_from(container);
            }
            Store::Fs { path } => m.path.clone_from(path),
        }
        m
    }

    fn from_pb(m: pb::LocationSpec) -> Result<Self> {
        let provider = provider_from_pb(m.provider)?;
        let endpoint = match (opt_string(m.endpoint), opt_string(m.ca_cert_pem)) {
            (Some(url), ca_cert_pem) => Some(Endpoint { url, ca_cert_pem }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Error::field(
                    "LocationSpec.ca_cert_pem",
                    "set without an endpoint",
                ));
            }
        };
        // What the provider does not use must not be set: a location means one thing.
        let unused = |field: &'static str, set: bool| {
            if set {
                Err(Error::field(field, format!("not used by {provider}")))
            } else {
                Ok(())
            }
        };
        let bucket = || required("LocationSpec.bucket", opt_string(m.bucket.clone()));
        let region = opt_string(m.region.clone());
        unused(
            "LocationSpec.account",
            !m.account.is_empty() && provider != Provider::Azure,
        )?;
        unused(
            "LocationSpec.path",
            !m.path.is_empty() && provider != Provider::Fs,
        )?;
        unused(
            "LocationSpec.force_path_style",
            m.force_path_style && provider != Provider::S3,
        )?;
        let regional = matches!(provider, Provider::S3 | Provider::Minio);
        unused("LocationSpec.region", region.is_some() && !regional)?;
        let store = match provider {
            Provider::S3 => Store::S3 {
                bucket: bucket()?,
                region,
                endpoint,
                force_path_style: m.force_path_style,
            },
            Provider::Minio => Store::Minio {
                bucket: bucket()?,
                endpoint: required("LocationSpec.endpoint", endpoint)?,
                region,
            },
            Provider::Gcs => Store::Gcs {
                bucket: bucket()?,
                endpoint,
            },
            Provider::Azure => Store::Azure {
                account: required("LocationSpec.account", opt_string(m.account))?,
                container: bucket()?,
                endpoint,
            },
            Provider::Fs => {
                unused("LocationSpec.bucket", !m.bucket.is_empty())?;
                unused("LocationSpec.endpoint", endpoint.is_some())?;
                Store::Fs {
                    path: required("LocationSpec.path", opt_string(m.path))?,
                }
            }
        };
        Ok(Self {
            name: name("LocationSpec.name", m.name)?,
            workspace: name("LocationSpec.workspace", m.workspace)?,
            store,
            prefix: opt_string(m.prefix),
        })
    }
}

fn secret(s: &SecretString) -> String {
    s.expose_secret().to_owned()
}

fn required_secret(field: &'static str, value: String) -> Result<SecretString> {
    if value.is_empty() {
        return Err(Error::Missing { field });
    }
    Ok(SecretString::from(value))
}

impl Wire for Credentials {
    type Pb = pb::Credentials;

    fn to_pb(&self) -> pb::Credentials {
        use pb::credentials::Kind;
        let kind = match self {
            Self::Ambient => None,
            Self::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            } => Some(Kind::Aws(pb::AwsKeys {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret(secret_access_key),
                session_token: session_token.as_ref().map(secret).unwrap_or_default(),
            })),
            Self::GcsServiceAccount(key) => Some(Kind::Gcs(pb::GcsServiceAccount {
                key_json: secret(key),
            })),
            Self::AzureAccountKey(key) => Some(Kind::AzureKey(pb::AzureAccountKey { key: secret(key) })),
            Self::AzureSasToken(token) => Some(Kind::AzureSas(pb::AzureSasToken { token: secret(token) })),
            Self::AzureServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
            } => Some(Kind::AzureServicePrincipal(pb::AzureServicePrincipal {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: secret(client_secret),
            })),
        };
        pb::Credentials { kind }
    }

    fn from_pb(m: pb::Credentials) -> Result<Self> {
        use pb::credentials::Kind;
        Ok(match m.kind {
            None => Self::Ambient,
            Some(Kind::Aws(k)) => Self::Aws {
                access_key_id: k.access_key_id,
                secret_access_key: required_secret("AwsKeys.secret_access_key", k.secret_access_key)?,
                session_token: opt_string(k.session_token).map(SecretString::from),
            },
            Some(Kind::Gcs(k)) => {
                Self::GcsServiceAccount(required_secret("GcsServiceAccount.key_json", k.key_json)?)
            }
            Some(Kind::AzureKey(k)) => Self::AzureAccountKey(required_secret("AzureAccountKey.key", k.key)?),
            Some(Kind::AzureSas(k)) => Self::AzureSasToken(required_secret("AzureSasToken.token", k.token)?),
            Some(Kind::AzureServicePrincipal(k)) => Self::AzureServicePrincipal {
                tenant_id: k.tenant_id,
                client_id: k.client_id,
                client_secret: required_secret("AzureServicePrincipal.client_secret", k.client_secret)?,
            },
        })
    }
}

fn health_to_pb(h: Option<&Health>) -> Option<pb::LocationHealth> {
    h.map(|h| pb::LocationHealth {
        checked_unix_ms: h.checked.unix_ms(),
        error: h.error.clone().unwrap_or_default(),
    })
}

fn health_from_pb(m: Option<pb::LocationHealth>) -> Option<Health> {
    let m = m?;
    Some(Health {
        checked: Timestamp::from_unix_ms(m.checked_unix_ms)?,
        error: opt_string(m.error),
    })
}

impl Wire for Prune {
    type Pb = pb::Prune;

    fn to_pb(&self) -> pb::Prune {
        pb::Prune {
            finished_unix_ms: self.finished.unix_ms(),
            cluster: self.cluster.clone(),
            summary: self.summary.clone(),
            error: self.error.clone().unwrap_or_default(),
        }
    }

    fn from_pb(m: pb::Prune) -> Result<Self> {
        Ok(Self {
            finished: Timestamp::from_unix_ms(m.finished_unix_ms).unwrap_or_else(Timestamp::now),
            cluster: m.cluster,
            summary: m.summary,
            error: opt_string(m.error),
        })
    }
}

impl Wire for LocationInfo {
    type Pb = pb::LocationInfo;

    fn to_pb(&self) -> pb::LocationInfo {
        pb::LocationInfo {
            spec: Some(self.spec.to_pb()),
            has_credentials: self.has_credentials,
            is_default: self.is_default,
            health: health_to_pb(self.health.as_ref()),
            backups_read: self.backups_read,
            last_prune: self.last_prune.as_ref().map(Wire::to_pb),
            backups_unreadable: self.backups_unreadable.clone(),
            key_version: self.key_version,
        }
    }

    fn from_pb(m: pb::LocationInfo) -> Result<Self> {
        Ok(Self {
            spec: LocationSpec::from_pb(required("LocationInfo.spec", m.spec)?)?,
            has_credentials: m.has_credentials,
            is_default: m.is_default,
            health: health_from_pb(m.health),
            backups_read: m.backups_read,
            last_prune: m.last_prune.map(Prune::from_pb).transpose()?,
            backups_unreadable: m.backups_unreadable,
            key_version: m.key_version,
        })
    }
}

impl Wire for StoredLocation {
    type Pb = pb::StoredLocation;

    fn to_pb(&self) -> pb::StoredLocation {
        pb::StoredLocation {
            spec: Some(self.spec.to_pb()),
            sealed_credentials: self.sealed_credentials.clone(),
            health: health_to_pb(self.health.as_ref()),
            last_prune: self.last_prune.as_ref().map(Wire::to_pb),
            keyring: self
                .keyring
                .iter()
                .map(|v| pb::SealedKeyVersion {
                    version: v.version,
                    sealed: v.sealed.clone(),
                })
                .collect(),
        }
    }

    fn from_pb(m: pb::StoredLocation) -> Result<Self> {
        Ok(Self {
            spec: LocationSpec::from_pb(required("StoredLocation.spec", m.spec)?)?,
            sealed_credentials: m.sealed_credentials,
            health: health_from_pb(m.health),
            last_prune: m.last_prune.map(Prune::from_pb).transpose()?,
            keyring: m
                .keyring
                .into_iter()
                .map(|v| SealedKeyVersion {
                    version: v.version,
                    sealed: v.sealed,
                })
                .collect(),
        })
    }
}

impl Wire for Workspace {
    type Pb = pb::Workspace;

    fn to_pb(&self) -> pb::Workspace {
        pb::Workspace {
            name: self.name.to_string(),
            default_location: self
                .default_location
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            created_unix_ms: ms(self.created),
            clusters: self.clusters.iter().map(ToString::to_string).collect(),
        }
    }

    fn from_pb(m: pb::Workspace) -> Result<Self> {
        Ok(Self {
            name: name("Workspace.name", m.name)?,
            default_location: opt_name("Workspace.default_location", m.default_location)?,
            created: Timestamp::from_unix_ms(m.created_unix_ms),
            clusters: m
                .clusters
                .into_iter()
                .map(|c| name("Workspace.clusters", c))
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_never_show_in_debug() {
        let creds = Credentials::Aws {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG"),
            session_token: None,
        };
        assert!(!format!("{creds:?}").contains("wJalrXUtnFEMI"), "{creds:?}");
        let back = Credentials::decode(&creds.encode()).expect("decodes");
        let Credentials::Aws {
            secret_access_key, ..
        } = back
        else {
            panic!("{back:?}")
        };
        assert_eq!(secret_access_key.expose_secret(), "wJalrXUtnFEMI/K7MDENG");
        assert!(
            Credentials::decode(&Credentials::Ambient.encode())
                .expect("decodes")
                .is_ambient()
        );
    }

    fn spec(store: Store) -> LocationSpec {
        LocationSpec {
            name: "loc".parse().expect("name"),
            workspace: "default".parse().expect("name"),
            store,
            prefix: Some("team".into()),
        }
    }

    #[test]
    fn every_store_round_trips() {
        let tls = Endpoint {
            url: "https://minio.local:9000".into(),
            ca_cert_pem: Some("-----BEGIN CERTIFICATE-----".into()),
        };
        for store in [
            Store::S3 {
                bucket: "bkt".into(),
                region: Some("eu-west-1".into()),
                endpoint: None,
                force_path_style: true,
            },
            Store::Minio {
                bucket: "bkt".into(),
                endpoint: tls.clone(),
                region: None,
            },
            Store::Gcs {
                bucket: "bkt".into(),
                endpoint: Some(Endpoint::new("http://127.0.0.1:4443")),
            },
            Store::Azure {
                account: "acct".into(),
                container: "vault".into(),
                endpoint: Some(tls),
            },
            Store::Fs {
                path: "/srv/backups".into(),
            },
        ] {
            let spec = spec(store);
            assert_eq!(LocationSpec::from_pb(spec.to_pb()).expect("converts"), spec);
        }
    }

    /// A location means one thing: what its provider needs must be there, and what it does not
    /// use must not be.
    #[test]
    fn a_setting_missing_or_foreign_to_the_provider_is_refused() {
        let fs = spec(Store::Fs {
            path: "/srv/backups".into(),
        })
        .to_pb();
        let refused = |m: pb::LocationSpec| LocationSpec::from_pb(m).expect_err("refused").to_string();
        let with_bucket = pb::LocationSpec {
            bucket: "bkt".into(),
            ..fs.clone()
        };
        assert_eq!(
            refused(with_bucket),
            "invalid LocationSpec.bucket: not used by fs"
        );
        let with_region = pb::LocationSpec {
            region: "eu-west-1".into(),
            ..fs.clone()
        };
        assert_eq!(
            refused(with_region),
            "invalid LocationSpec.region: not used by fs"
        );
        let s3_without_bucket = pb::LocationSpec {
            provider: pb::Provider::S3 as i32,
            path: String::new(),
            ..fs.clone()
        };
        assert_eq!(refused(s3_without_bucket), "LocationSpec.bucket is missing");
        let minio = pb::LocationSpec {
            provider: pb::Provider::Minio as i32,
            bucket: "bkt".into(),
            path: String::new(),
            ..fs.clone()
        };
        assert_eq!(refused(minio.clone()), "LocationSpec.endpoint is missing");
        let ca_alone = pb::LocationSpec {
            ca_cert_pem: "pem".into(),
            ..minio
        };
        assert_eq!(
            refused(ca_alone),
            "invalid LocationSpec.ca_cert_pem: set without an endpoint"
        );
        let azure_without_account = pb::LocationSpec {
            provider: pb::Provider::Azure as i32,
            bucket: "vault".into(),
            path: String::new(),
            ..fs
        };
        assert_eq!(refused(azure_without_account), "LocationSpec.account is missing");
    }
}
