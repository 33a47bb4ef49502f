//! Workspaces and locations to and from the wire. Credentials cross only on their way into the
//! hub (and, sealed, into its store); nothing converts them back out to a client.

use secrecy::{ExposeSecret, SecretString};

use super::{Error, Result, Wire, ms, name, opt_name, opt_string, required};
use crate::model::{
    Credentials, Health, LocationInfo, LocationSpec, Provider, Prune, StoredLocation, Timestamp, Workspace,
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
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        pb::LocationSpec {
            name: self.name.to_string(),
            workspace: self.workspace.to_string(),
            provider: provider_to_pb(self.provider),
            bucket: text(&self.bucket),
            prefix: text(&self.prefix),
            region: text(&self.region),
            endpoint: text(&self.endpoint),
            force_path_style: self.force_path_style,
            ca_cert_pem: text(&self.ca_cert_pem),
            account: text(&self.account),
            path: text(&self.path),
        }
    }

    fn from_pb(m: pb::LocationSpec) -> Result<Self> {
        Ok(Self {
            name: name("LocationSpec.name", m.name)?,
            workspace: name("LocationSpec.workspace", m.workspace)?,
            provider: provider_from_pb(m.provider)?,
            bucket: opt_string(m.bucket),
            prefix: opt_string(m.prefix),
            region: opt_string(m.region),
            endpoint: opt_string(m.endpoint),
            force_path_style: m.force_path_style,
            ca_cert_pem: opt_string(m.ca_cert_pem),
            account: opt_string(m.account),
            path: opt_string(m.path),
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
        }
    }

    fn from_pb(m: pb::StoredLocation) -> Result<Self> {
        Ok(Self {
            spec: LocationSpec::from_pb(required("StoredLocation.spec", m.spec)?)?,
            sealed_credentials: m.sealed_credentials,
            health: health_from_pb(m.health),
            last_prune: m.last_prune.map(Prune::from_pb).transpose()?,
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
}
