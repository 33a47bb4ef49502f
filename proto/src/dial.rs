//! How an agent or the CLI reaches the hub: over TLS only, the hub's certificate checked against
//! the hub's CA when one is given (its `ca.crt`, or the CA a join token pins), else against the
//! system's roots (a hub whose certificate a public CA signed).

use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

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
}

/// Where the hub is and how its certificate is checked.
#[derive(Debug, Clone)]
pub struct Hub {
    url: String,
    endpoint: Endpoint,
}

impl Hub {
    /// The hub at `url` (`https://host:port`), its certificate checked against `ca_pem` if given,
    /// else against the system's roots.
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Self, Error> {
        if !url.starts_with("https://") {
            return Err(Error::NotHttps { url: url.to_owned() });
        }
        let tls = match ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|source| Error::Url {
                url: url.to_owned(),
                source,
            })?
            .tls_config(tls)
            .map_err(|source| Error::Tls {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            url: url.to_owned(),
            endpoint,
        })
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
