//! How an agent or the CLI reaches the hub: over TLS only, the hub's certificate checked against
//! the hub's CA when one is given (its `ca.crt`, or the CA a join token pins), else against the
//! system's roots (a hub whose certificate a public CA signed). An enrolled agent also presents
//! its client certificate ([`Hub::endpoint_as`]); before it has one, [`pinned_ca`] fetches the
//! CA a join token names, checked against the token's fingerprint.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A hub address that cannot be dialled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not an `https://` URL.
    #[error("hub URL {url:?} is not https://…: the hub serves TLS only")]
    NotHttps {
        /// The URL as given.
        url: String,
    },
    /// The URL does not parse.
    #[error("invalid hub URL {url:?}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The CA file cannot be read.
    #[error("reading the hub's CA certificate {path}")]
    Ca {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS settings are refused (a CA that is not PEM, say).
    #[error("TLS settings for the hub at {url}")]
    Tls {
        /// The hub URL.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub cannot be reached to fetch its CA.
    #[error("reaching the hub at {url} to check its CA")]
    Reach {
        /// The hub URL.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The hub does not present the CA the join token names.
    #[error(
        "the hub at {url} does not present the CA of fingerprint {pin} that the join token names: a wrong address, a token of another hub, or someone in between"
    )]
    NotPinned {
        /// The hub URL.
        url: String,
        /// The fingerprint expected.
        pin: String,
    },
}

/// How long reaching the hub to fetch its CA may take.
const PIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the hub is, how its certificate is checked, and (for a user) the bearer token calls
/// carry. `Debug` does not show the token.
#[derive(Debug, Clone)]
pub struct Hub {
    url: String,
    ca_pem: Option<String>,
    endpoint: Endpoint,
    token: Option<secrecy::SecretString>,
}

/// Adds a user's bearer token to every call (`authorization: Bearer …`, marked sensitive so no
/// log shows it).
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Hub {
    /// The hub at `url` (`https://host:port`), its certificate checked against `ca_pem` if given,
    /// else against the system's roots.
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Self, Error> {
        if !url.starts_with("https://") {
            return Err(Error::NotHttps { url: url.to_owned() });
        }
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|source| Error::Url {
            url: url.to_owned(),
            source,
        })?;
        let mut hub = Self {
            url: url.to_owned(),
            ca_pem: ca_pem.map(str::to_owned),
            endpoint,
            token: None,
        };
        hub.endpoint = hub.with_tls(hub.tls())?;
        Ok(hub)
    }

    fn tls(&self) -> ClientTlsConfig {
        match &self.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        }
    }

    fn with_tls(&self, tls: ClientTlsConfig) -> Result<Endpoint, Error> {
        self.endpoint
            .clone()
            .tls_config(tls)
            .map_err(|source| Error::Tls {
                url: self.url.clone(),
                source,
            })
    }

    /// An endpoint to the hub presenting client certificate `cert_pem` (its key `key_pem`): how
    /// an enrolled agent dials.
    pub fn endpoint_as(&self, cert_pem: &str, key_pem: &str) -> Result<Endpoint, Error> {
        self.with_tls(self.tls().identity(Identity::from_pem(cert_pem, key_pem)))
    }

    /// The same hub, calls carrying bearer token `token`.
    pub fn with_token(mut self, token: secrecy::SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// What adds the bearer token (if any) to each call.
    pub fn bearer(&self) -> Bearer {
        use secrecy::ExposeSecret;
        Bearer(self.token.as_ref().and_then(|t| {
            let mut value =
                tonic::metadata::MetadataValue::try_from(format!("Bearer {}", t.expose_secret())).ok()?;
            value.set_sensitive(true);
            Some(value)
        }))
    }

    /// The hub's CA, PEM, if one was given.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The hub at `url`, its certificate checked against the CA in file `ca` if given.
    pub fn with_ca_file(url: &str, ca: Option<&Path>) -> Result<Self, Error> {
        let pem = ca
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| Error::Ca {
                    path: path.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        Self::new(url, pem.as_deref())
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A gRPC endpoint to it, TLS set; the caller adds timeouts and connects.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

/// The CA certificate (PEM) of the hub at `url` whose SHA-256 fingerprint is `pin`: a TLS
/// handshake whose chain must hold that CA and whose serving certificate must be valid under it
/// for the URL's host. Nothing is sent but the handshake.
pub async fn pinned_ca(url: &str, pin: &str) -> Result<String, Error> {
    use rustls::pki_types::ServerName;
    let reach = |source| Error::Reach {
        url: url.to_owned(),
        source,
    };
    let parsed = url::Url::parse(url).map_err(|e| reach(std::io::Error::other(e)))?;
    if parsed.scheme() != "https" {
        return Err(Error::NotHttps { url: url.to_owned() });
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| reach(std::io::Error::other("no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(443);
    let verifier = Arc::new(Pinned::new(pin));
    let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| reach(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| reach(std::io::Error::other(e)))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    };
    let outcome = tokio::time::timeout(PIN_TIMEOUT, handshake)
        .await
        .map_err(|_| reach(std::io::Error::from(std::io::ErrorKind::TimedOut)))?;
    let found = verifier
        .found
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match (outcome, found) {
        (Ok(_), Some(ca)) => Ok(pem("CERTIFICATE", &ca)),
        (_, None) => Err(Error::NotPinned {
            url: url.to_owned(),
            pin: pin.to_owned(),
        }),
        (Err(e), Some(_)) => Err(reach(e)),
    }
}

/// `der` as PEM.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Accepts a hub whose chain holds the CA of fingerprint `pin` and whose certificate is valid
/// under that CA; keeps the CA.
#[derive(Debug)]
struct Pinned {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    found: Mutex<Option<Vec<u8>>>,
}

impl Pinned {
    fn new(pin: &str) -> Self {
        Self {
            pin: pin.to_ascii_lowercase(),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            found: Mutex::new(None),
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| crate::join::fingerprint(c) == self.pin)
            .ok_or_else(|| rustls::Error::General("the hub's CA is not the one pinned".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verified = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?
        .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        *self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ca.to_vec());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl std::fmt::Display for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_is_dialled() {
        let err = Hub::new("http://127.0.0.1:7443", None).expect_err("plaintext");
        assert_eq!(
            err.to_string(),
            "hub URL \"http://127.0.0.1:7443\" is not https://…: the hub serves TLS only"
        );
        let hub = Hub::new("https://127.0.0.1:7443", None).expect("https");
        assert_eq!(hub.to_string(), "https://127.0.0.1:7443");
        let missing = Hub::with_ca_file("https://127.0.0.1:7443", Some(Path::new("/nonexistent/ca.crt")));
        assert!(
            missing
                .expect_err("no file")
                .to_string()
                .starts_with("reading the hub's CA certificate /nonexistent/ca.crt")
        );
    }
}
