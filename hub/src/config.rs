//! The hub's configuration: embedded defaults (`defaults.toml`), then an optional file, then
//! `CAIRN_*` environment variables, checked once at start-up.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration that does not load or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source failed to read or parse.
    #[error("loading hub configuration")]
    Load(#[source] config::ConfigError),
    /// A value is out of range.
    #[error("hub configuration: {0}")]
    Invalid(String),
}

/// Environment variables that override the file, one per field.
const ENV_KEYS: &[&str] = &[
    "CAIRN_DATA_DIR",
    "CAIRN_LISTEN",
    "CAIRN_AGENT_TIMEOUT",
    "CAIRN_INSTRUCTION_DEADLINE",
    "CAIRN_AGENT_ADMISSIONS_PER_SECOND",
    "CAIRN_RPO_GRACE",
    "CAIRN_METRICS_LISTEN",
    "CAIRN_AGENT_CERT_LIFETIME",
    "CAIRN_DEFAULT_LOCATION_DIR",
    "CAIRN_LOCATION_CHECK_INTERVAL",
    "CAIRN_CLOCK_OFFSET",
    "CAIRN_VOLUME_PRUNE_INTERVAL",
    "CAIRN_VOLUME_PRUNE_GRACE",
    "CAIRN_TLS_NAMES",
    "CAIRN_TLS_CERT",
    "CAIRN_TLS_KEY",
    "CAIRN_TLS_CA",
    "CAIRN_SECRET_KEY_FILE",
];

/// Environment variable that supplies the hub's sealing key (32 bytes, base64) instead of
/// `<data_dir>/secret.key`. Read apart from the rest so the key never sits in [`Config`].
pub const SECRET_KEY_ENV: &str = "CAIRN_SECRET_KEY";

/// The hub's configuration, as the file and environment spell it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RocksDB state and the default local location.
    pub data_dir: PathBuf,
    /// gRPC address for agents and users.
    pub listen: SocketAddr,
    /// Names (DNS or IP) the hub's own serving certificate is made for.
    pub tls_names: Vec<String>,
    /// A serving certificate given to the hub (PEM); empty: the hub's own CA makes one.
    pub tls_cert: PathBuf,
    /// Its key (PEM).
    pub tls_key: PathBuf,
    /// The CA that signed it (PEM).
    pub tls_ca: PathBuf,
    /// Silence after which an agent counts as disconnected.
    #[serde(with = "humantime_serde")]
    pub agent_timeout: Duration,
    /// How long an agent has to take up an instruction, and to read what the hub sends it.
    #[serde(with = "humantime_serde")]
    pub instruction_deadline: Duration,
    /// Agent connections admitted per second, at most (a burst of as many at once); the rest
    /// are told to dial again later.
    pub agent_admissions_per_second: u32,
    /// How long past a schedule's period a cluster may go without a successful backup before
    /// its RPO counts as at risk.
    #[serde(with = "humantime_serde")]
    pub rpo_grace: Duration,
    /// HTTP address of the Prometheus metrics (`/metrics`); empty: not served.
    pub metrics_listen: String,
    /// The master key's file, outside the data directory (a mounted Secret); empty:
    /// `<data_dir>/secret.key`, made on first start.
    pub secret_key_file: PathBuf,
    /// How long an agent's client certificate is valid; agents renew theirs at two thirds.
    #[serde(with = "humantime_serde")]
    pub agent_cert_lifetime: Duration,
    /// Directory of the built-in location; empty: `<data_dir>/backups`.
    pub default_location_dir: PathBuf,
    /// How often every location is checked end to end.
    #[serde(with = "humantime_serde")]
    pub location_check_interval: Duration,
    /// How far ahead of the system clock the hub's clock runs (schedules, retention).
    #[serde(with = "humantime_serde")]
    pub clock_offset: Duration,
    /// How often every location's volume repository is pruned.
    #[serde(with = "humantime_serde")]
    pub volume_prune_interval: Duration,
    /// How long unused volume data stays before a prune deletes it: longer than any backup. The
    /// least grace any prune is given, whoever asks.
    #[serde(with = "humantime_serde")]
    pub volume_prune_grace: Duration,
}

impl Config {
    /// Defaults, then `file` (if given and present), then `CAIRN_*` variables.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Error> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            include_str!("defaults.toml"),
            config::FileFormat::Toml,
        ));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        // Only the hub's own variables: CAIRN_HUB (the CLI's) or CAIRN_CACHE (the test bed's) in
        // the same shell are not configuration errors.
        let env: config::Map<String, String> = std::env::vars()
            .filter(|(k, _)| ENV_KEYS.contains(&k.as_str()))
            .collect();
        let config: Self = builder
            .add_source(
                config::Environment::with_prefix("CAIRN")
                    .source(Some(env))
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("tls_names"),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(Error::Load)?;
        if config.agent_timeout < Duration::from_secs(1) {
            return Err(Error::Invalid("agent_timeout must be at least 1s".into()));
        }
        if config.instruction_deadline < Duration::from_secs(1) {
            return Err(Error::Invalid("instruction_deadline must be at least 1s".into()));
        }
        if config.agent_admissions_per_second == 0 {
            return Err(Error::Invalid(
                "agent_admissions_per_second must be at least 1".into(),
            ));
        }
        if config.agent_cert_lifetime < Duration::from_secs(1) {
            return Err(Error::Invalid("agent_cert_lifetime must be at least 1s".into()));
        }
        if config.location_check_interval < Duration::from_secs(1) {
            return Err(Error::Invalid(
                "location_check_interval must be at least 1s".into(),
            ));
        }
        Ok(config)
    }

    /// The metrics' address, if they are served.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, Error> {
        if self.metrics_listen.trim().is_empty() {
            return Ok(None);
        }
        self.metrics_listen
            .parse()
            .map(Some)
            .map_err(|e| Error::Invalid(format!("metrics_listen {:?}: {e}", self.metrics_listen)))
    }

    /// The built-in location's directory, absolute: the configured one, or `<data_dir>/backups`.
    pub fn default_location_dir(&self) -> Result<String, Error> {
        let dir = if self.default_location_dir.as_os_str().is_empty() {
            self.data_dir.join("backups")
        } else {
            self.default_location_dir.clone()
        };
        let dir = std::path::absolute(&dir).map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
        dir.to_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", dir.display())))
    }

    /// Where the hub's TLS identity comes from.
    pub fn tls(&self) -> Result<crate::pki::Source, Error> {
        let given = [&self.tls_cert, &self.tls_key, &self.tls_ca].map(|p| !p.as_os_str().is_empty());
        match given {
            [false, false, false] => Ok(crate::pki::Source::Own {
                dir: self.data_dir.join("pki"),
                names: self.tls_names.clone(),
            }),
            [true, true, true] => Ok(crate::pki::Source::Given {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                ca: self.tls_ca.clone(),
            }),
            _ => Err(Error::Invalid(
                "tls_cert, tls_key and tls_ca are given together or not at all".into(),
            )),
        }
    }

    /// The hub's clock.
    pub fn clock(&self) -> crate::clock::Clock {
        if self.clock_offset.is_zero() {
            crate::clock::Clock::System
        } else {
            crate::clock::Clock::Ahead(self.clock_offset)
        }
    }

    /// The key credentials are sealed with: from [`SECRET_KEY_ENV`], else `secret_key_file`,
    /// else `<data_dir>/secret.key`,
    /// made (readable by the hub's user only) on first start.
    pub fn sealing_key(&self) -> Result<cairn_proto::seal::Key, cairn_proto::seal::Error> {
        use cairn_proto::seal::Key;
        if let Ok(text) = std::env::var(SECRET_KEY_ENV) {
            return Key::from_base64(&text, &format!("environment variable {SECRET_KEY_ENV}"));
        }
        if !self.secret_key_file.as_os_str().is_empty() {
            // Given: never made here (a typo must not start a hub with a new, empty keyring).
            return Key::read_file(&self.secret_key_file);
        }
        let path = self.data_dir.join("secret.key");
        if path.exists() {
            return Key::read_file(&path);
        }
        let key = Key::create_file(&path)?;
        tracing::info!(path = %path.display(), "made a new sealing key for credentials: back it up with the data directory");
        Ok(key)
    }
}

/// `Duration` fields as humantime text ("20s").
mod humantime_serde {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        humantime::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_the_hubs_own_ca_unless_a_whole_identity_is_given() {
        let mut config = Config::load(None).expect("defaults load");
        assert_eq!(config.tls_names, ["localhost", "127.0.0.1"]);
        let own = config.tls().expect("own CA");
        assert!(
            matches!(&own, crate::pki::Source::Own { dir, .. } if dir.ends_with("cairn-data/pki")),
            "{own:?}"
        );
        config.tls_cert = "tls.crt".into();
        let err = config.tls().expect_err("a certificate without its key and CA");
        assert_eq!(
            err.to_string(),
            "hub configuration: tls_cert, tls_key and tls_ca are given together or not at all"
        );
        (config.tls_key, config.tls_ca) = ("tls.key".into(), "ca.crt".into());
        assert!(matches!(config.tls(), Ok(crate::pki::Source::Given { .. })));
    }

    #[test]
    fn runs_with_no_file_on_embedded_defaults() {
        let config = Config::load(None).expect("defaults load");
        assert_eq!(config.listen, "127.0.0.1:7443".parse().expect("addr"));
        assert_eq!(config.data_dir, PathBuf::from("./cairn-data"));
        assert!(
            config
                .default_location_dir()
                .expect("dir")
                .ends_with("/cairn-data/backups")
        );
    }

    #[test]
    fn a_master_key_file_outside_the_data_directory_is_read_never_made_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let mut config = Config::load(None).expect("defaults load");
        config.data_dir = dir.path().join("data");
        config.secret_key_file = dir.path().join("mounted/secret.key");
        let missing = config.sealing_key().expect_err("a missing file is not made");
        assert!(missing.to_string().contains("mounted/secret.key"), "{missing}");
        assert!(!config.secret_key_file.exists() && !config.data_dir.join("secret.key").exists());
        std::fs::create_dir_all(dir.path().join("mounted")).expect("dir");
        cairn_proto::seal::Key::create_file(&config.secret_key_file).expect("key");
        let key = config.sealing_key().expect("read");
        assert_eq!(
            key.derive("x").expect("derive"),
            cairn_proto::seal::Key::read_file(&config.secret_key_file)
                .expect("again")
                .derive("x")
                .expect("derive")
        );
        std::fs::set_permissions(&config.secret_key_file, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let exposed = config.sealing_key().expect_err("others can read it");
        assert!(
            exposed.to_string().contains("can be read or written by others"),
            "{exposed}"
        );
    }
}
