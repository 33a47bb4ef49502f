//! The hub's TLS identity. By default the hub is its own certificate authority (rcgen): the CA's
//! key (Ed25519) is derived from the hub's master key and never written, and its certificate is
//! made the same way every time, so a hub rebuilt from the same master key on an empty data
//! directory is the same CA to its agents and users. The certificate is written to
//! `<data_dir>/pki/ca.crt` for clients to trust. At every start the hub makes itself a serving
//! certificate for its configured names (`tls_names`), valid a year. A certificate, key and CA
//! given in the configuration (`tls_cert`, `tls_key`, `tls_ca`, as cert-manager writes them)
//! replace all of that. There is no plaintext mode.

use cairn_proto::model::AgentId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the CA's key is derived from the master key for.
const CA_KEY_PURPOSE: &str = "cairn hub CA key v1";
/// What the key of the CA of agents' client certificates is derived from the master key for.
const AGENT_CA_KEY_PURPOSE: &str = "cairn agent CA key v1";
/// How long a serving certificate the hub makes for itself is valid (it makes one at every
/// start).
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A TLS identity that cannot be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read or written.
    #[error("{what} {path}")]
    File {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The master key cannot give the CA's key.
    #[error("deriving the hub's CA key from its master key")]
    Derive(#[source] cairn_proto::seal::Error),
    /// A certificate or key does not parse or cannot be made.
    #[error("{what}")]
    Certificate {
        /// Which.
        what: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The configuration or the master key cannot make an identity.
    #[error("hub TLS: {0}")]
    Unusable(&'static str),
}

/// What the hub serves TLS with.
pub struct Tls {
    /// Its serving certificate (with any intermediates), PEM.
    pub cert_pem: String,
    /// The certificate's private key, PEM. `Debug` does not show it.
    pub key_pem: String,
    /// The CA clients check the hub against, PEM.
    pub ca_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Where the identity comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The hub's own CA in `dir`, a serving certificate for `names`.
    Own {
        /// `<data_dir>/pki`.
        dir: PathBuf,
        /// DNS names and IP addresses the hub is reached at.
        names: Vec<String>,
    },
    /// Files given in the configuration.
    Given {
        /// Serving certificate, PEM.
        cert: PathBuf,
        /// Its key, PEM.
        key: PathBuf,
        /// The CA that signed it, PEM.
        ca: PathBuf,
    },
}

impl Tls {
    /// Loads or makes the hub's identity from `source`; its own CA's key comes from `master`.
    pub fn load(source: &Source, master: &cairn_proto::seal::Key) -> Result<Self, Error> {
        match source {
            Source::Given { cert, key, ca } => Ok(Self {
                cert_pem: read("TLS certificate", cert)?,
                key_pem: read("TLS key", key)?,
                ca_pem: read("TLS CA certificate", ca)?,
            }),
            Source::Own { dir, names } => {
                let ca = Authority::of(master, dir)?;
                ca.serving(names)
            }
        }
    }
}

/// One of the hub's own certificate authorities.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Authority {
    /// The hub's CA, its key derived from `master`; its certificate written to `dir/ca.crt`.
    pub fn of(master: &cairn_proto::seal::Key, dir: &Path) -> Result<Self, Error> {
        let ca = Self::derived(master, CA_KEY_PURPOSE, "Cairn hub CA")?;
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            what: "making the hub's PKI directory",
            path: dir.to_owned(),
            source,
        })?;
        let cert_path = dir.join("ca.crt");
        if std::fs::read_to_string(&cert_path).ok().as_deref() != Some(&ca.cert_pem) {
            write("writing the hub's CA certificate", &cert_path, &ca.cert_pem)?;
            tracing::info!(ca = %cert_path.display(), "wrote the hub's CA certificate: clients trust this file");
        }
        Ok(ca)
    }

    /// The CA of agents' client certificates, its key derived from `master`. Only the hub needs
    /// its certificate: it is never written.
    pub fn agents(master: &cairn_proto::seal::Key) -> Result<Self, Error> {
        Self::derived(master, AGENT_CA_KEY_PURPOSE, "Cairn agent CA")
    }

    /// A CA named `name`, its Ed25519 key derived from `master` for `purpose`. Everything is
    /// fixed (Ed25519 signs deterministically): the same master key always makes the same
    /// certificate.
    fn derived(master: &cairn_proto::seal::Key, purpose: &str, name: &str) -> Result<Self, Error> {
        let made = |source| Error::Certificate {
            what: format!("making {name}"),
            source,
        };
        let seed = master.derive(purpose).map_err(Error::Derive)?;
        let not_a_key = || Error::Unusable("the master key does not make an Ed25519 key");
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| not_a_key())?
            .to_pkcs8()
            .map_err(|_| not_a_key())?;
        let key = KeyPair::try_from(pkcs8.as_ref()).map_err(made)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(made)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        params.serial_number = Some(SerialNumber::from_slice(&seed[..16]));
        let cert = params.self_signed(&key).map_err(made)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Its certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A fresh serving certificate for `names`, signed by this CA.
    pub fn serving(&self, names: &[String]) -> Result<Tls, Error> {
        let made = |source| Error::Certificate {
            what: format!("making the hub's serving certificate for {}", names.join(", ")),
            source,
        };
        if names.is_empty() {
            return Err(Error::Unusable(
                "tls_names is empty: the hub must be reachable by some name",
            ));
        }
        let mut params = CertificateParams::new(names.to_vec()).map_err(made)?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + SERVING_LIFETIME;
        let key = KeyPair::generate().map_err(made)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(made)?;
        Ok(Tls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// A client certificate for agent `id`, valid `lifetime` from now, for the public key of
    /// certificate request `csr_pem`. Only the key is taken from the request: who the agent is,
    /// what the certificate may do and for how long, the hub decides.
    pub fn issue(&self, csr_pem: &str, id: &AgentId, lifetime: Duration) -> Result<Issued, Error> {
        let made = |source| Error::Certificate {
            what: format!("making a certificate for {id}"),
            source,
        };
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(|source| {
            Error::Certificate {
                what: "reading the agent's certificate request".into(),
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, id.cluster().as_str());
        params.subject_alt_names = vec![rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from(id.uri()).map_err(made)?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        // A minute's slack for clocks a little behind the hub's.
        params.not_before = now - time::Duration::minutes(1);
        let not_after = now + lifetime;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        csr.params = params;
        let cert = csr.signed_by(&self.issuer).map_err(made)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            not_after: std::time::SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(not_after.unix_timestamp()).unwrap_or(0)),
        })
    }
}

/// A certificate the hub issued an agent.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// When it expires.
    pub not_after: std::time::SystemTime,
}

/// Sixteen random bytes, the first bit clear (a positive serial).
fn random_serial() -> [u8; 16] {
    let mut serial = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut serial);
    serial[0] &= 0x7f;
    serial
}

/// Who the client certificate `der` (one the agents' CA issued, already verified by the TLS
/// handshake) names.
pub fn peer(der: &[u8]) -> Option<AgentId> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => AgentId::from_uri(uri).ok(),
        _ => None,
    })
}

fn read(what: &'static str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::File {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path` whole or not at all: a client reading it while the hub starts never
/// sees half a certificate.
fn write(what: &'static str, path: &Path, text: &str) -> Result<(), Error> {
    let failed = |source| Error::File {
        what,
        path: path.to_owned(),
        source,
    };
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_master_key_is_the_same_ca_even_on_an_empty_data_directory() {
        let master = cairn_proto::seal::Key::from_raw(&[7; 32], "test").expect("key");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (first, second) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let own = |dir: &Path| Source::Own {
            dir: dir.join("pki"),
            names: names.clone(),
        };
        let a = Tls::load(&own(first.path()), &master).expect("made");
        let b = Tls::load(&own(second.path()), &master).expect("made again");
        assert_eq!(a.ca_pem, b.ca_pem, "the same CA from the same master key");
        assert_ne!(a.cert_pem, b.cert_pem, "a fresh serving certificate");
        let written = std::fs::read_to_string(first.path().join("pki/ca.crt")).expect("ca.crt");
        assert_eq!(written, a.ca_pem);
        assert!(
            !first.path().join("pki/ca.key").exists(),
            "the CA key is never written"
        );
        let other = cairn_proto::seal::Key::from_raw(&[8; 32], "test").expect("key");
        let c = Tls::load(&own(first.path()), &other).expect("another CA");
        assert_ne!(a.ca_pem, c.ca_pem);
        assert!(
            Authority::of(&master, first.path())
                .and_then(|ca| ca.serving(&[]))
                .is_err()
        );
    }

    #[test]
    fn an_agent_certificate_names_the_agent_the_hub_says_whatever_the_request_asked() {
        let master = cairn_proto::seal::Key::from_raw(&[7; 32], "test").expect("key");
        let agents = Authority::agents(&master).expect("agents' CA");
        assert_eq!(
            agents.cert_pem(),
            Authority::agents(&master).expect("again").cert_pem(),
            "derived: the same every time"
        );
        let dir = tempfile::tempdir().expect("dir");
        assert_ne!(
            agents.cert_pem(),
            Authority::of(&master, dir.path()).expect("hub CA").cert_pem(),
            "not the CA clients trust the hub by"
        );
        // The request asks to be another cluster's agent, for ten years: neither is granted.
        let key = KeyPair::generate().expect("key");
        let mut asked = CertificateParams::new(vec!["west".to_owned()]).expect("params");
        asked.subject_alt_names = vec![rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("urn:cairn:cluster:west:1").expect("uri"),
        )];
        asked.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let csr = asked.serialize_request(&key).and_then(|r| r.pem()).expect("csr");
        let id = AgentId::Cluster {
            cluster: "east".parse().expect("name"),
            generation: 2,
        };
        let issued = agents.issue(&csr, &id, Duration::from_secs(600)).expect("issued");
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).expect("pem");
        assert_eq!(peer(&pem.contents), Some(id));
        let left = issued
            .not_after
            .duration_since(std::time::SystemTime::now())
            .expect("in the future");
        assert!(left <= Duration::from_secs(600), "{left:?}");
        assert!(
            agents
                .issue(
                    "not a request",
                    &AgentId::Cluster {
                        cluster: "east".parse().expect("name"),
                        generation: 2
                    },
                    Duration::from_secs(1)
                )
                .is_err()
        );
    }
}
