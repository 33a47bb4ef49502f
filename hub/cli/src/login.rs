//! Where the CLI finds the hub and who it is there: a configuration file, kubeconfig-style
//! (`--config`, `CAIRN_CONFIG`, else `~/.config/cairn/config`), holding the hub's address, its CA
//! file and a bearer token; `cairn login` writes it, readable by its owner only. Flags and
//! `CAIRN_HUB`, `CAIRN_CA`, `CAIRN_TOKEN` override what it says. The hub writes one for its local
//! administrator into its data directory on first start (`<data_dir>/admin.conf`).

use anyhow::{Context, Result};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The hub when nothing says otherwise: a hub on this machine, on its defaults.
pub const DEFAULT_HUB: &str = "https://127.0.0.1:7443";

/// What the configuration file holds. `Debug` does not show the token.
#[derive(Default, Serialize, Deserialize)]
pub struct Login {
    /// The hub's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// PEM file of the hub's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "secret")]
    pub token: Option<SecretString>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("hub", &self.hub)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

mod secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` hands the field by reference
    pub fn serialize<S: Serializer>(token: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match token {
            Some(t) => s.serialize_some(t.expose_secret()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
    }
}

/// The configuration file to use: `explicit`, else `~/.config/cairn/config`.
pub fn path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/cairn/config")))
}

impl Login {
    /// The configuration at `path`; none if the file does not exist and was not asked for
    /// (`required`).
    pub fn load(path: Option<&Path>, required: bool) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading CLI configuration {}", path.display())),
        };
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("CLI configuration {} does not read", path.display()))
    }

    /// Writes it to `path`, readable and writable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        let failed = || format!("writing CLI configuration {}", path.display());
        let text = serde_yaml_ng::to_string(self).with_context(failed)?;
        cairn_proto::seal::write_private(path, text.as_bytes()).with_context(failed)
    }
}
